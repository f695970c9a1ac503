#!/usr/bin/env bash
# Brook's MQTT listener beside Debian's Mosquitto, in one run (docs/benchmarks.md, issue 20):
# `brook perf mqtt` against each broker in turn: QoS 0 and QoS 1 bursts (200,000 x 100 B, one
# publisher, one subscriber), the same at a fixed 10,000 messages/s (latency), and 10,000 idle
# connections (resident memory per connection). Broker CPU from /proc. Brook writes every
# message to its log (acks=all); Mosquitto keeps them in memory (persistence false).
# Needs a release build (swift build -c release --product brook) and mosquitto (apt-get install
# mosquitto); about 2 minutes; ports 19096, 11885 and 11886 must be free. Stops what it starts.
set -u
B=${BROOK:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/brook}
W=${WORK:-/tmp}/bench-mqtt
command -v mosquitto >/dev/null || { echo "bench-mqtt: mosquitto is not installed (apt-get install mosquitto)" >&2; exit 2; }
[ -x "$B" ] || { echo "bench-mqtt: no release build at $B" >&2; exit 2; }
rm -rf "$W"; mkdir -p "$W"
ulimit -n 65536 2>/dev/null || true
"$B" serve --override listeners=PLAINTEXT://127.0.0.1:19096 --override log.dirs="$W/brook" --override http.listeners= \
    --override mqtt.listeners=mqtt://127.0.0.1:11885 > "$W/brook.log" 2>&1 &
brook=$!
printf 'listener 11886 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\n' > "$W/mosquitto.conf"
mosquitto -c "$W/mosquitto.conf" > "$W/mosquitto.log" 2>&1 &
mosq=$!
trap 'kill $brook $mosq 2>/dev/null; wait $brook $mosq 2>/dev/null' EXIT
for port in 11885 11886; do
  for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
done
sleep 1
run() { # name port pid args...
  local name=$1 port=$2 pid=$3; shift 3
  echo "== $name: $*"
  timeout 120 "$B" perf mqtt --broker 127.0.0.1:$port --broker-pid $pid "$@" --timeout 90 || echo "(failed)"
}
for qos in 0 1; do
  run brook 11885 $brook --messages 200000 --qos $qos
  run mosquitto 11886 $mosq --messages 200000 --qos $qos
done
for qos in 0 1; do
  run brook 11885 $brook --messages 50000 --qos $qos --rate 10000
  run mosquitto 11886 $mosq --messages 50000 --qos $qos --rate 10000
done
run brook 11885 $brook --idle-clients 10000
run mosquitto 11886 $mosq --idle-clients 10000
