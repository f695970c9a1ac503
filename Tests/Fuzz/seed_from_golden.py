#!/usr/bin/env python3
"""Seeds the request, response and frame fuzz targets from the golden fixtures.

    python3 Tests/Fuzz/seed_from_golden.py [CORPUS_DIR]     (default Tests/Fuzz/corpus)

Reads Tests/BrookProtocolTests/GoldenFixtures.swift (message bodies kafka-python encoded, see
Tests/BrookProtocolTests/golden/make_golden.py) and Sources/BrookProtocol/Generated/ApiCatalog.swift
(keys and flexible versions), and writes, named by content so that reruns do not duplicate:

  request/golden-<api>-v<version>-<variant>    api key byte, version byte, request body
  response/golden-<api>-v<version>-<variant>   api key byte, version byte, response body
  frame/golden-<api>-v<version>-<variant>      piece size byte, then the request as a frame
                                               (length, header v1 or v2, body)

The other targets' seeds (record batches with each codec, group and transaction records,
quorum frames) are built by `brook-fuzz seed` from Brook's own encoders.
"""
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "BrookProtocolTests", "GoldenFixtures.swift")
CATALOG = os.path.join(ROOT, "Sources", "BrookProtocol", "Generated", "ApiCatalog.swift")

FIXTURE = re.compile(r'GoldenFixture\((\w+?)(Request|Response)\.self, version: (\d+), variant: "(\w+)",\s*hex: "([0-9a-f]*)"')
ENTRY = re.compile(r'Entry\(key: (\d+), name: "(\w+)", versions: \d+\.\.\.\d+, flexibleFrom: (\d+|nil)\)')


def frame(key, version, flexible, body):
    client = b"fuzz"
    header = struct.pack(">hhih", key, version, 7, len(client)) + client
    if flexible:
        header += b"\x00"  # no tagged fields
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    catalog = {name: (int(key), None if flexible == "nil" else int(flexible))
               for key, name, flexible in ENTRY.findall(open(CATALOG).read())}
    written = 0
    for name, kind, version, variant, hexbytes in FIXTURE.findall(open(FIXTURES).read()):
        key, flexible_from = catalog[name]
        version = int(version)
        body = bytes.fromhex(hexbytes)
        stem = f"golden-{name}-v{version}-{variant}"
        outputs = [(kind.lower(), bytes([key, version]) + body)]
        if kind == "Request":
            flexible = flexible_from is not None and version >= flexible_from
            # Pieces of 64 bytes: the frame decoder sees frames arrive split.
            outputs.append(("frame", bytes([63]) + frame(key, version, flexible, body)))
        for target, data in outputs:
            os.makedirs(os.path.join(corpus, target), exist_ok=True)
            with open(os.path.join(corpus, target, stem), "wb") as f:
                f.write(data)
            written += 1
    print(f"{written} seeds written under {corpus}")


if __name__ == "__main__":
    main()
