"""A fault campaign against a cluster of real `brook serve` processes (issue 16's proof): a
seeded schedule of faults while an idempotent acks=all producer writes numbered records to
every partition, then a check that no acknowledged record was lost, changed, duplicated or
reordered. The test command runs a small one (test_fault_campaign.py); scripts/fault-campaign.py
runs any size.

Faults (one per round, chosen from the seed):
- kill-leader: SIGKILL the leader of a partition, start it again a moment later;
- kill-controller: SIGKILL the active controller (a leader too, often), start it again;
- kill-any: SIGKILL a random node, start it again;
- pause-leader: SIGSTOP a partition's leader for longer than its session (a zombie leader: it is
  fenced and replaced while it sleeps, then wakes up still believing it leads), then SIGCONT;
- pause-brief: SIGSTOP a random node for less than its session, then SIGCONT.
With `network=True` each node runs in its own network namespace (netns.py) and four network
partitions join the schedule; clients reach every node throughout, as a partition between
brokers usually leaves them:
- partition-leader: cut a partition's leader off from the other nodes for longer than its
  session (a zombie leader that clients still reach: it must not acknowledge what the others do
  not have), then heal;
- partition-controller: the same for the active controller;
- partition-any: cut a random node off (the minority) for 0.5 s to longer than its session;
- partition-bridge: cut the link between two nodes only, leaving the third connected to both
  (the non-transitive partition that trips elections), for longer than a session.
With `clocks=True` every node runs under libfaketime and a clock-jump fault steps one node's wall
clock by 30 s to 10 minutes either way for a few seconds (its monotonic clock, which Brook's
timers use, as an NTP step leaves it).
With `controllers=True` a reconfigure-controller fault takes a voter (the active controller
half the time) out of the Raft quorum with `brook cluster remove-controller`, leaves it out for
1 to 3 s (still running, as a broker and a controller outside the voters), then adds it back
with `brook cluster add-controller`.
With `disks=True` each node's second log dir is an ext4 disk on a loop device, and a
disk-failure fault shuts one down under its broker (FS_IOC_SHUTDOWN: every I/O on it then fails
with EIO); the broker must go on with its first dir while the controller moves the lost
replicas' leaderships; then it is stopped, given a new empty disk, and started again. A
slow-disk fault throttles one node's disk to a trickle (the kernel's blkio throttle on its loop
device: 32 KiB/s and 8 I/Os per second each way) for 3 to 8 s, then lifts it: with `disks` the
topics fsync every 100 records (`flush.messages`), so the leaders there stall in fsync, as on a
dying or saturated disk. A move-log-dir fault moves one of the node's replicas to its other log
dir (AlterReplicaLogDirs) while the workloads run, and waits until it is there.
Each round waits for the producer to make progress through the fault, heals it, and waits until
every node is back, unfenced, and every partition's ISR is full again.

With `transactions=True` a transactional producer also writes numbered transactions of 10
records (each committed, or aborted when the client says it must) to a second topic; at the
end a read_committed consumer must see every committed transaction's records exactly once and
nothing of an aborted one.

With `copiers=True` (and `transactions`) two transactional copiers form a ring: copier a reads
the transactional topic and topic y (read_committed, as the only member of its group) and writes
each record it reads, wrapped with the name of its transaction, to topic x, in transactions that
also commit its offsets; copier b copies x to y; a record goes round up to three times. At the
end (check_copies): every record a copier read has exactly one copy, no visible record comes
from an aborted transaction or copies one that never committed (G1a), and the graph of which
transaction read which one's writes has no cycle (G1c).

With `groups=True` two members of a consumer group read the topic throughout and commit what
they read; the check (check_group) looks for Jepsen's queue anomalies: nonmonotonic polls and
poll skips within an assignment, a record read with another value than at the end, an
acknowledged record the group never got, and a committed offset that went back.

Slow disks are the kernel's blkio throttle (cgroup v1, set on the root group, which does the
page-cache writeback) rather than dm-delay: this kernel has no device mapper.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from brook_cluster import BROOK_BIN, FAKETIME_LIB, SESSION_MS, Cluster, all_unfenced, partition_states, settle
from netns import Network

FAULTS = ("kill-leader", "kill-controller", "kill-any", "pause-leader", "pause-brief")
NETWORK_FAULTS = ("partition-leader", "partition-controller", "partition-any", "partition-bridge")
CLOCK_FAULTS = ("clock-jump",)
CONTROLLER_FAULTS = ("reconfigure-controller",)
DISK_FAULTS = ("disk-failure", "slow-disk", "move-log-dir")


class Disks:
    """A disk per node for its second log dir: ext4 on a loop device, which can fail
    (FS_IOC_SHUTDOWN: every I/O on it then fails with EIO, as on a dead disk) and be replaced
    by a fresh, empty one."""

    FS_IOC_SHUTDOWN = 0x8004587D

    @staticmethod
    def unavailable() -> "str | None":
        import shutil
        if os.geteuid() != 0:
            return "loop disks need root"
        missing = [tool for tool in ("losetup", "mkfs.ext4", "mount", "umount") if not shutil.which(tool)]
        if missing:
            return f"loop disks need {', '.join(missing)}"
        if not (Disks.BLKIO / "blkio.throttle.write_bps_device").exists():
            return "slow disks need the cgroup v1 blkio throttle at /sys/fs/cgroup/blkio"
        return None

    def __init__(self, root: Path, ids) -> None:
        self.root = root
        self.paths = {i: root / f"disk{i}" for i in ids}
        self.loops: list = []
        self.current: dict = {}
        self.made = 0
        for i in ids:
            self.attach(i)

    def attach(self, i: int) -> None:
        """A new disk (a new image on a new loop device: the old one may still be held by the
        mount namespaces of nodes in network namespaces), formatted and mounted for node `i`."""
        import subprocess
        self.made += 1
        image = self.root / f"disk{i}-{self.made}.img"
        with open(image, "wb") as f:
            f.truncate(1 << 30)
        loop = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        self.current[i] = len(self.loops)
        self.loops.append(loop)
        subprocess.run(["mkfs.ext4", "-q", "-F", loop], check=True, timeout=60)
        self.paths[i].mkdir(exist_ok=True)
        subprocess.run(["mount", loop, str(self.paths[i])], check=True, timeout=30)

    def fail(self, i: int) -> None:
        import fcntl
        import struct
        fd = os.open(self.paths[i], os.O_RDONLY)
        try:
            fcntl.ioctl(fd, self.FS_IOC_SHUTDOWN, struct.pack("I", 2))
        finally:
            os.close(fd)

    BLKIO = Path("/sys/fs/cgroup/blkio")

    def device(self, i: int) -> str:
        """MAJOR:MINOR of node `i`'s current loop device."""
        st = os.stat(self.loops[self.current[i]])
        return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"

    def throttle(self, i: int, bps: int, iops: int) -> None:
        """Node `i`'s disk at most `bps` bytes and `iops` I/Os per second each way (0: no limit)."""
        device = self.device(i)
        for name, value in (("read_bps", bps), ("write_bps", bps), ("read_iops", iops), ("write_iops", iops)):
            (self.BLKIO / f"blkio.throttle.{name}_device").write_text(f"{device} {value}\n")

    def replace(self, i: int) -> None:
        """A new disk in place of node `i`'s (stopped) one."""
        import subprocess
        subprocess.run(["umount", "-l", str(self.paths[i])], timeout=30)
        self.attach(i)

    def destroy(self) -> None:
        import subprocess
        for i in self.current:
            try:
                self.throttle(i, 0, 0)
            except OSError:
                pass
        for path in self.paths.values():
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
        for loop in self.loops:  # detached now, or as soon as nothing holds it (autoclear)
            subprocess.run(["losetup", "-d", loop], capture_output=True, timeout=30)


def move_log_dir(cluster: Cluster, node: int, topics: list, dirs: list, rng: random.Random, limit_s: float = 30) -> str:
    """Moves one of node `node`'s replicas of `topics` to its other log dir (AlterReplicaLogDirs,
    kafka-python) while the workloads run, and waits until DescribeLogDirs shows it there."""
    from kafka import KafkaAdminClient
    from kafka.errors import NoError
    admin = KafkaAdminClient(bootstrap_servers=cluster.nodes[node].bootstrap, request_timeout_ms=10_000)
    try:
        def where() -> dict:
            out = {}
            for entry in admin.describe_log_dirs(brokers=[node])[0]["log_dirs"]:
                for t in entry["topics"]:
                    if t["name"] in topics:
                        for part in t["partitions"]:
                            if not part["is_future_key"]:
                                out[(t["name"], part["partition_index"])] = Path(entry["log_dir"]).resolve()
            return out
        here = where()
        if not here:
            return "no replica here"
        replica = rng.choice(sorted(here))
        target = next(d for d in (Path(x).resolve() for x in dirs) if d != here[replica])
        answer = admin.alter_replica_log_dirs({(replica[0], replica[1], node): str(target)})
        if any(error is not NoError for error in answer.values()):
            return f"{replica[0]}-{replica[1]} refused: {list(answer.values())}"
        deadline = time.monotonic() + limit_s
        while where().get(replica) != target:
            if time.monotonic() > deadline:
                raise AssertionError(f"{replica[0]}-{replica[1]} not in {target} on node {node} after {limit_s} s:\n{cluster.nodes[node].tail()}")
            time.sleep(0.3)
        return f"{replica[0]}-{replica[1]} to {target.name}"
    finally:
        admin.close()


def change_voters(cluster: Cluster, via: int, *args: str) -> str:
    """`brook cluster add-controller | remove-controller ARGS` asked of node `via`'s controller
    (it follows the leader); the answer, or an AssertionError with it."""
    import subprocess
    node = cluster.nodes[via]
    out = subprocess.run([str(BROOK_BIN), "cluster", *args, "--controller", f"{node.host}:{node.controller_port}",
                          "--timeout-ms", "30000"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"brook cluster {' '.join(args)}: {out.stdout.strip()} {out.stderr.strip()}")
    return out.stdout


@dataclass
class Outcome:
    seed: int
    rounds: list = field(default_factory=list)
    acked: int = 0
    failed_deliveries: int = 0
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [f"seed {self.seed}: {len(self.rounds)} rounds, {self.acked} records acknowledged, "
                 f"{self.failed_deliveries} deliveries failed (not acknowledged, so not checked)"]
        lines += [f"  round {i}: {r}" for i, r in enumerate(self.rounds)]
        lines += [f"  PROBLEM: {p}" for p in self.problems[:20]]
        if len(self.problems) > 20:
            # The rest by kind (numbers taken out), so that a long run's list says what it holds.
            import re
            kinds: dict = {}
            for p in self.problems:
                kind = re.sub(r"[0-9]+", "N", p)[:100]
                kinds[kind] = kinds.get(kind, 0) + 1
            lines += [f"  {count} of: {kind}" for kind, count in sorted(kinds.items(), key=lambda k: -k[1])[:10]]
        lines.append("  OK: every acknowledged record read back once, in order" if self.ok else f"  {len(self.problems)} problems")
        return "\n".join(lines)


def with_client_log(conf: dict, path: Path, contexts: str) -> dict:
    """`conf` with librdkafka's `contexts` debug written to the file `path` (unless
    BROOK_CAMPAIGN_DEBUG asks for every client's debug on stderr instead)."""
    if os.environ.get("BROOK_CAMPAIGN_DEBUG"):
        return conf
    import logging
    logger = logging.getLogger(f"client-log-{path}")
    logger.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return dict(conf, debug=contexts, logger=logger)


def client_debug(conf: dict) -> dict:
    """`conf` with librdkafka's debug contexts named by BROOK_CAMPAIGN_DEBUG (eos, fetch, ...), if
    set: librdkafka writes them on stderr from its own threads, so a client call that never
    returns still leaves its trace."""
    if os.environ.get("BROOK_CAMPAIGN_DEBUG"):
        conf["debug"] = os.environ["BROOK_CAMPAIGN_DEBUG"]
    return conf


class Producer:
    """Numbered records to every partition (value "P:SEQ"), acks=all and idempotent, in a thread."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: int) -> None:
        from confluent_kafka import Producer as CkProducer
        self.topic, self.partitions, self.rate = topic, partitions, rate
        conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "message.timeout.ms": 120000, "linger.ms": 5}
        self.producer = CkProducer(client_debug(conf))
        self.lock = threading.Lock()
        self.acked: list = []  # (partition, offset, seq)
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def delivered(self, err, msg) -> None:
        with self.lock:
            if err is None:
                _, seq = msg.value().decode().split(":")
                self.acked.append((msg.partition(), msg.offset(), int(seq)))
            else:
                self.failed += 1

    def run(self) -> None:
        seq = [0] * self.partitions
        interval = 1.0 / self.rate
        while not self.stop.is_set():
            for p in range(self.partitions):
                self.producer.produce(self.topic, partition=p, value=f"{p}:{seq[p]}".encode(), on_delivery=self.delivered)
                seq[p] += 1
            self.producer.poll(0)
            time.sleep(interval * self.partitions)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        remaining = self.producer.flush(150)
        if remaining:
            raise AssertionError(f"{remaining} records still unanswered after the flush")


class TxnThread:
    """A transactional producer's workload in a thread (`run`), stopped by `finish`; what went
    wrong in it is kept in `error`."""

    def __init__(self, bootstrap: str, transactional_id: str, what: str, log: "Path | None" = None,
                 contexts: str = "eos") -> None:
        from confluent_kafka import Producer as CkProducer
        self.what = what
        conf = {"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                "client.id": transactional_id, "transaction.timeout.ms": 60000, "message.timeout.ms": 60000}
        if log is not None:
            # The transactional producer's own account (librdkafka's eos debug), beside the
            # nodes' logs: which request a fatal error or a stall came from.
            conf = with_client_log(conf, log, contexts)
        self.producer = CkProducer(client_debug(conf))
        self.error: "str | None" = None
        # The client call the thread is in (with when it began), said when it does not finish.
        self.stage = ("starting", time.monotonic())
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.guarded, daemon=True)

    def guarded(self) -> None:
        try:
            settle(lambda: self.producer.init_transactions(60))
            self.run()
        except Exception as error:  # noqa: BLE001 (reported as a problem of the campaign)
            self.error = f"{type(error).__name__}: {error}"

    def run(self) -> None:
        raise NotImplementedError

    def finish(self) -> bool:
        """Stops the thread; False (with `error` set) when it did not end."""
        self.stop.set()
        self.thread.join(timeout=150)
        if self.thread.is_alive():
            stage, since = self.stage
            self.error = self.error or (f"{self.what} did not finish its last transaction in 150 s "
                                        f"(in {stage} for {time.monotonic() - since:.0f} s)")
            return False
        return True


class TxnWriter(TxnThread):
    """Transactions of 10 numbered records ("TXN:I") to `topic`, one after another, in a thread:
    each committed, or aborted when the client says the transaction must be."""

    def __init__(self, bootstrap: str, topic: str, seed: int, log: "Path | None" = None) -> None:
        # Its message sets too: a 200-round run (seed 20261204) left it in commit_transaction's
        # flush for good, its partition "draining" with no request in flight on any socket and
        # its messages never timed out, and the eos log alone could not say which answer began it.
        super().__init__(bootstrap, f"campaign-{seed}", "the transactional producer", log=log, contexts="eos,msg")
        self.topic = topic
        self.committed: list = []
        self.aborted: list = []

    def run(self) -> None:
        txn = 0
        while not self.stop.is_set():
            self.producer.begin_transaction()
            for i in range(10):
                self.producer.produce(self.topic, value=f"{txn}:{i}".encode(), partition=i % 2)
            if settle(lambda: self.producer.commit_transaction(60)):
                self.committed.append(txn)
            else:
                settle(lambda: self.producer.abort_transaction(60))
                self.aborted.append(txn)
            txn += 1
            self.producer.poll(0)  # serves its log (and delivery reports)
            time.sleep(0.05)


class TxnCopier(TxnThread):
    """Consume-transform-produce in transactions (read_committed, offsets sent to the
    transaction), in a thread: reads `sources` as the only member of its group and, for each
    record fewer than HOPS copies away from a TxnWriter record, writes "T<input" to `target`,
    where T names this transaction attempt ("a7": copier a, attempt 7). Two copiers in a ring
    (a: seed and y to x, b: x to y) make transactions read each other's writes, which is what
    the cycle check (check_copies) needs. An attempt the client must abort is aborted and the
    consumer rewound to the group's committed offsets."""

    def __init__(self, bootstrap: str, name: str, sources: list, target: str, seed: int, log: "Path | None" = None) -> None:
        from confluent_kafka import Consumer as CkConsumer
        super().__init__(bootstrap, f"campaign-{seed}-copier-{name}", f"copier {name}",
                         log=log.with_name(log.stem + "-producer.log") if log else None)
        self.name, self.sources, self.target = name, sources, target
        conf = {"bootstrap.servers": bootstrap, "group.id": f"campaign-{seed}-copier-{name}",
                "client.id": f"campaign-{seed}-copier-{name}-consumer", "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "isolation.level": "read_committed"}
        if log is not None:
            # The consumer's own account of its group, offsets and fetches, kept beside the
            # nodes' logs: where a copy made twice comes from is in it (seed 1713708041).
            conf = with_client_log(conf, log, "cgrp,topic,fetch")
        self.consumer = CkConsumer(client_debug(conf))
        self.committed: set = set()
        self.aborted: set = set()
        self.last_copy = time.monotonic()
        # Each source partition's last offset read, and each time one was read again without
        # this copier seeking back (an abort's rewind): "partition: offset after offset".
        self.last_read: dict = {}
        self.rereads: list = []

    def run(self) -> None:
        from confluent_kafka import TopicPartition
        self.consumer.subscribe(self.sources)
        attempt = 0
        while not self.stop.is_set():
            batch = [m for m in self.consumer.consume(num_messages=20, timeout=0.5) if not m.error()]
            self.producer.poll(0)  # serves its log
            if not batch:
                continue
            fresh = []
            for m in batch:
                key = f"{m.topic()}-{m.partition()}"
                if m.offset() <= self.last_read.get(key, -1):
                    # Read again without this copier seeking back: librdkafka went back on its
                    # own (seed 1659908890: an offset reply outdated by a leader change made it
                    # reset to the beginning again while it consumed). What it had read is in a
                    # committed transaction already (an abort seeks and forgets), so it is not
                    # copied again, as an exactly-once application must do.
                    self.rereads.append(f"{time.strftime('%H:%M:%S')} {key}: {m.offset()} after {self.last_read[key]}")
                    continue
                self.last_read[key] = m.offset()
                fresh.append(m)
            batch = fresh
            if not batch:
                continue
            attempt += 1
            txn = f"{self.name}{attempt}"
            self.stage = (f"begin_transaction of {txn}", time.monotonic())
            self.producer.begin_transaction()
            for m in batch:
                value = m.value().decode()
                if hops(value) < HOPS:
                    self.producer.produce(self.target, value=f"{txn}<{value}".encode(), partition=m.partition() % 2)
            self.stage = (f"position of {txn}", time.monotonic())
            positions = self.consumer.position(self.consumer.assignment())
            self.stage = (f"send_offsets_to_transaction of {txn}", time.monotonic())
            ok = settle(lambda: self.producer.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata(), 60))
            self.stage = (f"commit_transaction of {txn}", time.monotonic())
            ok = ok and settle(lambda: self.producer.commit_transaction(60))
            self.stage = (f"consume after {txn}", time.monotonic())
            if ok:
                self.committed.add(txn)
                self.last_copy = time.monotonic()
                continue
            self.stage = (f"abort_transaction of {txn}", time.monotonic())
            settle(lambda: self.producer.abort_transaction(60))
            self.aborted.add(txn)
            for tp in self.committed_offsets():
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
                self.last_read.pop(f"{tp.topic}-{tp.partition}", None)

    def committed_offsets(self) -> list:
        """The group's committed offsets of the assignment, asked again while the coordinator
        moves (NOT_COORDINATOR and the like are retriable; a 200-round run's copier died of one)."""
        from confluent_kafka import KafkaException
        deadline = time.monotonic() + 120
        while True:
            try:
                return self.consumer.committed(self.consumer.assignment(), timeout=30)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def finish(self) -> bool:
        ended = super().finish()
        if ended:
            self.consumer.close()
        return ended


#: A TxnWriter record is copied this many times round the ring of copiers.
HOPS = 3


def hops(value: str) -> int:
    """How many copies away from a TxnWriter record ("txn:i") a value is."""
    return value.count("<")


def writer_of(value: str) -> str:
    """The transaction that wrote a value: a copier's attempt, or "wN" for TxnWriter's txn N."""
    return value.split("<", 1)[0] if "<" in value else "w" + value.split(":", 1)[0]


def check_copies(visible: "list[str]", sources: "dict[str, list[str]]", committed: set, aborted: set) -> "list[str]":
    """The transactional ring's invariants over what read_committed shows at the end:
    - G1a (aborted read): no visible record was written by an aborted transaction, and every
      copy is of a record that is visible (committed), not of an aborted or unfinished write;
    - exactly-one copies: each record a copier read (`sources`: copier name -> the visible
      records of its source topics) fewer than HOPS copies away has exactly one copy;
    - G1c (circular information flow): the graph with an edge from a record's writer to every
      transaction that copied it has no cycle (each copier reads only committed records, so a
      writer commits before its readers, and a cycle means one read what was not committed).
    `visible` holds every record of the ring's topics and the seed topic; `committed` and
    `aborted` name the transactions (copier attempts and "wN" of the seed writer)."""
    problems: "list[str]" = []
    present = set(visible)
    for value in visible:
        if writer_of(value) in aborted:
            problems.append(f"G1a: {value[:60]} is visible, written by aborted transaction {writer_of(value)}")
        if "<" in value and value.split("<", 1)[1] not in present:
            problems.append(f"G1a: {value[:60]} copies a record that was never committed")
    copies: dict = {}
    for value in visible:
        if "<" in value:
            copies.setdefault(value.split("<", 1)[1], []).append(writer_of(value))
    for name, records in sorted(sources.items()):
        for value in records:
            if hops(value) >= HOPS:
                continue
            made = [t for t in copies.get(value, []) if t.rstrip("0123456789") == name]
            if len(made) != 1:
                problems.append(f"copier {name}: {value[:60]} copied {len(made)} times ({', '.join(made[:4])})")
    edges: dict = {}
    for value in visible:
        if "<" in value:
            edges.setdefault(writer_of(value.split("<", 1)[1]), set()).add(writer_of(value))
    state: dict = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(edges.get(start, ()))))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                cycle = path[path.index(child):] + [child]
                problems.append(f"G1c: transactions read each other's writes: {' -> '.join(cycle[:8])}")
                return problems
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(edges.get(child, ())))))
    return problems


class GroupReader:
    """One member of a consumer group reading the campaign's topic in a thread, as an
    at-least-once application does: it notes every record it gets, by assignment (a "run":
    one partition from the moment it is assigned until it is revoked), and commits what it read
    every 100 records (synchronously, from the poll thread; a failed commit is retried later)."""

    def __init__(self, bootstrap: str, topic: str, group: str, name: str) -> None:
        from confluent_kafka import Consumer
        self.topic, self.name = topic, name
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                                  "heartbeat.interval.ms": 1000, "client.id": name})
        self.runs: list = []  # (partition, [(offset, value)]) per assignment
        self.current: dict = {}
        self.commits: dict = {}  # partition -> highest offset a commit was acknowledged for
        self.failed_commits = 0
        self.error: "str | None" = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def assigned(self, consumer, partitions) -> None:
        for tp in partitions:
            self.current[tp.partition] = []
            self.runs.append((tp.partition, self.current[tp.partition]))

    def revoked(self, consumer, partitions) -> None:
        for tp in partitions:
            self.current.pop(tp.partition, None)

    def run(self) -> None:
        from confluent_kafka import KafkaException
        try:
            self.consumer.subscribe([self.topic], on_assign=self.assigned, on_revoke=self.revoked, on_lost=self.revoked)
            since_commit = 0
            while not self.stop.is_set():
                msg = self.consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                run = self.current.get(msg.partition())
                if run is None:  # a record of a partition not assigned: a run of its own, flagged by the check
                    run = self.current[msg.partition()] = []
                    self.runs.append((msg.partition(), run))
                run.append((msg.offset(), msg.value().decode()))
                since_commit += 1
                if since_commit >= 100:
                    try:
                        for tp in self.consumer.commit(asynchronous=False) or []:
                            if tp.error is None and tp.offset >= 0:
                                self.commits[tp.partition] = max(self.commits.get(tp.partition, -1), tp.offset)
                        since_commit = 0
                    except KafkaException:
                        self.failed_commits += 1
            self.consumer.close()
        except Exception as error:  # noqa: BLE001 (reported as a problem of the campaign)
            self.error = f"{type(error).__name__}: {error}"

    def read(self) -> int:
        return sum(len(run) for _, run in self.runs)


def check_group(readers: list, read: dict, acked: list, committed: dict) -> "list[str]":
    """The consumer-group anomalies Jepsen's queue checks name, over every reader's runs:
    - nonmonotonic-poll: within a run, an offset not above the one before;
    - poll-skip: within a run, an offset past the next one (this topic has no gaps: idempotent
      batches only, no transactions, no compaction or deletion);
    - inconsistent-offsets: a record at an offset that differs from the final read's;
    - lost (for the group): an acknowledged record no member ever got;
    - committed-offset regression: the group's committed offset at the end below one a commit
      was acknowledged for."""
    problems = []
    seen: dict = {}
    for reader in readers:
        if reader.error:
            problems.append(f"group member {reader.name}: {reader.error}")
        for p, run in reader.runs:
            for (before, _), (after, _) in zip(run, run[1:]):
                if after <= before:
                    problems.append(f"nonmonotonic-poll: {reader.name} read offset {after} after {before} of partition {p}")
                elif after != before + 1:
                    problems.append(f"poll-skip: {reader.name} read offset {after} right after {before} of partition {p}")
            for offset, value in run:
                seen.setdefault(p, set()).add(offset)
                final = read.get(p, {}).get(offset)
                if final is not None and final != value:
                    problems.append(f"inconsistent-offsets: offset {offset} of partition {p} read as {value} by {reader.name}, "
                                    f"as {final} at the end")
    missing = [(p, o) for p, o, _ in acked if o not in seen.get(p, set())]
    if missing:
        problems.append(f"lost for the group: {len(missing)} acknowledged records no member got, e.g. {missing[:5]}")
    for p in sorted({p for r in readers for p in r.commits}):
        highest = max(r.commits.get(p, -1) for r in readers)
        if committed.get(p, -1) < highest:
            problems.append(f"committed-offset regression: partition {p} committed at {committed.get(p)} at the end, "
                            f"a commit of {highest} was acknowledged")
    return problems


def read_all(bootstrap: str, topic: str, partitions: int, committed_only: bool, limit_s: float = 30) -> list:
    """Every record of `topic` from the start, until nothing new comes for 3 s."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-read", "enable.auto.commit": False,
                         "isolation.level": "read_committed" if committed_only else "read_uncommitted"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values = []
    deadline = time.monotonic() + limit_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 3:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            values.append(msg.value().decode())
            quiet_since = time.monotonic()
    consumer.close()
    return values


def leader_of(cluster: Cluster, topic: str, rng: random.Random):
    live = ",".join(n.bootstrap for n in cluster.nodes.values() if n.up)
    states = partition_states(live, topic)
    leaders = sorted({leader for leader, _, _ in states.values() if leader in cluster.nodes})
    return rng.choice(leaders) if leaders else rng.choice(sorted(cluster.nodes))


def wait_healthy(cluster: Cluster, topic: str, partitions: int, limit_s: float = 90) -> None:
    ids = sorted(cluster.nodes)
    cluster.wait_for("every node unfenced", all_unfenced(ids), limit_s=limit_s)
    deadline = time.monotonic() + limit_s
    while True:
        states = partition_states(cluster.bootstrap, topic)
        if len(states) == partitions and all(leader >= 0 and len(isr) == len(ids) for leader, _, isr in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"ISR not full again within {limit_s} s: {states}")
        time.sleep(0.3)


def run_campaign(root: Path, seed: int, rounds: int, partitions: int = 3, rate: int = 300, transactions: bool = False,
                 network: bool = False, groups: bool = False, clocks: bool = False, controllers: bool = False,
                 copiers: bool = False, disks: bool = False, log=print) -> Outcome:
    """Runs one campaign in `root` (node data and logs stay there) and returns what it found.
    `network`: nodes in namespaces, with network partitions among the faults (needs root).
    `groups`: two members of a consumer group read the topic throughout (check_group).
    `clocks`: nodes run under libfaketime, with wall-clock steps among the faults.
    `controllers`: voters are taken out of the quorum and added back among the faults.
    `copiers`: with `transactions`, two transactional copiers in a ring (check_copies).
    `disks`: each node's second log dir on a loop disk, with disk failures among the faults
    (needs root)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    rng = random.Random(seed)
    outcome = Outcome(seed=seed)
    net = Network(range(1, 4)) if network else None
    if clocks and not FAKETIME_LIB:
        raise RuntimeError("clock jumps need libfaketime (apt-get install faketime)")
    faults = FAULTS + (NETWORK_FAULTS if net else ()) + (CLOCK_FAULTS if clocks else ()) + (CONTROLLER_FAULTS if controllers else ()) \
        + (DISK_FAULTS if disks else ())
    drives = Disks(root, range(1, 4)) if disks else None
    cluster = Cluster(root, network=net, clocks=clocks,
                      extra=(lambda i: [f"log.dirs={root}/node{i},{drives.paths[i]}"]) if drives else None)
    cluster.start()
    producer = None
    writer = None
    readers: list = []
    ring: list = []
    try:
        cluster.wait_for("three unfenced brokers", all_unfenced(sorted(cluster.nodes)), limit_s=60)
        bootstrap = cluster.bootstrap
        topic = f"campaign-{seed}"
        # With disks, fsyncs often enough that a slow disk stalls them.
        topic_config = {"min.insync.replicas": "2", **({"flush.messages": "100"} if drives else {})}
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, partitions, 3, config=topic_config)])[topic].result(30)
        wait_healthy(cluster, topic, partitions)
        producer = Producer(bootstrap, topic, partitions, rate)
        producer.thread.start()
        if groups:
            readers = [GroupReader(bootstrap, topic, f"{topic}-group", f"member-{i}") for i in range(2)]
            for reader in readers:
                reader.thread.start()
        if transactions:
            txn_topic = f"{topic}-txn"
            admin.create_topics([NewTopic(txn_topic, 2, 3, config=topic_config)])[txn_topic].result(30)
            wait_healthy(cluster, txn_topic, 2)
            writer = TxnWriter(bootstrap, txn_topic, seed, log=root / "txn-writer.log")
            writer.thread.start()
            if copiers:
                x, y = f"{topic}-x", f"{topic}-y"
                for made in admin.create_topics([NewTopic(t, 2, 3, config=topic_config) for t in (x, y)]).values():
                    made.result(30)
                wait_healthy(cluster, x, 2)
                wait_healthy(cluster, y, 2)
                ring = [TxnCopier(bootstrap, "a", [txn_topic, y], x, seed, log=root / "copier-a.log"),
                        TxnCopier(bootstrap, "b", [x], y, seed, log=root / "copier-b.log")]
                for copier in ring:
                    copier.thread.start()
        time.sleep(1)
        for round_ in range(rounds):
            fault = rng.choice(faults)
            if fault in ("kill-controller", "partition-controller") or (fault == "reconfigure-controller" and rng.random() < 0.5):
                # -1 while an election runs: then any node.
                active = (cluster.describe() or {}).get("controller")
                victim = active if active in cluster.nodes else rng.choice(sorted(cluster.nodes))
            elif fault in ("kill-leader", "pause-leader", "partition-leader"):
                victim = leader_of(cluster, topic, rng)
            else:
                victim = rng.choice(sorted(cluster.nodes))
            node = cluster.nodes[victim]
            before = producer.count()
            started = time.monotonic()
            if fault == "disk-failure":
                # The node runs on with its first log dir while its other one is dead, then
                # stops, gets a new disk, and starts again (its replicas there made anew).
                drives.fail(victim)
                time.sleep(rng.uniform(2.0, 5.0))
                if node.proc.poll() is not None:
                    raise AssertionError(f"round {round_}: node {victim} stopped when its second log dir failed:\n{node.tail()}")
                node.kill()
                drives.replace(victim)
                node.start()
            elif fault == "move-log-dir":
                moved = move_log_dir(cluster, victim, [topic] + ([txn_topic] if transactions else []), [root / f"node{victim}", drives.paths[victim]], rng)
                fault = f"move-log-dir ({moved})"
            elif fault == "slow-disk":
                drives.throttle(victim, 32 << 10, 8)
                try:
                    time.sleep(rng.uniform(3.0, 8.0))
                finally:
                    drives.throttle(victim, 0, 0)
            elif fault.startswith("kill"):
                node.kill()
                time.sleep(rng.uniform(0.5, 3.0))
                node.start()
            elif fault == "clock-jump":
                # An NTP step of up to 10 minutes either way (within Kafka's
                # message.timestamp.*.max.ms), stepped back after a few seconds.
                step = rng.choice([-1, 1]) * rng.randint(30, 600)
                node.step_clock(step)
                time.sleep(rng.uniform(2.0, 5.0))
                node.step_clock(0)
                fault = f"clock-jump ({step:+d} s)"
            elif fault == "reconfigure-controller":
                via = min(n for n in cluster.nodes if n != victim)
                change_voters(cluster, via, "remove-controller", "--id", str(victim))
                time.sleep(rng.uniform(1.0, 3.0))
                answer = change_voters(cluster, via, "add-controller", "--id", str(victim), "--address", f"{node.host}:{node.controller_port}")
                if "voters=1,2,3" not in answer:
                    raise AssertionError(f"round {round_}: controller {victim} added back, but the voters are {answer.strip()}")
            elif fault == "partition-bridge":
                a, b = [n for n in sorted(cluster.nodes) if n != victim]
                net.cut(a, b)
                time.sleep(SESSION_MS / 1000 + rng.uniform(1.0, 3.0))
                net.heal()
            elif fault.startswith("partition"):
                net.isolate(victim)
                longest = SESSION_MS / 1000 + 3.0
                time.sleep(rng.uniform(0.5, longest) if fault == "partition-any" else rng.uniform(longest - 2.0, longest))
                net.heal()
            elif fault == "pause-leader":
                node.proc.send_signal(signal.SIGSTOP)
                time.sleep(SESSION_MS / 1000 + rng.uniform(1.0, 3.0))
                node.proc.send_signal(signal.SIGCONT)
            else:
                node.proc.send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(0.2, SESSION_MS / 1000 * 0.5))
                node.proc.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 90
            while producer.count() < before + 100:
                if time.monotonic() > deadline:
                    raise AssertionError(f"round {round_} ({fault} of {victim}): no progress, {producer.count() - before} acks")
                time.sleep(0.1)
            progress_s = time.monotonic() - started
            wait_healthy(cluster, topic, partitions)
            what = f"{fault} between the others, node {victim} the bridge" if fault == "partition-bridge" else f"{fault} of node {victim}"
            outcome.rounds.append(f"{what}: 100 more acks {progress_s:.1f} s after the fault began, healed "
                                  f"{time.monotonic() - started:.1f} s after")
            log(f"campaign seed {seed} round {round_}: {outcome.rounds[-1]}")
        producer.finish()
        if writer is not None:
            writer.finish()
            if writer.error:
                outcome.problems.append(f"transactional producer: {writer.error}")
            seen = read_all(bootstrap, txn_topic, 2, committed_only=True, limit_s=120)
            expected = sorted(f"{t}:{i}" for t in writer.committed for i in range(10))
            if sorted(seen) != expected:
                lost = sorted(set(expected) - set(seen))[:5]
                extra = sorted(set(seen) - set(expected))[:5]
                outcome.problems.append(f"read_committed saw {len(seen)} records, expected {len(expected)} of "
                                        f"{len(writer.committed)} committed transactions; missing {lost}, unexpected {extra}")
            outcome.rounds.append(f"transactions: {len(writer.committed)} committed, {len(writer.aborted)} aborted")
            if ring:
                # The copiers go on until neither has copied anything for 5 s (or 120 s, and 3 s
                # more a round: a 200-round run left copier a 10,820 records behind at 120 s,
                # copying all the while).
                deadline = time.monotonic() + 120 + 3 * rounds
                while time.monotonic() < deadline and time.monotonic() - max(c.last_copy for c in ring) < 5:
                    time.sleep(0.5)
                for copier in ring:
                    copier.finish()
                    if copier.error:
                        outcome.problems.append(f"copier {copier.name}: {copier.error}")
                xs = read_all(bootstrap, ring[0].target, 2, committed_only=True, limit_s=120)
                ys = read_all(bootstrap, ring[1].target, 2, committed_only=True, limit_s=120)
                seeds = {f"w{t}" for t in writer.committed}, {f"w{t}" for t in writer.aborted}
                outcome.problems += check_copies(seen + xs + ys, {"a": seen + ys, "b": xs},
                                                 committed=seeds[0] | ring[0].committed | ring[1].committed,
                                                 aborted=seeds[1] | ring[0].aborted | ring[1].aborted)
                outcome.rounds.append(f"transactional ring: {len(xs) + len(ys)} copies in {len(ring[0].committed) + len(ring[1].committed)} "
                                      f"transactions, {len(ring[0].aborted) + len(ring[1].aborted)} aborted and redone")
                for copier in ring:
                    if copier.rereads:
                        # Not a problem in itself (a rebalance may hand a partition back at its
                        # committed offset); the copy check says whether anything came of it.
                        outcome.rounds.append(f"copier {copier.name} read offsets again without seeking: "
                                              f"{len(copier.rereads)} times, first {copier.rereads[:3]} (its client log: copier-{copier.name}.log)")
        outcome.acked = len(producer.acked)
        outcome.failed_deliveries = producer.failed
        # Read every partition back from its start.
        ends = {p: max((o for q, o, _ in producer.acked if q == p and o is not None), default=-1) for p in range(partitions)}
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-check", "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        read: dict = {}
        # The highest offset read per partition, kept as it goes: taking the max of everything
        # read at each poll made the read-back quadratic, and a 200-round campaign's 235,000
        # records did not fit in its deadline (it reported them unread).
        highest = {p: -1 for p in range(partitions)}
        deadline = time.monotonic() + 120 + len(producer.acked) / 2000
        while any(highest[p] < ends[p] for p in range(partitions)):
            if time.monotonic() > deadline:
                outcome.problems.append("could not read every partition to its last acknowledged offset")
                break
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                read.setdefault(msg.partition(), {})[msg.offset()] = msg.value().decode()
                highest[msg.partition()] = max(highest[msg.partition()], msg.offset())
        consumer.close()
        # librdkafka acknowledges some records without an offset: those an idempotent producer
        # retried after a timeout, once a later batch of the partition succeeded (their
        # sequence numbers say they were written). Each must be in its partition, once.
        unknown = [(p, seq) for p, o, seq in producer.acked if o is None]
        if unknown:
            where = {(p, value): offset for p, records in read.items() for offset, value in records.items()}
            resolved = []
            for p, offset, seq in producer.acked:
                if offset is None:
                    offset = where.get((p, f"{p}:{seq}"))
                    if offset is None:
                        outcome.problems.append(f"lost-write: {p}:{seq} was acknowledged (without an offset) and is not in partition {p}")
                        continue
                resolved.append((p, offset, seq))
            producer.acked = resolved
            outcome.rounds.append(f"{len(unknown)} records acknowledged without an offset (librdkafka's implicit acks), found by value")
        if readers:
            # The members read on until the group has had every acknowledged record (or 90 s).
            wanted = {(p, o) for p, o, _ in producer.acked}
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not wanted <= {(p, o) for r in readers for p, run in list(r.runs) for o, _ in list(run)}:
                time.sleep(0.5)
            for reader in readers:
                reader.stop.set()
                reader.thread.join(timeout=30)
            probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-group", "enable.auto.commit": False})
            committed = {tp.partition: tp.offset for tp in probe.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)}
            probe.close()
            outcome.problems += check_group(readers, read, producer.acked, committed)
            outcome.rounds.append(f"consumer group: {sum(r.read() for r in readers)} records read by {len(readers)} members in "
                                  f"{sum(len(r.runs) for r in readers)} assignments, {sum(r.failed_commits for r in readers)} "
                                  f"commits failed (retried)")
        for p, offset, seq in producer.acked:
            got = read.get(p, {}).get(offset)
            if got != f"{p}:{seq}":
                outcome.problems.append(f"acknowledged {p}:{seq} at offset {offset} of partition {p} reads back as {got}")
        for p in range(partitions):
            seqs = [int(v.split(":")[1]) for _, v in sorted(read.get(p, {}).items())]
            if len(seqs) != len(set(seqs)):
                outcome.problems.append(f"partition {p} holds a record twice")
            if seqs != sorted(seqs):
                outcome.problems.append(f"partition {p} holds records out of order")
        return outcome
    except AssertionError as error:
        outcome.problems.append(str(error))
        return outcome
    finally:
        if producer is not None and not producer.stop.is_set():
            producer.stop.set()
        if writer is not None:
            writer.stop.set()
        for copier in ring:
            copier.stop.set()
        for reader in readers:
            reader.stop.set()
        for node in cluster.nodes.values():
            if node.up and node.proc is not None:
                try:
                    node.proc.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
        cluster.stop()
        if net is not None:
            net.destroy()
        if drives is not None:
            drives.destroy()
