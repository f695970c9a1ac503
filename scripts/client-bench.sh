#!/usr/bin/env bash
# BrookClient's producer beside librdkafka (kbench-modern from ../shared/bench), one after the
# other against one running broker: 1M x 100 B per run, acks=1 and acks=all, librdkafka's batch
# size and 16 KiB batches, BrookClient with 5 and with 1 batch in flight. Each line: the rate,
# the client's CPU (user+sys from /usr/bin/time, process start included) and the broker's CPU
# (from /proc). Results of the twenty-seventh session: docs/benchmarks.md.
#
# Usage: scripts/client-bench.sh BROKER_PID HOST:PORT [KBENCH_BIN_DIR]
#   (a release build: swift build -c release --product brook; kbench: bash ../shared/bench/build.sh DIR)
set -euo pipefail
pid=$1; addr=$2; kb=${3:-/tmp/kb/bin}
cd "$(dirname "$0")/.."
brook=.build/release/brook
[ -x "$brook" ] || { echo "client-bench: build the release binary first (swift build -c release --product brook)"; exit 2; }
[ -x "$kb/kbench-modern" ] || { echo "client-bench: no $kb/kbench-modern (bash ../shared/bench/build.sh $kb)"; exit 2; }
ticks=$(getconf CLK_TCK)
broker_cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
run() {
    local label=$1; shift
    local before after out
    before=$(broker_cpu)
    out=$( { timeout 300 /usr/bin/time -f "TIME %U %S" "$@"; } 2>&1 ) || true
    after=$(broker_cpu)
    local rate cpu
    rate=$(echo "$out" | grep -oE "records_per_s=[0-9.]+|[0-9.]+ records/sec" | head -1 || true)
    cpu=$(echo "$out" | awk '/^TIME/ {print $2 + $3}')
    printf '%s | %s | client CPU %ss | broker %.2f CPU-s\n' "$label" "${rate:-?}" "${cpu:-?}" "$(echo "($after - $before) / $ticks" | bc -l)"
}
"$kb/kbench-modern" create -b "$addr" -t kb1 --partitions 1 > /dev/null 2>&1 || true
"$brook" topic create --bootstrap-server "$addr" lib1 --partitions 1 > /dev/null 2>&1 || true
n=1000000
lib=("$brook" perf produce --bootstrap-server "$addr" --topic lib1 --num-records $n --record-size 100 --client library)
run "librdkafka acks=1, defaults" "$kb/kbench-modern" produce -b "$addr" -t kb1 -n $n -s 100 --acks 1
run "BrookClient acks=1, defaults (5 in flight)" "${lib[@]}" --acks 1
run "BrookClient acks=1, defaults, 1 in flight" "${lib[@]}" --acks 1 --max-in-flight 1
run "librdkafka acks=1, batch.size 16384" "$kb/kbench-modern" produce -b "$addr" -t kb1 -n $n -s 100 --acks 1 --batch-size 16384
run "BrookClient acks=1, batch.size 16384 (5 in flight)" "${lib[@]}" --acks 1 --batch-size 16384
run "BrookClient acks=1, batch.size 16384, 1 in flight" "${lib[@]}" --acks 1 --batch-size 16384 --max-in-flight 1
run "librdkafka acks=all, idempotent" "$kb/kbench-modern" produce -b "$addr" -t kb1 -n $n -s 100 --acks all --idempotent
run "BrookClient acks=all (idempotent, 5 in flight)" "${lib[@]}" --acks all
run "BrookClient acks=all, batch.size 16384 (5 in flight)" "${lib[@]}" --acks all --batch-size 16384
