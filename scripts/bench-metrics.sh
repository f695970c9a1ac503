#!/usr/bin/env bash
# What counting requests costs: broker CPU per step with metrics on (an HTTP listener, so
# requests are counted) and off (http.listeners=), alternating, 3 rounds (docs/benchmarks.md).
# Needs a release build (swift build -c release --product brook) and kbench
# (../shared/bench/build.sh /tmp/kb/bin); about 2 minutes; port 19093 and 19645 must be free.
set -u
B=${BROOK:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/brook}
K=${KBENCH:-/tmp/kb/bin/kbench-modern}
ticks() { sed 's/.*) //' /proc/$1/stat | awk '{print $12 + $13}'; }
for round in 1 2 3; do
for mode in on off; do
  d=${WORK:-/tmp}/bench-metrics-$mode-$round; rm -rf $d; mkdir -p $d
  if [ $mode = on ]; then http="http://127.0.0.1:19645"; else http=""; fi
  $B serve --override listeners=PLAINTEXT://127.0.0.1:19093 --override log.dirs=$d/data --override "http.listeners=$http" > $d/broker.log 2>&1 &
  pid=$!
  for i in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/19093) 2>/dev/null && break; sleep 0.2; done
  sleep 1
  for t in a e0; do $K create -b 127.0.0.1:19093 -t $t --partitions 1 --timeout 30 >/dev/null 2>&1; done
  line="mode=$mode round=$round"
  for step in a d e0; do
    t0=$(ticks $pid)
    case $step in
      a) out=$($K produce -b 127.0.0.1:19093 -t a -n 1000000 -s 100 --acks 1 --linger-ms 5 --timeout 100 2>/dev/null) ;;
      d) out=$($K consume -b 127.0.0.1:19093 -t a -n 1000000 --timeout 100 2>/dev/null) ;;
      e0) out=$($K e2e -b 127.0.0.1:19093 -t e0 --rate 10000 --seconds 10 -s 100 --acks 1 --linger-ms 0 --timeout 100 2>/dev/null) ;;
    esac
    t1=$(ticks $pid)
    rps=$(grep -o 'records_per_s=[0-9]*' <<<"$out" | tail -1)
    p99=$(grep -o 'p99_ms=[0-9.]*' <<<"$out" | tail -1)
    line="$line | $step $rps $p99 cpu_s=$(awk -v a=$t0 -v b=$t1 -v hz=$(getconf CLK_TCK) 'BEGIN{printf "%.2f",(b-a)/hz}')"
  done
  echo "$line"
  kill $pid; wait $pid
done
done
