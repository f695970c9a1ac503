#!/usr/bin/env python3
"""Produce latency of a probe while another producer sends large compressed batches (issue 17:
batch validation and decompression before the partition's lock, and off the event loop).

    swift build -c release --product brook
    python3 scripts/validation-latency.py [--seconds 30] [--codec gzip] [--topic-codec lz4] \
        [--threads 1] [--rate 20000] [--probe-topic other|shared]

One release broker (BROOK_BIN, default .build/release/brook; `--threads` sets
num.network.threads: 1 puts every connection on one event loop, the case this is about) and
two topics of 1 partition: `shared`, compression.type --topic-codec (a batch in another codec is
decompressed, checked and compressed again by the broker), and `other`. For --seconds, at once:
- a load producer (confluent-kafka in its own process: --codec, batch.size 1 MiB, linger 20 ms,
  acks=1) sends --rate records of 1,000 random letters a second to `shared`, so every request
  carries a batch of --rate / 50 records, compressed;
- a probe (confluent-kafka, linger 0, acks=1, its own process) sends one 100-byte record every
  2 ms to --probe-topic and times each from send to delivery report.
It prints the load's records/s, the probe's p50, p99 and maximum, and the broker's CPU
seconds. The broker and its data are removed at the end; everything is bounded in time.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from measured_broker import MeasuredBroker, percentiles, proc_stat

ROOT = Path(__file__).resolve().parent.parent


def load(bootstrap: str, codec: str, rate: int, seconds: float) -> None:
    """Run as its own process (`--load`): --rate records of 1,000 random letters a second to
    `shared`, in batches of up to 1 MiB (linger 20 ms); prints the records delivered."""
    import random
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "batch.size": 1 << 20,
                         "linger.ms": 20, "acks": 1, "queue.buffering.max.kbytes": 65536})
    letters = bytes(random.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(1 << 16))
    delivered = [0]
    start = time.monotonic()
    sent = 0
    while time.monotonic() < start + seconds:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            at = (sent * 7919) % (len(letters) - 1000)
            try:
                producer.produce("shared", value=letters[at:at + 1000], partition=0,
                                 on_delivery=lambda err, msg: err is None and delivered.__setitem__(0, delivered[0] + 1))
                sent += 1
            except BufferError:
                break
        producer.poll(0.005)
    producer.flush(30)
    print(delivered[0])


def probe(bootstrap: str, topic: str, seconds: float) -> None:
    """Run as its own process (`--probe`): prints the latencies, one per line."""
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1})
    latencies = []
    start = time.monotonic()
    sent = 0
    while time.monotonic() < start + seconds:
        t = time.monotonic_ns()
        producer.produce(topic, value=b"." * 100, partition=0,
                         on_delivery=lambda err, msg, t=t: err is None and latencies.append((time.monotonic_ns() - t) / 1e6))
        sent += 1
        # Waits for the next send in poll, which runs the delivery reports as they come.
        while (left := start + sent * 0.002 - time.monotonic()) > 0:
            producer.poll(left)
    producer.flush(30)
    print("\n".join(f"{ms:.3f}" for ms in latencies))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--codec", default="gzip", help="the load producer's compression.type")
    ap.add_argument("--topic-codec", default="lz4", help="the topic's compression.type (producer: stored as sent)")
    ap.add_argument("--threads", type=int, default=0, help="num.network.threads (0: the default, one per core)")
    ap.add_argument("--rate", type=int, default=20000, help="the load's records/s")
    ap.add_argument("--probe-topic", default="other", choices=["other", "shared"])
    ap.add_argument("--load", nargs=4, metavar=("BOOTSTRAP", "CODEC", "RATE", "SECONDS"), help=argparse.SUPPRESS)
    ap.add_argument("--probe", nargs=3, metavar=("BOOTSTRAP", "TOPIC", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        load(args.load[0], args.load[1], int(args.load[2]), float(args.load[3]))
        return 0
    if args.probe:
        probe(args.probe[0], args.probe[1], float(args.probe[2]))
        return 0
    brook = Path(os.environ.get("BROOK_BIN", ROOT / ".build/release/brook"))
    if not brook.exists():
        sys.exit(f"validation-latency: {brook} is missing (see the usage at the top of this script)")
    overrides = [f"num.network.threads={args.threads}"] if args.threads else []
    with MeasuredBroker(brook, overrides, name="validation-latency") as broker:
        bootstrap = broker.bootstrap
        for topic, codec in (("shared", args.topic_codec), ("other", "producer")):
            subprocess.run([str(brook), "topic", "create", topic, "--partitions", "1", "--config",
                            f"compression.type={codec}", "--bootstrap-server", bootstrap],
                           check=True, capture_output=True, timeout=30)
        cpu0 = proc_stat(broker.proc.pid)[0]
        loader = subprocess.Popen([sys.executable, __file__, "--load", bootstrap, args.codec, str(args.rate), str(args.seconds + 2)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)
        probed = subprocess.run([sys.executable, __file__, "--probe", bootstrap, args.probe_topic, str(args.seconds)],
                                capture_output=True, text=True, timeout=args.seconds + 60)
        try:
            out, _ = loader.communicate(timeout=args.seconds + 60)
        except subprocess.TimeoutExpired:
            loader.kill()
            out, _ = loader.communicate()
        cpu = proc_stat(broker.proc.pid)[0] - cpu0
        latencies = [float(line) for line in probed.stdout.split()]
        delivered = int(out.split()[-1]) if out.split() else 0
        print(f"load: {args.codec} batches of 1000 B records to a {args.topic_codec} topic, {delivered / (args.seconds + 2):,.0f} "
              f"records/s; broker CPU {cpu:.1f} s"
              f" (num.network.threads={args.threads or 'default'})")
        print(f"probe produce to {args.probe_topic}: {percentiles(latencies)}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
