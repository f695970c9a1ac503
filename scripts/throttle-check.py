#!/usr/bin/env python3
"""Measures a throttled partition move against the throttle (KIP-73), on three real brokers:

    python3 scripts/throttle-check.py [--mb 40] [--rate 2000000]

Writes --mb megabytes to a one-replica partition, then moves it to another broker twice: once
with `brook reassign execute --throttle RATE` and once without, each time until `brook
reassign verify` says it is complete, and prints the bytes copied per second. The meter lets
a first burst through (it spreads it over 10 s), so the throttled rate over a move of B bytes
is about RATE * (B / (B - 10 * RATE)) at most. Uses .build/debug/brook unless BROOK_BIN names
another binary; the interop clients must be installed (scripts/interop.sh installs them).
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "interop"))
from brook_cluster import BROOK_BIN, Cluster, all_unfenced, partition_states  # noqa: E402


def move(bootstrap: str, topic: str, to: int, throttle: "int | None") -> float:
    spec = f"{topic}:0={to}"
    args = [str(BROOK_BIN), "reassign", "execute", "--bootstrap-server", bootstrap, spec]
    if throttle:
        args[3:3] = ["--throttle", str(throttle)]
    started = time.monotonic()
    subprocess.run(args, check=True, capture_output=True, timeout=60)
    while True:
        out = subprocess.run([str(BROOK_BIN), "reassign", "verify", "--bootstrap-server", bootstrap, spec],
                             check=True, capture_output=True, text=True, timeout=60).stdout
        if "complete" in out:
            return time.monotonic() - started
        if time.monotonic() - started > 600:
            raise SystemExit(f"the move did not complete in 600 s: {out}")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=40)
    parser.add_argument("--rate", type=int, default=2_000_000, help="the throttle, bytes per second")
    args = parser.parse_args()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    root = Path(tempfile.mkdtemp(prefix="brook-throttle-"))
    cluster = Cluster(root)
    cluster.start()
    try:
        cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]), limit_s=60)
        bootstrap = cluster.bootstrap
        topic = "throttle-check"
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until its future is done
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        while not (states := partition_states(bootstrap, topic)) or states[0][0] < 0:
            time.sleep(0.3)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "compression.type": "none"})
        value = bytes(1000)
        for _ in range(args.mb * 1000):
            while True:
                try:
                    producer.produce(topic, value=value)
                    break
                except BufferError:
                    producer.poll(0.1)
        assert producer.flush(120) == 0
        size = sum(f.stat().st_size for n in cluster.nodes.values() for f in (n.data / f"{topic}-0").glob("*.log"))
        first = partition_states(bootstrap, topic)[0][0]
        second = next(b for b in (1, 2, 3) if b != first)
        third = next(b for b in (1, 2, 3) if b not in (first, second))
        throttled = move(bootstrap, topic, second, args.rate)
        free = move(bootstrap, topic, third, None)
        print(f"{size / 1e6:.1f} MB moved: throttled at {args.rate / 1e6:.2f} MB/s in {throttled:.1f} s "
              f"({size / throttled / 1e6:.2f} MB/s); unthrottled in {free:.1f} s ({size / free / 1e6:.1f} MB/s)")
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
