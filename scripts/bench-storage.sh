#!/usr/bin/env bash
# Storage benchmark: the raw disk (dd) and `brook perf log` in the same run, on the same disk.
# Usage: scripts/bench-storage.sh [DIR] [BYTES]   (DIR is created and removed; default ./brook-bench, 1 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./brook-bench}
bytes=${2:-1073741824}
mib=$((bytes / 1048576))
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
swift build -c release --product brook 2>&1 | tail -1
echo "== $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(df -h "$dir" | awk 'NR==2 {print $1, $2}'), $(uname -r)"
echo "== dd, buffered write of $mib MiB (1 MiB blocks)"
sync; dd if=/dev/zero of="$dir/dd.bin" bs=1M count="$mib" 2>&1 | tail -1
echo "== dd, write of $mib MiB to disk (conv=fdatasync)"
sync; dd if=/dev/zero of="$dir/dd2.bin" bs=1M count="$mib" conv=fdatasync 2>&1 | tail -1
echo "== dd, read back (page cache)"
dd if="$dir/dd.bin" of=/dev/null bs=1M 2>&1 | tail -1
rm -f "$dir/dd.bin" "$dir/dd2.bin"
echo "== brook perf log"
.build/release/brook perf log --dir "$dir/perf" --bytes "$bytes"
