"""Consumer groups through real clients: the classic protocol (FindCoordinator, JoinGroup,
SyncGroup, Heartbeat, LeaveGroup) with librdkafka's range / roundrobin / cooperative-sticky
assignors, kafka-python's, and both in one group; KIP-848 (ConsumerGroupHeartbeat) with the
broker's uniform and range assignors; failover when a member is SIGKILLed; at-least-once delivery
with synchronous commits through a kill and a join; committed offsets (OffsetCommit /
OffsetFetch, with metadata) across SIGTERM and SIGKILL restarts; static membership; the group
admin APIs (ListGroups, DescribeGroups, DeleteGroups, OffsetDelete, offsets through the admin
clients); and kcat's balanced consumer.

Every test starts its own broker with group.initial.rebalance.delay.ms=0, so that the first
JoinGroup completes at once; classic members use a 6 s session (Kafka's minimum by default) and
1 s heartbeats. Run one with e.g. `scripts/interop.sh -k 'test_groups and failover'`.
"""
from __future__ import annotations

import queue
import threading
import time

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from brook_interop import (
    ADMIN_TIMEOUT,
    GROUP_SESSION_MS,
    CkErrors,
    CkMemberProcess,
    api_versions,
    check_received,
    ck_admin,
    ck_consumer,
    ck_create_topic,
    ck_errors,
    ck_group_conf,
    ck_group_consumer,
    ck_produce,
    ck_producer,
    ck_rec,
    ck_wait,
    kcat_group_consume,
    kp_admin,
    kp_consumer,
    kp_group_consumer,
    kp_rec,
    make_records,
    unique_topic,
    wait_for_partitions,
)

PARTITIONS = 6
SESSION_S = GROUP_SESSION_MS / 1000
JOIN_TIMEOUT = 60.0  # seconds for a group to settle on an assignment
CLEAN_EXIT = (0, 143)

# The first JoinGroup of an empty group completes at once (Kafka waits 3 s by default);
# offsets.topic.replication.factor=1 is what a single-node Kafka needs for __consumer_offsets.
GROUP_OVERRIDES = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
}
# KIP-848 groups: heartbeats every second and a 6 s session instead of Kafka's 5 s / 45 s (the
# minimums lowered with them, as Kafka checks the values against those).
KIP848_OVERRIDES = {
    **GROUP_OVERRIDES,
    "group.consumer.heartbeat.interval.ms": "1000",
    "group.consumer.min.heartbeat.interval.ms": "1000",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "6000",
}
# With Kafka's default group.consumer.session.timeout.ms (45 s), should the broker not take the
# override above, failover still completes within this.
KIP848_FAILOVER_TIMEOUT = 45.0 + 25.0

API_LIST_GROUPS = 16
API_CONSUMER_GROUP_DESCRIBE = 69


def overrides_for(conf: dict) -> dict:
    return KIP848_OVERRIDES if conf.get("protocol") == "consumer" else GROUP_OVERRIDES


# --------------------------------------------------------------------------------------------
# Group members in this process, polled by the tests' loops; CkMemberProcess (brook_interop)
# has the same step() / parts() interface for members in a child process.


class _Member:
    """What CkMember and KpMember share: the assignment, and a close that never raises."""

    closed = False

    def parts(self):
        if self.closed:
            return None
        return tuple(sorted(tp.partition for tp in self.consumer.assignment()))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._close_consumer()
            except Exception:  # noqa: BLE001 - teardown goes on; the test has its verdict already
                pass


class CkMember(_Member):
    """A confluent-kafka consumer subscribed to `topic` in `group`. `conf` holds ck_group_conf
    keywords (protocol, strategy, remote_assignor) and librdkafka settings."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, conf: dict = None) -> None:
        self.name = name
        self.errors = CkErrors()
        self.records: list = []
        self.msg_errors: list = []
        self.events: list = []  # ("assign" | "revoke", monotonic time, partitions)
        self.closed = False
        kw = dict(conf or {})
        kw.setdefault("client.id", name)
        self.static = "group.instance.id" in kw
        self.consumer = ck_group_consumer(bootstrap, group, errors=self.errors, **kw)
        self.consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked)

    def _assigned(self, consumer, parts) -> None:
        self.events.append(("assign", time.monotonic(), sorted(p.partition for p in parts)))

    def _revoked(self, consumer, parts) -> None:
        self.events.append(("revoke", time.monotonic(), sorted(p.partition for p in parts)))

    def step(self, timeout: float = 0.05) -> None:
        if self.closed:
            return
        for m in self.consumer.consume(num_messages=1000, timeout=timeout):
            err = m.error()
            if err is None:
                self.records.append(ck_rec(m))
            elif err.code() != KafkaError._PARTITION_EOF:
                self.msg_errors.append(err)

    def _close_consumer(self) -> None:
        # librdkafka's close waits for the app to serve a revoke a rebalance asked for; with
        # no poll running it can wait forever (a member whose heartbeat saw
        # REBALANCE_IN_PROGRESS while the test was closing the others). Unsubscribe and serve
        # the callbacks first, then close. Not for a static member: unsubscribing leaves the
        # group, and a static member's close must not (its restart is what tests watch).
        if not self.static:
            self.consumer.unsubscribe()
            end = time.monotonic() + 2.0
            while time.monotonic() < end and self.consumer.assignment():
                self.consumer.consume(num_messages=100, timeout=0.1)
        self.consumer.close()

    def report(self) -> str:
        errs = [str(e) for e in self.msg_errors[:5]] + [str(e) for e in self.errors.events[:5]]
        return f"{self.name}: assignment {self.parts()}, {len(self.records)} records, last events {self.events[-4:]}, errors {errs}"


class KpMember(_Member):
    """A kafka-python KafkaConsumer subscribed to `topic` in `group` (classic protocol), polled
    in a thread of its own, as applications run consumers.

    Not polled in turn with other members from the test's thread, and with long polls:
    kafka-python 3.0.12 loses a JoinGroup/SyncGroup outcome that arrives while no poll() is
    running (`join_group_async` starts a new attempt when the previous one is already done, and
    at times the member then goes silent), so a leader polled in turn with two others rejoined
    after each assignment and the group could rebalance for minutes. A poll returns as soon as
    records arrive, so the long timeout only bounds how fast close() and call() are served."""

    POLL_MS = 5000

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, strategy: str = "range", **extra) -> None:
        from kafka import ConsumerRebalanceListener

        self.name = name
        self.records: list = []
        self.poll_errors: list = []
        self.events: list = []
        self.closed = False
        self._parts: tuple = ()
        self.consumer = kp_group_consumer(bootstrap, group, strategy=strategy, client_id=name, **extra)
        events = self.events

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                events.append(("revoke", time.monotonic(), sorted(tp.partition for tp in revoked)))

            def on_partitions_assigned(self, assigned):
                events.append(("assign", time.monotonic(), sorted(tp.partition for tp in assigned)))

        self.consumer.subscribe([topic], listener=Listener())
        self._stop = threading.Event()
        self._calls: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"poll-{name}", daemon=True)
        self._thread.start()

    def call(self, fn, timeout: float = 60.0):
        """Runs fn(consumer) on the member's poll thread (a KafkaConsumer is not thread-safe)
        between two polls, and returns its result."""
        done, box = threading.Event(), {}
        self._calls.put((fn, done, box))
        if not done.wait(timeout):
            raise AssertionError(f"{self.name}: call not run within {timeout}s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _run(self) -> None:
        while not self._stop.is_set():
            while not self._calls.empty():
                fn, done, box = self._calls.get()
                try:
                    box["value"] = fn(self.consumer)
                except Exception as e:  # noqa: BLE001 - handed to the caller
                    box["error"] = e
                done.set()
            try:
                for recs in self.consumer.poll(timeout_ms=self.POLL_MS).values():
                    self.records.extend(kp_rec(r) for r in recs)
                self._parts = tuple(sorted(tp.partition for tp in self.consumer.assignment()))
            except Exception as e:  # noqa: BLE001 - kept for the failure message; the wait loop decides
                self.poll_errors.append(repr(e))
                self._stop.wait(0.1)

    def step(self, timeout: float = 0.05) -> None:
        """The member's thread polls; the test's loop only paces itself."""
        time.sleep(timeout)

    def parts(self):
        return None if self.closed else self._parts

    def begin_close(self) -> None:
        """Asks the poll thread to stop after its current poll (close_all stops all at once)."""
        self._stop.set()

    def _close_consumer(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.POLL_MS / 1000 + 10)
        self.consumer.close(autocommit=False, timeout_ms=5000)

    def report(self) -> str:
        return f"{self.name}: assignment {self.parts()}, {len(self.records)} records, last events {self.events[-4:]}, errors {self.poll_errors[:5]}"


def report_of(m) -> str:
    if isinstance(m, CkMemberProcess):
        errs = m.errors()[:5]
        state = "running" if m.alive() else f"exited {m.proc.returncode}"
        return (
            f"{m.name} (pid {m.proc.pid}, {state}): assignment {m.parts()}, {len(m.values())} records, "
            f"errors {errs}\n    stderr tail: {m.log_tail(8)}"
        )
    return m.report()


def reports(members) -> str:
    return "\n  ".join(report_of(m) for m in members)


def close_all(members) -> None:
    """Close every member, those in child processes all at once (SIGTERM first, then wait)."""
    for m in members:
        if isinstance(m, CkMemberProcess):
            m.terminate()
        elif isinstance(m, KpMember):
            m.begin_close()
    for m in members:
        try:
            m.close()
        except Exception:  # noqa: BLE001 - teardown goes on
            pass


def step_all(members) -> None:
    for m in members:
        m.step()


def step_for(members, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        step_all(members)
        if not members:
            time.sleep(0.05)


def wait_until(cond, *, timeout: float, what: str, members=()):
    """Poll `members` (keeping them alive in the group) until cond() is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        step_all(members)
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout:.0f}s\n  {reports(members)}")
        if not members:
            time.sleep(0.1)


def settle(members, partitions: int = PARTITIONS, *, timeout: float = JOIN_TIMEOUT, hold: float = 1.0, what: str = "group") -> dict:
    """Poll every member until their assignments split partitions 0..partitions-1 evenly with no
    overlap and stay so for `hold` seconds; returns {member name: partitions}."""
    want = partitions // len(members)
    assert want * len(members) == partitions, "settle() wants an even split"
    start = time.monotonic()
    deadline = start + timeout
    history: list = []
    last = None
    good_since = None
    while True:
        step_all(members)
        now = time.monotonic()
        snap = tuple(m.parts() for m in members)
        if snap != last:
            history.append((round(now - start, 1), snap))
            last = snap
        even = all(p is not None and len(p) == want for p in snap) and sorted(x for p in snap if p for x in p) == list(range(partitions))
        if even:
            if good_since is None:
                good_since = now
            if now - good_since >= hold:
                return {m.name: p for m, p in zip(members, snap)}
        else:
            good_since = None
        if now > deadline:
            names = [m.name for m in members]
            raise AssertionError(
                f"{what}: expected {len(members)} members {names} to hold {want} of partitions 0..{partitions - 1} each, "
                f"without overlap, within {timeout:.0f}s; last seen {dict(zip(names, snap))}\n"
                f"  assignment history (s since start, per member): {history[-12:]}\n  {reports(members)}"
            )


def drain(members, expected: int, *, since=None, timeout: float = 30.0, linger: float = 1.0) -> list:
    """Poll until the members together hold `expected` records more than `since` (name -> count
    before), then `linger` seconds more; returns those new records."""
    since = since or {}

    def new():
        return [r for m in members for r in m.records[since.get(m.name, 0):]]

    wait_until(lambda: len(new()) >= expected, timeout=timeout, what=f"{expected} records consumed by the group", members=members)
    step_for(members, linger)
    return new()


def produce_and_check_routing(bootstrap: str, topic: str, members, split: dict, what: str) -> None:
    """With the group settled: records produced now reach the member owning their partition,
    each exactly once, and the assignment does not change meanwhile."""
    before = {m.name: len(m.records) for m in members}
    specs = make_records(10 * PARTITIONS, "grp", PARTITIONS)
    ck_produce(bootstrap, topic, specs)
    got = drain(members, len(specs), since=before)
    misrouted = [
        (m.name, r.partition, r.offset)
        for m in members
        for r in m.records[before[m.name]:]
        if r.partition not in split[m.name]
    ]
    assert not misrouted, f"{what}: records consumed by a member that does not own their partition {misrouted[:10]}; assignment {split}"
    check_received(specs, got, what=f"{what}: records produced after the group settled")
    now = {m.name: m.parts() for m in members}
    assert now == split, f"{what}: the assignment changed while nobody joined or left: {split} -> {now}\n  {reports(members)}"


# --------------------------------------------------------------------------------------------
# Admin helpers


def ck_listed(admin, group: str):
    """The ConsumerGroupListing of `group` in ListGroups (None if absent)."""
    res = admin.list_consumer_groups(request_timeout=15).result(timeout=ADMIN_TIMEOUT)
    assert not res.errors, f"list_consumer_groups errors: {res.errors}"
    return {g.group_id: g for g in res.valid}.get(group)


def listed_in_state(admin, group: str, state):
    """The listing of `group` if ListGroups shows it in `state`, else None."""
    listing = ck_listed(admin, group)
    return listing if listing is not None and listing.state == state else None


def ck_describe(admin, group: str):
    return ck_wait(admin.describe_consumer_groups([group], request_timeout=15))[group]


def wait_state(admin, group: str, state, timeout: float = 30.0, members=()):
    """Describe `group` until its state is `state`; returns the description."""
    seen = []

    def check():
        try:
            desc = ck_describe(admin, group)
        except KafkaException as e:
            seen.append(str(e))
            return None
        seen.append(desc.state)
        return desc if desc.state == state else None

    try:
        return wait_until(check, timeout=timeout, what=f"group {group} in state {state}", members=members)
    except AssertionError as e:
        raise AssertionError(f"{e}\n  states seen: {seen[-5:]}") from None


def ck_group_offsets(admin, group: str, topic: str, partitions=None) -> dict:
    """{partition: TopicPartition} of `topic` from list_consumer_group_offsets (OffsetFetch)."""
    tps = None if partitions is None else [TopicPartition(topic, p) for p in partitions]
    res = ck_wait(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)], request_timeout=15))[group]
    return {tp.partition: tp for tp in res.topic_partitions if tp.topic == topic}


def ck_committed(bootstrap: str, group: str, topic: str, partitions, timeout: float = 30.0) -> dict:
    """{partition: (offset, metadata)} committed by `group`, read by a consumer that does not join
    it (OffsetFetch); retried while the coordinator is still loading after a restart."""
    c = ck_consumer(bootstrap, **{"group.id": group})
    last = None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                res = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
                bad = [(tp.partition, tp.error) for tp in res if tp.error is not None]
                if not bad:
                    return {tp.partition: (tp.offset, tp.metadata) for tp in res}
                last = bad
            except KafkaException as e:
                last = e
            except UnicodeDecodeError as e:
                # confluent-kafka (python) reads the committed metadata as a C string, but
                # librdkafka copies it without a terminator: metadata committed by another client
                # (no NUL) is sometimes read with whatever bytes follow it. Asked again, it comes
                # back clean; the bytes the broker returns are checked through kafka-python too.
                last = e
            if time.monotonic() > deadline:
                raise AssertionError(f"committed offsets of group {group} not readable within {timeout}s: {last}")
            time.sleep(0.5)
    finally:
        c.close()


def kp_committed(bootstrap: str, group: str, topic: str, partitions) -> dict:
    """{partition: (offset, metadata)} through kafka-python's committed(metadata=True); None where
    nothing is committed."""
    from kafka import TopicPartition as KpTP

    kc = kp_consumer(bootstrap, group_id=group)
    try:
        out = {}
        for p in partitions:
            oam = kc.committed(KpTP(topic, p), metadata=True, timeout_ms=30000)
            out[p] = None if oam is None else (oam.offset, oam.metadata)
        return out
    finally:
        kc.close(autocommit=False, timeout_ms=5000)


def kp_member_parts(member: dict, topic: str) -> tuple:
    """Partitions of `topic` in a kafka-python describe_groups member's decoded assignment."""
    a = member.get("member_assignment") or {}
    entries = a.get("assigned_partitions", []) if isinstance(a, dict) else []
    out = []
    for entry in entries:
        t, ps = (entry.get("topic"), entry.get("partitions")) if isinstance(entry, dict) else entry
        if t == topic:
            out.extend(ps)
    return tuple(sorted(out))


# --------------------------------------------------------------------------------------------
# 1. confluent-kafka: three members split six partitions, for each assignor and protocol

CK_PROTOCOLS = [
    pytest.param({"strategy": "range"}, id="range"),
    pytest.param({"strategy": "roundrobin"}, id="roundrobin"),
    pytest.param({"strategy": "cooperative-sticky"}, id="cooperative-sticky"),
    pytest.param({"protocol": "consumer"}, id="consumer-uniform"),
    pytest.param({"protocol": "consumer", "remote_assignor": "range"}, id="consumer-range"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("conf", CK_PROTOCOLS)
def test_confluent_group_splits_partitions(broker_factory, conf):
    b = broker_factory(overrides_for(conf))
    topic, group = unique_topic("grp-ck"), unique_topic("g-ck")
    ck_create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    members = []
    try:
        for i in range(3):
            members.append(CkMember(f"ck-{i}", b.bootstrap, group, topic, conf))
        split = settle(members, what=f"confluent-kafka {conf}")
        produce_and_check_routing(b.bootstrap, topic, members, split, what=f"confluent-kafka {conf}")
    finally:
        close_all(members)


# --------------------------------------------------------------------------------------------
# 2. kafka-python: the same with its own (client-side) assignors


@pytest.mark.timeout(120)
@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
def test_kafka_python_group_splits_partitions(broker_factory, strategy):
    b = broker_factory(GROUP_OVERRIDES)
    topic, group = unique_topic("grp-kp"), unique_topic("g-kp")
    ck_create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    members = []
    try:
        for i in range(3):
            members.append(KpMember(f"kp-{i}", b.bootstrap, group, topic, strategy=strategy))
        split = settle(members, what=f"kafka-python {strategy}")
        produce_and_check_routing(b.bootstrap, topic, members, split, what=f"kafka-python {strategy}")
    finally:
        close_all(members)


@pytest.mark.timeout(120)
def test_mixed_clients_share_a_group(broker_factory):
    """Two librdkafka members preferring range over roundrobin, one kafka-python member
    preferring roundrobin over range: the broker picks the protocol all support that most members
    vote for (range, 2 to 1, as Kafka does), and the leader's assignment reaches everyone."""
    b = broker_factory(GROUP_OVERRIDES)
    topic, group = unique_topic("grp-mixed"), unique_topic("g-mixed")
    ck_create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    members = []
    admin = ck_admin(b.bootstrap)
    try:
        members.append(CkMember("ck-0", b.bootstrap, group, topic, {"strategy": "range,roundrobin"}))
        members.append(KpMember("kp-0", b.bootstrap, group, topic, strategy="roundrobin,range"))
        members.append(CkMember("ck-1", b.bootstrap, group, topic, {"strategy": "range,roundrobin"}))
        split = settle(members, what="two confluent-kafka members and a kafka-python one")
        produce_and_check_routing(b.bootstrap, topic, members, split, what="mixed group")
        desc = ck_describe(admin, group)
        assert desc.partition_assignor == "range", (
            f"protocol chosen for the group: {desc.partition_assignor!r}; expected 'range' "
            "(supported by all, first choice of 2 of 3 members)"
        )
    finally:
        close_all(members)


# --------------------------------------------------------------------------------------------
# 3. Failover: a member SIGKILLed (no LeaveGroup) loses its partitions to the others after its
#    session times out; a newcomer then gets its share


FAILOVER = [
    pytest.param({"strategy": "range"}, SESSION_S + 25.0, id="classic-range"),
    pytest.param({"protocol": "consumer"}, KIP848_FAILOVER_TIMEOUT, id="consumer"),
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("conf,failover_timeout", FAILOVER)
def test_failover_after_sigkill(broker_factory, tmp_path, conf, failover_timeout):
    b = broker_factory(overrides_for(conf))
    topic, group = unique_topic("grp-failover"), unique_topic("g-failover")
    ck_create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    base = ck_group_conf(b.bootstrap, group, **conf)

    def member(name):
        return CkMemberProcess(name, dict(base, **{"client.id": name}), topic, tmp_path / f"{name}.log")

    procs = []
    try:
        procs += [member("a"), member("b"), member("c")]
        settle(procs, what="three members")
        a, b_, victim = procs
        lost = victim.parts()
        victim.kill()
        killed_at = time.monotonic()
        split = settle([a, b_], timeout=failover_timeout, what=f"survivors after SIGKILL of the member holding {lost}")
        took = time.monotonic() - killed_at
        assert set(lost) <= set(split["a"]) | set(split["b"])
        newcomer = member("d")
        procs.append(newcomer)
        settle([a, b_, newcomer], what=f"survivors and a newcomer (failover took {took:.1f}s)")
    finally:
        close_all(procs)


# --------------------------------------------------------------------------------------------
# 4. At least once: members commit synchronously after "processing" (printing) each batch; one
#    is SIGKILLed mid-stream and another joins; every record is consumed at least once and the
#    group's committed offsets end at the end of every partition

ALO_RECORDS = 3000
ALO_CHUNKS = 30


@pytest.mark.timeout(240)
def test_at_least_once_across_kill_and_join(broker_factory, tmp_path):
    b = broker_factory(GROUP_OVERRIDES)
    topic, group = unique_topic("grp-alo"), unique_topic("g-alo")
    ck_create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    base = ck_group_conf(b.bootstrap, group, strategy="range")
    per_partition = ALO_RECORDS // PARTITIONS

    def member(name):
        return CkMemberProcess(name, dict(base, **{"client.id": name}), topic, tmp_path / f"{name}.log", commit=True)

    def value(i):
        return f"alo-{i:05d}"

    procs = []
    failed = []
    producer = ck_producer(b.bootstrap, acks="all")
    try:
        procs += [member("a"), member("b"), member("c")]
        settle(procs, what="three committing members")
        a, victim, c = procs
        per_chunk = ALO_RECORDS // ALO_CHUNKS
        killed_after = None
        for chunk in range(ALO_CHUNKS):
            for i in range(chunk * per_chunk, (chunk + 1) * per_chunk):
                producer.produce(
                    topic,
                    key=f"k{i}".encode(),
                    value=value(i).encode(),
                    partition=i % PARTITIONS,
                    on_delivery=lambda err, msg: failed.append(err) if err is not None else None,
                )
            producer.poll(0)
            if chunk == ALO_CHUNKS // 3:
                wait_until(lambda: victim.values(), timeout=20, what="the member to be killed consumed something")
                victim.kill()
                killed_after = len(victim.values())
            if chunk == 2 * ALO_CHUNKS // 3:
                procs.append(member("d"))
            time.sleep(0.2)
        left = producer.flush(30)
        assert left == 0 and not failed, f"{left} records undelivered, delivery errors {failed[:5]}"
        newcomer = procs[3]

        want = {value(i) for i in range(ALO_RECORDS)}

        def missing():
            return want - {v for m in procs for v in m.values()}

        try:
            wait_until(lambda: not missing(), timeout=90, what="every record consumed")
        except AssertionError as e:
            gone = sorted(missing())
            raise AssertionError(f"{len(gone)} of {ALO_RECORDS} records never consumed, e.g. {gone[:10]}\n{e}\n  {reports(procs)}") from None

        # Every offset of every partition was handed out (nothing skipped past by a commit).
        seen = {(p, o) for m in procs for (p, o, _) in list(m.records)}
        holes = {p: sorted(set(range(per_partition)) - {o for (q, o) in seen if q == p}) for p in range(PARTITIONS)}
        assert not any(holes.values()), f"offsets never consumed: { {p: h[:10] for p, h in holes.items() if h} }"

        settle([a, c, newcomer], what="the survivors and the newcomer")
        admin = ck_admin(b.bootstrap)
        end = {p: per_partition for p in range(PARTITIONS)}
        last = {}

        def committed_at_end():
            last.clear()
            last.update({p: tp.offset for p, tp in ck_group_offsets(admin, group, topic, range(PARTITIONS)).items()})
            return last == end

        try:
            wait_until(committed_at_end, timeout=30, what="the group's commits at the end of every partition", members=[a, c, newcomer])
        except AssertionError as e:
            raise AssertionError(f"committed offsets {last}, expected {end}\n{e}") from None
        dups = sum(len(m.records) for m in procs) - ALO_RECORDS
        print(f"at-least-once: victim had consumed {killed_after} records when killed; {dups} redeliveries overall")
    finally:
        close_all(procs)
        producer.flush(5)


# --------------------------------------------------------------------------------------------
# 5. Committed offsets and their metadata survive restarts; a new member resumes from them


@pytest.mark.timeout(240)
def test_committed_offsets_survive_restart(broker_factory):
    from kafka import OffsetAndMetadata
    from kafka import TopicPartition as KpTP

    b = broker_factory(GROUP_OVERRIDES)
    topic = unique_topic("grp-restart")
    ck_create_topic(b.bootstrap, topic, partitions=3)
    specs = make_records(300, "rs", 3)  # record i: partition i % 3, offset i // 3
    ck_produce(b.bootstrap, topic, specs)
    ck_group, kp_group = unique_topic("g-ck"), unique_topic("g-kp")
    ck_at, kp_at = {0: 30, 1: 55, 2: 100}, {0: 70, 1: 0, 2: 99}
    ck_meta = {p: f"ck-meta-p{p}" for p in range(3)}
    kp_meta = {p: f"kp-meta-p{p}" for p in range(3)}

    # confluent-kafka: a subscribed member commits offsets with metadata through its generation.
    m = CkMember("ck-commit", b.bootstrap, ck_group, topic, {"strategy": "range"})
    try:
        settle([m], 3, what="one confluent member")
        res = m.consumer.commit(offsets=[TopicPartition(topic, p, o, metadata=ck_meta[p]) for p, o in ck_at.items()], asynchronous=False)
        assert all(tp.error is None for tp in res), f"commit errors: {[(tp.partition, tp.error) for tp in res]}"
    finally:
        m.close()
    # kafka-python: a consumer outside any membership (assign) commits with OffsetAndMetadata.
    kc = kp_consumer(b.bootstrap, group_id=kp_group)
    try:
        kc.assign([KpTP(topic, p) for p in range(3)])
        kc.commit({KpTP(topic, p): OffsetAndMetadata(o, kp_meta[p], -1) for p, o in kp_at.items()})
    finally:
        kc.close(autocommit=False, timeout_ms=5000)

    def check_committed(when, ck_want, kp_want):
        got = ck_committed(b.bootstrap, ck_group, topic, range(3))
        assert got == ck_want, f"{when}: confluent-kafka committed() of {ck_group}: {got}, expected {ck_want}"
        got = kp_committed(b.bootstrap, kp_group, topic, range(3))
        assert got == kp_want, f"{when}: kafka-python committed() of {kp_group}: {got}, expected {kp_want}"
        # Each client reads what the other committed.
        got = ck_committed(b.bootstrap, kp_group, topic, range(3))
        # confluent-kafka (python) reads a committed metadata string as a C string: kafka-python's,
        # sent without a terminating NUL, may come back with whatever bytes follow it in the
        # client's memory (seen in CI: 'kp-meta-p1\x11\x06/V'); kafka-python reads the same bytes
        # back exactly (checked above), so the broker kept what it was given.
        got = {p: (o, kp_want[p][1] if p in kp_want and md.startswith(kp_want[p][1]) else md) for p, (o, md) in got.items()}
        assert got == kp_want, f"{when}: confluent-kafka committed() of {kp_group}: {got}, expected {kp_want}"
        # confluent-kafka (python) sends its metadata string with the C terminator: the broker
        # keeps the bytes it was given, so kafka-python reads them back with a trailing NUL.
        got = {p: (o, md.rstrip("\x00")) for p, (o, md) in kp_committed(b.bootstrap, ck_group, topic, range(3)).items()}
        assert got == ck_want, f"{when}: kafka-python committed() of {ck_group}: {got}, expected {ck_want}"

    first_ck = {p: (o, ck_meta[p]) for p, o in ck_at.items()}
    first_kp = {p: (o, kp_meta[p]) for p, o in kp_at.items()}
    check_committed("before restart", first_ck, first_kp)

    rc = b.restart()
    assert rc in CLEAN_EXIT, f"SIGTERM should stop brook cleanly, got status {rc}\n{b.log_tail()}"
    wait_for_partitions(b.bootstrap, topic, 3)
    check_committed("after SIGTERM restart", first_ck, first_kp)

    # A new member of each group resumes exactly at the committed offsets.
    m = CkMember("ck-resume", b.bootstrap, ck_group, topic, {"strategy": "range"})
    try:
        settle([m], 3, what="resuming confluent member")
        want = [s for s in specs if s.seq // 3 >= ck_at[s.partition]]
        got = drain([m], len(want))
        check_received(want, got, what="confluent member resuming after restart", start_offsets=ck_at)
        res = m.consumer.commit(offsets=[TopicPartition(topic, p, 100, metadata="ck-done") for p in range(3)], asynchronous=False)
        assert all(tp.error is None for tp in res), f"commit errors: {[(tp.partition, tp.error) for tp in res]}"
    finally:
        m.close()
    k = KpMember("kp-resume", b.bootstrap, kp_group, topic)
    try:
        settle([k], 3, what="resuming kafka-python member")
        want = [s for s in specs if s.seq // 3 >= kp_at[s.partition]]
        got = drain([k], len(want))
        check_received(want, got, what="kafka-python member resuming after restart", start_offsets=kp_at)
        k.call(lambda c: c.commit({KpTP(topic, p): OffsetAndMetadata(100, "kp-done", -1) for p in range(3)}))
    finally:
        k.close()

    b.restart(hard=True)  # SIGKILL: the commits must already be in the log
    wait_for_partitions(b.bootstrap, topic, 3)
    check_committed("after SIGKILL restart", {p: (100, "ck-done") for p in range(3)}, {p: (100, "kp-done") for p in range(3)})


# --------------------------------------------------------------------------------------------
# 6. Static membership: a static member closed (no LeaveGroup) and back within its session gets
#    its partitions again with no rebalance; gone for good, it is dropped after the session


@pytest.mark.timeout(150)
def test_static_member_restart_keeps_assignment(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    topic, group = unique_topic("grp-static"), unique_topic("g-static")
    ck_create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    conf = {"strategy": "range"}
    static_conf = dict(conf, **{"group.instance.id": "static-1"})
    members = []
    try:
        # The dynamic member joins first and alone, so it leads the group: the static member's
        # return then needs no leader to compute anything.
        other = CkMember("other", b.bootstrap, group, topic, conf)
        members.append(other)
        settle([other], what="the first member alone")
        static = CkMember("static", b.bootstrap, group, topic, static_conf)
        members.append(static)
        split = settle([other, static], what="a dynamic and a static member")
        theirs, mine = split["other"], split["static"]

        mark = len(other.events)
        static.close()  # librdkafka sends no LeaveGroup for a static member
        closed_at = time.monotonic()
        step_for([other], 1.0)
        again = CkMember("static", b.bootstrap, group, topic, static_conf)
        members.append(again)
        wait_until(lambda: again.parts(), timeout=15, what="the restarted static member has partitions", members=[other, again])
        # Past the moment the first instance's session would have expired: nothing moves.
        step_for([other, again], max(0.0, closed_at + SESSION_S + 3.0 - time.monotonic()))
        moved = other.events[mark:]
        assert not moved, (
            f"the other member saw rebalance callbacks while the static member restarted within its session: {moved}"
        )
        assert again.parts() == mine, f"the restarted static member got {again.parts()}, it had {mine}"
        assert other.parts() == theirs, f"the other member's assignment changed: {theirs} -> {other.parts()}"

        # Closed for good: the group keeps its partitions until the session times out.
        mark = len(other.events)
        again.close()
        closed_at = time.monotonic()
        wait_until(
            lambda: other.parts() == tuple(range(PARTITIONS)),
            timeout=SESSION_S + 25.0,
            what="the other member holds every partition after the static member's session expired",
            members=[other],
        )
        assert len(other.events) > mark, f"the other member got every partition without a rebalance callback: {other.events}"
        first = other.events[mark][1] - closed_at
        assert first >= SESSION_S / 2, (
            f"the other member was rebalanced {first:.1f}s after the static member closed; a static member's close "
            f"sends no LeaveGroup, so that should wait for its {SESSION_S:.0f}s session to expire"
        )
    finally:
        close_all(members)


# --------------------------------------------------------------------------------------------
# 7. Admin: list / describe groups, offsets through the admin clients, OffsetDelete, DeleteGroups


@pytest.mark.timeout(180)
def test_admin_classic_group(broker_factory):
    from kafka import TopicPartition as KpTP

    b = broker_factory(GROUP_OVERRIDES)
    topic, group = unique_topic("grp-admin"), unique_topic("g-admin")
    ck_create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    ck_produce(b.bootstrap, topic, make_records(10 * PARTITIONS, "adm", PARTITIONS))
    admin = ck_admin(b.bootstrap)
    kadmin = kp_admin(b.bootstrap)
    members = []
    try:
        members += [CkMember(f"adm-{i}", b.bootstrap, group, topic, {"strategy": "range"}) for i in range(3)]
        split = settle(members, what="three members")
        for m in members:  # each commits offset p+1 of its partitions, its name as metadata
            res = m.consumer.commit(
                offsets=[TopicPartition(topic, p, p + 1, metadata=m.name) for p in split[m.name]], asynchronous=False
            )
            assert all(tp.error is None for tp in res), f"{m.name} commit errors: {[(tp.partition, tp.error) for tp in res]}"
        committed = {p: p + 1 for p in range(PARTITIONS)}
        owner = {p: name for name, parts in split.items() for p in parts}

        # confluent-kafka: ListGroups, DescribeGroups
        listing = ck_listed(admin, group)
        assert listing is not None, f"list_consumer_groups does not list {group}"
        assert listing.state == ConsumerGroupState.STABLE, f"listed state {listing.state}"
        assert not listing.is_simple_consumer_group
        if listing.type != ConsumerGroupType.UNKNOWN:
            assert listing.type == ConsumerGroupType.CLASSIC, f"listed type {listing.type}"
        desc = ck_describe(admin, group)
        assert desc.state == ConsumerGroupState.STABLE, f"described state {desc.state}"
        assert desc.partition_assignor == "range", f"described protocol {desc.partition_assignor!r}"
        assert not desc.is_simple_consumer_group
        described = {
            mem.client_id: tuple(sorted(tp.partition for tp in mem.assignment.topic_partitions if tp.topic == topic))
            for mem in desc.members
        }
        assert described == split, f"describe_consumer_groups members/assignments {described}, expected {split}"
        ids = [mem.member_id for mem in desc.members]
        assert len(set(ids)) == 3 and all(ids), f"member ids {ids}"

        # kafka-python: ListGroups, DescribeGroups (its assignment bytes decoded by the client)
        kgroups = {g["group_id"]: g for g in kadmin.list_groups()}
        assert group in kgroups, f"kafka-python list_groups lacks {group}: {sorted(kgroups)}"
        assert kgroups[group].get("protocol_type") == "consumer", kgroups[group]
        if kgroups[group].get("group_state") is not None:
            assert kgroups[group]["group_state"] == "Stable", kgroups[group]
        kdesc = kadmin.describe_groups([group])[group]
        assert kdesc.get("error") is None, kdesc
        assert (kdesc["group_state"], kdesc["protocol_type"], kdesc["protocol_data"]) == ("Stable", "consumer", "range"), kdesc
        kdescribed = {mem["client_id"]: kp_member_parts(mem, topic) for mem in kdesc["members"]}
        assert kdescribed == split, f"kafka-python describe_groups assignments {kdescribed}, expected {split}"

        # OffsetFetch through both admin clients
        offs = ck_group_offsets(admin, group, topic)
        assert {p: tp.offset for p, tp in offs.items()} == committed, f"list_consumer_group_offsets: {offs}"
        koffs = kadmin.list_group_offsets(group)[group]
        # The metadata came from confluent-kafka, which sends it with its C terminator.
        got = {tp.partition: (oam.offset, oam.metadata.rstrip("\x00")) for tp, oam in koffs.items() if tp.topic == topic}
        assert got == {p: (committed[p], owner[p]) for p in range(PARTITIONS)}, f"kafka-python list_group_offsets: {got}"

        # A group with members cannot be deleted.
        err = ck_errors(admin.delete_consumer_groups([group], request_timeout=15))[group]
        assert err is not None and err.code() == KafkaError.NON_EMPTY_GROUP, f"deleting a group with members: {err}"
    finally:
        close_all(members)

    try:
        # Everybody left: Empty, no members; offsets can be altered by the admin now.
        desc = wait_state(admin, group, ConsumerGroupState.EMPTY)
        assert not desc.members, f"members after all left: {desc.members}"
        listing = ck_listed(admin, group)
        assert listing is not None and listing.state == ConsumerGroupState.EMPTY, f"listed after all left: {listing}"
        res = ck_wait(
            admin.alter_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, 7) for p in range(PARTITIONS)])],
                request_timeout=15,
            )
        )[group]
        assert all(tp.error is None for tp in res.topic_partitions), f"alter_consumer_group_offsets: {res.topic_partitions}"
        offs = ck_group_offsets(admin, group, topic)
        assert {p: tp.offset for p, tp in offs.items()} == {p: 7 for p in range(PARTITIONS)}, f"after alter: {offs}"

        # OffsetDelete (kafka-python): partition 0's offset goes, the others stay.
        res = kadmin.delete_group_offsets(group, [KpTP(topic, 0)])
        assert {tp.partition: e.__name__ for tp, e in res.items()} == {0: "NoError"}, f"delete_group_offsets: {res}"
        koffs = kadmin.list_group_offsets(group)[group]
        left = {tp.partition: oam.offset for tp, oam in koffs.items() if tp.topic == topic and oam.offset >= 0}
        assert left == {p: 7 for p in range(1, PARTITIONS)}, f"offsets after deleting partition 0's: {left}"

        # DeleteGroups: gone from the listing, its offsets with it; a second delete finds nothing.
        err = ck_errors(admin.delete_consumer_groups([group], request_timeout=15))[group]
        assert err is None, f"deleting the empty group: {err}"
        assert ck_listed(admin, group) is None, "the deleted group is still listed"
        # Kafka answers OffsetFetch for an unknown group with no offsets (-1), not an error.
        offs = ck_group_offsets(admin, group, topic, range(PARTITIONS))
        assert all(tp.offset < 0 and tp.error is None for tp in offs.values()), f"offsets of a deleted group: {offs}"
        err = ck_errors(admin.delete_consumer_groups([group], request_timeout=15))[group]
        assert err is not None and err.code() == KafkaError.GROUP_ID_NOT_FOUND, f"deleting it again: {err}"
        never = unique_topic("g-never")
        assert kadmin.delete_groups([never]) == {never: "GroupIdNotFoundError"}
    finally:
        kadmin.close()


@pytest.mark.timeout(180)
def test_admin_consumer_protocol_group(broker_factory):
    """A KIP-848 group through the admin APIs. DescribeConsumerGroups must work if the broker
    advertises ConsumerGroupDescribe (librdkafka uses it for such groups); without it, Kafka's
    DescribeGroups answers GROUP_ID_NOT_FOUND for a consumer-protocol group, which is accepted."""
    b = broker_factory(KIP848_OVERRIDES)
    topic, group = unique_topic("grp-admin848"), unique_topic("g-admin848")
    ck_create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    apis = api_versions(b.port)
    admin = ck_admin(b.bootstrap)
    kadmin = kp_admin(b.bootstrap)
    members = []
    try:
        members += [CkMember(f"kip848-{i}", b.bootstrap, group, topic, {"protocol": "consumer"}) for i in range(3)]
        split = settle(members, what="three consumer-protocol members")

        listing = wait_until(
            lambda: listed_in_state(admin, group, ConsumerGroupState.STABLE), timeout=20, what=f"{group} listed as Stable", members=members
        )
        if apis.get(API_LIST_GROUPS, (0, 0))[1] >= 5:  # ListGroups v5 carries the group type
            assert listing.type == ConsumerGroupType.CONSUMER, f"listed type {listing.type}"
        assert not listing.is_simple_consumer_group

        try:
            desc = ck_describe(admin, group)
        except KafkaException as e:
            assert API_CONSUMER_GROUP_DESCRIBE not in apis, f"the broker offers ConsumerGroupDescribe, yet describing {group} failed: {e}"
            assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, f"describe_consumer_groups of a KIP-848 group: {e}"
        else:
            if desc.type != ConsumerGroupType.UNKNOWN or API_CONSUMER_GROUP_DESCRIBE in apis:
                assert desc.type == ConsumerGroupType.CONSUMER, f"described type {desc.type}"
            assert desc.state == ConsumerGroupState.STABLE, f"described state {desc.state}"
            described = {
                mem.client_id: tuple(sorted(tp.partition for tp in mem.assignment.topic_partitions if tp.topic == topic))
                for mem in desc.members
            }
            assert described == split, f"describe_consumer_groups assignments {described}, expected {split}"

        kgroups = {g["group_id"]: g for g in kadmin.list_groups()}
        assert group in kgroups, f"kafka-python list_groups lacks {group}: {sorted(kgroups)}"
        assert kgroups[group].get("protocol_type") == "consumer", kgroups[group]
        if kgroups[group].get("group_type") is not None:
            assert kgroups[group]["group_type"] == "consumer", kgroups[group]
    finally:
        close_all(members)

    try:
        wait_until(
            lambda: listed_in_state(admin, group, ConsumerGroupState.EMPTY), timeout=30, what=f"{group} listed as Empty after its members left"
        )
        err = ck_errors(admin.delete_consumer_groups([group], request_timeout=15))[group]
        assert err is None, f"deleting the empty consumer-protocol group: {err}"
        assert ck_listed(admin, group) is None, "the deleted group is still listed"
    finally:
        kadmin.close()


# --------------------------------------------------------------------------------------------
# 8. kcat's balanced consumer (-G): reads everything, commits on exit, and the next run resumes


@pytest.mark.timeout(120)
def test_kcat_balanced_consumer(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    topic, group = unique_topic("grp-kcat"), unique_topic("g-kcat")
    ck_create_topic(b.bootstrap, topic, partitions=3)
    first = make_records(300, "kcg", 3, text_only=True)
    ck_produce(b.bootstrap, topic, first)
    got = kcat_group_consume(b.bootstrap, group, topic, len(first))
    check_received(first, got, what="kcat -G")

    admin = ck_admin(b.bootstrap)
    offs = {p: tp.offset for p, tp in ck_group_offsets(admin, group, topic, range(3)).items()}
    assert offs == {0: 100, 1: 100, 2: 100}, f"kcat's group committed {offs} on exit, expected the end of each partition"

    more = make_records(30, "kcg", 3, start=300, text_only=True)
    ck_produce(b.bootstrap, topic, more)
    got = kcat_group_consume(b.bootstrap, group, topic, len(more))
    check_received(more, got, what="kcat -G, second run", start_offsets={0: 100, 1: 100, 2: 100})
