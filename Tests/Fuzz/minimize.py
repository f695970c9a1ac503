#!/usr/bin/env python3
"""Picks a small corpus from a libFuzzer merge control file (scripts/fuzz.sh --merge).

    python3 Tests/Fuzz/minimize.py CONTROL_FILE OUT_DIR [FILES_MAX BYTES_MAX]

libFuzzer's -merge=1 keeps every input that adds a feature in order of size, which leaves
thousands of files for a decoder with thousands of edges. This picks greedily instead: the
input covering the most features not yet covered (the smaller on a tie), until every feature
the whole set covers is covered, or the budget (default 1,000 files and 64 KiB per target, so
that the committed corpus stays small) is spent; the picked files are copied to OUT_DIR, named
by content. The most productive inputs come first, so a budget cuts the long tail: inputs that
each add one or two edges of some rarely used version.
Reproducers (crash-*) are left out: they stay in the corpus under their own names.
"""
import hashlib
import os
import shutil
import sys


def main():
    control, out = sys.argv[1], sys.argv[2]
    files_max = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    bytes_max = int(sys.argv[4]) if len(sys.argv) > 4 else 64 * 1024
    lines = open(control).read().splitlines()
    count = int(lines[0])
    files = lines[2:2 + count]
    features = {}
    for line in lines[2 + count:]:
        parts = line.split()
        if parts and parts[0] == "FT" and not os.path.basename(files[int(parts[1])]).startswith("crash-"):
            features[int(parts[1])] = set(map(int, parts[2:]))
    sizes = {i: os.path.getsize(files[i]) for i in features}
    wanted = set().union(*features.values()) if features else set()
    picked = []
    covered = set()
    candidates = set(features)
    spent = 0
    while covered != wanted and len(picked) < files_max:
        best = max(candidates, key=lambda i: (len(features[i] - covered), -sizes[i]))
        gain = features[best] - covered
        if not gain or spent + sizes[best] > bytes_max:
            break
        spent += sizes[best]
        covered |= gain
        picked.append(best)
        candidates.discard(best)
    os.makedirs(out, exist_ok=True)
    total = 0
    for i in picked:
        data = open(files[i], "rb").read()
        total += len(data)
        with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    print(f"{len(picked)} of {len(features)} inputs keep {len(covered)} of {len(wanted)} features, {total} bytes")


if __name__ == "__main__":
    main()
