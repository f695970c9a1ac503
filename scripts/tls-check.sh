#!/bin/bash
# What TLS costs (issue 18): a release Brook with a PLAINTEXT and an SSL listener (certificates
# made here with openssl) holds 1M records of 100 B and 200k of 1 KiB on one partition each
# (kbench produce, plaintext); then, RUNS times, kbench consumes each topic over PLAINTEXT and
# over SSL, with librdkafka's fetch-queue threshold lifted (`queued.min.messages=1000000`, so
# that the client's queue does not set the pace), and produces 200k x 1 KiB over each. Prints
# one line per step with records/s and the broker's CPU seconds; the broker is stopped at the end.
#
#     swift build -c release --product brook
#     BIN=/tmp/kb/bin scripts/tls-check.sh [RUNS]      # kbench from ../shared/bench/build.sh
set -euo pipefail
RUNS=${1:-3}
BIN=${BIN:-/tmp/kb/bin}
HERE=$(cd "$(dirname "$0")" && pwd)
BROOK=${BROOK_BIN:-$HERE/../.build/release/brook}
W=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
SPORT=$(free_port)
cd "$W"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ca > /dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj /CN=localhost > /dev/null 2>&1
echo "subjectAltName=IP:127.0.0.1,DNS:localhost" > ext
openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 2 -extfile ext > /dev/null 2>&1
cat broker.key broker.pem > keystore.pem
cd - > /dev/null
"$BROOK" serve --override "listeners=PLAINTEXT://127.0.0.1:$PORT,SSL://127.0.0.1:$SPORT" --override "log.dirs=$W/data" \
    --override "ssl.keystore.location=$W/keystore.pem" --log-level warning > "$W/brook.log" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
sleep 2
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
"$BIN/kbench-modern" create -b "127.0.0.1:$PORT" -t small --partitions 1 > /dev/null 2>&1
"$BIN/kbench-modern" create -b "127.0.0.1:$PORT" -t large --partitions 1 > /dev/null 2>&1
"$BIN/kbench-modern" produce -b "127.0.0.1:$PORT" -t small -n 1000000 -s 100 > /dev/null 2>&1
"$BIN/kbench-modern" produce -b "127.0.0.1:$PORT" -t large -n 200000 -s 1024 > /dev/null 2>&1
SSL=(-X security.protocol=ssl -X "ssl.ca.location=$W/ca.pem")
step() { # NAME MODE ARGS...
    local name=$1 mode=$2; shift 2
    local before after out
    before=$(ticks "$PID")
    out=$(timeout 150 "$BIN/kbench-modern" "$mode" --timeout 120 "$@" 2>/dev/null | tail -1)
    after=$(ticks "$PID")
    echo "$name $(grep -o 'records_per_s=[0-9]*' <<< "$out") broker_cpu_s=$(echo "scale=2; ($after - $before) / $(getconf CLK_TCK)" | bc)"
}
for run in $(seq "$RUNS"); do
    step "consume-1M-x-100B plaintext" consume -b "127.0.0.1:$PORT" -t small -n 1000000 -X queued.min.messages=1000000
    step "consume-1M-x-100B tls      " consume -b "127.0.0.1:$SPORT" -t small -n 1000000 -X queued.min.messages=1000000 "${SSL[@]}"
    step "consume-200k-x-1KiB plaintext" consume -b "127.0.0.1:$PORT" -t large -n 200000 -X queued.min.messages=1000000
    step "consume-200k-x-1KiB tls      " consume -b "127.0.0.1:$SPORT" -t large -n 200000 -X queued.min.messages=1000000 "${SSL[@]}"
    step "produce-200k-x-1KiB plaintext" produce -b "127.0.0.1:$PORT" -t "p$run" -n 200000 -s 1024
    step "produce-200k-x-1KiB tls      " produce -b "127.0.0.1:$SPORT" -t "q$run" -n 200000 -s 1024 "${SSL[@]}"
done
