#!/usr/bin/env bash
# Coverage-guided fuzzing of Brook's decoders with libFuzzer (docs/reliability.md, "Fuzzing").
#
#   scripts/fuzz.sh [--seconds N | --runs N] [--no-build] [TARGET...] [-- LIBFUZZER_FLAGS...]
#       builds brook-fuzz instrumented (BROOK_FUZZ=1, release, scratch path .build-fuzz) and runs
#       each target (default: all) for N seconds (default 20) or N inputs, from the committed
#       corpus (Tests/Fuzz/corpus/TARGET, read only) plus a working corpus that grows
#       (.build-fuzz/corpus/TARGET). Crashes, hangs (-timeout) and memory blowups (-rss_limit_mb)
#       are written to .build-fuzz/artifacts/TARGET/; exits 1 if any target found one.
#       --no-build runs the brook-fuzz already built (two runs side by side, one build);
#       --build-only builds it and runs nothing (the test command builds it beside the interop suite).
#   scripts/fuzz.sh --replay [TARGET...]
#       no libFuzzer: a normal debug build of brook-fuzz replays the committed corpus through
#       each target (what BrookFuzzTests does under `swift test`); cheap.
#   scripts/fuzz.sh --merge [TARGET...]
#       minimizes the committed corpus plus the working corpus into Tests/Fuzz/corpus/TARGET
#       (libFuzzer -merge=1: the smallest set keeping the coverage); crash-* files stay.
#   scripts/fuzz.sh --seed
#       writes fresh seeds (Brook's encoders and the golden fixtures) into the working corpus;
#       then --merge keeps those that add coverage.
#
# A crash: `brook-fuzz replay -v TARGET FILE` with a debug build shows the trap and its stack;
# keep the reproducer as Tests/Fuzz/corpus/TARGET/crash-<what>, fixed with a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/swift-path.sh

scratch=.build-fuzz
corpus=Tests/Fuzz/corpus
mode=fuzz
seconds=20
runs=""
no_build=""
targets=()
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --replay) mode=replay; shift ;;
        --no-build) no_build=1; shift ;;
        --build-only) mode=build; shift ;;
        --merge) mode=merge; shift ;;
        --seed) mode=seed; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        -*) echo "unknown option $1 (--help)"; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

build() {  # build [fuzz]: the instrumented release build, or the plain debug one
    local started=$SECONDS
    if [ -n "$no_build" ]; then
        bin="$scratch/$([ "${1:-}" = fuzz ] && echo release || echo debug)/brook-fuzz"
        [ -x "$bin" ] || { echo "$bin is not built"; exit 1; }
        return
    fi
    if [ "${1:-}" = fuzz ]; then
        echo "== building brook-fuzz with libFuzzer (BROOK_FUZZ=1, release, $scratch)"
        BROOK_FUZZ=1 swift build --scratch-path "$scratch" -c release --product brook-fuzz 2>&1 \
            | grep -E "error|warning: unre|Build of product" || true
        bin="$(BROOK_FUZZ=1 swift build --scratch-path "$scratch" -c release --show-bin-path)/brook-fuzz"
    else
        echo "== building brook-fuzz ($scratch, debug)"
        swift build --scratch-path "$scratch" --product brook-fuzz 2>&1 | grep -E "error|warning: unre|Build of product" || true
        bin="$(swift build --scratch-path "$scratch" --show-bin-path)/brook-fuzz"
    fi
    [ -x "$bin" ] || { echo "build failed"; exit 1; }
    echo "   built in $((SECONDS - started)) s"
}

# Run as libFuzzer wants it: Swift's own crash reporter off, so that libFuzzer's signal handler
# writes the reproducer (the trap's message is still printed).
export SWIFT_BACKTRACE=enable=no

case "$mode" in
    replay)
        build
        [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <("$bin" list | cut -f1)
        for target in "${targets[@]}"; do
            "$bin" replay "$target" "$corpus/$target" || {
                echo "$target: a corpus input crashed; find it with: $bin replay -v $target $corpus/$target"; exit 1; }
        done
        exit 0 ;;
    seed)
        build
        "$bin" seed "$scratch/corpus"
        python3 Tests/Fuzz/seed_from_golden.py "$scratch/corpus"
        exit 0 ;;
esac

build fuzz
[ "$mode" = build ] && exit 0
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <("$bin" list | cut -f1)
failed=()
for target in "${targets[@]}"; do
    max_len=$("$bin" list | awk -F'\t' -v t="$target" '$1 == t { print $2 }')
    [ -n "$max_len" ] || { echo "no fuzz target $target ($bin list)"; exit 2; }
    mkdir -p "$scratch/corpus/$target" "$scratch/artifacts/$target" "$corpus/$target"
    common=(-max_len="$max_len" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$scratch/artifacts/$target/")
    if [ "$mode" = merge ]; then
        echo "== $target: merging into $corpus/$target"
        fresh="$scratch/merge/$target"
        rm -rf "$fresh" "$scratch/merge/$target".* && mkdir -p "$fresh" "$scratch/merge/$target.unused"
        # Edges only (no hit counts), then a greedy set cover (Tests/Fuzz/minimize.py): libFuzzer's
        # own merge keeps several times more files for the same edges.
        BROOK_FUZZ_TARGET="$target" "$bin" "${common[@]}" -merge=1 -use_counters=0 \
            -merge_control_file="$scratch/merge/$target.control" "$scratch/merge/$target.unused" \
            "$corpus/$target" "$scratch/corpus/$target" \
            > "$scratch/artifacts/$target/merge.log" 2>&1 || { echo "merge failed: $scratch/artifacts/$target/merge.log"; exit 1; }
        python3 Tests/Fuzz/minimize.py "$scratch/merge/$target.control" "$fresh" | sed 's/^/   /'
        find "$corpus/$target" -type f ! -name 'crash-*' -delete
        cp "$fresh"/* "$corpus/$target/"
        rm -rf "$scratch/merge/$target.unused"
        echo "   $(ls "$corpus/$target" | wc -l) files, $(du -sb "$corpus/$target" | cut -f1) bytes"
        continue
    fi
    limit=(-max_total_time="$seconds")
    [ -n "$runs" ] && limit=(-runs="$runs")
    log="$scratch/artifacts/$target/fuzz.log"
    if [ -n "$runs" ]; then echo "== $target: $runs inputs"; else echo "== $target: $seconds s"; fi
    status=0
    BROOK_FUZZ_TARGET="$target" "$bin" "${common[@]}" "${limit[@]}" -print_final_stats=1 "${extra[@]}" \
        "$scratch/corpus/$target" "$corpus/$target" > "$log" 2>&1 || status=$?
    inputs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log")
    coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    echo "   ${inputs:-?} inputs, ${rate:-?}/s, $coverage"
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        grep -E "Fatal error|runtime failure|ERROR: libFuzzer|Test unit written" "$log" | sed 's/^/   /' || true
        echo "   log: $log"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FOUND: ${failed[*]} (reproducers in $scratch/artifacts/)"
    exit 1
fi
