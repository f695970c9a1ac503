#!/usr/bin/env bash
# Builds BrookClient's DocC catalog (Sources/BrookClient/BrookClient.docc) with the toolchain's
# own `docc` over the symbol graph SwiftPM dumps from the debug build (no docc plugin needed),
# warnings as errors: a symbol a page names that does not exist, or a broken link, fails.
# Usage: scripts/docs-check.sh [OUTPUT_DIR]   (the site is written there; default: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/swift-path.sh

out="${1:-}"
work=$(mktemp -d /tmp/brook-docc-XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -n "$out" ] || out="$work/site"

swift package dump-symbol-graph --minimum-access-level public > "$work/dump.log" 2>&1 \
    || { cat "$work/dump.log"; echo "docs-check: the symbol graph could not be dumped"; exit 1; }
graphs=$(sed -n 's/^Files written to //p' "$work/dump.log")
[ -d "$graphs" ] || { cat "$work/dump.log"; echo "docs-check: no symbol graph directory"; exit 1; }
mkdir -p "$work/graphs"
cp "$graphs"/BrookClient.symbols.json "$graphs"/BrookClient@*.symbols.json "$work/graphs/" 2>/dev/null || true
[ -f "$work/graphs/BrookClient.symbols.json" ] || { echo "docs-check: no symbol graph for BrookClient"; exit 1; }

docc convert Sources/BrookClient/BrookClient.docc --additional-symbol-graph-dir "$work/graphs" \
    --output-path "$out" --fallback-display-name BrookClient --fallback-bundle-identifier org.brook.BrookClient \
    --warnings-as-errors > "$work/docc.log" 2>&1 || { cat "$work/docc.log"; echo "docs-check: DocC found problems"; exit 1; }
grep -i "warning\|error" "$work/docc.log" && { echo "docs-check: DocC found problems"; exit 1; }
echo "docs-check: BrookClient's documentation builds ($(find "$out" -name '*.json' | wc -l) pages and data files)"
