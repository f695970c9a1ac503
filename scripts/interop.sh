#!/usr/bin/env bash
# Brook's interop suite: real, unchanged Kafka clients (confluent-kafka / librdkafka, kafka-python,
# kcat) against a real `brook serve` process on loopback. Installs the clients when missing, then
# runs pytest on tests/interop; extra arguments go to pytest (e.g. -k metadata, -x).
#
#   scripts/interop.sh                       # the whole suite
#   BROOK_BIN=path/to/brook scripts/interop.sh -k restart
#   BROOK_INTEROP_RECORDS=10000 scripts/interop.sh   # fewer records in the large tests
#
# Exits with pytest's status (124 if the whole run outlasts BROOK_INTEROP_TIMEOUT seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

brook_bin="${BROOK_BIN:-$PWD/.build/debug/brook}"
if [ ! -x "$brook_bin" ]; then
    echo "interop: no brook binary at $brook_bin: build it first (swift build), or set BROOK_BIN" >&2
    exit 2
fi
export BROOK_BIN="$brook_bin"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v kcat >/dev/null 2>&1; then
    echo "interop: installing kcat"
    { as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq kcat; } >/dev/null 2>&1 \
        || { echo "interop: could not install kcat (apt-get install kcat)" >&2; exit 2; }
fi

# libfaketime: the fault campaign's clock jumps (a node's wall clock stepped, as NTP does).
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] && command -v apt-get >/dev/null 2>&1; then
    echo "interop: installing faketime"
    { as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq faketime; } >/dev/null 2>&1 \
        || echo "interop: could not install faketime: the fault campaign runs without clock jumps" >&2
fi

# promtool (Debian's prometheus package): the metrics tests lint /metrics with it.
if ! command -v promtool >/dev/null 2>&1; then
    echo "interop: installing promtool (prometheus)"
    { as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null 2>&1 \
        || { echo "interop: could not install promtool (apt-get install prometheus)" >&2; exit 2; }
fi

# mosquitto_pub / mosquitto_sub (Debian's mosquitto-clients): the MQTT listener's tests.
if ! command -v mosquitto_sub >/dev/null 2>&1; then
    echo "interop: installing mosquitto-clients"
    { as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq mosquitto-clients; } >/dev/null 2>&1 \
        || { echo "interop: could not install mosquitto-clients" >&2; exit 2; }
fi

# Chromium and its driver (Debian's): the console's tests run it headless through Selenium.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    echo "interop: installing chromium and chromium-driver"
    { as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
        || { echo "interop: could not install chromium and chromium-driver" >&2; exit 2; }
fi

clients_ok() {
    python3 - 2>/dev/null <<'PY'
import re
import confluent_kafka, kafka, pytest
import snappy, lz4.frame, zstandard  # kafka-python's codecs
import cryptography  # OAUTHBEARER's signed tokens
import selenium  # the console's browser tests
import paho.mqtt  # the MQTT listener's tests
import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # the tracing test's collector
def v(s):
    return tuple(int(x) for x in re.findall(r"\d+", s)[:2])
ck = getattr(confluent_kafka, "__version__", None) or confluent_kafka.version()
assert v(ck if isinstance(ck, str) else ck[0]) >= (2, 16)
assert (3, 0) <= v(kafka.__version__) < (4, 0)
assert v(pytest.__version__) >= (8, 0)
assert v(paho.mqtt.__version__) >= (2, 0)
PY
}
if ! clients_ok; then
    echo "interop: installing confluent-kafka, kafka-python, its codecs, pytest, selenium, paho-mqtt, opentelemetry-proto"
    pip_install() { timeout 600 python3 -m pip install -q --disable-pip-version-check "$@" -r tests/interop/requirements.txt 2>&1 \
        | grep -v -i -e "running pip as the 'root' user" -e "^\s*$" || true; }
    pip_install
    # A distribution's own Python (PEP 668) refuses plain pip installs.
    clients_ok || pip_install --break-system-packages
    clients_ok || { echo "interop: the Python clients did not install (see tests/interop/requirements.txt)" >&2; exit 2; }
fi

export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ left in the work tree
status=0
timeout -k 30 "${BROOK_INTEROP_TIMEOUT:-3600}" python3 -m pytest -q -p no:cacheprovider tests/interop "$@" || status=$?
exit "$status"
