#!/usr/bin/env python3
"""A soak of one release broker (issue 17): load for --seconds at half the measured maximum
(or --rate), with retention deleting segments as it goes and the log cleaner compacting a
second topic all along; one line a chunk (default 60 s) with what should stay flat.

    swift build -c release --product brook
    ../shared/bench/build.sh /tmp/kb/bin
    BIN=/tmp/kb/bin python3 scripts/soak.py [--seconds 1800] [--rate N] [--chunk 60] [--port P]

The load, in each chunk, at the same time:
- `kbench-modern e2e` (librdkafka, a producer and a consumer in one process, linger 5 ms,
  acks=1, 100 B records) at --rate on `soak` (1 partition, retention.bytes 128 MiB,
  segment.bytes 16 MiB): its end-to-end p50 and p99;
- `brook perf produce --keys 1000` at --keyed-rate records/s (batches of 8 records, acks=1)
  on `soak-compacted` (1 partition, cleanup.policy=compact, segment.bytes 4 MiB,
  min.cleanable.dirty.ratio 0.1): the produce latency p99 of a partition while it is compacted.

Each line: both p99s, the broker's resident memory, open files, the data dir's bytes, its CPU
seconds in the chunk, and the segment files of each topic. Without --rate, a first
`kbench-modern produce` of 2M records measures the maximum (acks=1) and the soak runs at half.
The broker and its data are removed at the end; everything is bounded in time.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fields(line: str) -> dict:
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def proc_stat(pid: int) -> tuple[float, int, int]:
    """CPU seconds (user+system), resident KiB, open files."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss, len(os.listdir(f"/proc/{pid}/fd"))


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass  # deleted by retention while we looked
    return total


def segments(data: Path, topic: str) -> int:
    d = data / f"{topic}-0"
    return len(list(d.glob("*.log"))) if d.exists() else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=1800)
    ap.add_argument("--chunk", type=int, default=60)
    ap.add_argument("--rate", type=int, default=0, help="e2e records/s (default: half the measured maximum)")
    ap.add_argument("--keyed-rate", type=int, default=10_000)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    kb = Path(os.environ.get("BIN", "/tmp/kb/bin")) / "kbench-modern"
    brook = Path(os.environ.get("BROOK_BIN", ROOT / ".build/release/brook"))
    for tool in (kb, brook):
        if not tool.exists():
            sys.exit(f"soak: {tool} is missing (see the usage at the top of this script)")
    port = args.port or free_port()
    bootstrap = f"127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="brook-soak-"))
    data = work / "data"
    log = open(work / "broker.log", "w")
    broker = subprocess.Popen([str(brook), "serve", "--override", f"listeners=PLAINTEXT://{bootstrap}",
                               "--override", f"log.dirs={data}", "--override", "log.retention.check.interval.ms=5000",
                               "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    children: list[subprocess.Popen] = []

    def stop(*_):
        for p in children + [broker]:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(1)))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("soak: the broker did not start")
                time.sleep(0.2)
        s = ["--bootstrap-server", bootstrap]

        def run(cmd, timeout):
            return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=True).stdout

        run([brook, "topic", "create", "soak", "--partitions", "1", "--config", "retention.bytes=134217728",
             "--config", "segment.bytes=16777216", *s], 30)
        run([brook, "topic", "create", "soak-compacted", "--partitions", "1", "--config", "cleanup.policy=compact",
             "--config", "segment.bytes=4194304", "--config", "min.cleanable.dirty.ratio=0.1", *s], 30)
        rate = args.rate
        if not rate:
            out = run([kb, "produce", "-b", bootstrap, "-t", "soak-max", "-n", "2000000", "-s", "100", "--acks", "1"], 300)
            top = float(fields(out.strip().splitlines()[-1])["records_per_s"])
            rate = int(top / 2)
            run([brook, "topic", "delete", "soak-max", *s], 30)
            print(f"soak: maximum {top:,.0f} records/s (kbench-modern produce, acks=1), soaking at {rate:,}", flush=True)
        print(f"soak: {args.seconds} s in chunks of {args.chunk} s; e2e at {rate:,}/s on soak, keyed produce at "
              f"{args.keyed_rate:,}/s on soak-compacted", flush=True)
        print("chunk  e2e_p50_ms e2e_p99_ms e2e_recv  keyed_p99_ms  rss_mib fds data_mib cpu_s  segs(soak,compacted)", flush=True)
        rows = []
        for chunk in range(max(1, args.seconds // args.chunk)):
            cpu0, _, _ = proc_stat(broker.pid)
            results = {}

            def e2e():
                results["e2e"] = run([kb, "e2e", "-b", bootstrap, "-t", "soak", "--rate", rate, "--seconds", args.chunk,
                                      "-s", "100", "--acks", "1", "--timeout", args.chunk + 60], args.chunk + 90)

            def keyed():
                results["keyed"] = run([brook, "perf", "produce", "--topic", "soak-compacted", "--keys", "1000",
                                        "--throughput", args.keyed_rate, "--num-records", args.keyed_rate * args.chunk,
                                        "--record-size", "100", "--batch-size", 8 * 108, *s], args.chunk + 90)

            threads = [threading.Thread(target=f) for f in (e2e, keyed)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if "e2e" not in results or "keyed" not in results:
                sys.exit(f"soak: a load failed in chunk {chunk}; broker log: {work / 'broker.log'}")
            cpu1, rss, fds = proc_stat(broker.pid)
            e = fields(results["e2e"].strip().splitlines()[-1])
            k = re.search(r"([\d.]+) ms 99th", results["keyed"])
            row = {"p50": float(e["p50_ms"]), "p99": float(e["p99_ms"]), "recv": int(e.get("received", 0)),
                   "kp99": float(k.group(1)) if k else float("nan"), "rss": rss / 1024, "fds": fds,
                   "disk": dir_bytes(data) / 2**20, "cpu": cpu1 - cpu0,
                   "segs": (segments(data, "soak"), segments(data, "soak-compacted"))}
            rows.append(row)
            print(f"{chunk:5d}  {row['p50']:10.2f} {row['p99']:10.2f} {row['recv']:9d}  {row['kp99']:12.2f}  "
                  f"{row['rss']:7.1f} {fds:3d} {row['disk']:8.1f} {row['cpu']:5.1f}  {row['segs']}", flush=True)
        p99s = [r["p99"] for r in rows]
        kp99s = [r["kp99"] for r in rows]
        print(f"soak: e2e p99 min/median/max {min(p99s):.2f}/{statistics.median(p99s):.2f}/{max(p99s):.2f} ms; "
              f"keyed produce p99 {min(kp99s):.2f}/{statistics.median(kp99s):.2f}/{max(kp99s):.2f} ms; "
              f"RSS first/last/max {rows[0]['rss']:.0f}/{rows[-1]['rss']:.0f}/{max(r['rss'] for r in rows):.0f} MiB; "
              f"data max {max(r['disk'] for r in rows):.0f} MiB; broker CPU {sum(r['cpu'] for r in rows):.0f} s", flush=True)
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
