#!/usr/bin/env bash
# BrookClient builds beside librdkafka (kbench-modern from ../shared/bench), alternated in rounds
# against one running broker: 1M x 100 B, acks=1, one batch.size. Each line: the client, its
# rate, its CPU (user+sys), the broker's CPU (from /proc) and the client's context switches
# (perf stat); then the means. Results: docs/benchmarks.md (thirtieth session).
#
# Usage: scripts/client-ab.sh BROKER_PID HOST:PORT BATCH_SIZE ROUNDS BROOK_BINARY... [KBENCH_BIN_DIR via KB=]
#   e.g. scripts/client-ab.sh 1234 127.0.0.1:19092 16384 3 /tmp/brook-before .build/release/brook
set -euo pipefail
pid=$1; addr=$2; bs=$3; rounds=$4; shift 4
kb=${KB:-/tmp/kb/bin}
[ -x "$kb/kbench-modern" ] || { echo "client-ab: no $kb/kbench-modern (bash ../shared/bench/build.sh $kb)"; exit 2; }
command -v perf > /dev/null || { echo "client-ab: perf is missing (apt-get install linux-perf)"; exit 2; }
ticks=$(getconf CLK_TCK)
broker_cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
"$kb/kbench-modern" create -b "$addr" -t kb1 --partitions 1 > /dev/null 2>&1 || true
"$1" topic create --bootstrap-server "$addr" lib1 --partitions 1 > /dev/null 2>&1 || true
for round in $(seq 1 "$rounds"); do
    for client in librdkafka "$@"; do
        before=$(broker_cpu)
        if [ "$client" = librdkafka ]; then
            out=$( { timeout 300 perf stat -e context-switches -x, -- /usr/bin/time -f "TIME %U %S" \
                "$kb/kbench-modern" produce -b "$addr" -t kb1 -n 1000000 -s 100 --acks 1 --batch-size "$bs"; } 2>&1 ) || true
            rate=$(echo "$out" | grep -oE 'records_per_s=[0-9]+' | cut -d= -f2 || true)
        else
            out=$( { timeout 300 perf stat -e context-switches -x, -- /usr/bin/time -f "TIME %U %S" \
                "$client" perf produce --bootstrap-server "$addr" --topic lib1 --num-records 1000000 --record-size 100 --acks 1 \
                --client library --batch-size "$bs"; } 2>&1 ) || true
            rate=$(echo "$out" | grep -oE '[0-9.]+ records/sec' | cut -d. -f1 || true)
        fi
        after=$(broker_cpu)
        echo "$client ${rate:-0} $(echo "$out" | awk '/^TIME/ {print $2 + $3}') $(echo "($after - $before) / $ticks" | bc -l | cut -c1-5) $(echo "$out" | grep context-switches | cut -d, -f1)"
    done
done | awk '{ print; n[$1]++; r[$1] += $2; c[$1] += $3; b[$1] += $4; s[$1] += $5 }
    END { for (x in n) printf "%s: mean %.0f records/s, client %.2f CPU-s, broker %.2f CPU-s, %.0f context switches\n", x, r[x] / n[x], c[x] / n[x], b[x] / n[x], s[x] / n[x] }'
