#!/usr/bin/env bash
# End-to-end checks of the `brook` executable: a real log written by `brook perf log`'s engine,
# dumped and checked by `brook log dump`, and a damaged index reported with a non-zero exit.
set -euo pipefail
brook=${1:?usage: cli-test.sh PATH_TO_BROOK}
work=$(mktemp -d /tmp/brook-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0; failed=0
check() {  # check NAME COMMAND...: passes when the command succeeds
    local name=$1; shift
    if "$@" >"$work/out" 2>&1; then passed=$((passed + 1)); echo "ok   $name"
    else failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$work/out" | tail -20; fi
}

check "perf log runs and recovers a killed log" bash -c "'$brook' perf log --dir '$work/perf' --bytes 8000000 > '$work/perf.txt'"
check "perf log reports the raw disk beside the log" grep -q "raw pwrite" "$work/perf.txt"
check "perf log cleans up after itself" test ! -e "$work/perf"

# Segments written by the engine, kept for the dump tool.
check "perf log keeps its log when asked" "$brook" perf log --dir "$work/keep" --bytes 300000 --segment-bytes 100000 --keep
seg=$(ls "$work/keep/perf-0/"*.log | head -1)
check "log dump prints batches" bash -c "'$brook' log dump '$seg' | grep -q 'baseOffset: 0 lastOffset:'"
check "log dump --print-data-log prints records" bash -c "'$brook' log dump --print-data-log '$seg' | grep -q '| offset: 0 CreateTime:'"
check "log dump checks the offset index" "$brook" log dump "${seg%.log}.index" "${seg%.log}.timeindex"
printf '\x00\x00\x00\x05\x00\x00\x00\x07' | dd of="${seg%.log}.index" bs=1 seek=0 conv=notrunc status=none
check "a damaged index is reported (exit 1)" bash -c "! '$brook' log dump '${seg%.log}.index'"
check "a missing file is a readable error" bash -c "'$brook' log dump '$work/nope/00000000000000000000.log' 2>&1 | grep -q 'open failed'; test \${PIPESTATUS[0]} -ne 0"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
