#!/usr/bin/env python3
"""Produce and fetch latency on a partition while the log cleaner compacts it (issue 17).

    swift build -c release --product brook
    python3 scripts/compaction-latency.py [--seconds 60] [--rate 10000] [--keys 10000] [--size 1000]

One release broker (BROOK_BIN, default .build/release/brook) with maintenance every second and
one topic, `compacted` (1 partition, cleanup.policy=compact, segment.bytes 1 MiB). For
--seconds, at the same time:
- `brook perf produce --keys K` writes --rate records/s of --size bytes (batches of 8) to it, so
  that the cleaner rewrites some K x size bytes in each pass, every second or two;
- a probe (confluent-kafka, linger 0, acks=1) sends one keyed record every 2 ms to the same
  partition, and a consumer assigned to it (librdkafka's default fetch wait) reads everything
  and times the probe's records from send to receipt.
It prints the load's produce p99 and maximum, the probe's produce (send to delivery report)
and end-to-end p50, p99 and maximum, the compaction passes the broker logged, and its CPU
seconds. The broker and its data are removed at the end; everything is bounded in time.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from measured_broker import MeasuredBroker, percentiles, proc_stat

ROOT = Path(__file__).resolve().parent.parent


def probe(bootstrap: str, seconds: float, sent_ms: list, e2e_ms: list, stop: threading.Event) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe", "enable.auto.commit": False})
    consumer.assign([TopicPartition("compacted", 0, -1)])  # from the end
    consumer.poll(1.0)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1})

    def reader():
        while not stop.is_set():
            for msg in consumer.consume(1000, 0.2):
                if msg.error() or not (msg.key() or b"").startswith(b"probe-"):
                    continue
                e2e_ms.append((time.monotonic_ns() - struct.unpack(">q", msg.value()[:8])[0]) / 1e6)
        consumer.close()

    thread = threading.Thread(target=reader)
    thread.start()
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        t = time.monotonic_ns()
        producer.produce("compacted", key=f"probe-{i % 100}".encode(), value=struct.pack(">q", t) + b"." * 92, partition=0,
                         on_delivery=lambda err, msg, t=t: err is None and sent_ms.append((time.monotonic_ns() - t) / 1e6))
        producer.poll(0)
        i += 1
        time.sleep(0.002)
    producer.flush(30)
    time.sleep(2)
    stop.set()
    thread.join(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--policy", default="compact", help="cleanup.policy (delete: the same load, no cleaner, for reference)")
    args = ap.parse_args()
    brook = Path(os.environ.get("BROOK_BIN", ROOT / ".build/release/brook"))
    if not brook.exists():
        sys.exit(f"compaction-latency: {brook} is missing (see the usage at the top of this script)")
    with MeasuredBroker(brook, ["log.retention.check.interval.ms=1000"], name="compaction-latency") as broker:
        bootstrap, log_path = broker.bootstrap, broker.log_path
        s = ["--bootstrap-server", bootstrap]
        subprocess.run([str(brook), "topic", "create", "compacted", "--partitions", "1", "--config", f"cleanup.policy={args.policy}",
                        "--config", "segment.bytes=1048576", *s], check=True, capture_output=True, timeout=30)
        cpu0 = proc_stat(broker.proc.pid)[0]
        sent, e2e, stop = [], [], threading.Event()
        prober = threading.Thread(target=probe, args=(bootstrap, args.seconds, sent, e2e, stop))
        prober.start()
        time.sleep(2)
        load = subprocess.run([str(brook), "perf", "produce", "--topic", "compacted", "--keys", str(args.keys),
                               "--throughput", str(args.rate), "--num-records", str(args.rate * (args.seconds - 4)),
                               "--record-size", str(args.size), "--batch-size", str(8 * (args.size + 8)), *s],
                              capture_output=True, text=True, timeout=args.seconds + 120)
        prober.join(args.seconds + 60)
        cpu = proc_stat(broker.proc.pid)[0] - cpu0
        p99 = re.search(r"([\d.]+) ms 99th", load.stdout)
        top = re.search(r"([\d.]+) ms max", load.stdout)
        passes = [line for line in log_path.read_text(errors="replace").splitlines() if "records_removed=" in line]
        removed = sum(int(m.group(1)) for line in passes if (m := re.search(r"records_removed=(\d+)", line)))
        print(f"load: {args.rate:,} records/s of {args.size} B over {args.keys:,} keys: produce p99 "
              f"{p99.group(1) if p99 else '?'} ms, max {top.group(1) if top else '?'} ms")
        print(f"probe produce: {percentiles(sent)}")
        print(f"probe end to end: {percentiles(e2e)}")
        print(f"compaction passes: {len(passes)}, records removed {removed:,}; broker CPU {cpu:.1f} s")
        if load.returncode != 0:
            print(f"compaction-latency: the load failed: {load.stdout[-400:]} {load.stderr[-400:]}")
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
