#!/usr/bin/env python3
"""How one broker holds many partitions (issue 17's scale goal): starts `brook serve` on free
ports, creates TOPICS topics of PARTITIONS/TOPICS partitions each (confluent-kafka), writes one
record to every partition, and reports

  - resident memory (VmRSS), open files and mappings of the broker, idle with every partition
    made (with --segments K, each partition holds K segments: K records of 1,000 B, rolled at
    each by segment.bytes=1024);
  - how long Metadata for every topic takes (confluent-kafka list_topics, median of 5);
  - the time from start to serving every partition's Metadata after a clean stop (SIGTERM),
    and after a SIGKILL (an unclean start, whose logs are recovered), with the memory then.

    python3 scripts/scale-check.py [--partitions 5000] [--topics 100] [--segments 1] [--data DIR]

Uses .build/release/brook unless BROOK_BIN names another binary. Every broker it starts is
stopped on exit. Segments open their files and map their indexes on demand (docs/broker.md),
so neither `ulimit -n` nor `vm.max_map_count` bounds the partitions or segments.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROOK = os.environ.get("BROOK_BIN", str(ROOT / ".build" / "release" / "brook"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    with open(f"/proc/{pid}/maps", "rb") as maps:
        mappings = maps.read().count(b"\n")
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024, "files": len(os.listdir(f"/proc/{pid}/fd")), "maps": mappings}


class Broker:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.port, self.cport = free_port(), free_port()
        self.proc = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Starts the broker; returns when its port accepts connections (seconds)."""
        began = time.monotonic()
        log = open(self.data / "broker.log", "ab")
        self.proc = subprocess.Popen([BROOK, "serve", "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}",
                                      "--override", f"log.dirs={self.data / 'logs'}"], stdout=log, stderr=log)
        while time.monotonic() - began < 600:
            if self.proc.poll() is not None:
                raise RuntimeError(f"brook exited with {self.proc.returncode}; see {self.data / 'broker.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return time.monotonic() - began
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("brook did not listen within 600 s")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def serving(bootstrap: str, topics: list, partitions_each: int, began: float, limit_s: float = 600) -> float:
    """Seconds from `began` until Metadata shows every topic with all its partitions led."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = set(topics)
    while time.monotonic() - began < limit_s:
        try:
            found = admin.list_topics(timeout=10).topics
            if all(name in found and len(found[name].partitions) == partitions_each
                   and all(p.leader >= 0 and p.error is None for p in found[name].partitions.values()) for name in wanted):
                return time.monotonic() - began
        except Exception:  # noqa: BLE001 (not up yet)
            pass
        time.sleep(0.05)
    raise RuntimeError(f"not every partition served within {limit_s} s")


def records_in(bootstrap: str, picks: list) -> list:
    """How many records each (topic, partition) of `picks` holds, read from offset 0."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "scale-check", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    counts = []
    try:
        for topic, partition in picks:
            consumer.assign([TopicPartition(topic, partition, 0)])
            count, deadline = 0, time.monotonic() + 30
            while time.monotonic() < deadline:
                message = consumer.poll(1)
                if message is None:
                    continue
                if message.error():
                    break  # the partition's end
                count += 1
            counts.append(count)
    finally:
        consumer.close()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=5000)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--segments", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    each = args.partitions // args.topics
    data = args.data or Path(tempfile.mkdtemp(prefix="brook-scale-"))
    data.mkdir(parents=True, exist_ok=True)
    broker = Broker(data)
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        names = [f"scale-{i:04d}" for i in range(args.topics)]
        began = time.monotonic()
        for start in range(0, len(names), 20):
            configs = {"segment.bytes": "1024"} if args.segments > 1 else {}
            futures = admin.create_topics([NewTopic(n, each, 1, config=configs) for n in names[start:start + 20]],
                                          operation_timeout=60, request_timeout=120)
            for future in futures.values():
                future.result(180)
        created = time.monotonic() - began
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50, "acks": 1})
        size = 1000 if args.segments > 1 else 100
        for _ in range(args.segments):  # a flush between rounds: one batch (one segment) a round
            for name in names:
                for p in range(each):
                    producer.produce(name, value=b"x" * size, partition=p)
                producer.poll(0)
            assert producer.flush(120) == 0
        time.sleep(2)
        idle = status(broker.proc.pid)
        times = []
        for _ in range(5):
            t = time.monotonic()
            found = admin.list_topics(timeout=60).topics
            times.append(time.monotonic() - t)
            assert sum(len(found[n].partitions) for n in names) == each * len(names)
        print(f"{each * len(names)} partitions ({len(names)} topics x {each}), {args.segments} record(s) of {size} B each"
              + (f" in {args.segments} segments" if args.segments > 1 else ""))
        print(f"  created in {created:.1f} s; idle: VmRSS {idle['rss_mib']:.0f} MiB, {idle['files']} open files, {idle['maps']} mappings")
        print(f"  Metadata for every topic: median {statistics.median(times) * 1000:.0f} ms (5 asks: {', '.join(f'{x * 1000:.0f}' for x in times)} ms)")
        for how, sig in (("clean stop (SIGTERM)", signal.SIGTERM), ("SIGKILL", signal.SIGKILL)):
            broker.stop(sig)
            began = time.monotonic()
            listening = broker.start()
            ready = serving(broker.bootstrap, names, each, began)
            after = status(broker.proc.pid)
            picks = [(names[(i * 37) % len(names)], (i * 11) % each) for i in range(20)]
            counts = records_in(broker.bootstrap, picks)
            print(f"  after a {how}: listening in {listening:.2f} s, every partition served in {ready:.2f} s; "
                  f"VmRSS {after['rss_mib']:.0f} MiB, {after['files']} open files, {after['maps']} mappings; "
                  f"20 partitions read back: {'all ' + str(args.segments) + ' records' if set(counts) == {args.segments} else counts}")
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
