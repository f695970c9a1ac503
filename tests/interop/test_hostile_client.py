"""A hostile client (issue 14): random valid-but-extreme requests through kafka-python's protocol
classes against a running broker, while a confluent-kafka producer writes at acks=all; then the
broker must still be alive, serve a normal produce / consume round trip and a standalone offset
commit, hold every acknowledged record at its offset with its key and value, and not have grown
absurdly (VmRSS below 1 GiB).

`test_hostile_client_random_mix`: BROOK_HOSTILE_STEPS steps (default 2000, or
as many as fit in BROOK_HOSTILE_SECONDS, default 35), seeded from
BROOK_HOSTILE_SEED (default random; the seed is in every failure message and printed with -s).
Each step is one or a few requests built with kafka.protocol.* classes (Produce with hand-made
record batches, Fetch, ListOffsets, Metadata, CreateTopics, CreatePartitions, DeleteTopics,
DeleteRecords, Describe/Alter/IncrementalAlterConfigs, FindCoordinator, JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete, Describe/List/DeleteGroups,
InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, DescribeProducers,
List/DescribeTransactions, OffsetForLeaderEpoch, DescribeLogDirs, DescribeCluster) at a version
both the broker and kafka-python know, with values drawn from the extremes: INT*_MIN / MAX, -1, 0,
negative partitions and offsets, epochs out of range, producer ids that do not exist, sequences
about to wrap, timestamps at INT64 extremes, absurd config values, empty and 32 KiB group / member
ids, extreme session and rebalance timeouts; record batches with control (0x20) and
transactional bits without a producer id, every codec, inconsistent counts and deltas.

What counts as an answer: any response that decodes, or the broker closing the connection (the
client reconnects and goes on). A failure: the broker process exits; a request that is not
answered within HANG_SECONDS while the connection stays open (except the few that may wait by
protocol: a long-poll Fetch, JoinGroup, SyncGroup, which are dropped after PARK_SECONDS); a
response kafka-python cannot decode or with the wrong correlation id; an acknowledged record lost
or changed. A closed connection or a long-poll drop is followed by an ApiVersions probe on a new
connection (a trapping Swift process keeps its socket and looks alive while it prints its
backtrace). A step also records a violation, reported at the end without stopping the run, when
the broker accepts what it must refuse (Kafka's answers, and Brook's where it is stricter): a client-written control batch, a CreateTime beyond
now + 1 h on a topic with default settings, an append by a client to an internal topic, acks
outside -1/0/1, Fetch isolation_level outside 0/1, deleting an internal topic, CreatePartitions to
no more partitions than there are, a JoinGroup session timeout outside [6 s, 30 min], a
transaction timeout outside (0, 15 min], a topic with 0 partitions or a replication factor the
single broker cannot hold.

After the checks the broker is SIGKILLed and started again on the same data, and the acknowledged
records and a standalone offset commit are checked once more (BROOK_HOSTILE_RESTART=0 skips it).

Acknowledged records: those a background confluent-kafka producer (idempotent, acks=all) got
delivery reports for, before (1,000) and during the run, plus the plain batches the hostile client
itself got acknowledged on those topics; read back with a read_uncommitted consumer (the hostile
client leaves transactions open).

Destructive requests (DeleteTopics, DeleteRecords, AlterConfigs that could shorten retention,
CreatePartitions to big counts) aim only at the hostile client's own topics and at the internal
ones, never at the topics whose acknowledged records are checked; everything else may hit those.

The `test_targeted_*` tests are deterministic checks of the answers Kafka gives exactly (each one
names the issue-14 finding it covers).

Environment: BROOK_HOSTILE_SEED, BROOK_HOSTILE_STEPS, BROOK_HOSTILE_EXCLUDE (comma-separated case
names to leave out of the mix, e.g. "create_partitions_overflow,client_base_offset" to look past
the two crashes; client_base_offset also keeps extreme base offsets out of the other produce
cases), BROOK_HOSTILE_TRACE=1 (print every step as it runs).
"""
from __future__ import annotations

import os
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import defaultdict, deque
from typing import Optional

import pytest

from brook_interop import (
    uvarint,
    connect,
    read_response,
    request_frame,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_produce,
    ck_producer,
    api_versions,
    check_received,
    kp_consume,
    make_records,
    unique_topic,
)

from kafka.codec import gzip_encode, lz4_encode, snappy_encode, zstd_encode
from kafka.protocol.admin import (
    AlterConfigsRequest,
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteGroupsRequest,
    DeleteRecordsRequest,
    DeleteTopicsRequest,
    DescribeClusterRequest,
    DescribeConfigsRequest,
    DescribeGroupsRequest,
    DescribeLogDirsRequest,
    DescribeProducersRequest,
    DescribeTransactionsRequest,
    IncrementalAlterConfigsRequest,
    ListGroupsRequest,
    ListTransactionsRequest,
)
from kafka.protocol.consumer import (
    FetchRequest,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    ListOffsetsRequest,
    OffsetCommitRequest,
    OffsetDeleteRequest,
    OffsetFetchRequest,
    OffsetForLeaderEpochRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata import FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    ProduceRequest,
    TxnOffsetCommitRequest,
)
from kafka.record.util import calc_crc32c

INT8_MIN, INT8_MAX = -(2**7), 2**7 - 1
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

SEED = int(os.environ.get("BROOK_HOSTILE_SEED") or random.SystemRandom().randrange(1, 2**31))
STEPS = int(os.environ.get("BROOK_HOSTILE_STEPS", "2000"))
# The hostile phase also stops after this many seconds (a loaded machine); the steps run are printed.
HOSTILE_SECONDS = float(os.environ.get("BROOK_HOSTILE_SECONDS", "35"))
EXCLUDE = {s.strip() for s in os.environ.get("BROOK_HOSTILE_EXCLUDE", "").split(",") if s.strip()}
TRACE = os.environ.get("BROOK_HOSTILE_TRACE") == "1"
RESTART = os.environ.get("BROOK_HOSTILE_RESTART", "1") != "0"  # the SIGKILL-restart recheck at the end

HANG_SECONDS = 30.0  # no answer on an open connection for this long: the broker hangs
PARK_SECONDS = 2.0  # requests that may wait by protocol (long poll, group joins) are dropped after this
CONNECT_SECONDS = 10.0
RSS_LIMIT = 1 << 30  # the broker's VmRSS after the run
STALL_SECONDS = 20.0  # reading acknowledged records back: no progress for this long fails

# Kafka error codes the targeted checks expect.
INVALID_TIMESTAMP = 32
INVALID_RECORD = 87

# Broker settings for the random mix: JoinGroup answers at once (no initial rebalance delay).
HOSTILE_OVERRIDES = {"group.initial.rebalance.delay.ms": 0}

pytestmark = pytest.mark.timeout(240)


# --------------------------------------------------------------------------------------------
# Building kafka-python protocol objects from plain dicts


def mk(cls, **fields):
    """An instance of a kafka-python protocol class (request or nested struct), nested dicts and
    lists of dicts turned into the nested struct classes."""
    struct_fields = cls._struct.fields
    vals = {}
    for name, value in fields.items():
        f = struct_fields.get(name)
        if f is None:
            raise KeyError(f"{cls.__name__} has no field {name}")
        if value is not None and f.is_struct_array():
            value = [mk(f.data_class, **v) if isinstance(v, dict) else v for v in value]
        elif value is not None and f.is_struct() and isinstance(value, dict):
            value = mk(f.data_class, **value)
        vals[name] = value
    return cls(**vals)

def isolation_fetch(topic: str, partition: int, level: int):
    """A Fetch from offset 0 of one partition, answered at once, at isolation level `level`."""
    return mk(
        FetchRequest,
        replica_id=-1,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=1 << 20,
        isolation_level=level,
        session_id=0,
        session_epoch=-1,
        topics=[{"topic": topic, "partitions": [{"partition": partition, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}],
    )



def field_exists(cls, path: str, version: int) -> bool:
    """Whether a (dotted) field is part of `version` of the request."""
    s = cls._struct
    f = None
    for part in path.split("."):
        f = s.fields.get(part)
        if f is None:
            return False
        s = f
    return f.for_version_q(version)


def error_codes(obj, out=None) -> list:
    """Every error_code in a decoded response, depth first."""
    if out is None:
        out = []
    if isinstance(obj, (list, tuple)):
        for x in obj:
            error_codes(x, out)
        return out
    struct_ = getattr(type(obj), "_struct", None)
    if struct_ is None:
        return out
    for name, f in struct_.fields.items():
        try:
            v = getattr(obj, name)
        except AttributeError:
            continue
        if name == "error_code" and isinstance(v, int):
            out.append(v)
        elif f.is_struct() or f.is_struct_array():
            error_codes(v, out)
    return out


# --------------------------------------------------------------------------------------------
# Record batches by hand (magic 2)


def zigzag_varint(n: int) -> bytes:
    return uvarint(((n << 1) ^ (n >> 63)) & ((1 << 64) - 1))


def encode_record(offset_delta: int, ts_delta: int, key: Optional[bytes], value: Optional[bytes], headers=()) -> bytes:
    body = bytearray(b"\x00")  # record attributes
    body += zigzag_varint(ts_delta) + zigzag_varint(offset_delta)
    for b in (key, value):
        if b is None:
            body += zigzag_varint(-1)
        else:
            body += zigzag_varint(len(b)) + b
    body += zigzag_varint(len(headers))
    for hk, hv in headers:
        hkb = hk.encode()
        body += zigzag_varint(len(hkb)) + hkb
        body += zigzag_varint(-1) if hv is None else zigzag_varint(len(hv)) + hv
    return zigzag_varint(len(body)) + bytes(body)


CODECS = {1: gzip_encode, 2: snappy_encode, 3: lz4_encode, 4: zstd_encode}


def build_batch(
    records: list,
    *,
    attributes: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    base_timestamp: Optional[int] = None,
    ts_deltas: Optional[list] = None,
    max_timestamp: Optional[int] = None,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
    last_offset_delta: Optional[int] = None,
    record_count: Optional[int] = None,
    offset_deltas: Optional[list] = None,
    magic: int = 2,
) -> bytes:
    """A v2 record batch of records [(key, value, headers)], every header field settable (the
    CRC is always right, so the broker has to look at the fields themselves)."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    ts_deltas = ts_deltas if ts_deltas is not None else [0] * len(records)
    offset_deltas = offset_deltas if offset_deltas is not None else list(range(len(records)))
    payload = b"".join(
        encode_record(od, td, k, v, h) for (k, v, h), td, od in zip(records, ts_deltas, offset_deltas)
    )
    codec = attributes & 0x07
    if codec in CODECS and payload:
        payload = CODECS[codec](payload)
    if last_offset_delta is None:
        last_offset_delta = max(len(records) - 1, 0)
    if max_timestamp is None:
        # Kafka's arithmetic wraps; the header field must still fit an int64.
        max_timestamp = max(INT64_MIN, min(INT64_MAX, base_timestamp + (max(ts_deltas) if ts_deltas else 0)))
    count = len(records) if record_count is None else record_count
    after_crc = struct.pack(
        ">hiqqqhii",
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    ) + payload
    crc = calc_crc32c(after_crc)
    after_length = struct.pack(">ibI", partition_leader_epoch, magic, crc) + after_crc
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


# --------------------------------------------------------------------------------------------
# One raw connection, requests through kafka-python's classes


class Answer:
    """What came back for one request."""

    def __init__(self, kind: str, response=None, elapsed: float = 0.0) -> None:
        self.kind = kind  # "ok", "closed", "parked", "none" (acks=0)
        self.response = response
        self.elapsed = elapsed

    @property
    def errors(self) -> list:
        return error_codes(self.response) if self.response is not None else []

    def __repr__(self) -> str:
        if self.kind != "ok":
            return self.kind
        errs = self.errors
        return f"ok errors={sorted(set(errs))}" if errs else "ok"


class HostileFailure(AssertionError):
    pass


class Wire:
    """A raw socket to the broker; kafka-python encodes requests and decodes responses.
    A closed connection is an answer (the next request reconnects)."""

    def __init__(self, broker, client_id: str = "brook-hostile") -> None:
        self.broker = broker
        self.client_id = client_id
        self.sock: Optional[socket.socket] = None
        self.corr = 0
        self.closed_by_broker = 0
        self.parked = 0

    def _connect(self) -> socket.socket:
        if self.sock is None:
            s = socket.create_connection((self.broker.host, self.broker.port), timeout=CONNECT_SECONDS)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = s
        return self.sock

    def drop(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def call(self, req, version: int, *, park: float = 0.0, client_id: Optional[str] = None) -> Answer:
        """Send `req` at `version` and read its answer. park > 0: the request may wait by
        protocol; after `park` seconds without an answer the connection is dropped."""
        self.corr = (self.corr + 1) & 0x7FFFFFFF
        corr = self.corr
        req.with_header(correlation_id=corr, client_id=self.client_id if client_id is None else client_id)
        frame = req.encode(version=version, header=True, framed=True)
        expect = req.expect_response()
        started = time.monotonic()
        try:
            sock = self._connect()
        except OSError as e:
            down = broker_down(self.broker, exit_within=5.0)
            raise HostileFailure(f"cannot connect to the broker: {e!r} ({down or 'it answers a new connection now'})") from None
        try:
            sock.sendall(frame)
        except OSError:
            self.drop()
            self.closed_by_broker += 1
            return Answer("closed", elapsed=time.monotonic() - started)
        if not expect:
            return Answer("none")
        deadline = started + (park or HANG_SECONDS)
        try:
            size = struct.unpack(">i", self._recv(4, deadline))[0]
            if not 0 <= size < 256 * 1024 * 1024:
                raise HostileFailure(f"implausible response size {size} for {type(req).__name__} v{version}")
            body = self._recv(size, deadline)
        except ConnectionError:
            self.drop()
            self.closed_by_broker += 1
            return Answer("closed", elapsed=time.monotonic() - started)
        except socket.timeout:
            self.drop()
            if park:
                self.parked += 1
                return Answer("parked", elapsed=time.monotonic() - started)
            raise HostileFailure(
                f"{type(req).__name__} v{version} got no answer within {HANG_SECONDS}s on an open connection"
            ) from None
        resp_cls = req.header.get_response_class()
        try:
            resp = resp_cls.decode(body, header=True)
        except Exception as e:  # noqa: BLE001 - any decode failure is the finding
            self.drop()
            raise HostileFailure(
                f"undecodable {resp_cls.__name__} v{version} ({len(body)} bytes, {e!r}): {body[:200].hex()}"
            ) from None
        got = resp.header.correlation_id
        if got != corr:
            self.drop()
            raise HostileFailure(f"{type(req).__name__} v{version}: correlation id {got}, sent {corr}")
        return Answer("ok", resp, time.monotonic() - started)

    def _recv(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionError(str(e)) from None
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return bytes(buf)


def broker_down(broker, answer_within: float = 10.0, exit_within: float = 20.0) -> Optional[str]:
    """None when the broker answers an ApiVersions request on a new connection within
    `answer_within` seconds; else what is wrong with it. A trapping Swift process keeps its
    listening socket (and even looks alive) while it prints its backtrace, so a closed
    connection is followed by this probe, not by a bare proc.poll()."""
    if broker.alive():
        try:
            with connect(broker.port, timeout=answer_within) as s:
                s.sendall(request_frame(18, 0, 77, "brook-hostile-probe"))
                s.settimeout(answer_within)
                read_response(s)
            return None
        except (OSError, AssertionError):
            pass
    try:
        broker.proc.wait(timeout=exit_within)
    except Exception:  # noqa: BLE001 - still running
        return f"the broker (pid {broker.pid}) does not answer ApiVersions within {answer_within}s but is still running"
    return f"the broker exited with status {broker.proc.returncode}"


def negotiated_versions(port: int) -> dict:
    """{api_key: (lo, hi)}: the intersection of the broker's and kafka-python's ranges."""
    import kafka.protocol.admin as a
    import kafka.protocol.consumer as c
    import kafka.protocol.metadata as m
    import kafka.protocol.producer as p

    ours = {}
    for mod in (a, c, p, m):
        for name in mod.__all__:
            cls = getattr(mod, name)
            if name.endswith("Request") and getattr(cls, "valid_versions", None):
                ours[cls.API_KEY] = cls.valid_versions
    out = {}
    for key, (lo, hi) in api_versions(port).items():
        if key in ours:
            klo, khi = ours[key]
            if max(lo, klo) <= min(hi, khi):
                out[key] = (max(lo, klo), min(hi, khi))
    return out


# --------------------------------------------------------------------------------------------
# Records acknowledged at acks=all, produced by confluent-kafka during the run


class AckedLog:
    """Every record the broker acknowledged: (topic, partition, offset) -> (key, value)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict = {}
        self.failed = 0
        self.sources: dict = defaultdict(int)

    def add(self, topic, partition, offset, key, value, source: str) -> None:
        with self.lock:
            where = (topic, partition, offset)
            if where in self.records and self.records[where] != (key, value):
                raise HostileFailure(f"offset {where} acknowledged twice with different records")
            self.records[where] = (key, value)
            self.sources[source] += 1


class BackgroundProducer(threading.Thread):
    """A confluent-kafka idempotent producer (acks=all) writing small bursts to `topics` until
    stopped. Delivery failures are allowed (the hostile client may fence it; it is then
    replaced); only acknowledged records go into the log."""

    def __init__(self, bootstrap: str, topics: dict, log: AckedLog, seed: int, rate: int = 400) -> None:
        super().__init__(name="acked-producer", daemon=True)
        self.bootstrap = bootstrap
        self.topics = topics
        self.log = log
        self.rng = random.Random(seed)
        self.rate = rate
        self.stop_event = threading.Event()
        self.seq = 0
        self.fatal = []
        self.producers_made = 0
        self.exc: Optional[BaseException] = None
        self.final_flush = 60.0

    def _make(self):
        self.producers_made += 1
        fatal_flag = []

        def on_error(err):
            if err.fatal():
                fatal_flag.append(err)
                self.fatal.append(str(err))

        # log_level 2: no connection-refused chatter once a crashed broker is gone.
        return ck_producer(self.bootstrap, acks="all", error_cb=on_error, **{"linger.ms": 2, "log_level": 2}), fatal_flag

    def burst(self, producer, n: int) -> None:
        names = sorted(self.topics)
        for _ in range(n):
            topic = names[self.seq % len(names)]
            part = self.rng.randrange(self.topics[topic])
            key = f"{topic}|{self.seq}".encode()
            r = self.rng.random()
            value = None if r < 0.02 else b"" if r < 0.04 else self.rng.randbytes(self.rng.randrange(1, 300))
            self.seq += 1

            def report(err, msg, key=key, value=value):
                if err is None:
                    self.log.add(msg.topic(), msg.partition(), msg.offset(), key, value, "confluent")
                else:
                    with self.log.lock:
                        self.log.failed += 1

            while True:
                try:
                    producer.produce(topic, key=key, value=value, partition=part, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)

    def prefill(self, n: int) -> None:
        p, _ = self._make()
        self.burst(p, n)
        left = p.flush(60)
        assert left == 0, f"{left} records of the prefill not delivered"

    def run(self) -> None:
        try:
            p, fatal = self._make()
            while not self.stop_event.is_set():
                if fatal:
                    p.flush(10)
                    p, fatal = self._make()
                self.burst(p, max(1, self.rate // 20))
                p.poll(0)
                self.stop_event.wait(0.05)
            p.flush(self.final_flush)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.exc = e

    def stop(self, flush: float = 60.0) -> None:
        """Stop producing, wait for the outstanding deliveries (at most `flush` seconds)."""
        self.final_flush = flush
        self.stop_event.set()
        self.join(flush + 30)


# --------------------------------------------------------------------------------------------
# The hostile client


def uuid4_bytes(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128))


class Hostile:
    """The random mix. `precious` topics hold the acknowledged records: never deleted, truncated
    or reconfigured. `victims` are the client's own topics, fair game for anything."""

    def __init__(self, broker, rng: random.Random, versions: dict, precious: dict, victims: dict, acked: AckedLog) -> None:
        self.broker = broker
        self.rng = rng
        self.versions = versions
        self.precious = dict(precious)  # name -> partitions
        self.victims = dict(victims)
        self.acked = acked
        self.wire = Wire(broker)
        self.trace: deque = deque(maxlen=40)
        self.counts: dict = defaultdict(int)
        self.answers: dict = defaultdict(lambda: defaultdict(int))
        self.time_by_api: dict = defaultdict(float)
        self.violations: list = []  # answers Kafka never gives (the run goes on; reported at the end)
        self.producers: list = []  # (pid, epoch, transactional_id or None)
        self.members: list = []  # (group, member_id, generation)
        self.groups = [f"hg-{i}-{rng.randrange(1 << 30)}" for i in range(4)]
        self.topic_ids: dict = {}
        self.parked_fetches = 0
        self.step_no = 0
        self.steps_run = 0
        self.cases = [
            # (name, weight, method)
            ("produce", 16, self.case_produce),
            ("control_batch", 2, self.case_control_batch),
            ("produce_sequence_games", 6, self.case_sequence_games),
            ("client_base_offset", 1, self.case_client_base_offset),
            ("fetch", 10, self.case_fetch),
            ("fetch_isolation", 2, self.case_fetch_isolation),
            ("fetch_park", 1, self.case_fetch_park),
            ("list_offsets", 6, self.case_list_offsets),
            ("metadata", 3, self.case_metadata),
            ("create_topics", 5, self.case_create_topics),
            ("create_partitions", 4, self.case_create_partitions),
            ("create_partitions_overflow", 1, self.case_create_partitions_overflow),
            ("delete_topics", 3, self.case_delete_topics),
            ("delete_internal", 1, self.case_delete_internal),
            ("delete_records", 3, self.case_delete_records),
            ("describe_configs", 3, self.case_describe_configs),
            ("alter_configs", 4, self.case_alter_configs),
            ("timestamp_extremes", 3, self.case_timestamp_extremes),
            ("find_coordinator", 2, self.case_find_coordinator),
            ("join_group", 4, self.case_join_group),
            ("group_member_ops", 5, self.case_group_member_ops),
            ("offset_commit", 5, self.case_offset_commit),
            ("offset_fetch", 3, self.case_offset_fetch),
            ("group_admin", 3, self.case_group_admin),
            ("init_producer_id", 4, self.case_init_producer_id),
            ("txn_ops", 5, self.case_txn_ops),
            ("txn_describe", 2, self.case_txn_describe),
            ("leader_epoch", 2, self.case_leader_epoch),
            ("misc_describe", 2, self.case_misc_describe),
        ]
        self.cases = [c for c in self.cases if c[0] not in EXCLUDE]

    # ---- value pickers

    def pick(self, *choices):
        return self.rng.choice(choices)

    def i32(self, *extra) -> int:
        r = self.rng
        return r.choice([INT32_MIN, INT32_MIN + 1, -2, -1, 0, 1, 2, INT32_MAX - 1, INT32_MAX, r.randrange(INT32_MIN, INT32_MAX), *extra])

    def i64(self, *extra) -> int:
        r = self.rng
        return r.choice([INT64_MIN, INT64_MIN + 1, -2, -1, 0, 1, INT32_MAX, INT32_MAX + 1, INT64_MAX - 1, INT64_MAX, r.randrange(INT64_MIN, INT64_MAX), *extra])

    def i16(self, *extra) -> int:
        r = self.rng
        return r.choice([INT16_MIN, -2, -1, 0, 1, INT16_MAX - 1, INT16_MAX, r.randrange(INT16_MIN, INT16_MAX), *extra])

    def weird_string(self, max_len: int = 32767) -> str:
        r = self.rng
        return r.choice(
            [
                "",
                "a",
                ".",
                "..",
                "x" * 249,
                "y" * 250,
                "z" * min(max_len, 32767),
                "has space",
                "тема-ü-\u2603",
                "__consumer_offsets",
                "__transaction_state",
                "-1",
                "\x00nul",
                f"h-{r.randrange(1 << 40):x}",
            ]
        )

    def any_topic(self, destructive: bool = False) -> tuple:
        """(name, partitions or None). Destructive requests never get a precious topic."""
        r = self.rng.random()
        if r < 0.4 and self.victims:
            name = self.rng.choice(sorted(self.victims))
            return name, self.victims[name]
        if r < 0.6 and not destructive:
            name = self.rng.choice(sorted(self.precious))
            return name, self.precious[name]
        if r < 0.7:
            return self.pick("__consumer_offsets", "__transaction_state"), None
        if r < 0.85:
            return f"nope-{self.rng.randrange(1 << 30)}", None
        return self.weird_string(300), None

    def partition_of(self, parts: Optional[int]) -> int:
        r = self.rng
        if parts and r.random() < 0.6:
            return r.randrange(parts)
        return r.choice([INT32_MIN, -1, 0, 1, (parts or 1), (parts or 1) + 1, INT32_MAX, r.randrange(INT32_MIN, INT32_MAX)])

    def version(self, cls, lo: Optional[int] = None, hi: Optional[int] = None) -> Optional[int]:
        rng_ = self.versions.get(cls.API_KEY)
        if rng_ is None:
            return None
        a, b = rng_
        if lo is not None:
            a = max(a, lo)
        if hi is not None:
            b = min(b, hi)
        if a > b:
            return None
        # Mostly the newest: that is what real clients send.
        return b if self.rng.random() < 0.5 else self.rng.randint(a, b)

    def send(self, req, version: Optional[int], what: str, *, park: float = 0.0, client_id: Optional[str] = None) -> Optional[Answer]:
        if version is None:
            return None
        if len(what) > 400:
            what = what[:400] + "..."
        self.trace.append(f"step {self.step_no}: {type(req).__name__} v{version} {what}")
        if TRACE:
            print(self.trace[-1], flush=True)
        ans = self.wire.call(req, version, park=park, client_id=client_id)
        self.time_by_api[type(req).__name__] += ans.elapsed
        self.trace[-1] += f" -> {ans!r} ({ans.elapsed * 1000:.0f} ms)"
        self.answers[type(req).__name__][ans.kind] += 1
        if ans.kind in ("closed", "parked") or not self.broker.alive():
            down = broker_down(self.broker)
            if down:
                raise HostileFailure(f"{down}, after: {self.trace[-1]}")
        return ans

    def violation(self, text: str) -> None:
        self.violations.append(f"step {self.step_no}: {text}")
        self.trace[-1] += "  <-- VIOLATION"

    def refused(self, ans: Optional[Answer], why: str, *, codes: Optional[set] = None) -> None:
        """The request must not succeed: a closed connection or a non-zero error code (one of
        `codes` when given) in every error_code field of the response."""
        if ans is None or ans.kind in ("closed", "parked", "none"):
            return
        errs = ans.errors
        if not errs or any(e == 0 for e in errs):
            self.violation(f"{why}: accepted ({ans!r})")
        elif codes is not None and not set(errs) <= codes:
            self.violation(f"{why}: error codes {sorted(set(errs))}, expected {sorted(codes)}")

    # ---- the loop

    def run(self, steps: int, seconds: float) -> None:
        names = [c[0] for c in self.cases]
        weights = [c[1] for c in self.cases]
        methods = {c[0]: c[2] for c in self.cases}
        deadline = time.monotonic() + seconds
        for i in range(steps):
            if time.monotonic() > deadline:
                break
            self.step_no = i
            self.steps_run = i + 1
            name = self.rng.choices(names, weights)[0]
            self.counts[name] += 1
            methods[name]()
            if not self.broker.alive():
                raise HostileFailure(f"the broker exited (status {self.broker.proc.returncode}) during case {name}")
        self.wire.drop()

    # ---- batches

    def random_records(self, n: int) -> list:
        r = self.rng
        out = []
        for i in range(n):
            key = None if r.random() < 0.2 else r.randbytes(r.choice([0, 1, 8, 100]))
            value = None if r.random() < 0.1 else r.randbytes(r.choice([0, 1, 10, 200, 5000]))
            headers = tuple((f"h{j}", None if r.random() < 0.2 else r.randbytes(r.randrange(0, 20))) for j in range(r.choice([0, 0, 1, 3])))
            out.append((key, value, headers))
        return out

    def hostile_batch(self) -> tuple:
        """(batch bytes, description, plain): plain batches (no producer id, no control or
        transactional bit, consistent fields) that the broker acknowledges go into the checked log."""
        r = self.rng
        n = r.choice([1, 1, 2, 5, 20])
        records = self.random_records(n)
        now = int(time.time() * 1000)
        kw: dict = {}
        attrs = r.choice([0, 0, 0, 1, 2, 3, 4])
        plain = True
        if r.random() < 0.15:
            attrs |= 0x08  # LogAppendTime, set by the client
        if r.random() < 0.1:
            attrs |= r.choice([0x10, 0x20, 0x30, 0x40, 0x07, 0x06, 0x05, 0xFF80 - 0x10000])
            plain = False
        kw["attributes"] = attrs
        if r.random() < 0.35:
            plain = False
            if self.producers and r.random() < 0.5:
                pid, epoch, _ = r.choice(self.producers)
            else:
                pid, epoch = self.i64(), self.i16()
            kw.update(producer_id=pid, producer_epoch=r.choice([epoch, epoch + 1 if epoch < INT16_MAX else epoch, self.i16()]),
                      base_sequence=r.choice([0, 1, -1, INT32_MAX, INT32_MAX - n + 1, INT32_MAX - 1, self.i32()]))
        elif r.random() < 0.1:
            plain = False
            kw.update(producer_id=-1, producer_epoch=self.i16(), base_sequence=self.i32())
        if r.random() < 0.2:
            plain = False
            kw["base_timestamp"] = r.choice([INT64_MIN, -2, -1, 0, INT64_MAX, now + 7_200_000, now - 86_400_000 * 365 * 30])
            if r.random() < 0.5:
                kw["ts_deltas"] = [r.choice([0, INT32_MAX, -1, INT64_MAX, INT64_MIN]) for _ in range(n)]
            kw["max_timestamp"] = r.choice([None, INT64_MIN, INT64_MAX, -1])
        if r.random() < 0.1:
            plain = False
            kw[r.choice(["last_offset_delta", "record_count"])] = self.i32()
        if r.random() < 0.05:
            plain = False
            kw["offset_deltas"] = [self.i32() for _ in range(n)]
        if r.random() < 0.1:
            # The client's base offset means nothing (the broker assigns offsets), but a broker
            # that adds lastOffsetDelta to it without care traps (found by this test).
            kw["base_offset"] = self.i64() if "client_base_offset" not in EXCLUDE else r.choice([0, -1, 5])
            kw["partition_leader_epoch"] = self.i32()
        if r.random() < 0.03:
            plain = False
            kw["magic"] = r.choice([0, 1, 3, -1, 127])
        batch = build_batch(records, **kw)
        desc = f"batch n={n} " + " ".join(f"{k}={v}" for k, v in kw.items() if k not in ("ts_deltas", "offset_deltas"))
        self.last_batch_kw = kw
        return batch, desc, plain, records

    def produce(self, topic: str, partition: int, batches: list, *, acks=None, transactional_id=None, what="", must_refuse: Optional[str] = None, codes: Optional[set] = None) -> Optional[Answer]:
        v = self.version(ProduceRequest)
        if acks is None:
            acks = self.rng.choice([-1, -1, -1, 1, 1, 0, 2, -2, INT16_MAX])
        if acks not in (-1, 0, 1):
            must_refuse, codes = must_refuse or f"acks={acks}", {21}  # INVALID_REQUIRED_ACKS
        elif topic.startswith("__") and topic in ("__consumer_offsets", "__transaction_state"):
            must_refuse = must_refuse or f"a client's append to {topic}"
        req = mk(
            ProduceRequest,
            transactional_id=transactional_id,
            acks=acks,
            timeout_ms=self.rng.choice([30000, 30000, 0, 1, INT32_MAX, -1, INT32_MIN]),
            topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": b} for b in batches]}],
        )
        ans = self.send(req, v, f"{topic}[{partition}] acks={acks} txn={transactional_id!r} {what}")
        if must_refuse and acks != 0:
            self.refused(ans, f"{must_refuse} to {topic[:60]}[{partition}]", codes=codes)
        return ans

    def record_plain_acks(self, ans: Optional[Answer], topic: str, partition: int, records: list) -> None:
        """A plain batch acknowledged (error 0, acks != 0) on a precious topic joins the checked log."""
        if ans is None or ans.kind != "ok" or topic not in self.precious:
            return
        for t in ans.response.responses:
            for p in t.partition_responses:
                if p.index == partition and p.error_code == 0 and p.base_offset >= 0:
                    for i, (k, v, _h) in enumerate(records):
                        self.acked.add(topic, partition, p.base_offset + i, k, v, "hostile")

    # ---- cases

    def case_produce(self) -> None:
        topic, parts = self.any_topic()
        partition = self.partition_of(parts)
        batch, desc, plain, records = self.hostile_batch()
        batches = [batch]
        if self.rng.random() < 0.05:
            batches.append(self.hostile_batch()[0])  # two batches for one partition
            plain = False
        if self.rng.random() < 0.05:
            batches = [batch + self.rng.randbytes(self.rng.randrange(1, 30))]  # trailing garbage
            plain = False
        acks = self.rng.choice([-1, -1, -1, 1, 1, 0, 2, -2, INT16_MAX])
        must_refuse, codes = self.batch_contract(topic, self.last_batch_kw, len(records), len(batches))
        ans = self.produce(topic, partition, batches, acks=acks, what=desc, must_refuse=must_refuse, codes=codes)
        if plain and acks in (-1, 1) and len(batches) == 1:
            self.record_plain_acks(ans, topic, partition, records)

    def batch_contract(self, topic: str, kw: dict, n: int, nbatches: int) -> tuple:
        """(reason, codes) when Kafka certainly refuses this one batch: a control batch from a
        client (INVALID_RECORD); a CreateTime beyond now + message.timestamp.after.max.ms (1 h by
        default; only on the precious topics, whose configuration nobody changes)."""
        if nbatches != 1 or kw.get("magic", 2) != 2 or "record_count" in kw or "last_offset_delta" in kw or "offset_deltas" in kw:
            return None, None
        attrs = kw.get("attributes", 0)
        if attrs & 0x20 and attrs >= 0:
            return "a client-written control batch", None  # 87, or a transactional/pid error first
        if topic in self.precious and not attrs & 0x08 and "base_timestamp" in kw:
            deltas = kw.get("ts_deltas") or [0] * n
            stamps = [kw["base_timestamp"] + d for d in deltas]
            if all(INT64_MIN <= t <= INT64_MAX for t in stamps) and max(stamps) > time.time() * 1000 + 3_600_000 + 120_000:
                return f"CreateTime {max(stamps)} beyond now + 1 h", None
        return None, None

    def case_control_batch(self) -> None:
        """Issue 14 #4 (fixed): a client-written control batch must be refused, INVALID_RECORD as in Kafka.
        Aimed at victims only: a stored control batch stalls librdkafka consumers at its offset,
        which would hide the other findings (test_targeted_control_batch checks it exactly)."""
        if not self.victims:
            return
        topic = self.rng.choice(sorted(self.victims))
        r = self.rng
        attrs = 0x20 | r.choice([0, 0x10])
        if r.random() < 0.5 and self.producers:
            pid, epoch, _ = r.choice(self.producers)
        else:
            pid, epoch = r.choice([-1, 0, INT64_MAX]), r.choice([-1, 0, INT16_MAX])
        key = b"\x00\x00\x00\x00" if r.random() < 0.5 else r.randbytes(4)  # an end-transaction marker's key
        batch = build_batch([(key, b"\x00\x00" + r.randbytes(4), ())], attributes=attrs, producer_id=pid, producer_epoch=epoch, base_sequence=r.choice([-1, 0]))
        self.produce(topic, r.randrange(self.victims[topic]), [batch], acks=-1, what=f"control batch attrs={attrs:#x} pid={pid}", must_refuse="a client-written control batch")

    def case_client_base_offset(self) -> None:
        """Found by this test: a batch whose base offset is near INT64_MAX (with more than one
        record) kills the broker (`baseOffset + lastOffsetDelta` traps in PartitionLog.validate)."""
        r = self.rng
        topic, parts = self.any_topic()
        n = r.choice([2, 5])
        batch = build_batch(self.random_records(n), attributes=r.choice([0, 1, 4]), base_offset=r.choice([INT64_MAX, INT64_MAX - 1, INT64_MIN, -1]))
        self.produce(topic, r.randrange(parts) if parts else 0, [batch], acks=-1, what=f"base_offset near the INT64 edges, n={n}")

    def case_sequence_games(self) -> None:
        """An idempotent producer from InitProducerId, then batches with sequences that skip,
        repeat, go back, wrap past INT32_MAX, epochs that jump."""
        r = self.rng
        if not self.producers or r.random() < 0.2:
            self.init_producer(None)
        if not self.producers:
            return
        pid, epoch, txn = r.choice(self.producers)
        topic, parts = self.any_topic()
        partition = self.partition_of(parts) if r.random() < 0.3 else (r.randrange(parts) if parts else 0)
        seq = r.choice([0, 0, 1, 5, INT32_MAX, INT32_MAX - 2, -1, -5, INT32_MIN])
        for _ in range(r.randint(1, 4)):
            n = r.choice([1, 3])
            e = r.choice([epoch, epoch, epoch + 1, epoch - 1, INT16_MAX, -1, 0])
            e = max(INT16_MIN, min(INT16_MAX, e))
            attrs = 0x10 if (txn is not None and r.random() < 0.7) else 0
            batch = build_batch(self.random_records(n), attributes=attrs | r.choice([0, 0, 1, 4]), producer_id=pid, producer_epoch=e, base_sequence=seq)
            self.produce(topic, partition, [batch], acks=-1, transactional_id=txn if attrs else None, what=f"pid={pid} epoch={e} seq={seq} n={n}")
            seq = r.choice([(seq + n) & 0x7FFFFFFF, seq, seq + 2 * n if seq + 2 * n <= INT32_MAX else 0, seq - 1 if seq > INT32_MIN else seq])

    def case_fetch(self) -> None:
        r = self.rng
        v = self.version(FetchRequest)
        topics = []
        for _ in range(r.choice([1, 1, 2, 3])):
            topic, parts = self.any_topic()
            partitions = []
            for _ in range(r.choice([1, 1, 2, 4])):
                partitions.append(
                    {
                        "partition": self.partition_of(parts),
                        "current_leader_epoch": r.choice([-1, -1, 0, INT32_MAX, INT32_MIN, 1]),
                        "fetch_offset": r.choice([0, 0, 1, -1, -2, INT64_MIN, INT64_MAX, r.randrange(0, 5000)]),
                        "last_fetched_epoch": r.choice([-1, 0, INT32_MAX, INT32_MIN]),
                        "log_start_offset": r.choice([-1, 0, INT64_MAX, INT64_MIN]),
                        "partition_max_bytes": r.choice([1048576, 0, 1, -1, INT32_MAX, INT32_MIN]),
                    }
                )
            entry = {"topic": topic, "partitions": partitions}
            if v is not None and v >= 13:
                entry = {"topic_id": self.topic_ids.get(topic) or r.choice([uuid.UUID(int=0), uuid4_bytes(r)]), "partitions": partitions}
            topics.append(entry)
        req = mk(
            FetchRequest,
            replica_id=r.choice([-1, -1, -1, 0, 1, INT32_MAX, -2, INT32_MIN]),
            max_wait_ms=r.choice([0, 0, 1, 50, -1, INT32_MIN]),
            min_bytes=r.choice([0, 1, 1, INT32_MAX, -1, INT32_MIN]),
            max_bytes=r.choice([52428800, 0, 1, -1, INT32_MAX, INT32_MIN]),
            isolation_level=r.choice([0, 1]),
            session_id=r.choice([0, 0, 0, -1, 1, INT32_MAX, INT32_MIN]),
            session_epoch=r.choice([-1, -1, 0, 1, INT32_MAX, INT32_MIN]),
            topics=topics,
            forgotten_topics_data=[] if r.random() < 0.8 else [{"topic": self.any_topic()[0], "partitions": [self.i32()]}],
            rack_id=r.choice(["", "rack", "r" * 1000]),
        )
        if v is not None and v >= 13 and req.forgotten_topics_data:
            req.forgotten_topics_data = [mk(FetchRequest.ForgottenTopic, topic_id=uuid4_bytes(r), partitions=[0])]
        # A positive min_bytes with a positive max wait may wait by protocol.
        self.send(req, v, f"{len(topics)} topics", park=PARK_SECONDS)

    def case_fetch_isolation(self) -> None:
        """Issue 14 (fixed): isolation_level outside 0/1 must be refused."""
        r = self.rng
        topic, parts = self.any_topic()
        req = isolation_fetch(topic, self.partition_of(parts), r.choice([2, 7, -1, INT8_MIN, INT8_MAX]))
        ans = self.send(req, self.version(FetchRequest, hi=12), f"isolation_level={req.isolation_level} {topic}")
        if ans is not None and ans.kind == "ok":
            parts_ = [p for t in ans.response.responses for p in t.partitions]
            top = getattr(ans.response, "error_code", 0) or 0
            if top == 0 and not (parts_ and all(p.error_code != 0 for p in parts_)):
                self.violation(f"Fetch with isolation_level {req.isolation_level} served")

    def case_fetch_park(self) -> None:
        """A long-poll fetch (max wait and min bytes at INT32_MAX) left behind when the client
        disconnects (issue 14 #2). Bounded to a few per run: the memory guard watches the rest."""
        if self.parked_fetches >= 20:
            return
        self.parked_fetches += 1
        topic, parts = self.any_topic()
        req = mk(
            FetchRequest,
            replica_id=-1,
            max_wait_ms=INT32_MAX,
            min_bytes=INT32_MAX,
            max_bytes=INT32_MAX,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[{"topic": topic, "partitions": [{"partition": p, "fetch_offset": INT64_MAX if self.rng.random() < 0.5 else 0, "partition_max_bytes": INT32_MAX} for p in range(parts or 1)]}],
        )
        # PARK_SECONDS then the connection is dropped (the fetch must go with it).
        self.send(req, self.version(FetchRequest, hi=12), f"long poll on {topic}", park=0.3)

    def case_list_offsets(self) -> None:
        r = self.rng
        v = self.version(ListOffsetsRequest)
        topics = []
        for _ in range(r.choice([1, 2])):
            topic, parts = self.any_topic()
            topics.append(
                {
                    "name": topic,
                    "partitions": [
                        {
                            "partition_index": self.partition_of(parts),
                            "current_leader_epoch": r.choice([-1, 0, INT32_MAX, INT32_MIN]),
                            "timestamp": r.choice([-1, -2, -3, -4, -5, -6, INT64_MIN, INT64_MAX, 0, int(time.time() * 1000), self.i64()]),
                            "max_num_offsets": r.choice([1, 0, -1, INT32_MAX]),
                        }
                        for _ in range(r.choice([1, 2]))
                    ],
                }
            )
        req = mk(
            ListOffsetsRequest,
            replica_id=r.choice([-1, -1, -2, 0, 1, INT32_MAX, INT32_MIN]),
            isolation_level=r.choice([0, 1, 0, 1, 2, -1, INT8_MAX]),
            topics=topics,
            timeout_ms=r.choice([0, 1000, -1, INT32_MAX, INT32_MIN]),
        )
        self.send(req, v, f"{[t['name'][:40] for t in topics]}")

    def case_metadata(self) -> None:
        r = self.rng
        v = self.version(MetadataRequest, lo=1)
        if r.random() < 0.3:
            topics = None  # all topics
        else:
            topics = []
            for _ in range(r.choice([0, 1, 3])):
                name = self.any_topic()[0] if r.random() < 0.7 else f"auto-{r.randrange(1 << 30)}"
                topics.append({"name": name, "topic_id": r.choice([uuid.UUID(int=0), uuid4_bytes(r)])})
        auto = r.random() < 0.3
        ans = self.send(
            mk(MetadataRequest, topics=topics, allow_auto_topic_creation=auto, include_topic_authorized_operations=r.random() < 0.5),
            v,
            f"topics={None if topics is None else [t['name'][:40] for t in topics]} auto={auto}",
        )
        if ans is not None and ans.kind == "ok":
            for t in ans.response.topics:
                if t.error_code == 0 and t.name:
                    if getattr(t, "topic_id", None) is not None:
                        self.topic_ids[t.name] = t.topic_id
                    if t.name not in self.precious and not t.name.startswith("__"):
                        self.victims[t.name] = max(1, len(t.partitions))

    ABSURD_CONFIGS = {
        "retention.ms": ["-2", "-1", "0", "1", str(INT64_MAX), "9223372036854775808", "abc", ""],
        "retention.bytes": ["-2", "0", str(INT64_MAX), "1e9"],
        "segment.bytes": ["0", "1", "13", "14", str(INT32_MAX), "2147483648", "-1"],
        "segment.ms": ["0", "1", "-1", str(INT64_MAX)],
        "segment.index.bytes": ["0", "1", "4", str(INT32_MAX)],
        "max.message.bytes": ["0", "-1", "1", str(INT32_MAX)],
        "min.insync.replicas": ["0", "-1", "2", str(INT32_MAX)],
        "cleanup.policy": ["compact", "delete", "compact,delete", "bogus", "", ",", "delete,delete"],
        "message.timestamp.type": ["CreateTime", "LogAppendTime", "Foo", ""],
        "message.timestamp.after.max.ms": ["-1", "0", "1", str(INT64_MAX)],
        "message.timestamp.before.max.ms": ["-1", "0", "1", str(INT64_MAX)],
        "message.timestamp.difference.max.ms": ["-1", "0", str(INT64_MAX)],
        "compression.type": ["gzip", "zstd", "lz4", "snappy", "uncompressed", "producer", "brotli", ""],
        "file.delete.delay.ms": ["-1", "0", str(INT64_MAX)],
        "unclean.leader.election.enable": ["true", "maybe"],
        "max.compaction.lag.ms": ["0", "1", str(INT64_MAX)],
        "min.compaction.lag.ms": ["-1", str(INT64_MAX)],
        "min.cleanable.dirty.ratio": ["-0.5", "1.5", "NaN", "0"],
        "delete.retention.ms": ["-1", str(INT64_MAX)],
        "index.interval.bytes": ["0", "-1", str(INT32_MAX)],
        "flush.messages": ["0", "1", str(INT64_MAX)],
        "no.such.config": ["x"],
        "": [""],
    }

    def absurd_config(self) -> tuple:
        name = self.rng.choice(sorted(self.ABSURD_CONFIGS))
        value = self.rng.choice(self.ABSURD_CONFIGS[name] + [None])
        return name, value

    def case_create_topics(self) -> None:
        r = self.rng
        v = self.version(CreateTopicsRequest)
        topics = []
        for _ in range(r.choice([1, 1, 2])):
            name = r.choice([f"hv-{r.randrange(1 << 30)}"] * 4 + [self.weird_string(300), self.rng.choice(sorted(self.precious))])
            # Counts a broker may accept stay small; the large ones are all out of range (issue 14:
            # thousands of partitions in one request exhaust file descriptors; that is its own test).
            nparts = r.choice([1, 2, 3, -1, -1, 0, INT32_MIN, INT32_MAX, 100_001, -2])
            rf = r.choice([1, 1, -1, -1, 0, 2, 3, INT16_MAX, INT16_MIN])
            assignments = []
            if r.random() < 0.25:
                nparts_a, rf = -1, -1
                nparts = nparts_a
                for _i in range(r.choice([0, 1, 2])):
                    assignments.append({"partition_index": r.choice([0, 1, -1, INT32_MAX, INT32_MIN, _i]), "broker_ids": r.choice([[1], [], [1, 1], [2], [-1], [INT32_MAX], [1, 2]])})
            configs = [dict(zip(("name", "value"), self.absurd_config())) for _ in range(r.choice([0, 0, 1, 3]))]
            topics.append({"name": name, "num_partitions": nparts, "replication_factor": rf, "assignments": assignments, "configs": configs})
        req = mk(CreateTopicsRequest, topics=topics, timeout_ms=r.choice([30000, 0, -1, INT32_MAX, INT32_MIN]), validate_only=r.random() < 0.2)
        ans = self.send(req, v, "; ".join(f"{t['name'][:30]} n={t['num_partitions']} rf={t['replication_factor']} a={t['assignments']} c={t['configs']}" for t in topics))
        if ans is not None and ans.kind == "ok":
            asked = {t["name"]: t for t in topics}
            for t in ans.response.topics:
                a = asked.get(t.name)
                if t.error_code == 0 and a is not None and len(asked) == len(topics):
                    n_, rf_ = a["num_partitions"], a["replication_factor"]
                    if n_ == 0 or n_ < -1 or rf_ == 0 or rf_ < -1 or rf_ > 1:
                        self.violation(f"CreateTopics {t.name[:40]} with {n_} partitions, replication factor {rf_} (one broker) accepted")
        if ans is not None and ans.kind == "ok" and not req.validate_only:
            for t in ans.response.topics:
                if t.error_code == 0 and t.name not in self.precious:
                    n = getattr(t, "num_partitions", -1)
                    self.victims[t.name] = n if n and n > 0 else 1
                    if getattr(t, "topic_id", None) is not None:
                        self.topic_ids[t.name] = t.topic_id

    def case_create_partitions(self) -> None:
        r = self.rng
        v = self.version(CreatePartitionsRequest)
        topic, parts = self.any_topic(destructive=False)
        cur = parts or 1
        # (Counts near INT32_MIN with assignments: case_create_partitions_overflow.)
        if topic in self.precious:
            count = r.choice([INT32_MIN, -1, 0, cur - 1, cur, INT32_MAX, 100_001])  # never actually grows
        else:
            count = r.choice([INT32_MIN, -1, 0, cur - 1, cur, cur + 1, cur + 2, INT32_MAX, 100_001])
        assignments = None
        if r.random() < 0.4 and count > INT32_MIN + 1000:
            k = max(0, min(4, count - cur)) if r.random() < 0.5 else r.choice([0, 1, 3])
            assignments = [{"broker_ids": r.choice([[1], [], [2], [-1], [1, 1]])} for _ in range(k)]
        req = mk(
            CreatePartitionsRequest,
            topics=[{"name": topic, "count": count, "assignments": assignments}],
            timeout_ms=r.choice([30000, 0, -1, INT32_MAX]),
            validate_only=r.random() < 0.3,
        )
        ans = self.send(req, v, f"{topic[:40]} {cur} -> {count} assignments={assignments} validate_only={req.validate_only}")
        if parts is not None and count <= cur:
            self.refused(ans, f"CreatePartitions of {topic} from {cur} to {count}")
        if ans is not None and ans.kind == "ok" and not req.validate_only and topic in self.victims:
            for res in ans.response.results:
                if res.error_code == 0 and 0 < count <= 64:
                    self.victims[topic] = count

    def case_create_partitions_overflow(self) -> None:
        """Known crash (issue 14 #1): count below INT32_MIN + current count with assignments
        (`topic.count - current` traps)."""
        r = self.rng
        topic, parts = self.any_topic(destructive=False)
        if parts is None:
            topic, parts = self.rng.choice(sorted(self.precious.items()))
        count = r.choice([INT32_MIN, INT32_MIN + r.randrange(0, max(1, parts))])
        assignments = [{"broker_ids": r.choice([[0], [1], []])} for _ in range(r.choice([1, 2]))]
        req = mk(CreatePartitionsRequest, topics=[{"name": topic, "count": count, "assignments": assignments}], timeout_ms=1000, validate_only=r.random() < 0.5)
        self.send(req, self.version(CreatePartitionsRequest), f"{topic[:40]} {parts} -> {count} assignments={assignments} validate_only={req.validate_only}")

    def case_delete_topics(self) -> None:
        r = self.rng
        v = self.version(DeleteTopicsRequest)
        names = []
        for _ in range(r.choice([1, 1, 2])):
            name, _parts = self.any_topic(destructive=True)
            names.append(name)
        if v is not None and v >= 6:
            topics = [{"name": n, "topic_id": uuid.UUID(int=0)} for n in names]
            if r.random() < 0.3:
                topics.append({"name": None, "topic_id": r.choice([uuid4_bytes(r), uuid.UUID(int=0)])})
            req = mk(DeleteTopicsRequest, topics=topics, timeout_ms=r.choice([30000, 0, -1, INT32_MAX]))
        else:
            req = mk(DeleteTopicsRequest, topic_names=names, timeout_ms=r.choice([30000, 0, -1, INT32_MAX]))
        ans = self.send(req, v, f"{[n[:40] for n in names]}")
        if ans is not None and ans.kind == "ok":
            for res in ans.response.responses:
                if res.error_code == 0 and res.name in self.victims:
                    del self.victims[res.name]
                    self.topic_ids.pop(res.name, None)

    def case_delete_internal(self) -> None:
        """Issue 14 (fixed): deleting __consumer_offsets / __transaction_state must be refused (Brook's choice: Kafka allows it)."""
        name = self.pick("__consumer_offsets", "__transaction_state")
        v = self.version(DeleteTopicsRequest)
        if v is not None and v >= 6:
            req = mk(DeleteTopicsRequest, topics=[{"name": name, "topic_id": uuid.UUID(int=0)}], timeout_ms=30000)
        else:
            req = mk(DeleteTopicsRequest, topic_names=[name], timeout_ms=30000)
        self.refused(self.send(req, v, name), f"deleting {name}")

    def case_delete_records(self) -> None:
        r = self.rng
        topic, parts = self.any_topic(destructive=True)
        req = mk(
            DeleteRecordsRequest,
            topics=[{"name": topic, "partitions": [{"partition_index": self.partition_of(parts), "offset": r.choice([-1, -2, 0, 1, 5, INT64_MAX, INT64_MIN, self.i64()])} for _ in range(r.choice([1, 2]))]}],
            timeout_ms=r.choice([30000, 0, -1, INT32_MAX, INT32_MIN]),
        )
        self.send(req, self.version(DeleteRecordsRequest), f"{topic[:40]} {[(p.partition_index, p.offset) for p in req.topics[0].partitions]}")

    def config_resource(self, mutate: bool) -> tuple:
        """(resource_type, resource_name, safe_to_apply)."""
        r = self.rng
        rt = r.choice([2, 2, 2, 4, 4, 8, 16, 0, -1, 1, 3, INT8_MAX, INT8_MIN])
        if rt == 2:
            if mutate:
                name, _ = self.any_topic(destructive=True)
            else:
                name, _ = self.any_topic()
            return rt, name, not name.startswith("__")
        if rt in (4, 8):
            return rt, r.choice(["1", "", "0", "2", "-1", "2147483648", "abc", "1 "]), False
        return rt, self.weird_string(100), False

    def case_describe_configs(self) -> None:
        r = self.rng
        resources = []
        for _ in range(r.choice([1, 2])):
            rt, name, _ = self.config_resource(False)
            keys = None if r.random() < 0.6 else [self.absurd_config()[0] for _ in range(r.choice([0, 1, 3]))]
            resources.append({"resource_type": rt, "resource_name": name, "configuration_keys": keys})
        req = mk(DescribeConfigsRequest, resources=resources, include_synonyms=r.random() < 0.5, include_documentation=r.random() < 0.5)
        self.send(req, self.version(DescribeConfigsRequest), f"{[(x['resource_type'], x['resource_name'][:30]) for x in resources]}")

    def case_alter_configs(self) -> None:
        r = self.rng
        rt, name, safe = self.config_resource(True)
        # Real changes only to the client's own topics: a broker-wide retention change could
        # legitimately delete acknowledged records. Everything else is validate_only.
        validate_only = (not safe) or r.random() < 0.3
        configs = [self.absurd_config() for _ in range(r.choice([0, 1, 2, 4]))]
        if r.random() < 0.5:
            v = self.version(IncrementalAlterConfigsRequest)
            req = mk(
                IncrementalAlterConfigsRequest,
                resources=[{"resource_type": rt, "resource_name": name, "configs": [{"name": k, "config_operation": r.choice([0, 0, 1, 2, 3, -1, INT8_MAX]), "value": val} for k, val in configs]}],
                validate_only=validate_only,
            )
        else:
            v = self.version(AlterConfigsRequest)
            req = mk(AlterConfigsRequest, resources=[{"resource_type": rt, "resource_name": name, "configs": [{"name": k, "value": val} for k, val in configs]}], validate_only=validate_only)
        self.send(req, v, f"type={rt} {name[:40]} {configs} validate_only={validate_only}")

    def case_timestamp_extremes(self) -> None:
        """CreateTime at INT64 extremes and far future / past (issue 14, fixed: after.max.ms was not
        enforced), on any topic."""
        r = self.rng
        topic, parts = self.any_topic()
        now = int(time.time() * 1000)
        ts = r.choice([INT64_MAX, INT64_MAX - 1, now + 7_200_000, now + 3_700_000, INT64_MIN, -2, -1, 0, now - 10 * 365 * 86_400_000])
        n = r.choice([1, 3])
        deltas = [0] * n if r.random() < 0.7 else [r.choice([0, 1, -1, INT32_MAX, INT64_MAX, INT64_MIN]) for _ in range(n)]
        attrs = r.choice([0, 0, 1, 0x08])
        batch = build_batch(self.random_records(n), base_timestamp=ts, ts_deltas=deltas, attributes=attrs)
        must_refuse = None
        stamps = [ts + d for d in deltas]
        if topic in self.precious and not attrs & 0x08 and all(INT64_MIN <= t <= INT64_MAX for t in stamps) and max(stamps) > time.time() * 1000 + 3_600_000 + 120_000:
            must_refuse = f"CreateTime {max(stamps)} beyond now + message.timestamp.after.max.ms (1 h)"
        self.produce(topic, self.partition_of(parts) if r.random() < 0.3 else (r.randrange(parts) if parts else 0), [batch], acks=-1, what=f"timestamp={ts} deltas={deltas}", must_refuse=must_refuse)

    def group_id(self) -> str:
        r = self.rng
        x = r.random()
        if x < 0.5:
            return r.choice(self.groups)
        if x < 0.7:
            return f"hg-fresh-{r.randrange(1 << 30)}"
        return r.choice(["", "g", "g" * 255, "g" * 32767, "тема", "\x00", "__consumer_offsets"])

    def member(self) -> tuple:
        """(group, member_id, generation) from a real join or made up."""
        r = self.rng
        if self.members and r.random() < 0.6:
            g, m, gen = r.choice(self.members)
            return g, r.choice([m, m, "", m + "x"]), r.choice([gen, gen, gen + 1, -1, INT32_MAX, INT32_MIN, 0])
        return self.group_id(), r.choice(["", "m", "m" * 32767, f"consumer-{uuid.uuid4()}"]), self.i32()

    def protocols(self) -> list:
        r = self.rng
        out = []
        for _ in range(r.choice([0, 1, 1, 2, 5])):
            out.append({"name": r.choice(["range", "roundrobin", "", "x" * 1000, "cooperative-sticky"]), "metadata": r.choice([b"", b"\x00", r.randbytes(r.choice([10, 1000, 100_000]))])})
        return out

    def case_find_coordinator(self) -> None:
        r = self.rng
        v = self.version(FindCoordinatorRequest)
        key = r.choice([self.group_id(), f"txn-{r.randrange(1 << 20)}", ""])
        req = mk(FindCoordinatorRequest, key=key, key_type=r.choice([0, 1, 0, 2, -1, INT8_MAX]), coordinator_keys=[key] * r.choice([0, 1, 2, 50]))
        self.send(req, v, f"key={key[:40]!r} type={req.key_type}")

    def case_join_group(self) -> None:
        r = self.rng
        v = self.version(JoinGroupRequest)
        group = self.group_id()
        member = r.choice(["", "", "m" * r.choice([1, 32767]), f"ghost-{r.randrange(1 << 20)}"])
        req = mk(
            JoinGroupRequest,
            group_id=group,
            session_timeout_ms=r.choice([10000, 10000, 6000, 5999, 1800000, 1800001, 0, -1, INT32_MAX, INT32_MIN]),
            rebalance_timeout_ms=r.choice([1000, 5000, 0, -1, INT32_MAX, INT32_MIN]),
            member_id=member,
            group_instance_id=r.choice([None, None, "", "static-" + str(r.randrange(5)), "s" * 32767]),
            protocol_type=r.choice(["consumer", "consumer", "", "connect", "x" * 1000]),
            protocols=self.protocols(),
            reason=r.choice([None, "", "r" * 10000]),
        )
        desc = f"group={group[:30]!r}({len(group)}) member={member[:20]!r}({len(member)}) session={req.session_timeout_ms} rebalance={req.rebalance_timeout_ms} protocols={len(req.protocols)}"
        ans = self.send(req, v, desc, park=PARK_SECONDS)
        if ans is None or ans.kind != "ok":
            return
        resp = ans.response
        if not 6000 <= req.session_timeout_ms <= 1_800_000 and resp.error_code in (0, 79):
            self.violation(f"JoinGroup with session timeout {req.session_timeout_ms} answered {resp.error_code} (INVALID_SESSION_TIMEOUT expected)")
        if resp.error_code == 79 and resp.member_id:  # MEMBER_ID_REQUIRED: join again with it
            req.member_id = resp.member_id
            ans = self.send(req, v, desc + " (again with the member id)", park=PARK_SECONDS)
            if ans is None or ans.kind != "ok":
                return
            resp = ans.response
        if resp.error_code == 0 and resp.member_id:
            self.members.append((group, resp.member_id, resp.generation_id))
            self.members = self.members[-20:]

    def case_group_member_ops(self) -> None:
        r = self.rng
        group, member, gen = self.member()
        op = r.choice(["sync", "heartbeat", "leave", "heartbeat", "sync"])
        if op == "sync":
            v = self.version(SyncGroupRequest)
            assignments = [{"member_id": r.choice([member, "", "other"]), "assignment": r.choice([b"", r.randbytes(r.choice([4, 100, 50_000]))])} for _ in range(r.choice([0, 1, 1, 3]))]
            req = mk(
                SyncGroupRequest,
                group_id=group,
                generation_id=gen,
                member_id=member,
                group_instance_id=r.choice([None, None, "", "static-1"]),
                protocol_type=r.choice([None, "consumer", "", "other"]),
                protocol_name=r.choice([None, "range", "", "nope"]),
                assignments=assignments,
            )
            self.send(req, v, f"group={group[:30]!r} member={member[:20]!r} gen={gen} assignments={len(assignments)}", park=PARK_SECONDS)
        elif op == "heartbeat":
            req = mk(HeartbeatRequest, group_id=group, generation_id=gen, member_id=member, group_instance_id=r.choice([None, None, "", "static-2"]))
            self.send(req, self.version(HeartbeatRequest), f"group={group[:30]!r} member={member[:20]!r} gen={gen}")
        else:
            v = self.version(LeaveGroupRequest)
            req = mk(
                LeaveGroupRequest,
                group_id=group,
                member_id=member,
                members=[{"member_id": r.choice([member, "", "x"]), "group_instance_id": r.choice([None, "", "static-1"]), "reason": r.choice([None, "bye"])} for _ in range(r.choice([0, 1, 3]))],
            )
            self.send(req, v, f"group={group[:30]!r} member={member[:20]!r}")

    def offset_topics(self, with_offsets: bool) -> list:
        r = self.rng
        topics = []
        for _ in range(r.choice([1, 1, 2])):
            topic, parts = self.any_topic()
            partitions = []
            for _ in range(r.choice([1, 2, 3])):
                p = {"partition_index": self.partition_of(parts)}
                if with_offsets:
                    p.update(
                        committed_offset=r.choice([0, 1, -1, -2, INT64_MIN, INT64_MAX, self.i64()]),
                        committed_leader_epoch=r.choice([-1, 0, INT32_MAX, INT32_MIN]),
                        commit_timestamp=r.choice([-1, 0, INT64_MAX, INT64_MIN]),
                        committed_metadata=r.choice([None, "", "m", "m" * 4097, "m" * 32767]),
                    )
                partitions.append(p)
            topics.append({"name": topic, "partitions": partitions})
        return topics

    def case_offset_commit(self) -> None:
        r = self.rng
        group, member, gen = self.member()
        if r.random() < 0.4:
            member, gen = "", -1  # a standalone (simple) consumer's commit
        v = self.version(OffsetCommitRequest)
        topics = self.offset_topics(True)
        req = mk(
            OffsetCommitRequest,
            group_id=group,
            generation_id_or_member_epoch=gen,
            member_id=member,
            group_instance_id=r.choice([None, None, "", "static-1"]),
            retention_time_ms=r.choice([-1, 0, INT64_MAX, INT64_MIN]),
            topics=topics,
        )
        self.send(req, v, f"group={group[:30]!r} member={member[:20]!r} gen={gen} {[(t['name'][:30], [(p['partition_index'], p['committed_offset']) for p in t['partitions']]) for t in topics]}")

    def case_offset_fetch(self) -> None:
        r = self.rng
        v = self.version(OffsetFetchRequest)
        group = self.group_id()
        topics = None if r.random() < 0.4 else [{"name": t["name"], "partition_indexes": [p["partition_index"] for p in t["partitions"]]} for t in self.offset_topics(False)]
        if v is not None and v >= 8:
            groups = [{"group_id": g, "member_id": r.choice([None, "", "m"]), "member_epoch": r.choice([-1, 0, INT32_MAX]), "topics": topics} for g in [group] + [self.group_id() for _ in range(r.choice([0, 0, 2]))]]
            req = mk(OffsetFetchRequest, groups=groups, require_stable=r.random() < 0.5)
        else:
            req = mk(OffsetFetchRequest, group_id=group, topics=topics, require_stable=r.random() < 0.5)
        self.send(req, v, f"group={group[:30]!r} topics={'all' if topics is None else len(topics)}")

    def case_group_admin(self) -> None:
        r = self.rng
        op = r.choice(["describe", "list", "delete", "offset_delete"])
        if op == "describe":
            req = mk(DescribeGroupsRequest, groups=[self.group_id() for _ in range(r.choice([0, 1, 3]))], include_authorized_operations=r.random() < 0.5)
            self.send(req, self.version(DescribeGroupsRequest), f"{len(req.groups)} groups")
        elif op == "list":
            req = mk(ListGroupsRequest, states_filter=r.choice([[], ["Stable"], ["Bogus", ""], ["x" * 1000]]), types_filter=r.choice([[], ["classic"], ["consumer"], ["nope"]]))
            self.send(req, self.version(ListGroupsRequest), f"states={req.states_filter} types={req.types_filter}")
        elif op == "delete":
            req = mk(DeleteGroupsRequest, groups_names=[self.group_id() for _ in range(r.choice([0, 1, 2]))])
            self.send(req, self.version(DeleteGroupsRequest), f"{[g[:30] for g in req.groups_names]}")
        else:
            topic, parts = self.any_topic()
            req = mk(OffsetDeleteRequest, group_id=self.group_id(), topics=[{"name": topic, "partitions": [{"partition_index": self.partition_of(parts)}]}])
            self.send(req, self.version(OffsetDeleteRequest), f"group={req.group_id[:30]!r} {topic[:30]}")

    def init_producer(self, transactional_id: Optional[str], timeout_ms: Optional[int] = None, pid=None, epoch=None) -> Optional[Answer]:
        r = self.rng
        req = mk(
            InitProducerIdRequest,
            transactional_id=transactional_id,
            transaction_timeout_ms=timeout_ms if timeout_ms is not None else r.choice([60000, 60000, 10000, 0, -1, 1, INT32_MAX, INT32_MIN, 900001]),
            producer_id=pid if pid is not None else -1,
            producer_epoch=epoch if epoch is not None else -1,
        )
        ans = self.send(req, self.version(InitProducerIdRequest), f"txn={transactional_id!r:.40} timeout={req.transaction_timeout_ms} pid={req.producer_id} epoch={req.producer_epoch}")
        if transactional_id and not 0 < req.transaction_timeout_ms <= 900_000:
            self.refused(ans, f"InitProducerId with transaction timeout {req.transaction_timeout_ms}")
        if ans is not None and ans.kind == "ok" and ans.response.error_code == 0:
            self.producers.append((ans.response.producer_id, ans.response.producer_epoch, transactional_id))
            self.producers = self.producers[-20:]
        return ans

    def case_init_producer_id(self) -> None:
        r = self.rng
        txn = r.choice([None, None, f"htx-{r.randrange(8)}", "", "t" * 32767, f"htx-{r.randrange(1 << 30)}"])
        pid = epoch = None
        if r.random() < 0.4:
            if self.producers and r.random() < 0.5:
                pid, epoch, t = r.choice(self.producers)
                txn = t if r.random() < 0.7 else txn
                epoch = r.choice([epoch, epoch - 1, epoch + 1, INT16_MAX, -1])
                epoch = max(INT16_MIN, min(INT16_MAX, epoch))
            else:
                pid, epoch = self.i64(), self.i16()
        self.init_producer(txn, pid=pid, epoch=epoch)

    def txn_producer(self) -> tuple:
        r = self.rng
        txns = [p for p in self.producers if p[2]]
        if txns and r.random() < 0.7:
            pid, epoch, txn = r.choice(txns)
            return txn, r.choice([pid, pid, pid + 1, -1]), r.choice([epoch, epoch, epoch - 1 if epoch > INT16_MIN else epoch, INT16_MAX, -1])
        if r.random() < 0.3:
            self.init_producer(f"htx-{r.randrange(8)}", timeout_ms=r.choice([10000, 60000]))
            txns = [p for p in self.producers if p[2]]
            if txns:
                pid, epoch, txn = txns[-1]
                return txn, pid, epoch
        return r.choice([f"htx-{r.randrange(8)}", "", "ghost"]), self.i64(), self.i16()

    def case_txn_ops(self) -> None:
        r = self.rng
        txn, pid, epoch = self.txn_producer()
        op = r.choice(["add_partitions", "add_partitions", "produce", "end", "add_offsets", "txn_commit"])
        if op == "add_partitions":
            v = self.version(AddPartitionsToTxnRequest)
            topics = []
            for _ in range(r.choice([1, 2])):
                topic, parts = self.any_topic()
                topics.append({"name": topic, "partitions": [self.partition_of(parts) for _ in range(r.choice([1, 2]))]})
            if v is not None and v >= 4:
                req = mk(AddPartitionsToTxnRequest, transactions=[{"transactional_id": txn, "producer_id": pid, "producer_epoch": epoch, "verify_only": r.random() < 0.5, "topics": topics}])
            else:
                req = mk(AddPartitionsToTxnRequest, v3_and_below_transactional_id=txn, v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch, v3_and_below_topics=topics)
            self.send(req, v, f"txn={txn[:30]!r} pid={pid} epoch={epoch} {[(t['name'][:30], t['partitions']) for t in topics]}")
        elif op == "produce":
            topic, parts = self.any_topic()
            partition = r.randrange(parts) if parts else 0
            batch = build_batch(self.random_records(r.choice([1, 2])), attributes=0x10 | r.choice([0, 1]), producer_id=pid, producer_epoch=epoch, base_sequence=r.choice([0, 0, 1, -1, INT32_MAX]))
            self.produce(topic, partition, [batch], acks=-1, transactional_id=r.choice([txn, txn, None, "other"]), what=f"transactional pid={pid} epoch={epoch}")
        elif op == "end":
            req = mk(EndTxnRequest, transactional_id=txn, producer_id=pid, producer_epoch=epoch, committed=r.random() < 0.5)
            self.send(req, self.version(EndTxnRequest), f"txn={txn[:30]!r} pid={pid} epoch={epoch} commit={req.committed}")
        elif op == "add_offsets":
            req = mk(AddOffsetsToTxnRequest, transactional_id=txn, producer_id=pid, producer_epoch=epoch, group_id=self.group_id())
            self.send(req, self.version(AddOffsetsToTxnRequest), f"txn={txn[:30]!r} pid={pid} group={req.group_id[:30]!r}")
        else:
            group, member, gen = self.member()
            req = mk(
                TxnOffsetCommitRequest,
                transactional_id=txn,
                group_id=group,
                producer_id=pid,
                producer_epoch=epoch,
                generation_id=gen,
                member_id=member,
                group_instance_id=None,
                topics=[{"name": t["name"], "partitions": [{k: p[k] for k in ("partition_index", "committed_offset", "committed_leader_epoch", "committed_metadata")} for p in t["partitions"]]} for t in self.offset_topics(True)],
            )
            self.send(req, self.version(TxnOffsetCommitRequest), f"txn={txn[:30]!r} pid={pid} group={group[:30]!r} gen={gen}")

    def case_txn_describe(self) -> None:
        r = self.rng
        op = r.choice(["producers", "transactions", "list"])
        if op == "producers":
            topic, parts = self.any_topic()
            req = mk(DescribeProducersRequest, topics=[{"name": topic, "partition_indexes": [self.partition_of(parts) for _ in range(r.choice([0, 1, 3]))]}])
            self.send(req, self.version(DescribeProducersRequest), topic[:40])
        elif op == "transactions":
            req = mk(DescribeTransactionsRequest, transactional_ids=[r.choice([f"htx-{r.randrange(8)}", "", "t" * 32767, "ghost"]) for _ in range(r.choice([0, 1, 3]))])
            self.send(req, self.version(DescribeTransactionsRequest), f"{len(req.transactional_ids)} ids")
        else:
            req = mk(
                ListTransactionsRequest,
                state_filters=r.choice([[], ["Ongoing"], ["Bogus"], [""]]),
                producer_id_filters=r.choice([[], [-1], [INT64_MAX, INT64_MIN], [0]]),
                duration_filter=r.choice([-1, 0, INT64_MAX, INT64_MIN]),
                transactional_id_pattern=r.choice([None, "", ".*", "(", "[", "a{99999999}"]),
            )
            self.send(req, self.version(ListTransactionsRequest), f"states={req.state_filters} pids={req.producer_id_filters} duration={req.duration_filter} pattern={req.transactional_id_pattern!r}")

    def case_leader_epoch(self) -> None:
        r = self.rng
        topic, parts = self.any_topic()
        req = mk(
            OffsetForLeaderEpochRequest,
            replica_id=r.choice([-1, -2, 0, 1, INT32_MAX]),
            topics=[{"topic": topic, "partitions": [{"partition": self.partition_of(parts), "current_leader_epoch": r.choice([-1, 0, INT32_MAX, INT32_MIN]), "leader_epoch": r.choice([-1, 0, 1, INT32_MAX, INT32_MIN])} for _ in range(r.choice([1, 2]))]}],
        )
        self.send(req, self.version(OffsetForLeaderEpochRequest), topic[:40])

    def case_misc_describe(self) -> None:
        r = self.rng
        op = r.choice(["log_dirs", "cluster"])
        if op == "log_dirs":
            topics = None if r.random() < 0.4 else [{"topic": self.any_topic()[0], "partitions": [self.i32() for _ in range(r.choice([0, 1, 3]))]}]
            self.send(mk(DescribeLogDirsRequest, topics=topics), self.version(DescribeLogDirsRequest), f"topics={'all' if topics is None else topics[0]['topic'][:40]}")
        else:
            req = mk(DescribeClusterRequest, include_cluster_authorized_operations=r.random() < 0.5, endpoint_type=r.choice([1, 2, 0, -1, INT8_MAX]), include_fenced_brokers=r.random() < 0.5)
            self.send(req, self.version(DescribeClusterRequest), f"endpoint_type={req.endpoint_type}")


# --------------------------------------------------------------------------------------------
# Checks after the run


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def read_partition(bootstrap: str, topic: str, partition: int, end: int) -> dict:
    """offset -> (key, value) for every record of topic[partition] below `end`, read with a
    read_uncommitted confluent-kafka consumer (the hostile client may leave transactions open);
    fails when the consumer makes no progress for STALL_SECONDS."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    out: dict = {}
    if end <= 0:
        return out
    c = ck_consumer(bootstrap, **{"isolation.level": "read_uncommitted", "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        last_progress = time.monotonic()
        last_offset = -1
        errors = []
        while last_offset < end - 1:
            if time.monotonic() - last_progress > STALL_SECONDS:
                raise AssertionError(
                    f"{topic}[{partition}]: a read_uncommitted confluent-kafka consumer made no progress for "
                    f"{STALL_SECONDS}s at offset {last_offset + 1} (end {end}, {len(out)} records read; errors "
                    f"{errors[:3]}; a client-written control batch there stalls librdkafka: see the violations)"
                )
            for m in c.consume(num_messages=5000, timeout=0.2):
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        errors.append(str(err))
                    continue
                out[m.offset()] = (m.key(), m.value())
                if m.offset() > last_offset:
                    last_offset = m.offset()
                    last_progress = time.monotonic()
            # Past the last readable record? Control records and aborted data may end the log.
            pos = c.position([TopicPartition(topic, partition)])[0].offset
            if pos >= end:
                break
            if pos > last_offset + 1 and pos >= 0:
                last_offset = pos - 1
                last_progress = time.monotonic()
    finally:
        c.close()
    return out


def high_watermarks(bootstrap: str, topics: dict) -> dict:
    """(log start, high watermark) of every partition. Read uncommitted: a read_committed
    consumer (confluent-kafka's default) is given the last stable offset, which a transaction
    the hostile client left open holds back below acknowledged records (seed 758705657)."""
    from confluent_kafka import TopicPartition

    c = ck_consumer(bootstrap, **{"isolation.level": "read_uncommitted"})
    try:
        out = {}
        for t, n in topics.items():
            for p in range(n):
                lo, hi = c.get_watermark_offsets(TopicPartition(t, p), timeout=15)
                out[(t, p)] = (lo, hi)
        return out
    finally:
        c.close()


def check_acknowledged(bootstrap: str, precious: dict, acked: AckedLog) -> None:
    marks = high_watermarks(bootstrap, precious)
    problems = []
    by_tp: dict = defaultdict(dict)
    for (t, p, o), kv in acked.records.items():
        by_tp[(t, p)][o] = kv
    for (t, p), want in sorted(by_tp.items()):
        lo, hi = marks[(t, p)]
        if lo != 0:
            problems.append(f"{t}[{p}]: log start offset {lo}, expected 0 (nothing may delete these records)")
        top = max(want)
        if hi <= top:
            problems.append(f"{t}[{p}]: high watermark {hi}, but offset {top} was acknowledged")
        got = read_partition(bootstrap, t, p, hi)
        missing = [o for o in sorted(want) if o not in got]
        changed = [o for o in sorted(want) if o in got and got[o] != want[o]]
        if missing:
            problems.append(f"{t}[{p}]: {len(missing)} of {len(want)} acknowledged records missing, first offsets {missing[:10]}")
        if changed:
            o = changed[0]
            problems.append(f"{t}[{p}]: {len(changed)} acknowledged records changed, e.g. offset {o}: {got[o]!r:.120} != {want[o]!r:.120}")
    assert not problems, "acknowledged records:\n  " + "\n  ".join(problems)


def standalone_commit_roundtrip(broker, versions: dict, topic: str) -> None:
    """OffsetCommit with generation -1 (a standalone consumer) then OffsetFetch: the offset
    comes back. Needs a working __consumer_offsets."""
    wire = Wire(broker, "brook-hostile-check")
    group = f"hostile-check-{uuid.uuid4().hex[:8]}"
    try:
        vc = versions[OffsetCommitRequest.API_KEY][1]
        req = mk(
            OffsetCommitRequest,
            group_id=group,
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[{"name": topic, "partitions": [{"partition_index": 0, "committed_offset": 42, "committed_metadata": "m"}]}],
        )
        ans = wire.call(req, vc)
        assert ans.kind == "ok" and set(ans.errors) == {0}, f"standalone OffsetCommit: {ans!r}"
        vf = min(versions[OffsetFetchRequest.API_KEY][1], 7)
        req = mk(OffsetFetchRequest, group_id=group, topics=[{"name": topic, "partition_indexes": [0]}])
        ans = wire.call(req, vf)
        assert ans.kind == "ok", f"OffsetFetch: {ans!r}"
        parts = [p for t in ans.response.topics for p in t.partitions]
        assert [(p.partition_index, p.committed_offset, p.error_code) for p in parts] == [(0, 42, 0)], f"OffsetFetch: {ans.response}"
    finally:
        wire.drop()


# --------------------------------------------------------------------------------------------
# The random mix


def test_hostile_client_random_mix(broker_factory, request):
    seed = SEED
    started = time.monotonic()
    print(f"\nhostile client: BROOK_HOSTILE_SEED={seed} BROOK_HOSTILE_STEPS={STEPS} exclude={sorted(EXCLUDE)}")
    broker = broker_factory(HOSTILE_OVERRIDES)
    versions = negotiated_versions(broker.port)

    precious = {unique_topic("precious-a"): 1, unique_topic("precious-b"): 3, unique_topic("precious-c"): 2}
    victims = {unique_topic("victim-a"): 2, unique_topic("victim-b"): 1}
    for t, n in {**precious, **victims}.items():
        ck_create_topic(broker.bootstrap, t, n)

    acked = AckedLog()
    producer = BackgroundProducer(broker.bootstrap, precious, acked, seed)
    producer.prefill(1000)
    hostile = Hostile(broker, random.Random(seed), versions, precious, victims, acked)

    def context() -> str:
        return (
            f"BROOK_HOSTILE_SEED={seed} ({hostile.steps_run} of {STEPS} steps run, exclude {sorted(EXCLUDE)}); "
            f"last steps:\n  " + "\n  ".join(hostile.trace)
        )

    producer.start()
    hostile_started = time.monotonic()
    try:
        hostile.run(STEPS, HOSTILE_SECONDS)
    except HostileFailure as e:  # a crash, a hang, an undecodable answer: nothing more to check
        producer.stop(flush=1.0)
        pytest.fail(f"{e}\n{violations_text(hostile)}{context()}", pytrace=False)
    except BaseException:
        producer.stop(flush=1.0)
        raise
    producer.stop()
    hostile_done = time.monotonic()

    problems = []
    precious_first = sorted(precious)[0]

    timings = [f"setup {hostile_started - started:.1f}s", f"hostile steps {hostile_done - hostile_started:.1f}s"]

    def check(what, fn, *args, **kw):
        t0 = time.monotonic()
        try:
            fn(*args, **kw)
        except AssertionError as e:
            problems.append(f"{what}: {e}")
        timings.append(f"{what} {time.monotonic() - t0:.1f}s")

    def alive():
        down = broker_down(broker)
        assert down is None, down

    def producer_ok():
        assert producer.exc is None, f"the background producer failed: {producer.exc!r}"
        assert acked.sources["confluent"] >= 1000, f"only {acked.sources['confluent']} records acknowledged"

    def roundtrip():
        # A normal round trip on a new topic: confluent-kafka in, both clients out; a standalone
        # offset commit and fetch (needs __consumer_offsets).
        rt = unique_topic("hostile-roundtrip")
        ck_create_topic(broker.bootstrap, rt, 2)
        specs = make_records(300, "hostile", 2)
        ck_produce(broker.bootstrap, rt, specs, acks="all")
        check_received(specs, ck_consume(broker.bootstrap, rt, [0, 1], len(specs), timeout=60), what="confluent-kafka")
        check_received(specs, kp_consume(broker.bootstrap, rt, [0, 1], len(specs), timeout=60), what="kafka-python")
        standalone_commit_roundtrip(broker, versions, rt)

    rss_seen = []

    def memory():
        rss = vm_rss(broker.pid)
        rss_seen.append(rss)
        assert rss < RSS_LIMIT, f"broker VmRSS {rss / 2**20:.0f} MiB after the run (limit {RSS_LIMIT / 2**20:.0f} MiB)"

    check("broker", alive)
    if not problems:
        check("background producer", producer_ok)
        check("round trip after the run", roundtrip)
        check("acknowledged records", check_acknowledged, broker.bootstrap, precious, acked)
        check("broker", alive)
        if broker.alive():
            check("memory", memory)
        if not problems and RESTART:
            # What the run left on disk must load: SIGKILL, start again, read everything again.
            t0 = time.monotonic()
            broker.restart(hard=True)
            timings.append(f"restart {time.monotonic() - t0:.1f}s")
            check("after a SIGKILL restart: broker", alive)
            check("after a SIGKILL restart: acknowledged records", check_acknowledged, broker.bootstrap, precious, acked)
            check("after a SIGKILL restart: standalone offset commit", standalone_commit_roundtrip, broker, versions, precious_first)
    if hostile.violations:
        problems.append(violations_text(hostile).rstrip())
    if problems:
        pytest.fail("\n".join(problems) + "\ntimings: " + ", ".join(timings) + "\n" + context(), pytrace=False)

    summary = ", ".join(f"{k} {v}" for k, v in sorted(hostile.counts.items()))
    print(
        f"hostile client: seed {seed}, {hostile.steps_run} of {STEPS} steps in {hostile_done - hostile_started:.1f}s "
        f"({hostile.wire.closed_by_broker} closed by the broker, {hostile.wire.parked} parked and dropped); "
        f"{acked.sources['confluent']} confluent + {acked.sources['hostile']} hostile records acknowledged and checked, "
        f"{acked.failed} deliveries failed, {producer.producers_made} producers; VmRSS {rss_seen[0] / 2**20:.0f} MiB after the run; "
        f"total {time.monotonic() - started:.1f}s\n  timings: {', '.join(timings)}\n  cases: {summary}"
    )


def violations_text(hostile) -> str:
    if not hostile.violations:
        return ""
    kinds = defaultdict(int)
    for v in hostile.violations:
        kind = re.sub(r" to \S+\[-?\d+\]", "", v.split(": ", 1)[1].split(" (")[0])
        kinds[re.sub(r"-?\d+", "N", kind)[:80]] += 1
    head = "\n  ".join(hostile.violations[:25])
    return (
        f"{len(hostile.violations)} answer(s) Kafka never gives:\n  {head}\n"
        f"  by kind: {dict(kinds)}\n"
    )


# --------------------------------------------------------------------------------------------
# Targeted deterministic checks: the exact answers Kafka gives


def _wire_versions(broker) -> tuple:
    return Wire(broker, "brook-hostile-targeted"), negotiated_versions(broker.port)


def _produce_one(wire, versions, topic: str, partition: int, batch: bytes, acks: int = -1):
    v = versions[ProduceRequest.API_KEY][1]
    req = mk(ProduceRequest, transactional_id=None, acks=acks, timeout_ms=30000, topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": batch}]}])
    ans = wire.call(req, v)
    assert ans.kind == "ok", f"Produce v{v}: {ans!r}"
    (p,) = [p for t in ans.response.responses for p in t.partition_responses]
    return p


def _log_end(wire, versions, topic: str, partition: int) -> int:
    v = versions[ListOffsetsRequest.API_KEY][1]
    req = mk(ListOffsetsRequest, replica_id=-1, isolation_level=0, topics=[{"name": topic, "partitions": [{"partition_index": partition, "timestamp": -1}]}])
    ans = wire.call(req, v)
    (p,) = [p for t in ans.response.topics for p in t.partitions]
    assert p.error_code == 0, f"ListOffsets: {p}"
    return p.offset


def _init_idempotent(wire, versions) -> tuple:
    v = versions[InitProducerIdRequest.API_KEY][1]
    ans = wire.call(mk(InitProducerIdRequest, transactional_id=None, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1), v)
    assert ans.kind == "ok" and ans.response.error_code == 0, f"InitProducerId: {ans!r}"
    return ans.response.producer_id, ans.response.producer_epoch


def test_targeted_control_batch_refused(broker, topic):
    """Issue 14 #4 (failed before the fix: stored and acknowledged). A client-written control batch
    (attributes 0x20): INVALID_RECORD (87), nothing appended, with or without a producer id."""
    ck_create_topic(broker.bootstrap, topic, 1)
    wire, versions = _wire_versions(broker)
    try:
        before = _log_end(wire, versions, topic, 0)
        pid, epoch = _init_idempotent(wire, versions)
        marker = [(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", ())]  # an abort marker's key and value
        cases = {
            "no producer id": build_batch(marker, attributes=0x20),
            "transactional, no producer id": build_batch(marker, attributes=0x30),
            "idempotent producer": build_batch(marker, attributes=0x20, producer_id=pid, producer_epoch=epoch, base_sequence=0),
        }
        got = {name: _produce_one(wire, versions, topic, 0, b).error_code for name, b in cases.items()}
        after = _log_end(wire, versions, topic, 0)
    finally:
        wire.drop()
    assert got == {name: INVALID_RECORD for name in cases}, f"error codes {got}, expected {INVALID_RECORD} (INVALID_RECORD) for each"
    assert after == before, f"log end offset moved from {before} to {after}"


def test_targeted_timestamp_out_of_range(broker, topic):
    """Issue 14 (failed before the fix: message.timestamp.after.max.ms not enforced). CreateTime beyond
    now + message.timestamp.after.max.ms (default 1 hour) or before now -
    message.timestamp.before.max.ms (set on the topic): INVALID_TIMESTAMP (32); a current one: 0."""
    ck_create_topic(broker.bootstrap, topic, 1, config={"message.timestamp.before.max.ms": "3600000"})
    wire, versions = _wire_versions(broker)
    try:
        now = int(time.time() * 1000)
        rec = [(b"k", b"v", ())]
        got = {}
        for name, ts in {
            "now": now,
            "now + 2 h": now + 7_200_000,
            "INT64_MAX": INT64_MAX,
            "now - 2 h (before.max.ms 1 h)": now - 7_200_000,
        }.items():
            got[name] = _produce_one(wire, versions, topic, 0, build_batch(rec, base_timestamp=ts)).error_code
    finally:
        wire.drop()
    want = {"now": 0, "now + 2 h": INVALID_TIMESTAMP, "INT64_MAX": INVALID_TIMESTAMP, "now - 2 h (before.max.ms 1 h)": INVALID_TIMESTAMP}
    assert got == want, f"error codes {got}, expected {want}"


def test_targeted_create_partitions_overflow(fresh_broker, topic):
    """Issue 14 #1 (failed before the fix: the broker dies on an integer overflow). CreatePartitions with
    a count at or near INT32_MIN and assignments: refused (INVALID_PARTITIONS or
    INVALID_REQUEST), the broker alive, the topic unchanged. The issue's own bytes first."""
    broker = fresh_broker
    ck_create_topic(broker.bootstrap, "fuzz-topic", 1)
    with socket.create_connection((broker.host, broker.port), timeout=10) as s:
        s.sendall(bytes.fromhex("0000002e0025000300001d94000570726f626500020b66757a7a2d746f706963800000000202000000000000000003e80000"))
        s.settimeout(10)
        try:
            s.recv(65536)
        except OSError:
            pass
    down = broker_down(broker)
    assert down is None, f"{down} after the issue's CreatePartitions bytes"
    wire, versions = _wire_versions(broker)
    try:
        got = {}
        for count, assignments, validate in [
            (INT32_MIN, [[1]], False),
            (INT32_MIN + 1, [[1], [1]], True),
            (INT32_MIN, None, False),
            (-1, [[1]], False),
            (INT32_MAX, [[1]], False),
        ]:
            req = mk(
                CreatePartitionsRequest,
                topics=[{"name": topic if count != INT32_MIN else "fuzz-topic", "count": count, "assignments": None if assignments is None else [{"broker_ids": a} for a in assignments]}],
                timeout_ms=1000,
                validate_only=validate,
            )
            ans = wire.call(req, versions[CreatePartitionsRequest.API_KEY][1])
            down = broker_down(broker)
            assert down is None, f"{down} after CreatePartitions count={count} assignments={assignments}"
            got[(count, str(assignments))] = ans.errors if ans.kind == "ok" else ans.kind
    finally:
        wire.drop()
    bad = {k: v for k, v in got.items() if v == "closed" or (isinstance(v, list) and (not v or 0 in v))}
    assert not bad, f"accepted or unanswered: {bad} (all answers: {got})"


def test_targeted_fetch_isolation_level_out_of_range(broker, topic):
    """Issue 14 (failed before the fix: served as read_uncommitted). A Fetch with isolation_level 7 or -1
    is not a valid request: an error (top level or per partition) or a closed connection, never
    records."""
    ck_create_topic(broker.bootstrap, topic, 1)
    ck_produce(broker.bootstrap, topic, make_records(5, "iso", 1), acks="all")
    wire, versions = _wire_versions(broker)
    try:
        got = {}
        for level in (7, -1, 2):
            req = isolation_fetch(topic, 0, level)
            ans = wire.call(req, min(versions[FetchRequest.API_KEY][1], 12))
            if ans.kind == "closed":
                got[level] = "closed"
                continue
            r = ans.response
            parts = [p for t in r.responses for p in t.partitions]
            top = getattr(r, "error_code", 0) or 0
            got[level] = "refused" if top != 0 or (parts and all(p.error_code != 0 for p in parts)) else f"served ({[len(p.records or b'') for p in parts]} bytes)"
    finally:
        wire.drop()
    assert all(v in ("closed", "refused") for v in got.values()), f"isolation levels served: {got}"


def test_targeted_internal_topics_not_deletable(broker):
    """Issue 14 (failed before the fix: deleted). DeleteTopics of __consumer_offsets or
    __transaction_state: refused (a non-zero error), the topic still there."""
    wire, versions = _wire_versions(broker)
    try:
        # Make both internal topics exist: a standalone offset commit, a transactional producer.
        t = unique_topic("internal-check")
        ck_create_topic(broker.bootstrap, t, 1)
        standalone_commit_roundtrip(broker, versions, t)
        v = versions[InitProducerIdRequest.API_KEY][1]
        ans = wire.call(mk(InitProducerIdRequest, transactional_id=f"internal-check-{uuid.uuid4().hex[:6]}", transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1), v)
        assert ans.kind == "ok" and ans.response.error_code == 0, f"InitProducerId: {ans!r}"
        got = {}
        for name in ("__consumer_offsets", "__transaction_state"):
            v = versions[DeleteTopicsRequest.API_KEY][1]
            if v >= 6:
                req = mk(DeleteTopicsRequest, topics=[{"name": name, "topic_id": uuid.UUID(int=0)}], timeout_ms=30000)
            else:
                req = mk(DeleteTopicsRequest, topic_names=[name], timeout_ms=30000)
            ans = wire.call(req, v)
            got[name] = ans.errors if ans.kind == "ok" else ans.kind
        vm = versions[MetadataRequest.API_KEY][1]
        md = wire.call(mk(MetadataRequest, topics=None, allow_auto_topic_creation=False), vm)
        present = {tt.name for tt in md.response.topics if tt.error_code == 0}
    finally:
        wire.drop()
    deleted = {k: v for k, v in got.items() if isinstance(v, list) and v and all(e == 0 for e in v)}
    assert not deleted, f"internal topics deleted: {deleted}"
    missing = {"__consumer_offsets", "__transaction_state"} - present
    assert not missing, f"internal topics gone from metadata: {missing}"


def test_targeted_client_base_offset_at_int64_edges(fresh_broker, topic):
    """Found by the random mix (failed before the fix: the broker died, `baseOffset + lastOffsetDelta`
    traps in PartitionLog.validate). The base offset a client writes in a batch means nothing;
    Kafka assigns the offsets. A batch of two records at base offset INT64_MAX (or INT64_MAX - 1,
    INT64_MIN, -1), plain or compressed: the broker stays up and answers; a batch it acknowledges
    reads back at the offset it assigned."""
    broker = fresh_broker
    ck_create_topic(broker.bootstrap, topic, 1)
    wire, versions = _wire_versions(broker)
    got = {}
    acked = {}
    try:
        for base in (INT64_MAX, INT64_MAX - 1, INT64_MIN, -1):
            for attrs in (0, 1):
                recs = [(f"k{base}-{attrs}-{i}".encode(), f"v{i}".encode(), ()) for i in range(2)]
                try:
                    p = _produce_one(wire, versions, topic, 0, build_batch(recs, attributes=attrs, base_offset=base))
                except AssertionError:
                    p = None
                    wire.drop()
                down = broker_down(broker)
                assert down is None, f"{down} after a batch of 2 records at base offset {base} (attributes {attrs})"
                if p is None:
                    got[(base, attrs)] = "closed"
                    continue
                got[(base, attrs)] = p.error_code
                if p.error_code == 0:
                    for i, (k, v, _h) in enumerate(recs):
                        acked[p.base_offset + i] = (k, v)
    finally:
        wire.drop()
    if acked:
        back = read_partition(broker.bootstrap, topic, 0, max(acked) + 1)
        wrong = {o: (back.get(o), kv) for o, kv in acked.items() if back.get(o) != kv}
        assert not wrong, f"acknowledged records not read back as sent: {wrong}"
