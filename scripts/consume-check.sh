#!/bin/bash
# Consumption beside the peer, in one run (issue 17's consume goal): a release Brook and the
# Tansu peer (../shared/bench/peer-tansu.sh, memory storage) each get 1M records of 100 B on
# one partition (kbench produce); then, alternating between the two brokers RUNS times, kbench
# consumes them with librdkafka's defaults, with its fetch-queue threshold lifted
# (`queued.min.messages=1000000`), and through a consumer group. Prints one line per consume
# with records/s and the broker's CPU seconds; both brokers are stopped at the end.
#
#     swift build -c release --product brook
#     BIN=/tmp/kb/bin scripts/consume-check.sh [RUNS]      # kbench from ../shared/bench/build.sh
set -euo pipefail
RUNS=${1:-5}
BIN=${BIN:-/tmp/kb/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
BROOK=${BROOK_BIN:-$HERE/../.build/release/brook}
PEER=$HERE/../../shared/bench/peer-tansu.sh
W=$(mktemp -d)
BPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BROOK" serve --override "listeners=PLAINTEXT://127.0.0.1:$BPORT" --override "log.dirs=$W/brook" --log-level warning > "$W/brook.log" 2>&1 &
BPID=$!
cleanup() {
    kill "$BPID" 2>/dev/null || true; wait "$BPID" 2>/dev/null || true
    bash "$PEER" stop "$W/tansu" "$PPORT" > /dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT
bash "$PEER" start "$W/tansu" "$PPORT" > "$W/peer.log" 2>&1
PPID_=$(cat "$W/tansu/tansu.pid")
sleep 2
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
for b in "brook $BPORT" "tansu $PPORT"; do
    set -- $b
    "$BIN/kbench-modern" create -b "127.0.0.1:$2" -t c1 --partitions 1 > /dev/null 2>&1
    "$BIN/kbench-modern" produce -b "127.0.0.1:$2" -t c1 -n 1000000 -s 100 > /dev/null 2>&1
done
consume() { # NAME PORT PID MODE ARGS...
    local name=$1 port=$2 pid=$3 mode=$4; shift 4
    local before after out
    before=$(ticks "$pid")
    out=$(timeout 150 "$BIN/kbench-modern" consume -b "127.0.0.1:$port" -t c1 -n 1000000 --timeout 120 "$@" 2>/dev/null | tail -1)
    after=$(ticks "$pid")
    echo "$name $mode $(grep -o 'records_per_s=[0-9]*' <<< "$out") broker_cpu_s=$(echo "scale=2; ($after - $before) / $(getconf CLK_TCK)" | bc)"
}
for run in $(seq "$RUNS"); do
    for b in "brook $BPORT $BPID" "tansu $PPORT $PPID_"; do
        set -- $b
        consume "$1" "$2" "$3" defaults
        consume "$1" "$2" "$3" lifted -X queued.min.messages=1000000
        consume "$1" "$2" "$3" group -g "g$run-$RANDOM"
    done
done
