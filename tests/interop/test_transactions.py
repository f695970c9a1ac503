"""Idempotent producers and transactions through real clients.

- librdkafka's idempotent producer keeps every record exactly once and in order while the broker
  is SIGKILLed and restarted under it (the producer state comes back from the log); through a
  TCP proxy that drops the broker's answer to a Produce request and then cuts every connection
  (the batch comes again and must be recognised as a duplicate); and through the proxy with the
  broker SIGKILLed right after such a write (the duplicate comes to the restarted broker);
- transactions that commit and abort in turn: read_committed sees exactly the committed records
  (last stable offset, aborted transactions), read_uncommitted sees everything; also after a
  SIGKILL restart (each aborted transaction listed once by Fetch);
- consume-transform-produce with send_offsets_to_transaction in a child process SIGKILLed at
  chosen and random moments and restarted with the same transactional.id (which fences it and
  aborts its open transaction): every input record is in the output exactly once;
- a zombie is fenced by a newer producer with the same transactional.id; a transaction open when
  the broker is SIGKILLed is aborted by the next instance after the restart;
- a stalled transaction is aborted by the broker after transaction.timeout.ms, and no longer
  holds read_committed consumers back;
- transaction.timeout.ms above transaction.max.timeout.ms is refused;
- kafka-python's transactional producer and read_committed consumer; its admin client's
  ListTransactions, DescribeTransactions and DescribeProducers.

Every test has its own broker and its own topics and transactional ids. Run one with e.g.
`scripts/interop.sh -k 'test_transactions and fenced'`. Some tests print what happened (records sent
again, the moments of the kills, the error a timed-out commit got): pytest -s shows it.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec

from brook_interop import (
    RECORDS,
    CkErrors,
    ck_admin,
    ck_base_conf,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_producer,
    ck_wait,
    connect,
    kp_admin,
    kp_consume,
    kp_producer,
    read_response,
    request_frame,
    Reader,
    unique_topic,
)

# Records each idempotence test sends (20,000; BROOK_INTEROP_RECORDS lowers it, to 5,000 at least).
IDEMPOTENT_RECORDS = max(min(RECORDS, 20000), 5000)

# Classic groups join at once; the internal topics' replication settings a single-node Kafka needs
# (Brook keeps one replica regardless).
TXN_OVERRIDES = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
}

# What librdkafka reports when a producer has been fenced by a newer one with its
# transactional.id (the broker answers PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH to old
# request versions; librdkafka raises _FENCED as a fatal error).
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def txn_producer(bootstrap: str, txn_id: str, errors=None, **extra) -> Producer:
    """A confluent-kafka transactional producer (idempotent, acks=all by librdkafka's rules)."""
    conf = ck_base_conf(bootstrap, **{"transactional.id": txn_id, "linger.ms": 5})
    if errors is not None:
        conf["error_cb"] = errors
    conf.update(extra)
    return Producer(conf)


def values_by_partition(recs) -> dict:
    out = defaultdict(list)
    for r in recs:
        out[r.partition].append(None if r.value is None else r.value.decode())
    return dict(out)


def fatal_events(errs: CkErrors) -> list:
    return [e for e in errs.events if e.fatal()]


def latest_offsets(bootstrap: str, topic: str, partitions, isolation) -> dict:
    """ListOffsets "latest" per partition: the high watermark (READ_UNCOMMITTED) or the last
    stable offset (READ_COMMITTED)."""
    admin = ck_admin(bootstrap)
    futures = admin.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}, isolation_level=isolation, request_timeout=15
    )
    return {tp.partition: r.offset for tp, r in ck_wait(futures).items()}


# --------------------------------------------------------------------------------------------
# The idempotent producer across broker kills and lost answers


def produce_sequential(producer, topic: str, n: int, partitions: int, state: dict, *, chunk: int = 50,
                       pause: float = 0.01, timeout: float = 150.0) -> None:
    """Produce values "0".."n-1", value i to partition i % partitions, in chunks with a pause
    between them so that the stream lasts a few seconds; wait for every delivery report.
    Fills state: produced (how many were handed to the producer so far), delivered
    {i: (partition, offset)}, failed {i: error}, left (undelivered, once done)."""
    delivered, failed = state.setdefault("delivered", {}), state.setdefault("failed", {})

    def report(err, msg):
        i = int(msg.value())
        if err is not None:
            failed[i] = err
        else:
            delivered[i] = (msg.partition(), msg.offset())

    deadline = time.monotonic() + timeout
    for i in range(n):
        while True:
            try:
                producer.produce(topic, value=str(i).encode(), partition=i % partitions, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    state["left"] = n - i
                    return
        if i % chunk == chunk - 1:
            state["produced"] = i + 1
            producer.poll(pause)
    state["left"] = producer.flush(max(1.0, deadline - time.monotonic()))


def check_exactly_once_in_order(recs, n: int, partitions: int, what: str) -> None:
    """Partition p holds exactly the values p, p + partitions, p + 2 * partitions, ... < n, in that
    order, at offsets 0, 1, 2, ... (no transactions: no control records)."""
    problems = []
    by_part = defaultdict(list)
    for r in recs:
        by_part[r.partition].append(r)
    for p in range(partitions):
        rs = by_part.get(p, [])
        vals = [int(r.value) for r in rs]
        want = list(range(p, n, partitions))
        if vals != want:
            dups = len(vals) - len(set(vals))
            missing = sorted(set(want) - set(vals))
            first = next((i for i, (a, b) in enumerate(zip(vals, want)) if a != b), min(len(vals), len(want)))
            problems.append(
                f"partition {p}: {len(vals)} values for {len(want)}: {dups} duplicate(s), {len(missing)} missing "
                f"(first {missing[:5]}); first difference at index {first}: got {vals[first:first + 5]} "
                f"(offsets {[r.offset for r in rs[first:first + 5]]}), want {want[first:first + 5]}"
            )
        offsets = [r.offset for r in rs]
        if offsets != list(range(len(offsets))):
            problems.append(f"partition {p}: offsets not 0..{len(offsets) - 1}: {offsets[:5]}...")
    extra = sorted(set(by_part) - set(range(partitions)))
    if extra:
        problems.append(f"records in unexpected partitions {extra}")
    assert not problems, f"{what}:\n  " + "\n  ".join(problems)


def check_delivery_reports(state: dict, recs, n: int, what: str) -> None:
    """Every record was acknowledged once, at the offset where the consumer found it (a retried
    batch the broker recognises as a duplicate is answered with its first write's offsets)."""
    assert not state.get("left"), f"{what}: {state.get('left')} records not delivered"
    assert not state["failed"], f"{what}: {len(state['failed'])} deliveries failed, e.g. {list(state['failed'].items())[:5]}"
    assert len(state["delivered"]) == n, f"{what}: {len(state['delivered'])} delivery reports for {n} records"
    where = {int(r.value): (r.partition, r.offset) for r in recs}
    wrong = [(i, po, where.get(i)) for i, po in sorted(state["delivered"].items()) if po[1] >= 0 and where.get(i) != po]
    assert not wrong, (
        f"{what}: {len(wrong)} delivery reports name another offset than the record's, "
        f"e.g. (value, reported, found) {wrong[:5]}"
    )


def wait_progress(state: dict, produced: int, delivered: int, timeout: float, what: str) -> None:
    """Until `produced` records were handed to the producer and `delivered` acknowledged."""
    deadline = time.monotonic() + timeout
    while state.get("produced", 0) < produced or len(state.get("delivered", ())) < delivered:
        if "left" in state:
            return  # the producer is done (its outcome is checked afterwards)
        assert time.monotonic() < deadline, (
            f"{what}: {state.get('produced', 0)} produced (waiting for {produced}), "
            f"{len(state.get('delivered', ()))} delivered (waiting for {delivered}) after {timeout}s"
        )
        time.sleep(0.005)


class Stats:
    """The last statistics librdkafka reported (stats_cb): how many records it transmitted, which
    is more than it produced when it sent batches again after a lost answer or connection."""

    def __init__(self) -> None:
        self.last: dict = {}

    def __call__(self, raw: str) -> None:
        self.last = json.loads(raw)

    def _partitions(self) -> list:
        return [p for t in self.last.get("topics", {}).values() for q, p in t.get("partitions", {}).items() if q != "-1"]

    def transmitted(self) -> int:
        return sum(p.get("txmsgs", 0) for p in self._partitions())

    def sent_again(self) -> int:
        return self.transmitted() - sum(p.get("msgs", 0) for p in self._partitions())

    def summary(self) -> str:
        eos = self.last.get("eos", {})
        return (f"{self.transmitted()} records transmitted, {self.sent_again()} of them again; "
                f"producer id {eos.get('producer_id')} epoch {eos.get('producer_epoch')}")


def idempotent_producer(bootstrap: str, errs: CkErrors, stats: Stats):
    return ck_producer(
        bootstrap,
        acks="all",
        errors=errs,
        **{
            "stats_cb": stats,
            "statistics.interval.ms": 200,
            "enable.idempotence": True,
            "message.timeout.ms": 120000,
            "request.timeout.ms": 10000,
            "socket.timeout.ms": 10000,
            "retry.backoff.ms": 50,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        },
    )


@pytest.mark.timeout(150)
@pytest.mark.parametrize("partitions", [1, 3])
def test_idempotent_producer_exactly_once_across_broker_kills(fresh_broker, partitions):
    b = fresh_broker
    topic = unique_topic(f"idem-kill-p{partitions}")
    ck_create_topic(b.bootstrap, topic, partitions=partitions)
    n = IDEMPOTENT_RECORDS
    errs = CkErrors()
    stats = Stats()
    producer = idempotent_producer(b.bootstrap, errs, stats)
    state: dict = {}
    worker = threading.Thread(target=produce_sequential, args=(producer, topic, n, partitions, state), daemon=True)
    worker.start()

    kills, at_kill = 2, 0
    for k in range(1, kills + 1):
        # This kill's share of the stream handed over, and acknowledgements since the last restart.
        wait_progress(state, n * k // (kills + 1), at_kill + 1, 60, f"before kill #{k}")
        at_kill = len(state["delivered"])
        assert "left" not in state, f"the producer finished before kill #{k}: make the stream longer"
        b.kill()  # SIGKILL while the stream goes on
        time.sleep(0.3)  # the producer's requests fail and queue up meanwhile
        b.start()
    worker.join(160)
    assert not worker.is_alive(), "the producer did not finish"
    assert not fatal_events(errs), f"librdkafka raised fatal errors: {fatal_events(errs)}"

    got = ck_consume(b.bootstrap, topic, range(partitions), n, timeout=60, linger=1.0)
    check_exactly_once_in_order(got, n, partitions, f"idempotent producer, {kills} broker kills")
    check_delivery_reports(state, got, n, f"idempotent producer, {kills} broker kills")
    producer.poll(0.5)
    print(f"{kills} broker kills: {stats.summary()}")


class _FrameCounter:
    """Follows one direction of a Kafka connection: the frames (int32 size, then that many bytes)
    that start in each chunk read, with the first two bytes of each (a request's api key)."""

    def __init__(self) -> None:
        self.head = b""
        self.left = 0

    def feed(self, data: bytes) -> list:
        starts, i = [], 0
        while i < len(data):
            if self.left:
                take = min(self.left, len(data) - i)
                self.left -= take
                i += take
                continue
            need = 6 - len(self.head)
            self.head += data[i:i + need]
            i += min(need, len(data) - i)
            if len(self.head) < 6:
                break
            size = int.from_bytes(self.head[:4], "big", signed=True)
            starts.append(int.from_bytes(self.head[4:6], "big", signed=True))
            self.left, self.head = max(size - 2, 0), b""
        return starts


class _ProxiedConnection:
    def __init__(self, client, upstream) -> None:
        self.client, self.upstream = client, upstream
        self.requests = _FrameCounter()
        self.responses = _FrameCounter()
        self.api_keys: list = []  # of the requests forwarded and not answered yet, in order
        self.lock = threading.Lock()


class CuttingProxy:
    """A TCP proxy on a free loopback port, forwarding to the broker. cut() ends every connection
    through it at once (whatever requests or answers are on the way are lost);
    on_next_produce_response(action) drops the broker's next answer to a Produce request instead
    of passing it on, runs action (e.g. cut, or SIGKILL the broker), and sets the returned event:
    the broker has written that batch, but the producer never hears of it and must send it again."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.target_port = None
        self.accepted = 0
        self.dropped_produce_responses = 0
        self._conns: list = []
        self._lock = threading.Lock()
        self._armed = None  # (action, event)
        self._closed = False

    def start(self, target_port: int) -> None:
        self.target_port = target_port
        threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _ProxiedConnection(client, upstream)
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._pump_requests, args=(conn,), daemon=True).start()
            threading.Thread(target=self._pump_responses, args=(conn,), daemon=True).start()

    def _pump_requests(self, conn) -> None:
        try:
            while True:
                data = conn.client.recv(65536)
                if not data:
                    break
                with conn.lock:  # noted before the broker can answer
                    conn.api_keys.extend(conn.requests.feed(data))
                conn.upstream.sendall(data)
        except OSError:
            pass
        finally:
            self._shut(conn)

    def _pump_responses(self, conn) -> None:
        try:
            while True:
                data = conn.upstream.recv(65536)
                if not data:
                    break
                with conn.lock:
                    answered = [conn.api_keys.pop(0) if conn.api_keys else None for _ in conn.responses.feed(data)]
                armed = self._armed
                if armed is not None and 0 in answered:  # api key 0: Produce
                    with self._lock:
                        if self._armed is armed:
                            self._armed = None
                            self.dropped_produce_responses += 1
                        else:
                            armed = None
                    if armed is not None:
                        action, event = armed
                        action()
                        event.set()
                        break
                conn.client.sendall(data)
        except OSError:
            pass
        finally:
            self._shut(conn)

    def on_next_produce_response(self, action) -> threading.Event:
        event = threading.Event()
        self._armed = (action, event)
        return event

    @staticmethod
    def _shut(conn) -> None:
        for s in (conn.client, conn.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the other pump's recv
            except OSError:
                pass

    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def cut(self) -> int:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            self._shut(conn)
        return len(conns)

    def close(self) -> None:
        self._closed = True
        self._armed = None
        try:
            self.listener.close()
        except OSError:
            pass
        self.cut()


def proxied_idempotent_run(b, proxy, partitions: int, events: int, action, what: str, after=None) -> None:
    """Produce IDEMPOTENT_RECORDS through `proxy` to broker `b`; `events` times, spread over the
    stream, drop a Produce answer and run `action` (which ends the connections), then `after`
    on this thread; then check that every record is there exactly once, in order, and that
    librdkafka did send records again."""
    bootstrap = f"127.0.0.1:{proxy.port}"
    topic = unique_topic(f"idem-proxy-p{partitions}")
    ck_create_topic(bootstrap, topic, partitions=partitions)
    n = IDEMPOTENT_RECORDS
    errs = CkErrors()
    stats = Stats()
    producer = idempotent_producer(bootstrap, errs, stats)
    state: dict = {}
    worker = threading.Thread(target=produce_sequential, args=(producer, topic, n, partitions, state), daemon=True)
    worker.start()

    at = 0
    for k in range(1, events + 1):
        # This event's share of the stream handed over, and acknowledgements since the last one.
        wait_progress(state, n * k // (events + 1), at + 1, 60, f"before {what} #{k}")
        assert "left" not in state, f"the producer finished before {what} #{k}: make the stream longer"
        at = len(state["delivered"])
        done = proxy.on_next_produce_response(action)
        assert done.wait(30), f"no Produce answer through the proxy within 30 s for {what} #{k}"
        if after is not None:
            after()
    worker.join(160)
    assert not worker.is_alive(), "the producer did not finish"
    assert not fatal_events(errs), f"librdkafka raised fatal errors: {fatal_events(errs)}"

    got = ck_consume(bootstrap, topic, range(partitions), n, timeout=60, linger=1.0)
    check_exactly_once_in_order(got, n, partitions, f"idempotent producer, {events} x {what}")
    check_delivery_reports(state, got, n, f"idempotent producer, {events} x {what}")
    producer.poll(0.5)
    print(f"{events} x {what}: {stats.summary()}")
    assert stats.sent_again() > 0, f"librdkafka sent no record twice ({stats.summary()}): the test tested nothing"


@pytest.mark.timeout(150)
@pytest.mark.parametrize("partitions", [1, 3])
def test_idempotent_producer_exactly_once_through_cut_connections(broker_factory, partitions):
    """Four times a Produce answer is lost and every connection cut: the producer sends those
    batches again on new connections, and the broker answers them as duplicates."""
    proxy = CuttingProxy()
    # Metadata names the proxy, so every connection of the clients goes through it.
    b = broker_factory({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})
    proxy.start(b.port)
    try:
        proxied_idempotent_run(b, proxy, partitions, 4, proxy.cut, "lost answer and cut")
    finally:
        proxy.close()


@pytest.mark.timeout(150)
def test_idempotent_producer_exactly_once_when_killed_after_writing(broker_factory):
    """Twice the broker is SIGKILLed right after it wrote a batch and answered (the answer lost on
    the way): after the restart the batch comes again, and the producer state rebuilt from the
    log must recognise it."""
    proxy = CuttingProxy()
    b = broker_factory({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})
    proxy.start(b.port)

    def kill_broker():
        b.kill()
        proxy.cut()

    try:
        # The restart on the test's thread: the broker runs with setpriv --pdeathsig, which kills
        # it when the thread that started it ends.
        proxied_idempotent_run(b, proxy, 3, 2, kill_broker, "broker kill after a write", after=b.start)
        assert b.starts == 3
    finally:
        proxy.close()


# --------------------------------------------------------------------------------------------
# Commit and abort in turn


@pytest.mark.timeout(90)
def test_commit_and_abort_alternating(broker_factory):
    b = broker_factory(TXN_OVERRIDES)
    topic = unique_topic("txn-alt")
    ck_create_topic(b.bootstrap, topic, partitions=2)
    errs = CkErrors()
    p = txn_producer(b.bootstrap, unique_id("txn-alt"), errors=errs)
    p.init_transactions(30)
    txns, per_txn = 10, 50
    committed, everything = defaultdict(list), defaultdict(list)
    for t in range(txns):
        p.begin_transaction()
        for i in range(per_txn):
            v = f"t{t}-{i}"
            p.produce(topic, value=v.encode(), partition=i % 2)
            everything[i % 2].append(v)
            if t % 2 == 0:
                committed[i % 2].append(v)
        if t % 2 == 0:
            p.commit_transaction(30)
        else:
            # librdkafka purges what it has not sent yet on abort: send it all first, so that the
            # aborted records are in the log.
            assert p.flush(30) == 0
            p.abort_transaction(30)
    assert not fatal_events(errs), fatal_events(errs)
    n_committed = sum(len(v) for v in committed.values())
    n_all = sum(len(v) for v in everything.values())

    rc = ck_consume(b.bootstrap, topic, [0, 1], n_committed, timeout=30, linger=1.5, **{"isolation.level": "read_committed"})
    assert values_by_partition(rc) == dict(committed), "read_committed: not exactly the committed records in order"
    ru = ck_consume(b.bootstrap, topic, [0, 1], n_all, timeout=30, linger=1.5, **{"isolation.level": "read_uncommitted"})
    assert values_by_partition(ru) == dict(everything), "read_uncommitted: not every record in order"
    # Each transaction ends with a control record (not returned to the consumer) in both
    # partitions; with no transaction open the last stable offset is the high watermark.
    ends = {part: len(everything[part]) + txns for part in (0, 1)}
    c = ck_consumer(b.bootstrap)
    try:
        for part in (0, 1):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10, cached=False)
            assert (lo, hi) == (0, ends[part]), f"partition {part} watermarks {(lo, hi)}"
    finally:
        c.close()
    assert latest_offsets(b.bootstrap, topic, (0, 1), IsolationLevel.READ_COMMITTED) == ends
    # kafka-python's read_committed consumer filters the aborted transactions itself.
    kp = kp_consume(b.bootstrap, topic, [0, 1], n_committed, timeout=30, linger=1.5, isolation_level="read_committed")
    assert values_by_partition(kp) == dict(committed), "kafka-python read_committed: not exactly the committed records"


def fetch_aborted_transactions(port: int, topic: str, partition: int, offset: int) -> list:
    """The aborted_transactions of a read_committed Fetch (v4) of one partition from `offset`:
    [(producer id, first offset)]."""
    t = topic.encode()
    body = (struct.pack(">iiiib", -1, 100, 1, 10_000_000, 1) + struct.pack(">ih", 1, len(t)) + t
            + struct.pack(">iiqi", 1, partition, offset, 10_000_000))
    with connect(port) as sock:
        sock.sendall(request_frame(1, 4, 1, "brook-interop", body))
        r = Reader(read_response(sock))
    r.int32(), r.int32()  # correlation id, throttle time
    assert r.int32() == 1 and r.take(r.int16()) == t and r.int32() == 1
    assert r.int32() == partition
    err = r.int16()
    assert err == 0, f"Fetch error {err}"
    r.take(16)  # high watermark, last stable offset
    n = r.int32()
    return [struct.unpack(">qq", r.take(16)) for _ in range(max(n, 0))]


@pytest.mark.timeout(90)
def test_aborted_transactions_after_broker_kill(broker_factory):
    """Commits and aborts in turn, then a SIGKILL (no producer snapshot written yet, so the
    restart replays the log): read_committed must still see exactly the committed records, and
    Fetch must list each aborted transaction once (librdkafka pairs each listed transaction
    with one abort marker: one listed twice hides the next committed transaction of that
    producer)."""
    b = broker_factory(TXN_OVERRIDES)
    topic = unique_topic("txn-alt-kill")
    ck_create_topic(b.bootstrap, topic, partitions=2)
    p = txn_producer(b.bootstrap, unique_id("txn-alt-kill"))
    p.init_transactions(30)
    committed, n_committed = defaultdict(list), 0
    for t in range(6):
        p.begin_transaction()
        for i in range(20):
            p.produce(topic, value=f"t{t}-{i}".encode(), partition=i % 2)
            if t % 2 == 0:
                committed[i % 2].append(f"t{t}-{i}")
                n_committed += 1
        if t % 2 == 0:
            p.commit_transaction(30)
        else:
            assert p.flush(30) == 0
            p.abort_transaction(30)
    before = fetch_aborted_transactions(b.port, topic, 0, 0)
    assert len(before) == 3 and len(set(before)) == 3, f"aborted transactions listed by Fetch: {before}"

    b.restart(hard=True)
    after = fetch_aborted_transactions(b.port, topic, 0, 0)
    try:
        rc = ck_consume(b.bootstrap, topic, [0, 1], n_committed, timeout=15, linger=1.5, **{"isolation.level": "read_committed"})
        seen = values_by_partition(rc)
        consumed = "exactly the committed records" if seen == dict(committed) else f"{seen}"
    except AssertionError as e:
        consumed = str(e)
    assert after == before and consumed == "exactly the committed records", (
        f"after a SIGKILL restart, Fetch (read_committed, partition 0 from offset 0) lists the aborted "
        f"transactions (producer id, first offset) {after}, before it {before}; a librdkafka read_committed "
        f"consumer read: {consumed}"
    )


# --------------------------------------------------------------------------------------------
# Consume-transform-produce through crashes

# Consumes `input` in a group (static membership, so that a restarted instance takes its
# predecessor's place at once), and per batch of records opens a transaction, produces one
# output record per input record ("partition:offset:value"), adds the consumed offsets with
# send_offsets_to_transaction and commits. It pauses inside each transaction (after producing,
# and after sending the offsets) so that a kill often finds one open. It prints JSON events
# ("init", "produced", "offsets", "committed", "done", "error"...) and exits 0 once the group's
# committed offsets reached `ends`.
CTP_SCRIPT = r"""
import json, os, sys, time
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

cfg = json.loads(sys.argv[1])
bs, tin, tout = cfg["bootstrap"], cfg["input"], cfg["output"]
ends = {int(k): v for k, v in cfg["ends"].items()}
out_parts, pause, batch = cfg["out_partitions"], cfg["pause"], cfg["batch"]
parent = os.getppid()


def emit(kind, **f):
    f["ev"] = kind
    f["t"] = time.time()
    sys.stdout.write(json.dumps(f) + "\n")
    sys.stdout.flush()


common = {"bootstrap.servers": bs, "socket.timeout.ms": 10000, "reconnect.backoff.max.ms": 1000}
p = Producer(dict(common, **{"transactional.id": cfg["txn_id"], "linger.ms": 5,
                             "error_cb": lambda e: emit("client_error", err=str(e), fatal=e.fatal())}))
p.init_transactions(60)  # fences the previous instance and aborts its open transaction
emit("init")
c = Consumer(dict(common, **{
    "group.id": cfg["group"], "group.instance.id": "ctp-worker",
    "isolation.level": "read_committed", "enable.auto.commit": False, "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest", "enable.partition.eof": False,
    "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "max.poll.interval.ms": 30000,
}))
c.subscribe([tin])


def done():
    # Everything committed (the group's offsets, through the transactions, are at the ends).
    committed = c.committed([TopicPartition(tin, q) for q in ends], timeout=10)
    return all(tp.offset >= ends[tp.partition] for tp in committed)


try:
    while os.getppid() == parent:
        msgs = []
        for m in c.consume(num_messages=batch, timeout=0.5):
            if m.error() is not None:
                emit("consume_error", err=str(m.error()))
                continue
            msgs.append(m)
        if not msgs:
            if done():
                emit("done")
                break
            continue
        p.begin_transaction()
        upto = {}
        for m in msgs:
            val = f"{m.partition()}:{m.offset()}:{m.value().decode()}"
            p.produce(tout, value=val.encode(), key=m.key(), partition=m.partition() % out_parts)
            upto[m.partition()] = m.offset() + 1
        emit("produced", n=len(msgs), upto=upto)
        time.sleep(pause)
        p.send_offsets_to_transaction([TopicPartition(tin, q, o) for q, o in upto.items()],
                                      c.consumer_group_metadata(), 30)
        emit("offsets", upto=upto)
        time.sleep(pause)
        p.commit_transaction(30)
        emit("committed", n=len(msgs), upto=upto)
except KafkaException as e:
    err = e.args[0]
    emit("error", err=str(err), fatal=err.fatal(), abortable=err.txn_requires_abort())
    sys.exit(3)
c.close()
"""


class CtpProcess:
    """One run of CTP_SCRIPT; a reader thread gathers its events."""

    def __init__(self, script, cfg: dict, log_path) -> None:
        self.events: list = []
        self._log = open(log_path, "wb")
        self.log_path = log_path
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(cfg)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, env=env
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                pass

    def last(self):
        return self.events[-1]["ev"] if self.events else None

    def count(self, kind: str) -> int:
        return sum(1 for e in list(self.events) if e["ev"] == kind)

    def wait_for(self, pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if self.proc.poll() is not None:
                self._reader.join(5)
                if pred():
                    return
                raise AssertionError(f"the worker exited ({self.proc.returncode}) waiting for {what}: {self.tail()}")
            assert time.monotonic() < deadline, f"the worker did not reach {what} within {timeout}s: {self.tail()}"
            time.sleep(0.005)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)
        self._log.close()

    def tail(self) -> str:
        self._log.flush()
        err = open(self.log_path, "rb").read().decode(errors="replace")[-2000:]
        return f"events {self.events[-6:]} stderr {err}"


@pytest.mark.timeout(150)
def test_consume_transform_produce_exactly_once_through_crashes(broker_factory, tmp_path):
    b = broker_factory(TXN_OVERRIDES)
    tin, tout, group = unique_topic("ctp-in"), unique_topic("ctp-out"), unique_id("ctp-group")
    in_parts, out_parts, m = 3, 2, 3000
    ck_create_topic(b.bootstrap, tin, partitions=in_parts)
    ck_create_topic(b.bootstrap, tout, partitions=out_parts)
    pre = ck_producer(b.bootstrap)
    for i in range(m):
        pre.produce(tin, value=f"v{i}".encode(), key=f"k{i}".encode(), partition=i % in_parts)
    assert pre.flush(30) == 0
    ends = {q: len(range(q, m, in_parts)) for q in range(in_parts)}

    script = tmp_path / "ctp.py"
    script.write_text(CTP_SCRIPT)
    cfg = {"bootstrap": b.bootstrap, "input": tin, "output": tout, "group": group, "txn_id": unique_id("ctp-txn"),
           "ends": ends, "out_partitions": out_parts, "pause": 0.1, "batch": 100}
    rng = random.Random()
    # Kill 1 with records produced in an open transaction, kill 2 with the offsets added to it
    # too, kills 3 and 4 at random moments.
    plan = ["produced", "offsets", "random", "random"]
    runs, kill_states = [], []
    for run in range(len(plan) + 1):
        w = CtpProcess(script, cfg, tmp_path / f"ctp-{run}.log")
        runs.append(w)
        try:
            if run < len(plan):
                w.wait_for(lambda: w.count("committed") >= 1 or w.count("done"), 60, "its first commit")
                assert not w.count("done"), f"the input was consumed before kill #{run + 1}: make the run longer"
                time.sleep(rng.uniform(0.0, 0.6))
                if plan[run] != "random":
                    # 30 ms into that state: what it produced has been sent (linger.ms=5).
                    w.wait_for(lambda: w.last() == plan[run] and time.time() - w.events[-1]["t"] > 0.03, 30,
                               f"an open transaction ({plan[run]})")
                else:
                    time.sleep(rng.uniform(0.0, 0.3))
                kill_states.append(w.last())
                w.kill()
            else:
                w.wait_for(lambda: w.count("done") >= 1, 90, "the end of the input")
                w.proc.wait(30)
                assert w.proc.returncode == 0, f"the last worker exited {w.proc.returncode}: {w.tail()}"
                w.kill()
        except BaseException:
            w.kill()
            raise
    errors = [e for w in runs for e in w.events if e["ev"] in ("error", "consume_error") or (e["ev"] == "client_error" and e["fatal"])]
    assert not errors, f"worker errors: {errors[:5]}"
    print(f"kills in states {kill_states}; commits per run {[w.count('committed') for w in runs]}")

    got = ck_consume(b.bootstrap, tout, range(out_parts), m, timeout=60, linger=1.5, **{"isolation.level": "read_committed"})
    seen = defaultdict(list)
    for r in got:
        q, off, v = r.value.decode().split(":")
        seen[(int(q), int(off))].append((r.partition, r.offset, v))
    dups = {k: v for k, v in seen.items() if len(v) > 1}
    want = {(i % in_parts, i // in_parts): f"v{i}" for i in range(m)}
    missing = sorted(set(want) - set(seen))
    wrong = [(k, v[0][2], want.get(k)) for k, v in seen.items() if want.get(k) != v[0][2]]
    assert not dups and not missing and not wrong and len(got) == m, (
        f"output read_committed: {len(got)} records for {m} inputs; {len(dups)} input record(s) more than once "
        f"(e.g. {list(dups.items())[:3]}), {len(missing)} missing (e.g. {missing[:5]}), {len(wrong)} wrong (e.g. {wrong[:3]})"
    )
    # The killed workers' open transactions are in the log, aborted.
    everything = ck_consume(b.bootstrap, tout, range(out_parts), m, timeout=60, linger=1.5, **{"isolation.level": "read_uncommitted"})
    print(f"{len(everything) - m} aborted records in the output")
    assert len(everything) > m, "no record of the killed workers' transactions in the output: the kills tested nothing"
    # Per input partition, the output keeps the input's order.
    for q in range(in_parts):
        offs = [int(r.value.decode().split(":")[1]) for r in got if int(r.value.decode().split(":")[0]) == q]
        assert offs == sorted(offs), f"input partition {q}: output out of order"
    # The group's committed offsets are the ends of the input.
    c = ck_consumer(b.bootstrap, **{"group.id": group, "isolation.level": "read_committed"})
    try:
        committed = c.committed([TopicPartition(tin, q) for q in range(in_parts)], timeout=20)
        assert {tp.partition: tp.offset for tp in committed} == ends
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# Zombie fencing


@pytest.mark.timeout(90)
def test_zombie_is_fenced_by_new_instance(broker_factory):
    b = broker_factory(TXN_OVERRIDES)
    topic, txn_id = unique_topic("txn-fence"), unique_id("txn-fence")
    ck_create_topic(b.bootstrap, topic, partitions=1)
    errs_a = CkErrors()
    a = txn_producer(b.bootstrap, txn_id, errors=errs_a)
    a.init_transactions(30)
    a.begin_transaction()
    for i in range(10):
        a.produce(topic, value=f"a{i}".encode(), partition=0)
    assert a.flush(30) == 0  # A's records are in the log, in its open transaction

    bp = txn_producer(b.bootstrap, txn_id)
    bp.init_transactions(30)  # bumps the epoch: A is a zombie now, its transaction aborted
    bp.begin_transaction()
    for i in range(10):
        bp.produce(topic, value=f"b{i}".encode(), partition=0)
    bp.commit_transaction(30)

    a_failed = []
    try:
        a.produce(topic, value=b"a-late", partition=0)
        a.flush(10)
        a.commit_transaction(15)
    except KafkaException as e:
        a_failed.append(e.args[0])
    assert a_failed, "the zombie's commit succeeded"
    err = a_failed[0]
    fenced = [e for e in [err, *errs_a.events] if e.code() in FENCED_CODES]
    assert err.fatal() or err.code() in FENCED_CODES, f"the zombie's commit failed with {err}, not as fenced"
    assert fenced, f"no fenced error for the zombie: commit {err}, error_cb {errs_a.events}"

    rc = ck_consume(b.bootstrap, topic, [0], 10, timeout=30, linger=1.5, **{"isolation.level": "read_committed"})
    assert [r.value.decode() for r in rc] == [f"b{i}" for i in range(10)]
    ru = ck_consume(b.bootstrap, topic, [0], 20, timeout=30, linger=1.5, **{"isolation.level": "read_uncommitted"})
    assert [r.value.decode() for r in ru] == [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]


@pytest.mark.timeout(90)
def test_open_transaction_across_broker_kill_is_aborted_by_new_instance(broker_factory):
    """The broker is SIGKILLed with a transaction open (records in the log, the coordinator's
    state in __transaction_state); after the restart a new producer with the transactional.id
    aborts it, and read_committed sees only the new instance's committed records."""
    b = broker_factory(TXN_OVERRIDES)
    topic, txn_id = unique_topic("txn-kill-open"), unique_id("txn-kill-open")
    ck_create_topic(b.bootstrap, topic, partitions=2)
    a = txn_producer(b.bootstrap, txn_id)
    a.init_transactions(30)
    a.begin_transaction()
    for i in range(20):
        a.produce(topic, value=f"a{i}".encode(), partition=i % 2)
    assert a.flush(30) == 0
    assert latest_offsets(b.bootstrap, topic, (0, 1), IsolationLevel.READ_COMMITTED) == {0: 0, 1: 0}

    b.restart(hard=True)
    assert latest_offsets(b.bootstrap, topic, (0, 1), IsolationLevel.READ_COMMITTED) == {0: 0, 1: 0}, \
        "the open transaction's first offset was not kept as the last stable offset across the restart"
    bp = txn_producer(b.bootstrap, txn_id)
    bp.init_transactions(60)
    bp.begin_transaction()
    for i in range(20):
        bp.produce(topic, value=f"b{i}".encode(), partition=i % 2)
    bp.commit_transaction(30)

    rc = ck_consume(b.bootstrap, topic, [0, 1], 20, timeout=30, linger=1.5, **{"isolation.level": "read_committed"})
    assert values_by_partition(rc) == {p: [f"b{i}" for i in range(p, 20, 2)] for p in (0, 1)}
    # Each partition: 10 of A's, A's abort marker, 10 of B's, B's commit marker.
    assert latest_offsets(b.bootstrap, topic, (0, 1), IsolationLevel.READ_COMMITTED) == {0: 22, 1: 22}
    with pytest.raises(KafkaException):
        a.commit_transaction(15)


# --------------------------------------------------------------------------------------------
# transaction.timeout.ms


@pytest.mark.timeout(90)
def test_stalled_transaction_is_aborted_after_its_timeout(broker_factory):
    b = broker_factory(dict(TXN_OVERRIDES, **{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"}))
    topic = unique_topic("txn-timeout")
    ck_create_topic(b.bootstrap, topic, partitions=1)
    timeout_s = 3.0
    errs = CkErrors()
    # librdkafka wants socket.timeout.ms <= transaction.timeout.ms.
    p = txn_producer(b.bootstrap, unique_id("txn-timeout"), errors=errs,
                     **{"transaction.timeout.ms": int(timeout_s * 1000), "socket.timeout.ms": 2000})
    p.init_transactions(30)
    p.begin_transaction()
    started = time.monotonic()
    for i in range(20):
        p.produce(topic, value=f"stalled{i}".encode(), partition=0)
    assert p.flush(10) == 0
    # Records after the open transaction: a read_committed consumer sees them only once the
    # transaction is over (the last stable offset stays at its first record until then).
    after = ck_producer(b.bootstrap)
    for i in range(10):
        after.produce(topic, value=f"plain{i}".encode(), partition=0)
    assert after.flush(10) == 0
    hw = latest_offsets(b.bootstrap, topic, [0], IsolationLevel.READ_UNCOMMITTED)
    lso = latest_offsets(b.bootstrap, topic, [0], IsolationLevel.READ_COMMITTED)
    open_for = time.monotonic() - started
    if open_for < timeout_s - 0.5:  # surely still open (else too slow to tell)
        assert (hw, lso) == ({0: 30}, {0: 0}), f"with the transaction open: high watermark {hw}, last stable offset {lso}"

    got = ck_consume(b.bootstrap, topic, [0], 10, timeout=30, linger=1.5, **{"isolation.level": "read_committed"})
    waited = time.monotonic() - started
    assert [r.value.decode() for r in got] == [f"plain{i}" for i in range(10)]
    assert waited < 20, f"read_committed held back {waited:.1f}s by a transaction with a {timeout_s} s timeout"
    # The abort marker follows the plain records; nothing is open any more.
    assert latest_offsets(b.bootstrap, topic, [0], IsolationLevel.READ_COMMITTED) == {0: 31}

    with pytest.raises(KafkaException) as exc:
        p.commit_transaction(15)
    err = exc.value.args[0]
    print(f"commit after the timeout: {err} (fatal {err.fatal()}, abortable {err.txn_requires_abort()}); "
          f"high watermark {hw[0]} and last stable offset {lso[0]} after {open_for:.1f}s; "
          f"read_committed unblocked after {waited:.1f}s")
    ru = ck_consume(b.bootstrap, topic, [0], 30, timeout=30, linger=1.0, **{"isolation.level": "read_uncommitted"})
    assert [r.value.decode() for r in ru] == [f"stalled{i}" for i in range(20)] + [f"plain{i}" for i in range(10)]
    assert latest_offsets(b.bootstrap, topic, [0], IsolationLevel.READ_COMMITTED) == {0: 31}


# --------------------------------------------------------------------------------------------
# transaction.max.timeout.ms


@pytest.mark.timeout(60)
def test_transaction_timeout_above_broker_max_is_refused(broker_factory):
    b = broker_factory(dict(TXN_OVERRIDES, **{"transaction.max.timeout.ms": "5000"}))
    p = txn_producer(b.bootstrap, unique_id("txn-max"), **{"transaction.timeout.ms": 60000})
    with pytest.raises(KafkaException) as exc:
        p.init_transactions(20)
    err = exc.value.args[0]
    assert err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, f"init_transactions failed with {err}"

    # At the limit it is fine.
    topic = unique_topic("txn-max")
    ck_create_topic(b.bootstrap, topic, partitions=1)
    ok = txn_producer(b.bootstrap, unique_id("txn-max-ok"), **{"transaction.timeout.ms": 5000, "socket.timeout.ms": 5000})
    ok.init_transactions(20)
    ok.begin_transaction()
    ok.produce(topic, value=b"x", partition=0)
    ok.commit_transaction(20)
    got = ck_consume(b.bootstrap, topic, [0], 1, timeout=30, **{"isolation.level": "read_committed"})
    assert [r.value for r in got] == [b"x"]


# --------------------------------------------------------------------------------------------
# kafka-python


@pytest.mark.timeout(90)
def test_kafka_python_transactions(broker_factory):
    b = broker_factory(TXN_OVERRIDES)
    topic = unique_topic("txn-kp")
    ck_create_topic(b.bootstrap, topic, partitions=2)
    p = kp_producer(b.bootstrap, transactional_id=unique_id("txn-kp"))
    committed, everything = defaultdict(list), defaultdict(list)
    try:
        p.init_transactions()
        for t in range(6):
            p.begin_transaction()
            futures = []
            for i in range(40):
                v = f"t{t}-{i}"
                futures.append(p.send(topic, value=v.encode(), partition=i % 2))
                everything[i % 2].append(v)
                if t % 3 != 1:
                    committed[i % 2].append(v)
            if t % 3 != 1:
                p.commit_transaction()
            else:
                p.flush(timeout=30)  # the aborted records are in the log too
                p.abort_transaction()
            for f in futures:
                assert f.is_done
    finally:
        p.close(timeout=10)
    n_committed = sum(len(v) for v in committed.values())
    n_all = sum(len(v) for v in everything.values())

    kp = kp_consume(b.bootstrap, topic, [0, 1], n_committed, timeout=30, linger=1.5, isolation_level="read_committed")
    assert values_by_partition(kp) == dict(committed), "kafka-python read_committed: not exactly the committed records"
    ck = ck_consume(b.bootstrap, topic, [0, 1], n_committed, timeout=30, linger=1.5, **{"isolation.level": "read_committed"})
    assert values_by_partition(ck) == dict(committed), "librdkafka read_committed: not exactly the committed records"
    ru = kp_consume(b.bootstrap, topic, [0, 1], n_all, timeout=30, linger=1.0, isolation_level="read_uncommitted")
    assert values_by_partition(ru) == dict(everything), "kafka-python read_uncommitted: not every record"


@pytest.mark.timeout(60)
def test_kafka_python_transaction_admin(broker_factory):
    """ListTransactions, DescribeTransactions and DescribeProducers (kafka-python's admin client)
    on an open transaction of librdkafka's, then on it committed."""
    from kafka import TopicPartition as KpTopicPartition
    from kafka.admin import TransactionState
    from kafka.errors import TransactionalIdNotFoundError

    b = broker_factory(TXN_OVERRIDES)
    topic, txn_id = unique_topic("txn-admin"), unique_id("txn-admin")
    ck_create_topic(b.bootstrap, topic, partitions=2)
    tp0, tp1 = KpTopicPartition(topic, 0), KpTopicPartition(topic, 1)
    p = txn_producer(b.bootstrap, txn_id, **{"transaction.timeout.ms": 30000})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    assert p.flush(10) == 0

    admin = kp_admin(b.bootstrap)
    try:
        listings = [t for ts in admin.list_transactions().values() for t in ts if t.transactional_id == txn_id]
        assert [t.state for t in listings] == [TransactionState.ONGOING], f"ListTransactions: {listings}"
        pid = listings[0].producer_id
        desc = admin.describe_transactions([txn_id])[txn_id]
        assert desc.state == TransactionState.ONGOING and desc.producer_id == pid, desc
        assert desc.transaction_timeout_ms == 30000 and desc.topic_partitions == {tp0, tp1}, desc
        assert abs(desc.transaction_start_time_ms / 1000 - time.time()) < 60, desc
        producers = admin.describe_producers([tp0, tp1])
        for tp in (tp0, tp1):
            (ps,) = [s for s in producers[tp].active_producers if s.producer_id == pid]
            assert ps.producer_epoch == desc.producer_epoch and ps.last_sequence == 4, ps
            assert ps.current_transaction_start_offset == 0, ps

        p.commit_transaction(30)
        # EndTxn is answered once PrepareCommit is durable; the markers and CompleteCommit follow.
        deadline = time.monotonic() + 10
        while (desc := admin.describe_transactions([txn_id])[txn_id]).state != TransactionState.COMPLETE_COMMIT:
            assert desc.state == TransactionState.PREPARE_COMMIT and time.monotonic() < deadline, desc
            time.sleep(0.05)
        assert desc.topic_partitions == set(), desc
        ongoing = [t for ts in admin.list_transactions(state_filters=["Ongoing"]).values() for t in ts]
        assert txn_id not in [t.transactional_id for t in ongoing], ongoing
        producers = admin.describe_producers([tp0])
        (ps,) = [s for s in producers[tp0].active_producers if s.producer_id == pid]
        assert ps.current_transaction_start_offset == -1, ps
        with pytest.raises(TransactionalIdNotFoundError):
            admin.describe_transactions([unique_id("txn-unknown")])
    finally:
        admin.close()
