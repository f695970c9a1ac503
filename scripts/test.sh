#!/usr/bin/env bash
# Brook's whole test suite: what a new user runs on a fresh machine, and what CI runs (.ci/run).
# Installs what it needs when missing (kcat, confluent-kafka, kafka-python, pytest), checks the
# generated protocol code, builds, runs the unit / property / simulation tests (which replay the
# fuzzing corpus), the end-to-end checks of the `brook` executable, the Raft and cluster
# simulators' seeds and a three-controller failover, then the interop suite: real Kafka clients
# against `brook serve`; then a short libFuzzer run of every decoder target and the allocation
# counts of the Produce and Fetch paths against their thresholds (Benchmarks/), both built in
# release beside the interop suite.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/swift-path.sh

# Each stage's header says how long the run has taken so far (CI's budget is watched by it).
started=$SECONDS
stage() { echo "== $* [$(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s]"; }

stage "generated protocol code"
python3 scripts/protogen.py --check
python3 scripts/embed-console.py --check

stage "build"
swift build --build-tests 2>&1 | grep -E "error|warning: unre|Compiling|Build complete" | grep -v Compiling || true

stage "unit, property and recovery tests"
log=$(mktemp /tmp/brook-swift-test-XXXXXX)
background=""
background_log=$(mktemp /tmp/brook-background-XXXXXX)
# The background builds (below) are a process group of their own: stopped with the run.
trap 'rm -f "$log" "$background_log"; [ -z "$background" ] || kill -- -"$background" 2>/dev/null || true' EXIT
swift test --skip-build 2>&1 | tee "$log" | grep -E "✘|Suite .* (passed|failed) after|Test run with|error:" || true
if ! grep -qE "Test run with [0-9]+ tests? .*passed" "$log"; then
    echo "swift test failed"; exit 1
fi

stage "executable checks"
scripts/cli-test.sh "$(swift build --show-bin-path)/brook"

stage "BrookClient's DocC documentation (the toolchain's docc, warnings as errors)"
scripts/docs-check.sh

stage "Raft quorum: simulated seeds, then three controller processes with the leader killed"
"$(swift build --show-bin-path)/brook-sim" --seeds 100 --first-seed 1000
stage "replicated cluster: simulated seeds (controller, brokers, partition replication, acks=all)"
"$(swift build --show-bin-path)/brook-sim" --cluster --seeds 300 --first-seed 5000
stage "replicated cluster with min.insync.replicas=3 of 3: leaders from the eligible leader replicas (KIP-966)"
"$(swift build --show-bin-path)/brook-sim" --cluster --seeds 100 --first-seed 7000 --min-isr 3
python3 scripts/quorum-failover.py --brook "$(swift build --show-bin-path)/brook" --rounds 2

# The two release builds the last stages need (libFuzzer's, the allocation benchmarks') run
# beside the interop suite at idle priority: the suite mostly waits on its clients and brokers,
# and a build at SCHED_IDLE only takes the CPU they leave (about 7 minutes saved).
stage "interop: kcat, confluent-kafka and kafka-python against brook serve (release builds at idle priority beside it)"
setsid bash -c 'idle=(chrt --idle 0 nice -n 19 ionice -c 3); "${idle[@]}" scripts/fuzz.sh --build-only && "${idle[@]}" scripts/alloc-check.sh --build-only' \
    > "$background_log" 2>&1 &
background=$!
BROOK_BIN="$(swift build --show-bin-path)/brook" scripts/interop.sh --durations=15

stage "the background builds"
status=0
wait "$background" || status=$?
background=""
cat "$background_log"
[ "$status" -eq 0 ] || { echo "a background build failed"; exit 1; }

stage "fuzzing: every decoder target for 5 s under libFuzzer (docs/reliability.md)"
scripts/fuzz.sh --seconds 5 --no-build

stage "allocations per Produce and Fetch request, held by thresholds (Benchmarks/, ordo-one/benchmark)"
scripts/alloc-check.sh
stage "done"
