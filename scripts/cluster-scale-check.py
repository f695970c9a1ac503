#!/usr/bin/env python3
"""How a three-node cluster holds many partitions (issue 17's scale goal, the cluster half):
starts three `brook serve` nodes (broker and controller each) on free ports, creates TOPICS
topics of PARTITIONS/TOPICS partitions each with --rf replicas (confluent-kafka), writes one
record to every partition, waits until every ISR is whole, and reports

  - how long the topics took to create and their ISRs to fill;
  - per node, idle: resident memory (VmRSS), open files, and CPU seconds over --idle seconds
    (the replica fetchers and the quorum, with nothing produced);
  - how long Metadata for every topic takes (confluent-kafka list_topics, median of 5);
  - a node stopped cleanly (SIGTERM) and started again, then killed (SIGKILL) and started again:
    the time until it listens, and until every ISR is whole again.

    swift build -c release --product brook
    python3 scripts/cluster-scale-check.py [--partitions 30000] [--topics 300] [--rf 3] [--idle 10] [--settle 3] [--data DIR]

Uses .build/release/brook unless BROOK_BIN names another binary. The open-file limit is raised
for the nodes (one file a replica; root may raise it up to fs.nr_open). Every node is stopped on
exit, pass or fail; the data is removed unless --data names a directory.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("BROOK_BIN", str(ROOT / ".build" / "release" / "brook"))
sys.path.insert(0, str(ROOT / "tests" / "interop"))
from brook_cluster import Cluster  # noqa: E402
from measured_broker import proc_stat  # noqa: E402  (scripts/, this script's own directory)


def listening(port: int, limit_s: float = 600) -> float:
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return time.monotonic() - began
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not listen within {limit_s} s")


def whole(admin, names: list, each: int, rf: int, began: float, limit_s: float = 900, trace: bool = False) -> float:
    """Seconds from `began` until every partition has a leader and all `rf` replicas in its ISR
    (with `trace`, how many are short, every 5 s)."""
    last = ""
    shown = began
    while time.monotonic() - began < limit_s:
        try:
            found = admin.list_topics(timeout=60).topics
            short = sum(1 for n in names for p in (found[n].partitions.values() if n in found else [])
                        if p.leader < 0 or len(p.isrs) < rf)
            missing = sum(each - len(found[n].partitions) if n in found else each for n in names)
            if short == 0 and missing == 0:
                return time.monotonic() - began
            last = f"{short} partitions short of their ISR, {missing} not listed"
            if trace and time.monotonic() - shown >= 5:
                shown = time.monotonic()
                print(f"    {shown - began:5.1f} s: {last}", flush=True)
        except Exception as error:  # noqa: BLE001 (a node starting)
            last = str(error)
        time.sleep(0.5)
    raise RuntimeError(f"ISRs not whole within {limit_s} s: {last}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=30000)
    parser.add_argument("--topics", type=int, default=300)
    parser.add_argument("--rf", type=int, default=3)
    parser.add_argument("--idle", type=int, default=10, help="seconds of idle CPU measured")
    parser.add_argument("--settle", type=int, default=3,
                        help="seconds waited after the writes before the idle CPU is measured (past 30, "
                             "the followers' hot fetch loops have handed every partition back to the cold ones)")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--trace", action="store_true", help="after a restart, print every 5 s how many ISRs are short")
    args = parser.parse_args()
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    files = args.partitions * args.rf // 3 + 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < files:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))  # root only: the nodes inherit it
        except (ValueError, OSError):
            # A container without CAP_SYS_RESOURCE: as many as the hard limit allows (a node
            # holds about one open file per replica).
            print(f"  open files limited to {hard} (wanted {files})", flush=True)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    elif soft < files:
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, hard))
    each = args.partitions // args.topics
    root = args.data or Path(tempfile.mkdtemp(prefix="brook-cluster-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root, 3, extra=lambda i: ["num.partitions=1", "offsets.topic.num.partitions=10"])
    try:
        cluster.start()
        for node in cluster.nodes.values():
            listening(node.broker_port)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        names = [f"scale-{i:04d}" for i in range(args.topics)]
        began = time.monotonic()
        for start in range(0, len(names), 10):
            futures = admin.create_topics([NewTopic(n, each, args.rf) for n in names[start:start + 10]],
                                          operation_timeout=120, request_timeout=180)
            for future in futures.values():
                future.result(300)
            if args.trace:
                print(f"  {start + 10} topics created at {time.monotonic() - began:.1f} s", flush=True)
        created = time.monotonic() - began
        filled = whole(admin, names, each, args.rf, began)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 50, "acks": "all"})
        began = time.monotonic()
        for name in names:
            for p in range(each):
                producer.produce(name, value=b"x" * 100, partition=p)
            producer.poll(0)
        assert producer.flush(300) == 0
        written = time.monotonic() - began
        whole(admin, names, each, args.rf, time.monotonic())
        time.sleep(args.settle)
        before = {i: proc_stat(n.proc.pid)[0] for i, n in cluster.nodes.items()}
        time.sleep(args.idle)
        idle = {i: proc_stat(n.proc.pid) for i, n in cluster.nodes.items()}
        times = []
        for _ in range(5):
            t = time.monotonic()
            found = admin.list_topics(timeout=120).topics
            times.append(time.monotonic() - t)
            assert sum(len(found[n].partitions) for n in names) == each * len(names)
        print(f"{each * len(names)} partitions ({len(names)} topics x {each}), {args.rf} replicas each, one 100 B record each (acks=all)")
        print(f"  created in {created:.1f} s, every ISR whole {filled:.1f} s after the first create; records written in {written:.1f} s")
        for i, (cpu, rss_kib, files) in idle.items():
            print(f"  node {i} idle: VmRSS {rss_kib / 1024:.0f} MiB, {files} open files, {(cpu - before[i]) / args.idle * 100:.1f}% of a core")
        print(f"  Metadata for every topic: median {statistics.median(times) * 1000:.0f} ms (5 asks: {', '.join(f'{x * 1000:.0f}' for x in times)} ms)")
        node = cluster.nodes[3]
        for how in ("clean stop (SIGTERM)", "SIGKILL"):
            if how.startswith("clean"):
                node.terminate(timeout=300)
            else:
                node.kill()
            began = time.monotonic()
            node.start()
            up = listening(node.broker_port)
            back = whole(admin, names, each, args.rf, began, trace=args.trace)
            rss_kib = proc_stat(node.proc.pid)[1]
            print(f"  node 3 after a {how}: listening in {up:.1f} s, every ISR whole again in {back:.1f} s; VmRSS {rss_kib / 1024:.0f} MiB")
        return 0
    finally:
        cluster.stop()
        if args.data is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
