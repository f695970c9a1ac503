#!/usr/bin/env python3
"""What TLS between the nodes costs (issue 18): a three-node cluster on loopback (release
`brook`, each node broker and controller, a topic of one partition with three replicas,
min.insync.replicas=2)
started twice, once all PLAINTEXT and once all TLS with required client certificates (the
quorum, replication and clients, as tests/interop/test_cluster_tls.py), kbench producing
200k x 1 KiB with acks=all to a one-partition topic and consuming them back. Prints records/s
and the CPU seconds of the three nodes together (from /proc) per step; every node is stopped at
the end, pass or fail.

    swift build -c release --product brook
    BIN=/tmp/kb/bin python3 scripts/cluster-tls-check.py [RUNS]    # kbench from ../shared/bench/build.sh
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("BROOK_BIN", str(HERE.parent / ".build/release/brook"))
sys.path.insert(0, str(HERE.parent / "tests/interop"))

from brook_cluster import Cluster, all_unfenced  # noqa: E402
from tls_certs import make_certs  # noqa: E402

KBENCH = Path(os.environ.get("BIN", "/tmp/kb/bin")) / "kbench-modern"
RECORDS, SIZE = 200_000, 1024


def cpu_seconds(cluster: Cluster) -> float:
    total = 0
    for node in cluster.nodes.values():
        fields = Path(f"/proc/{node.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def kbench(mode: str, cluster: Cluster, topic: str, extra: list) -> str:
    args = [str(KBENCH), mode, "-b", cluster.bootstrap, "-t", topic, "--timeout", "150", *extra]
    out = subprocess.run(args, capture_output=True, text=True, timeout=170).stdout.strip().splitlines()
    result = out[-1] if out else ""
    return next((f for f in result.split() if f.startswith("records_per_s=")), "records_per_s=?")


def run(root: Path, certs: dict, tls: bool, round_: int) -> None:
    settings = ["min.insync.replicas=2"]
    client: list = []
    if tls:
        settings += [
            "listener.security.protocol.map=BROKER:SSL,CONTROLLER:SSL", "inter.broker.listener.name=BROKER",
            f"ssl.keystore.location={certs['keystore.pem']}", f"ssl.truststore.location={certs['ca.pem']}",
            "ssl.client.auth=required"]
        client = ["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={certs['ca.pem']}",
                  "-X", f"ssl.certificate.location={certs['client.pem']}", "-X", f"ssl.key.location={certs['client.key']}"]
        tool = root / "tool.properties"
        tool.write_text(f"security.protocol=SSL\nssl.truststore.location={certs['ca.pem']}\n"
                        f"ssl.certificate.location={certs['client.pem']}\nssl.key.location={certs['client.key']}\n")
        cluster = Cluster(root, listener="BROKER", extra=lambda i: settings, tool_args=["--command-config", str(tool)])
    else:
        cluster = Cluster(root, extra=lambda i: settings)
    cluster.start()
    try:
        cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]), limit_s=60)
        name = "tls      " if tls else "plaintext"
        topic = f"replicated-{round_}"
        # Three replicas (kbench's create asks for one).
        from confluent_kafka.admin import AdminClient, NewTopic
        conf = {"bootstrap.servers": cluster.bootstrap}
        conf.update({client[i + 1].split("=", 1)[0]: client[i + 1].split("=", 1)[1] for i in range(0, len(client), 2)})
        admin = AdminClient(conf)
        admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(60)
        time.sleep(2)  # the followers start fetching
        before = cpu_seconds(cluster)
        rate = kbench("produce", cluster, topic, ["-n", str(RECORDS), "-s", str(SIZE), "--acks", "all", *client])
        middle = cpu_seconds(cluster)
        time.sleep(1)  # the followers' last fetches
        settled = cpu_seconds(cluster)
        read = kbench("consume", cluster, topic, ["-n", str(RECORDS), "-X", "queued.min.messages=1000000", *client])
        after = cpu_seconds(cluster)
        print(f"produce-200k-x-1KiB-acks-all {name} {rate} nodes_cpu_s={middle - before:.2f}", flush=True)
        print(f"consume-200k-x-1KiB          {name} {read} nodes_cpu_s={after - settled:.2f}", flush=True)
    finally:
        cluster.stop()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with tempfile.TemporaryDirectory(prefix="brook-cluster-tls-") as tmp:
        root = Path(tmp)
        certs = make_certs(root / "certs")
        for round_ in range(runs):
            for tls in (False, True):
                d = root / f"run-{round_}-{'tls' if tls else 'plain'}"
                d.mkdir()
                run(d, certs, tls, round_)


if __name__ == "__main__":
    main()
