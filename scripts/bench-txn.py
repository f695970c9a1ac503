#!/usr/bin/env python3
"""Throughput of idempotent and transactional producers against one `brook serve` (release build).

    scripts/bench-txn.py [--brook .build-release/release/brook] [--kbench /tmp/kb/bin/kbench-modern]
                         [--records 500000] [--txn-records 100000]

1. kbench (librdkafka) produces --records 100-byte records with acks=all, plain then
   enable.idempotence=true, each to its own topic.
2. confluent-kafka produces --txn-records records in transactions of 100, then of 1,000 (one
   partition, 100-byte values, commit per transaction).
For each run: records/s, and the broker's CPU time per record (from /proc/PID/stat, user+system),
since on 2 cores the client takes half the machine. The broker is killed on exit.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_port(port: int, limit: float = 20) -> None:
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("the broker did not start")


def transactions(bootstrap: str, topic: str, records: int, per_txn: int) -> None:
    import confluent_kafka as ck
    producer = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{topic}",
                            "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
    producer.init_transactions(30)
    value = b"x" * 100
    sent = 0
    while sent < records:
        producer.begin_transaction()
        for _ in range(min(per_txn, records - sent)):
            producer.produce(topic, value, partition=0)
            sent += 1
        producer.commit_transaction(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brook", default=".build-release/release/brook")
    parser.add_argument("--kbench", default="/tmp/kb/bin/kbench-modern")
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--txn-records", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen([args.brook, "serve", "--override", f"listeners=PLAINTEXT://{bootstrap}",
                                   "--override", f"log.dirs={data}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            runs = [(f"kbench plain, acks=all", lambda t: subprocess.run(
                        [args.kbench, "produce", "-b", bootstrap, "-t", t, "-n", str(args.records), "-s", "100", "--acks", "all"],
                        check=True, stdout=subprocess.DEVNULL), args.records),
                    (f"kbench idempotent, acks=all", lambda t: subprocess.run(
                        [args.kbench, "produce", "-b", bootstrap, "-t", t, "-n", str(args.records), "-s", "100", "--acks", "all",
                         "--idempotent"], check=True, stdout=subprocess.DEVNULL), args.records),
                    ("confluent-kafka, transactions of 100", lambda t: transactions(bootstrap, t, args.txn_records, 100),
                     args.txn_records),
                    ("confluent-kafka, transactions of 1000", lambda t: transactions(bootstrap, t, args.txn_records, 1000),
                     args.txn_records)]
            print(f"| run | records | records/s | broker CPU us/record |")
            print(f"|---|---|---|---|")
            for i, (name, run, count) in enumerate(runs):
                topic = f"bench-{i}-{int(time.time())}"
                subprocess.run([args.brook, "topic", "create", topic, "--bootstrap-server", bootstrap], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                cpu = cpu_seconds(broker.pid)
                start = time.perf_counter()
                run(topic)
                elapsed = time.perf_counter() - start
                used = cpu_seconds(broker.pid) - cpu
                print(f"| {name} | {count} | {count / elapsed:,.0f} | {used / count * 1e6:.2f} |", flush=True)
        finally:
            broker.send_signal(signal.SIGKILL)
            broker.wait()


if __name__ == "__main__":
    main()
