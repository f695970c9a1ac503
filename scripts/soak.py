#!/usr/bin/env python3
"""A soak of one release broker (issue 17): load for --seconds at half the measured maximum
(or --rate), with retention deleting segments as it goes and the log cleaner compacting a
second topic all along; one line a chunk (default 60 s) with what should stay flat.

    swift build -c release --product brook
    ../shared/bench/build.sh /tmp/kb/bin
    BIN=/tmp/kb/bin python3 scripts/soak.py [--seconds 1800] [--rate N] [--chunk 60] [--port P]

The load, in each chunk, at the same time (100 B records, acks=1):
- `brook perf produce` paced at --rate on `soak` (1 partition, retention.bytes 128 MiB,
  segment.bytes 16 MiB, so retention deletes a segment every few seconds; batches of 16 KiB,
  5 in flight): its request latency p99;
- an end-to-end probe, librdkafka's `kbench-modern e2e`, at --probe-rate records/s on
  `soak-probe` (a producer and a consumer in one process, linger 0), started 3 s before the
  rest: the p50 and p99 from send to receipt under that load;
- `brook perf produce --keys 1000` at --keyed-rate records/s (batches of 8) on
  `soak-compacted` (cleanup.policy=compact, segment.bytes 4 MiB, min.cleanable.dirty.ratio
  0.1): the produce latency p99 of a partition while the cleaner compacts it.

Each line: the p99s, the probe's records read and its errors, the broker's resident memory,
open files, the data dir's bytes, its CPU seconds in the chunk, and the segment files of `soak`
and `soak-compacted`. Without --rate, a first `brook perf produce` of 4M records, alone,
measures the maximum and the soak produces at half of it. (kbench's paced producer, and a
librdkafka group reading `soak` as well, were tried: each falls behind at such rates on this
2-core machine, the first from pacing every record, the second taking the other core.)
The broker and its data are removed at the end; everything is bounded in time.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from measured_broker import MeasuredBroker, proc_stat

ROOT = Path(__file__).resolve().parent.parent



def fields(line: str) -> dict:
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)



def dir_bytes(path: Path) -> int:
    """Bytes on disk (blocks: an active segment's index files are sparse, 10 MiB each)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
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
    ap.add_argument("--probe-rate", type=int, default=1_000)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    kb = Path(os.environ.get("BIN", "/tmp/kb/bin")) / "kbench-modern"
    brook = Path(os.environ.get("BROOK_BIN", ROOT / ".build/release/brook"))
    for tool in (kb, brook):
        if not tool.exists():
            sys.exit(f"soak: {tool} is missing (see the usage at the top of this script)")
    with MeasuredBroker(brook, ["log.retention.check.interval.ms=5000"], name="soak", port=args.port, log_level="warning") as broker:
        bootstrap, data = broker.bootstrap, broker.data
        s = ["--bootstrap-server", bootstrap]

        def run(cmd, timeout):
            done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {done.returncode}: {done.stdout[-400:]} {done.stderr[-400:]}")
            return done.stdout

        run([brook, "topic", "create", "soak", "--partitions", "1", "--config", "retention.bytes=134217728",
             "--config", "segment.bytes=16777216", *s], 30)
        run([brook, "topic", "create", "soak-probe", "--partitions", "1", "--config", "retention.bytes=16777216",
             "--config", "segment.bytes=4194304", *s], 30)
        run([brook, "topic", "create", "soak-compacted", "--partitions", "1", "--config", "cleanup.policy=compact",
             "--config", "segment.bytes=4194304", "--config", "min.cleanable.dirty.ratio=0.1", *s], 30)
        rate = args.rate
        if not rate:
            # The maximum: the producer alone, unpaced (the probe and the keyed producer add little).
            out = run([brook, "perf", "produce", "--topic", "soak-max", "--num-records", "4000000", "--record-size", "100",
                       "--acks", "1", *s], 300)
            produced = float(re.search(r"([\d.]+) records/sec", out).group(1))
            top = produced
            rate = int(top / 2)
            run([brook, "topic", "delete", "soak-max", *s], 30)
            print(f"soak: maximum {top:,.0f} records/s (brook perf produce, acks=1, alone), soaking at {rate:,}", flush=True)
        print(f"soak: {args.seconds} s in chunks of {args.chunk} s; producing at {rate:,}/s on soak, a probe at {args.probe_rate:,}/s on soak-probe, keyed produce at {args.keyed_rate:,}/s on soak-compacted",
              flush=True)
        print("chunk  produced/s prod_p99_ms  probe_read  errors  probe_p50 probe_p99  keyed_p99  rss_mib fds data_mib cpu_s  segs(soak,compacted)",
              flush=True)
        rows = []
        failures = []
        for chunk in range(max(1, args.seconds // args.chunk)):
            cpu0, _, _ = proc_stat(broker.proc.pid)
            results = {}
            n = rate * args.chunk
            loads = {
                "produce": [brook, "perf", "produce", "--topic", "soak", "--throughput", rate, "--num-records", n,
                            "--record-size", "100", "--acks", "1", *s],
                "probe": [kb, "e2e", "-b", bootstrap, "-t", "soak-probe", "--rate", args.probe_rate, "--seconds", args.chunk,
                          "-s", "100", "--acks", "1", "--linger-ms", "0", "--timeout", args.chunk + 60],
                "keyed": [brook, "perf", "produce", "--topic", "soak-compacted", "--keys", "1000", "--throughput", args.keyed_rate,
                          "--num-records", args.keyed_rate * args.chunk, "--record-size", "100", "--batch-size", 8 * 108, *s],
            }

            def load(name):
                # A RESULT line is a result even when the load fell short (its errors say by
                # how much: records not produced or not read within the chunk's time).
                try:
                    done = subprocess.run([str(c) for c in loads[name]], capture_output=True, text=True, timeout=args.chunk + 90)
                except subprocess.TimeoutExpired as e:
                    failures.append(f"chunk {chunk}, {name}: no answer in {e.timeout} s")
                    return
                if "records sent" in done.stdout or "RESULT" in done.stdout:
                    results[name] = done.stdout
                else:
                    failures.append(f"chunk {chunk}, {name}: exit {done.returncode}: {done.stdout[-400:]} {done.stderr[-400:]}")

            threads = [threading.Thread(target=load, args=(name,)) for name in loads]
            # The probe first: a librdkafka consumer starting beside three other clients on two
            # cores takes some 300 ms to fetch, and the records sent meanwhile would make the p99.
            threads[list(loads).index("probe")].start()
            time.sleep(3)
            for t in threads:
                if not t.is_alive() and t.ident is None:
                    t.start()
            for t in threads:
                t.join()
            if failures:
                print("soak: " + "\n".join(failures), flush=True)
                return 1
            cpu1, rss, fds = proc_stat(broker.proc.pid)
            p = results["produce"]
            e = fields(results["probe"].strip().splitlines()[-1])
            k = re.search(r"([\d.]+) ms 99th", results["keyed"])
            row = {"rate": float(re.search(r"([\d.]+) records/sec", p).group(1)),
                   "p99": float(re.search(r"([\d.]+) ms 99th", p).group(1)), "read": int(e["received"]),
                   "short": int(e.get("errors", 0)),
                   "probe50": float(e["p50_ms"]), "probe99": float(e["p99_ms"]),
                   "kp99": float(k.group(1)) if k else float("nan"), "rss": rss / 1024, "fds": fds,
                   "disk": dir_bytes(data) / 2**20, "cpu": cpu1 - cpu0,
                   "segs": (segments(data, "soak"), segments(data, "soak-compacted"))}
            rows.append(row)
            print(f"{chunk:5d}  {row['rate']:10.0f} {row['p99']:11.2f} {row['read']:11d} {row['short']:6d}  {row['probe50']:9.2f} {row['probe99']:9.2f}  "
                  f"{row['kp99']:9.2f}  {row['rss']:7.1f} {fds:3d} {row['disk']:8.1f} {row['cpu']:5.1f}  {row['segs']}", flush=True)
        def spread(key):
            values = [r[key] for r in rows]
            return f"{min(values):.2f}/{statistics.median(values):.2f}/{max(values):.2f}"

        print(f"soak: min/median/max produce p99 {spread('p99')} ms, probe p99 {spread('probe99')} ms, keyed produce p99 "
              f"{spread('kp99')} ms; RSS first/last/max {rows[0]['rss']:.0f}/{rows[-1]['rss']:.0f}/"
              f"{max(r['rss'] for r in rows):.0f} MiB; data max {max(r['disk'] for r in rows):.0f} MiB; "
              f"broker CPU {sum(r['cpu'] for r in rows):.0f} s", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
