#!/usr/bin/env bash
# Tailing a wide topic: what one consumer of a 1,000-partition topic costs while a producer
# trickles records into one of its partitions (the case incremental fetch sessions, KIP-227,
# are for). One fresh Brook broker (the first BROOK_BIN) on free ports; for each consumer in
# turn, a new topic, the consumer started from its beginning, then 2,000 records of 100 B at
# 200/s into partition 0 (kbench, librdkafka), and what the broker saw while the consumer ran:
# Fetch requests, request and answer bytes per fetch, broker CPU; and the consumer's own CPU.
# Consumers: `brook perf consume` of each BROOK_BIN given (BrookClient as built there), then
# librdkafka's (kbench consume, which fetches without sessions).
#
# Usage: scripts/wide-consume-check.sh KBENCH_DIR BROOK_BIN [BROOK_BIN ...]
# (KBENCH_DIR: where ../shared/bench/build.sh put kbench-modern.) Stops by itself (each round
# within 60 s); the broker it started is stopped on exit.
set -euo pipefail
kb=$1
shift
broker_bin=$1
records=${RECORDS:-2000}
rate=${RATE:-200}
partitions=${PARTITIONS:-1000}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
http=$(free_port)
data=$(mktemp -d /tmp/wide-consume-XXXXXX)
"$broker_bin" serve --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$data" \
    --override "http.listeners=http://127.0.0.1:$http" --log-level warning &
broker=$!
trap 'kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http/ready" >/dev/null && break
    sleep 0.2
done
bootstrap=127.0.0.1:$port

fetch_metric() {
    curl -s "http://127.0.0.1:$http/metrics" | awk -v m="$1" 'index($0, m "{") == 1 && $0 ~ /api="Fetch"/ { s += $NF } END { printf "%d", s }'
}
broker_ticks() { awk '{ print $14 + $15 }' "/proc/$broker/stat"; }
hz=$(getconf CLK_TCK)

printf '%-22s %8s %14s %14s %12s %12s\n' consumer fetches "request B/fetch" "answer B/fetch" "broker CPU s" "client CPU s"
round() {
    local name=$1
    shift
    local topic
    topic="wide-$(date +%s%N)"
    "$kb/kbench-modern" create -b "$bootstrap" -t "$topic" --partitions "$partitions" >/dev/null 2>&1
    sleep 1
    local requests0 bytes_in0 bytes_out0 ticks0
    requests0=$(fetch_metric brook_requests_total)
    bytes_in0=$(fetch_metric brook_request_bytes_total)
    bytes_out0=$(fetch_metric brook_response_bytes_total)
    ticks0=$(broker_ticks)
    local timing
    timing=$(mktemp)
    local output
    output=$(mktemp)
    timeout 60 /usr/bin/time -f '%U %S' -o "$timing" "$@" "$topic" >"$output" 2>&1 &
    local consumer=$!
    sleep 2
    "$kb/kbench-modern" produce -b "$bootstrap" -t "$topic" -n "$records" -s 100 --rate "$rate" --partition 0 --linger-ms 0 >/dev/null 2>&1
    wait "$consumer" || echo "  ($name ended with $?)"
    local requests bytes_in bytes_out ticks
    requests=$(( $(fetch_metric brook_requests_total) - requests0 ))
    bytes_in=$(( $(fetch_metric brook_request_bytes_total) - bytes_in0 ))
    bytes_out=$(( $(fetch_metric brook_response_bytes_total) - bytes_out0 ))
    ticks=$(( $(broker_ticks) - ticks0 ))
    local client
    client=$(awk '{ printf "%.2f", $1 + $2 }' "$timing")
    rm -f "$timing"
    printf '%-22s %8d %14d %14d %12.2f %12s\n' "$name" "$requests" $(( bytes_in / (requests > 0 ? requests : 1) )) \
        $(( bytes_out / (requests > 0 ? requests : 1) )) "$(echo "$ticks $hz" | awk '{ print $1 / $2 }')" "$client"
    # brook perf consume's record ages (the latency from the producer while it keeps up).
    grep -h "record age" "$output" | sed 's/^/    /' || true
    rm -f "$output"
}

for bin in "$@"; do
    round "brook $(basename "$bin")" "$bin" perf consume --bootstrap-server "$bootstrap" --messages "$records" --timeout-ms 20000 --topic
done
round "librdkafka (kbench)" "$kb/kbench-modern" consume -b "$bootstrap" -n "$records" --timeout 50 -t
