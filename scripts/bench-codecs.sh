#!/usr/bin/env bash
# Codec speed: Brook's codecs (`brook perf codecs`, release build) beside the C reference tools
# on the same bytes: uncompressed record batches of the perf produce text payload.
#   scripts/bench-codecs.sh            (MIB=32 by default; BROOK=path to a release brook)
set -euo pipefail
cd "$(dirname "$0")/.."
BROOK=${BROOK:-.build-release/release/brook}
MIB=${MIB:-32}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$work/sample.bin"

echo "=== brook perf codecs (in process, best of repeated runs)"
"$BROOK" perf codecs --mib "$MIB" --write-sample "$data" --seconds 3
echo "=== the same in 1 MiB chunks (one per batch, as the broker sees them)"
"$BROOK" perf codecs --mib "$MIB" --chunk-kb 1024 --seconds 3

echo "=== C reference tools, in-memory benchmark modes: zstd -b3 (Kafka's default level), lz4 -b1"
zstd -b3 -i3 "$data" 2>&1 | tr '\r' '\n' | grep 'MB/s.*MB/s' | tail -1
lz4 -b1 -i3 "$data" 2>&1 | tr '\r' '\n' | grep 'MB/s.*MB/s' | tail -1

echo "=== gzip -6 (no benchmark mode: best of 3 runs, from and to memory-backed files)"
best() { # best wall time of 3 runs of "$@", in seconds
    local b=999 t
    for _ in 1 2 3; do
        t=$( { /usr/bin/time -f %e "$@" >/dev/null; } 2>&1 | tail -1)
        b=$(awk -v a="$b" -v c="$t" 'BEGIN { print (c < a ? c : a) }')
    done
    echo "$b"
}
gzip -6 -c "$data" > "$data.gz"
size=$(stat -c %s "$data")
ct=$(best gzip -6 -c "$data")
dt=$(best gzip -dc "$data.gz")
awk -v s="$size" -v z="$(stat -c %s "$data.gz")" -v c="$ct" -v d="$dt" \
    'BEGIN { printf "gzip: %d -> %d (ratio %.2f), compress %.1f MB/s, decompress %.1f MB/s\n", s, z, s/z, s/1e6/c, s/1e6/d }'

echo "=== snappy reference (no C tool here): python-snappy on cramjam (Rust), raw format, in memory"
python3 - "$data" <<'PY'
import sys, time
import snappy
data = open(sys.argv[1], "rb").read()
def best(f, n=5):
    b = 1e9
    for _ in range(n):
        t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)
    return b
c = snappy.compress(data)
ct = best(lambda: snappy.compress(data))
dt = best(lambda: snappy.decompress(c))
mb = len(data) / 1e6
print(f"snappy: {len(data)} -> {len(c)} (ratio {len(data)/len(c):.2f}), compress {mb/ct:.1f} MB/s, decompress {mb/dt:.1f} MB/s")
PY
