#!/bin/bash
# The end-to-end step of ../shared/bench/run-peer.sh (e0: 10,000 single-record produce requests
# a second for 10 s, linger 0, and a consumer reading them) against a fresh release broker, with
# the broker's CPU time from /proc, RUNS times:
#
#     swift build -c release --product brook
#     BIN=/tmp/kb/bin scripts/e2e-check.sh [PORT] [NETWORK_THREADS] [RUNS]
#
# NETWORK_THREADS 0 keeps the default (num.network.threads: one event loop per core). kbench
# comes from ../shared/bench/build.sh. The broker and its data dir are removed at the end.
# BROOK_OVERRIDES="key=value ..." adds broker settings (tracing.otlp.endpoint=..., say).
set -euo pipefail
PORT=${1:-19611}; THREADS=${2:-0}; RUNS=${3:-2}
BIN=${BIN:-/tmp/kb/bin}
BROOK=${BROOK_BIN:-$(dirname "$0")/../.build/release/brook}
DATA=$(mktemp -d)
EXTRA=()
[ "$THREADS" != "0" ] && EXTRA=(--override "num.network.threads=$THREADS")
for setting in ${BROOK_OVERRIDES:-}; do EXTRA+=(--override "$setting"); done
"$BROOK" serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$DATA/data" "${EXTRA[@]}" \
    --log-level warning > "$DATA/broker.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
sleep 2
"$BIN/kbench-modern" create -b "127.0.0.1:$PORT" -t e0 --partitions 1 > /dev/null 2>&1
for _ in $(seq "$RUNS"); do
    before=$(awk '{print $14+$15}' /proc/$PID/stat)
    result=$(timeout 120 "$BIN/kbench-modern" e2e -b "127.0.0.1:$PORT" -t e0 --rate 10000 --seconds 10 -s 100 --acks 1 --linger-ms 0 2>/dev/null | tail -1)
    after=$(awk '{print $14+$15}' /proc/$PID/stat)
    echo "threads=$THREADS $(echo "$result" | grep -o 'received=[0-9]*') $(echo "$result" | grep -o 'p50_ms=[0-9.]* p99_ms=[0-9.]*') $(echo "$result" | grep -o 'client_cpu_s=[0-9.]*') broker_cpu_s=$(echo "scale=2; ($after - $before) / $(getconf CLK_TCK)" | bc)"
done
