#!/usr/bin/env python3
"""Produce latency on a partition while another producer sends it large compressed batches
(issue 17: batch validation and decompression before the partition's lock).

    swift build -c release --product brook
    python3 scripts/validation-latency.py [--seconds 30] [--codec gzip] [--topic-codec lz4]

One release broker (BROOK_BIN, default .build/release/brook) and one topic, `shared` (1
partition, compression.type --topic-codec: a batch in another codec is decompressed, checked
and compressed again by the broker). For --seconds, at the same time:
- a load producer (confluent-kafka, --codec, batch.size 1 MiB, linger 20 ms, acks=1) sends
  1,000-byte records as fast as it can, so every request carries a batch of about 1 MiB
  uncompressed;
- a probe (linger 0, acks=1) sends one 100-byte record every 2 ms to the same partition and
  times each from send to delivery report.
It prints the load's records/s, the probe's p50, p99 and maximum, and the broker's CPU
seconds. The broker and its data are removed at the end; everything is bounded in time.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from measured_broker import MeasuredBroker, percentiles, proc_stat

ROOT = Path(__file__).resolve().parent.parent


def load(bootstrap: str, codec: str, stop: threading.Event, sent: list) -> None:
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "batch.size": 1 << 20,
                         "linger.ms": 20, "acks": 1, "queue.buffering.max.kbytes": 65536})
    # Compressible but not trivially: a counter in a repeated text.
    body = (b"reading=%08d;" * 75)[:1000]
    i = 0
    while not stop.is_set():
        try:
            producer.produce("shared", value=body.replace(b"%08d", b"%08d" % i, 1), partition=0)
            i += 1
        except BufferError:
            producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(30)
    sent.append(i)


def probe(bootstrap: str, seconds: float, latencies: list) -> None:
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic_ns()
        producer.produce("shared", value=b"." * 100, partition=0,
                         on_delivery=lambda err, msg, t=t: err is None and latencies.append((time.monotonic_ns() - t) / 1e6))
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--codec", default="gzip", help="the load producer's compression.type")
    ap.add_argument("--topic-codec", default="lz4", help="the topic's compression.type (producer: stored as sent)")
    args = ap.parse_args()
    brook = Path(os.environ.get("BROOK_BIN", ROOT / ".build/release/brook"))
    if not brook.exists():
        sys.exit(f"validation-latency: {brook} is missing (see the usage at the top of this script)")
    with MeasuredBroker(brook, [], name="validation-latency") as broker:
        bootstrap = broker.bootstrap
        subprocess.run([str(brook), "topic", "create", "shared", "--partitions", "1", "--config",
                        f"compression.type={args.topic_codec}", "--bootstrap-server", bootstrap],
                       check=True, capture_output=True, timeout=30)
        cpu0 = proc_stat(broker.proc.pid)[0]
        stop, sent, latencies = threading.Event(), [], []
        loader = threading.Thread(target=load, args=(bootstrap, args.codec, stop, sent))
        loader.start()
        time.sleep(1)
        probe(bootstrap, args.seconds, latencies)
        stop.set()
        loader.join(60)
        cpu = proc_stat(broker.proc.pid)[0] - cpu0
        records = sent[0] if sent else 0
        print(f"load: {records:,} records of 1000 B in {args.codec} to a {args.topic_codec} topic, "
              f"{records / (args.seconds + 1):,.0f} records/s; broker CPU {cpu:.1f} s")
        print(f"probe produce: {percentiles(latencies)}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
