"""A cluster of real `brook serve` processes on loopback for the interop tests and the fault
campaign (scripts/fault-campaign.py): each node on free ports, restartable with its data, and
every process stopped by its PID at exit, pass or fail."""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BROOK_BIN, die_with_parent, free_port

SESSION_MS = 2000
HEARTBEAT_MS = 300
# libfaketime, for nodes whose wall clock a test steps (Debian's faketime package).
FAKETIME_LIB = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1") if os.path.exists(p)), None)

_procs: "set[subprocess.Popen]" = set()


def _kill_all() -> None:
    for proc in list(_procs):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        _procs.discard(proc)


atexit.register(_kill_all)


class Node:
    """One `brook serve` of a cluster, restartable with its ports and data."""

    def __init__(self, root: Path, node_id: int, voters: str, broker_port: int, controller_port: int,
                 extra: "list[str] | None" = None, host: str = "127.0.0.1", prefix: "list[str] | None" = None,
                 clock: bool = False, listener: str = "PLAINTEXT", args: "list[str] | None" = None) -> None:
        self.node_id = node_id
        # With `clock`, the node's wall clock (CLOCK_REALTIME only: timers use the monotonic
        # clock, which no NTP step moves either) is the real one plus the offset in this file.
        self.clock_file = root / f"node{node_id}.clock" if clock else None
        if self.clock_file:
            self.clock_file.write_text("+0\n")
        self.host = host
        self.prefix = prefix or []  # runs the process elsewhere (a network namespace)
        self.broker_port = broker_port
        self.controller_port = controller_port
        self.http_port = free_port()  # metrics, health and readiness
        self.data = root / f"node{node_id}"
        self.log = root / f"node{node_id}.log"
        self.props = root / f"node{node_id}.properties"
        self.props.write_text("\n".join([
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners={listener}://{host}:{broker_port},CONTROLLER://{host}:{controller_port}",
            "controller.listener.names=CONTROLLER",
            f"log.dirs={self.data}",
            f"broker.session.timeout.ms={SESSION_MS}",
            f"broker.heartbeat.interval.ms={HEARTBEAT_MS}",
            "controller.quorum.election.timeout.ms=500",
            "transaction.state.log.num.partitions=10",
            f"http.listeners=http://{host}:{self.http_port}",
            *(extra or []),
            "",
        ]))
        self.args = args or []  # more `brook serve` arguments (--add-scram)
        self.proc: "subprocess.Popen | None" = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            extra = ["--log-level", os.environ["BROOK_LOG_LEVEL"]] if os.environ.get("BROOK_LOG_LEVEL") else []
            env = None
            if self.clock_file:
                env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE=str(self.clock_file),
                           FAKETIME_CACHE_DURATION="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
            self.proc = subprocess.Popen(self.prefix + [str(BROOK_BIN), "serve", str(self.props)] + self.args + extra, stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=die_with_parent, env=env)
        _procs.add(self.proc)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        _procs.discard(self.proc)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            _procs.discard(self.proc)
        return code

    def step_clock(self, seconds: int) -> None:
        """Sets the node's wall clock to the real one plus `seconds` (read within a second)."""
        self.clock_file.write_text(f"{seconds:+d}s\n")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.broker_port}"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The log's last lines; after a crash, the lines from the crash's message on (the
        backtrace's first frames), since its last lines are only registers and images."""
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        crash = next((i for i, line in enumerate(text)
                      if "Fatal error" in line or "Precondition failed" in line or "💣" in line), None)
        if crash is not None:
            return "\n".join(text[max(0, crash - 5):crash + 60])
        return "\n".join(text[-lines:])


class Cluster:
    def __init__(self, root: Path, size: int = 3, extra=None, network=None, clocks: bool = False,
                 listener: str = "PLAINTEXT", tool_args: "list[str] | None" = None, args: "list[str] | None" = None) -> None:
        """`extra(node_id)`: more settings for a node's properties. `network` (netns.Network):
        each node in its own namespace, at its own address, so that links can be cut.
        `listener`: the name of the brokers' listener; `tool_args`: what `brook cluster describe`
        is given besides the controller (--command-config for TLS controllers)."""
        self.tool_args = tool_args or []
        ports = {i: (free_port(), free_port()) for i in range(1, size + 1)}
        host = (lambda i: network.address(i)) if network else (lambda i: "127.0.0.1")
        voters = ",".join(f"{i}@{host(i)}:{c}" for i, (_, c) in ports.items())
        self.network = network
        self.nodes = {i: Node(root, i, voters, b, c, extra(i) if extra else None, host=host(i),
                              prefix=network.prefix(i) if network else None, clock=clocks, listener=listener, args=args)
                      for i, (b, c) in ports.items()}

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes.values())

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()

    def describe(self, via: "int | None" = None) -> "dict | None":
        """`brook cluster describe` from the first live controller: controller id and brokers."""
        for node in self.nodes.values():
            if via is not None and node.node_id != via or not node.up:
                continue
            out = subprocess.run([str(BROOK_BIN), "cluster", "describe", "--controller", f"{node.host}:{node.controller_port}",
                                  "--timeout-ms", "1000", *self.tool_args], capture_output=True, text=True, timeout=15)
            if out.returncode != 0:
                continue
            result = {"brokers": {}}
            for line in out.stdout.splitlines():
                if line.startswith("controller="):
                    result["controller"] = int(line.split("=", 1)[1])
                elif line.startswith("broker="):
                    fields = dict(kv.split("=", 1) for kv in line.split())
                    result["brokers"][int(fields["broker"])] = fields
            return result
        return None

    def wait_for(self, what: str, check, limit_s: float = 30):
        deadline = time.monotonic() + limit_s
        last = None
        while time.monotonic() < deadline:
            last = self.describe()
            if last is not None and check(last):
                return last
            time.sleep(0.2)
        logs = "\n".join(f"--- node {n.node_id}\n{n.tail()}" for n in self.nodes.values())
        raise AssertionError(f"{what}: not within {limit_s} s; last view {last}\n{logs}")

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.up:
                node.kill()


@pytest.fixture
def cluster(tmp_path):
    """Three combined nodes (broker and controller) on free loopback ports, each stopped by
    its PID at teardown, pass or fail. A test module takes it with `from brook_cluster import cluster`."""
    c = Cluster(tmp_path)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def reap(proc: subprocess.Popen) -> None:
    """Kills a process the test started, if it still runs, and forgets it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    _procs.discard(proc)


def read_values(bootstrap: str, topic: str, partitions: int, want: int, limit_s: float = 60) -> list:
    """The values of `topic`'s first `partitions` partitions from offset 0, read until `want`
    arrived or `limit_s` passed (confluent-kafka, assigned, no group commits)."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, deadline = [], time.monotonic() + limit_s
    while len(got) < want and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got.append(msg.value())
    consumer.close()
    return got


def all_unfenced(ids):
    return lambda view: all(view["brokers"].get(i, {}).get("fenced") == "false" for i in ids)


def partition_states(bootstrap: str, topic: str, kcat_args: "list[str] | None" = None) -> dict:
    """partition -> (leader, replicas, isr) from kcat's metadata listing (`kcat_args`: -X settings)."""
    out = subprocess.run(["kcat", "-b", bootstrap, *(kcat_args or []), "-L", "-t", topic, "-m", "5"],
                         capture_output=True, text=True, timeout=30).stdout
    states = {}
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("partition ") or "leader " not in line:
            continue
        index = int(line.split()[1].rstrip(","))
        leader = int(line.split("leader ")[1].split(",")[0])
        replicas = [int(x) for x in line.split("replicas: ")[1].split(",")[0:3] if x.strip().isdigit()]
        isr = [int(x) for x in line.split("isrs: ")[1].split(",") if x.strip().isdigit()]
        states[index] = (leader, replicas, isr)
    return states


def java_hash_partition(key: str, partitions: int) -> int:
    h = 0
    for unit in key.encode("utf-16-be").decode("utf-16-be"):
        h = (31 * h + ord(unit)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def settle(call, limit_s: float = 90, cluster: "Cluster | None" = None) -> bool:
    """Runs a call of confluent-kafka's transactional producer, again while its error is
    retriable (for limit_s at most: then the last error fails the test, with the nodes' logs);
    False when the transaction must be aborted; other errors are raised."""
    from confluent_kafka import KafkaException
    deadline = time.monotonic() + limit_s
    while True:
        try:
            call()
            return True
        except KafkaException as e:
            err = e.args[0]
            if err.retriable():
                if time.monotonic() > deadline:
                    logs = "" if cluster is None else \
                        "\n".join(f"--- node {n.node_id}\n{n.tail(60)}" for n in cluster.nodes.values())
                    raise AssertionError(f"still retriable after {limit_s} s: {err}\n{logs}")
                time.sleep(0.2)
                continue
            if err.txn_requires_abort():
                return False
            raise
