#!/usr/bin/env bash
# Allocations per Produce and Fetch request, held by thresholds (issue 17): builds the
# allocation benchmarks in Benchmarks/ (ordo-one/benchmark with its malloc interposer, a
# release build of their own, about 7 minutes the first time on 2 cores) and checks each
# count against Benchmarks/Thresholds/ (at most 2 more allocations a request than recorded).
#
#   scripts/alloc-check.sh            # check (exit 1 when a count went up)
#   scripts/alloc-check.sh --update   # record the current counts as the thresholds
#   scripts/alloc-check.sh --show     # the counts, and where each allocation comes from
#   scripts/alloc-check.sh --build-only   # the release build alone (the test command runs it
#                                         # beside the interop suite, then checks)
set -euo pipefail
cd "$(dirname "$0")/../Benchmarks"
. ../scripts/swift-path.sh

case "${1:-}" in
    --update) exec swift package --allow-writing-to-package-directory benchmark thresholds update ;;
    --show) exec swift package benchmark --allocation-stacks ;;
    ""|--build-only) ;;
    *) echo "usage: $0 [--update | --show | --build-only]" >&2; exit 2 ;;
esac
swift build -c release 2>&1 | grep -E "error|Build complete" || true
[ "${1:-}" = --build-only ] && exit 0
# The plugin draws a progress bar per benchmark; the verdict and any deviation table stay.
swift package benchmark thresholds check 2>&1 | grep -v "ETA:" | sed '/^$/d'
