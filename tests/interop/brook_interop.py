"""Shared helpers for the interop suite: record sets, and produce / consume / admin calls through
each real client (confluent-kafka = librdkafka, kafka-python, kcat), every one with a timeout.

A record set is a list of `Spec`s; what comes back from any client is a list of `Rec`s, and
`check_received` compares the two: every record back exactly once, offsets contiguous, order per
partition kept, key / value / headers / timestamp intact.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Iterable, Optional, Sequence

# How many records the large produce / consume tests send per client (the brief asks 100,000);
# BROOK_INTEROP_RECORDS lowers it for a quick local run.
RECORDS = int(os.environ.get("BROOK_INTEROP_RECORDS", "100000"))

# Seconds any one produce or consume phase may take before the test fails.
PHASE_TIMEOUT = float(os.environ.get("BROOK_INTEROP_PHASE_TIMEOUT", "180"))

ADMIN_TIMEOUT = 30.0  # seconds for one admin call, end to end


def unique_topic(prefix: str = "t") -> str:
    """A topic name no other test uses: legal characters only, well under 249 bytes."""
    clean = "".join(c if c.isalnum() or c in "-_" else "-" for c in prefix).strip("-")[:60] or "t"
    return f"{clean}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Spec:
    """A record to produce. `partition` None lets the client's partitioner choose."""

    seq: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple  # ((str, bytes), ...)
    partition: Optional[int]
    timestamp: Optional[int] = None  # ms; None: the client stamps it


@dataclass(frozen=True)
class Rec:
    """A record as a client returned it."""

    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple  # ((str, bytes), ...)
    timestamp: Optional[int] = None
    leader_epoch: Optional[int] = None


_PAD = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 4


def make_records(
    n: int,
    src: str,
    partitions: int,
    *,
    start: int = 0,
    text_only: bool = False,
    explicit_partition: bool = True,
    static_headers: Sequence = (),
) -> list:
    """n records numbered start.. with keys, values of varying length and headers.

    text_only: printable ASCII keys / values / headers, none null or empty (what kcat can carry
    through its line-based input and JSON output). Otherwise the set also has binary header
    values, a repeated header name with an empty value, null keys, null and empty values.
    static_headers: the headers every record carries (kcat can only add the same ones to all).
    """
    out = []
    for i in range(start, start + n):
        key: Optional[bytes] = f"{src}-k{i:07d}".encode()
        value: Optional[bytes] = f"{src}-v{i:07d}-".encode() + _PAD[: (i * 37) % 200]
        if static_headers:
            headers = tuple(static_headers)
        else:
            headers = (("seq", str(i).encode()), ("src", src.encode()))
            if not text_only:
                headers += (("bin", bytes([i % 256, 0, 255 - i % 256, 10, 13])),)
                if i % 7 == 0:
                    headers += (("seq", b""),)  # a repeated name, and an empty value
                if i % 1009 == 0:
                    value = None
                elif i % 997 == 5:
                    value = b""
                if i % 1013 == 3:
                    key = None
        part = (i % partitions) if explicit_partition else None
        out.append(Spec(i, key, value, headers, part))
    return out


def _seq_of(rec: Rec) -> Optional[int]:
    for name, value in rec.headers:
        if name == "seq" and value:
            return int(value)
    if rec.key is not None:
        tail = rec.key.rsplit(b"-k", 1)
        if len(tail) == 2 and tail[1].isdigit():
            return int(tail[1])
    return None


def check_received(
    sent: Sequence,
    got: Sequence,
    *,
    what: str = "",
    start_offsets: Optional[dict] = None,
    check_timestamps: bool = True,
) -> None:
    """Assert `got` holds every record of `sent` exactly once and nothing else, intact.

    - (partition, offset) unique; per partition the offsets are contiguous from
      start_offsets.get(p, 0) (a fresh topic, no compaction, no transactions);
    - per partition the records are in the order they were produced;
    - key, value, headers (in order), partition (when the spec fixed one) and timestamp (when
      the spec set one) are exactly as sent.
    """
    problems: list = []
    start_offsets = start_offsets or {}
    label = f"{what}: " if what else ""

    by_part: dict = defaultdict(list)
    seen_pos = set()
    for r in got:
        if (r.partition, r.offset) in seen_pos:
            problems.append(f"duplicate delivery of partition {r.partition} offset {r.offset}")
        seen_pos.add((r.partition, r.offset))
        by_part[r.partition].append(r)

    for p, recs in sorted(by_part.items()):
        offsets = [r.offset for r in recs]
        first = start_offsets.get(p, 0)
        expected = list(range(first, first + len(recs)))
        if offsets != expected:
            bad = next((i for i, (a, b) in enumerate(zip(offsets, expected)) if a != b), len(expected))
            problems.append(
                f"partition {p}: offsets not contiguous from {first}: at index {bad} "
                f"got {offsets[bad:bad + 5]} expected {expected[bad:bad + 5]}"
            )
        seqs = [_seq_of(r) for r in recs]
        for a, b in zip(seqs, seqs[1:]):
            if a is None or b is None or b <= a:
                problems.append(f"partition {p}: records out of produce order ({a} then {b})")
                break

    want = {s.seq: s for s in sent}
    matched = set()
    for r in got:
        seq = _seq_of(r)
        spec = want.get(seq)
        if spec is None:
            problems.append(f"unexpected record at partition {r.partition} offset {r.offset} (seq {seq})")
            continue
        if seq in matched:
            problems.append(f"record seq {seq} delivered twice")
            continue
        matched.add(seq)
        where = f"seq {seq} (partition {r.partition} offset {r.offset})"
        if r.key != spec.key:
            problems.append(f"{where}: key {r.key!r} != sent {spec.key!r}")
        if r.value != spec.value:
            problems.append(f"{where}: value {_short(r.value)} != sent {_short(spec.value)}")
        if tuple(r.headers) != tuple(spec.headers):
            problems.append(f"{where}: headers {r.headers!r} != sent {spec.headers!r}")
        if spec.partition is not None and r.partition != spec.partition:
            problems.append(f"{where}: partition {r.partition} != sent to {spec.partition}")
        if check_timestamps and spec.timestamp is not None and r.timestamp != spec.timestamp:
            problems.append(f"{where}: timestamp {r.timestamp} != sent {spec.timestamp}")
        if len(problems) > 40:
            break
    missing = sorted(set(want) - matched)
    if missing:
        problems.append(f"{len(missing)} of {len(want)} records never came back, first seqs {missing[:10]}")

    if problems:
        head = "\n  ".join(problems[:40])
        raise AssertionError(
            f"{label}{len(got)} records back for {len(sent)} sent; {len(problems)} problem(s):\n  {head}"
        )


def _short(b: Optional[bytes]) -> str:
    if b is None:
        return "None"
    return repr(b[:40]) + (f"...({len(b)} bytes)" if len(b) > 40 else "")


# --------------------------------------------------------------------------------------------
# confluent-kafka (librdkafka)


def ck_base_conf(bootstrap: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "client.id": "brook-interop-confluent",
        "socket.timeout.ms": 30000,
        "socket.connection.setup.timeout.ms": 10000,
        "reconnect.backoff.max.ms": 1000,
    }
    conf.update(extra)
    return conf


def ck_admin(bootstrap: str, **extra):
    from confluent_kafka.admin import AdminClient

    return AdminClient(ck_base_conf(bootstrap, **extra))


def ck_describe_cluster(bootstrap: str):
    admin = ck_admin(bootstrap)  # kept alive until the future is done: a destroyed client aborts it
    return admin.describe_cluster(request_timeout=15).result(timeout=ADMIN_TIMEOUT)


def ck_wait(futures: dict, timeout: float = ADMIN_TIMEOUT) -> dict:
    """The results of a dict of admin futures; raises the first failure (a KafkaException).
    The AdminClient that made them must stay referenced until then."""
    return {k: f.result(timeout=timeout) for k, f in futures.items()}


def ck_errors(futures: dict, timeout: float = ADMIN_TIMEOUT) -> dict:
    """Per key: None on success, else the KafkaError of the failure."""
    from confluent_kafka import KafkaException

    out = {}
    for k, f in futures.items():
        try:
            f.result(timeout=timeout)
            out[k] = None
        except KafkaException as e:
            out[k] = e.args[0]
    return out


def ck_create_topic(bootstrap: str, name: str, partitions: int = 1, config: Optional[dict] = None) -> None:
    from confluent_kafka.admin import NewTopic

    admin = ck_admin(bootstrap)
    fs = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=10,
        request_timeout=ADMIN_TIMEOUT,
    )
    ck_wait(fs)
    wait_for_partitions(bootstrap, name, partitions)


def wait_for_partitions(bootstrap: str, topic: str, partitions: int, timeout: float = 15.0) -> None:
    """Wait until metadata shows `topic` with `partitions` partitions, each with leader 1."""
    from confluent_kafka import Consumer

    # A consumer handle: librdkafka's consumer does not ask the broker to auto-create topics.
    c = Consumer(ck_base_conf(bootstrap, **{"group.id": "interop-metadata", "enable.auto.commit": False}))
    try:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            md = c.list_topics(topic=topic, timeout=10)
            t = md.topics.get(topic)
            last = t
            if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader == 1 and p.error is None for p in t.partitions.values()
            ):
                return
            time.sleep(0.1)
        raise AssertionError(
            f"topic {topic} not ready with {partitions} partitions after {timeout}s: "
            f"{None if last is None else (last.error, {k: (v.leader, v.error) for k, v in last.partitions.items()})}"
        )
    finally:
        c.close()


class CkErrors:
    """Collects librdkafka's error_cb events (transport failures and the like)."""

    def __init__(self) -> None:
        self.events: list = []

    def __call__(self, err) -> None:
        self.events.append(err)

    def unexpected(self) -> list:
        # Coordinator lookups belong to consumer groups, which Brook does not serve yet.
        return [e for e in self.events if "oordinator" not in str(e)]


def ck_producer(bootstrap: str, acks="all", errors: Optional[CkErrors] = None, **extra):
    """A confluent-kafka Producer. With acks=all it is idempotent (InitProducerId, sequence numbers
    the broker checks), which librdkafka is not by default, so that every large produce of the
    suite goes through the broker's duplicate and sequence checks; librdkafka refuses idempotence
    with acks 0 or 1, which then keep its default (off)."""
    from confluent_kafka import Producer

    conf = ck_base_conf(
        bootstrap,
        **{
            "acks": str(acks),
            "compression.type": "none",  # tests of compression ask for it
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "request.timeout.ms": 30000,
            "queue.buffering.max.messages": 200000,
            "max.in.flight.requests.per.connection": 5,
        },
    )
    if str(acks) in ("all", "-1"):
        conf["enable.idempotence"] = True
    if errors is not None:
        conf["error_cb"] = errors
    conf.update(extra)
    return Producer(conf)


def ck_send(producer, topic: str, specs: Sequence, *, timeout: float = PHASE_TIMEOUT, expect_errors: bool = False):
    """Produce every spec and wait for all delivery reports.

    Returns (delivered, failed): delivered maps seq -> (partition, offset); failed maps
    seq -> KafkaError. Unless expect_errors, any failure raises.
    """
    delivered: dict = {}
    failed: dict = {}

    def report(seq, err, msg):
        if err is not None:
            failed[seq] = err
        else:
            delivered[seq] = (msg.partition(), msg.offset())

    deadline = time.monotonic() + timeout
    for n, s in enumerate(specs):
        kwargs = {"value": s.value, "key": s.key, "on_delivery": partial(report, s.seq)}
        if s.headers:
            kwargs["headers"] = list(s.headers)
        if s.partition is not None:
            kwargs["partition"] = s.partition
        if s.timestamp is not None:
            kwargs["timestamp"] = s.timestamp
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise AssertionError(f"producer queue stayed full for {timeout}s ({n} of {len(specs)} queued)")
        if n % 1000 == 0:
            producer.poll(0)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    if left:
        raise AssertionError(f"{left} of {len(specs)} records not delivered within {timeout}s")
    if failed and not expect_errors:
        sample = list(failed.items())[:5]
        raise AssertionError(f"{len(failed)} of {len(specs)} deliveries failed, e.g. {sample}")
    return delivered, failed


def ck_produce(bootstrap: str, topic: str, specs: Sequence, acks="all", strict: bool = True, **extra) -> dict:
    """A new producer sends `specs` and is flushed; returns seq -> (partition, offset)."""
    errs = CkErrors()
    p = ck_producer(bootstrap, acks=acks, errors=errs, **extra)
    delivered, _ = ck_send(p, topic, specs)
    if strict and errs.unexpected():
        raise AssertionError(f"librdkafka reported errors while producing: {errs.unexpected()[:5]}")
    return delivered


def ck_consumer(bootstrap: str, errors: Optional[CkErrors] = None, **extra):
    from confluent_kafka import Consumer

    # group.id is mandatory for librdkafka's consumer, but with assign() and no commits it never
    # reaches a coordinator (Brook has no consumer groups yet).
    conf = ck_base_conf(
        bootstrap,
        **{
            "group.id": f"interop-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        },
    )
    if errors is not None:
        conf["error_cb"] = errors
    conf.update(extra)
    return Consumer(conf)


def ck_rec(m) -> Rec:
    ts_type, ts = m.timestamp()
    return Rec(
        m.partition(),
        m.offset(),
        m.key(),
        m.value(),
        tuple(m.headers() or ()),
        ts if ts_type != 0 else None,
        m.leader_epoch(),
    )


def ck_drain(consumer, expected: int, *, timeout: float = PHASE_TIMEOUT, linger: float = 0.5) -> list:
    """Consume until `expected` records arrived (then `linger` more seconds, to catch extras)."""
    from confluent_kafka import KafkaError

    out: list = []
    errors: list = []
    deadline = time.monotonic() + timeout
    stop_at = None
    while True:
        now = time.monotonic()
        if stop_at is None and len(out) >= expected:
            stop_at = now + linger
        if (stop_at is not None and now >= stop_at) or now >= deadline:
            break
        for m in consumer.consume(num_messages=5000, timeout=0.2):
            err = m.error()
            if err is None:
                out.append(ck_rec(m))
            elif err.code() == KafkaError._PARTITION_EOF or "oordinator" in str(err):
                continue
            else:
                errors.append(err)
                if err.fatal() or len(errors) > 20:
                    raise AssertionError(f"consumer errors: {errors[:5]}")
    if errors:
        raise AssertionError(f"consumer errors while reading ({len(out)} records read): {errors[:5]}")
    if len(out) < expected:
        raise AssertionError(f"only {len(out)} of {expected} records consumed within {timeout}s")
    return out


def ck_consume(
    bootstrap: str,
    topic: str,
    partitions: Iterable,
    expected: int,
    *,
    start=None,
    timeout: float = PHASE_TIMEOUT,
    strict: bool = True,
    linger: float = 0.5,
    **extra,
) -> list:
    """Assign `partitions` of `topic` (from the beginning unless start maps partition -> offset)
    and read `expected` records (then `linger` more seconds, to catch extras)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    errs = CkErrors()
    c = ck_consumer(bootstrap, errors=errs, **extra)
    try:
        c.assign([TopicPartition(topic, p, (start or {}).get(p, OFFSET_BEGINNING)) for p in partitions])
        out = ck_drain(c, expected, timeout=timeout, linger=linger)
    finally:
        c.close()
    if strict and errs.unexpected():
        raise AssertionError(f"librdkafka reported errors while consuming: {errs.unexpected()[:5]}")
    return out


# --------------------------------------------------------------------------------------------
# kafka-python


def kp_admin(bootstrap: str):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="brook-interop-kafka-python",
        request_timeout_ms=int(ADMIN_TIMEOUT * 1000),
        bootstrap_timeout_ms=20000,
    )


def kp_producer(bootstrap: str, acks="all", **extra):
    """A kafka-python KafkaProducer with its own idempotence default: kafka-python 3 is idempotent
    unless acks is set to 0 or 1 (it then turns idempotence off itself)."""
    from kafka import KafkaProducer

    conf = dict(
        bootstrap_servers=bootstrap,
        client_id="brook-interop-kafka-python",
        acks={"all": -1, "-1": -1, "1": 1, "0": 0}.get(str(acks), acks),
        compression_type=None,
        linger_ms=5,
        batch_size=65536,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=30000,
        delivery_timeout_ms=60000,
        max_block_ms=30000,
        bootstrap_timeout_ms=20000,
    )
    conf.update(extra)
    return KafkaProducer(**conf)


def kp_send(producer, topic: str, specs: Sequence, *, timeout: float = PHASE_TIMEOUT) -> dict:
    """Send every spec, flush, and return seq -> RecordMetadata; any failure raises."""
    futures = []
    for s in specs:
        futures.append(
            (
                s.seq,
                producer.send(
                    topic,
                    value=s.value,
                    key=s.key,
                    headers=list(s.headers),
                    partition=s.partition,
                    timestamp_ms=s.timestamp,
                ),
            )
        )
    producer.flush(timeout=timeout)
    out = {}
    failures = []
    for seq, f in futures:
        try:
            out[seq] = f.get(timeout=10)
        except Exception as e:  # noqa: BLE001 - report every kind of failure the same way
            failures.append((seq, repr(e)))
    if failures:
        raise AssertionError(f"{len(failures)} of {len(specs)} kafka-python sends failed, e.g. {failures[:5]}")
    return out


def kp_produce(bootstrap: str, topic: str, specs: Sequence, acks="all", **extra) -> dict:
    p = kp_producer(bootstrap, acks=acks, **extra)
    try:
        return kp_send(p, topic, specs)
    finally:
        p.close(timeout=10)


def kp_consumer(bootstrap: str, **extra):
    from kafka import KafkaConsumer

    conf = dict(
        bootstrap_servers=bootstrap,
        client_id="brook-interop-kafka-python",
        group_id=None,  # no consumer group: manual assignment only
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=30000,
        fetch_max_wait_ms=200,
        max_poll_records=5000,
        bootstrap_timeout_ms=20000,
    )
    conf.update(extra)
    return KafkaConsumer(**conf)


def kp_rec(r) -> Rec:
    return Rec(r.partition, r.offset, r.key, r.value, tuple((k, v) for k, v in (r.headers or ())), r.timestamp, r.leader_epoch)


def kp_consume(
    bootstrap: str,
    topic: str,
    partitions: Iterable,
    expected: int,
    *,
    start=None,
    timeout: float = PHASE_TIMEOUT,
    linger: float = 0.5,
    **extra,
) -> list:
    from kafka import TopicPartition

    c = kp_consumer(bootstrap, **extra)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        for tp in tps:
            if start and tp.partition in start:
                c.seek(tp, start[tp.partition])
            else:
                c.seek_to_beginning(tp)
        return kp_drain(c, expected, timeout=timeout, linger=linger)
    finally:
        c.close(autocommit=False, timeout_ms=5000)


# --------------------------------------------------------------------------------------------
# kcat (Debian's: kcat 1.7.1 on librdkafka 2.0.2)


def kcat_path() -> str:
    path = shutil.which("kcat")
    if path is None:
        raise AssertionError("kcat is not on PATH: run scripts/interop.sh, or apt-get install kcat")
    return path


def kcat(args: Sequence, *, input_bytes: Optional[bytes] = None, timeout: float = 60.0, check: bool = True):
    proc = subprocess.run(
        [kcat_path(), *args],
        input=input_bytes,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kcat {' '.join(args)} exited {proc.returncode}\nstderr: {proc.stderr.decode(errors='replace')[-3000:]}"
        )
    return proc


def kcat_produce(bootstrap: str, topic: str, specs: Sequence, acks="all", *, timeout: float = PHASE_TIMEOUT,
                 compression: str = "none", linger_ms: int = 5) -> None:
    """Feed `specs` to `kcat -P` as key|value lines. kcat can only attach the same headers to
    every record, so specs must be text_only with static_headers; the partition comes from
    librdkafka's default partitioner over the key (spec.partition must be None). Idempotence
    stays at librdkafka's default (off)."""
    headers = specs[0].headers if specs else ()
    args = ["-P", "-b", bootstrap, "-t", topic, "-K", "|", "-q"]
    for name, value in headers:
        args += ["-H", f"{name}={value.decode()}"]
    args += [
        "-X", f"acks={acks}",
        "-X", f"compression.codec={compression}",
        "-X", f"linger.ms={linger_ms}",
        "-X", "message.timeout.ms=60000",
    ]
    lines = []
    for s in specs:
        assert s.partition is None and s.headers == headers and s.key and s.value
        assert b"|" not in s.key and b"\n" not in s.key + s.value
        lines.append(s.key + b"|" + s.value)
    kcat(args, input_bytes=b"\n".join(lines) + b"\n", timeout=timeout)


def kcat_consume(bootstrap: str, topic: str, *, timeout: float = PHASE_TIMEOUT, extra_args: Sequence = ()) -> list:
    """`kcat -C -o beginning -e -J`: every partition of `topic`, up to its end."""
    proc = kcat(
        ["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q", "-m", "15", *extra_args],
        timeout=timeout,
    )
    return kcat_json_records(proc.stdout)


# --------------------------------------------------------------------------------------------
# Raw Kafka protocol, for the checks no client makes on purpose


def request_frame(api_key: int, api_version: int, correlation_id: int, client_id: Optional[str], body: bytes = b"") -> bytes:
    """A size-prefixed request with header v1 (int16 key, int16 version, int32 correlation id,
    int16-length client id; -1 for null). A flexible request needs its header's tagged-field
    byte (0x00) at the start of `body`."""
    if client_id is None:
        cid = struct.pack(">h", -1)
    else:
        raw = client_id.encode()
        cid = struct.pack(">h", len(raw)) + raw
    payload = struct.pack(">hhi", api_key, api_version, correlation_id) + cid + body
    return struct.pack(">i", len(payload)) + payload


def compact_string(s: str) -> bytes:
    raw = s.encode()
    return uvarint(len(raw) + 1) + raw


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"response truncated: need {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self) -> int:
        shift = 0
        value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 35:
                raise ValueError("varint too long")

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())

    def remaining(self) -> int:
        return len(self.data) - self.pos


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    return s


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_response(sock: socket.socket) -> bytes:
    """One size-prefixed response (without its size)."""
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 0 <= size < 64 * 1024 * 1024, f"implausible response size {size}"
    return recv_exact(sock, size)


def parse_api_versions(body: bytes, version: int) -> tuple:
    """(correlation_id, error_code, {api_key: (min, max)}) of an ApiVersions response of
    `version` (the response header is v0, a bare correlation id, for every version)."""
    r = Reader(body)
    corr = r.int32()
    err = r.int16()
    apis = {}
    if version >= 3:
        n = r.uvarint() - 1
        for _ in range(max(n, 0)):
            key, lo, hi = r.int16(), r.int16(), r.int16()
            r.skip_tagged_fields()
            apis[key] = (lo, hi)
    else:
        n = r.int32()
        for _ in range(max(n, 0)):
            key, lo, hi = r.int16(), r.int16(), r.int16()
            apis[key] = (lo, hi)
    return corr, err, apis


def api_versions_v3_body() -> bytes:
    """The header's empty tagged fields, then ApiVersions v3's body: client software name and
    version (compact strings) and empty tagged fields."""
    return b"\x00" + compact_string("brook-interop") + compact_string("1.0") + b"\x00"


# --------------------------------------------------------------------------------------------
# Consumer groups

# Classic-protocol timings for group members: Kafka's group.min.session.timeout.ms is 6000, so
# that is the shortest session a broker with default settings accepts. max.poll.interval.ms is
# also the rebalance timeout, the longest a JoinGroup waits for the other members.
GROUP_SESSION_MS = 6000
GROUP_HEARTBEAT_MS = 1000
GROUP_MAX_POLL_MS = 20000


def ck_group_conf(
    bootstrap: str,
    group: str,
    *,
    protocol: str = "classic",
    strategy: Optional[str] = "range",
    remote_assignor: Optional[str] = None,
    **extra,
) -> dict:
    """A librdkafka consumer configuration for a member of `group`: no auto commit, reads from the
    beginning where the group has no committed offset. protocol "classic" (JoinGroup / SyncGroup,
    client-side `strategy`) or "consumer" (KIP-848 ConsumerGroupHeartbeat, server-side
    `remote_assignor`; librdkafka refuses the classic-only session / heartbeat / strategy settings
    then)."""
    conf = ck_base_conf(
        bootstrap,
        **{
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        },
    )
    if protocol == "consumer":
        conf["group.protocol"] = "consumer"
        if remote_assignor:
            conf["group.remote.assignor"] = remote_assignor
    else:
        conf["session.timeout.ms"] = GROUP_SESSION_MS
        conf["heartbeat.interval.ms"] = GROUP_HEARTBEAT_MS
        conf["max.poll.interval.ms"] = GROUP_MAX_POLL_MS
        if strategy:
            conf["partition.assignment.strategy"] = strategy
    conf.update(extra)
    return conf


def ck_group_consumer(bootstrap: str, group: str, *, errors: Optional[CkErrors] = None, **kw):
    """A confluent-kafka Consumer for `group` (see ck_group_conf); the caller subscribes."""
    from confluent_kafka import Consumer

    conf = ck_group_conf(bootstrap, group, **kw)
    if errors is not None:
        conf["error_cb"] = errors
    return Consumer(conf)


def kp_assignors(strategy: str) -> tuple:
    """kafka-python's assignor classes for a librdkafka-style strategy list ("range,roundrobin")."""
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    known = {
        "range": RangePartitionAssignor,
        "roundrobin": RoundRobinPartitionAssignor,
        "cooperative-sticky": CooperativeStickyAssignor,
    }
    return tuple(known[name.strip()] for name in strategy.split(","))


def kp_group_consumer(bootstrap: str, group: str, *, strategy: str = "range", **extra):
    """A kafka-python KafkaConsumer for `group` (classic protocol, no auto commit, from the
    beginning where the group has no committed offset); the caller subscribes."""
    from kafka import KafkaConsumer

    conf = dict(
        bootstrap_servers=bootstrap,
        client_id="brook-interop-kafka-python",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=GROUP_SESSION_MS,
        heartbeat_interval_ms=GROUP_HEARTBEAT_MS,
        max_poll_interval_ms=GROUP_MAX_POLL_MS,
        partition_assignment_strategy=kp_assignors(strategy),
        request_timeout_ms=30000,
        fetch_max_wait_ms=200,
        max_poll_records=5000,
        bootstrap_timeout_ms=20000,
    )
    conf.update(extra)
    return KafkaConsumer(**conf)


def kp_drain(consumer, expected: int, *, timeout: float = PHASE_TIMEOUT, linger: float = 0.5) -> list:
    """Poll a (subscribed or assigned) kafka-python consumer until `expected` records arrived,
    then `linger` more seconds to catch extras."""
    out: list = []
    deadline = time.monotonic() + timeout
    stop_at = None
    while True:
        now = time.monotonic()
        if stop_at is None and len(out) >= expected:
            stop_at = now + linger
        if (stop_at is not None and now >= stop_at) or now >= deadline:
            break
        for recs in consumer.poll(timeout_ms=200).values():
            out.extend(kp_rec(r) for r in recs)
    if len(out) < expected:
        raise AssertionError(f"kafka-python read only {len(out)} of {expected} records within {timeout}s")
    return out


def kcat_json_records(stdout: bytes) -> list:
    """Rec for each line of `kcat -J` output."""
    out = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        flat = obj.get("headers") or []
        headers = tuple((flat[i], None if flat[i + 1] is None else flat[i + 1].encode()) for i in range(0, len(flat), 2))
        key = obj.get("key")
        payload = obj.get("payload")
        out.append(
            Rec(
                obj["partition"],
                obj["offset"],
                None if key is None else key.encode(),
                None if payload is None else payload.encode(),
                headers,
                obj.get("ts"),
            )
        )
    return out


def kcat_group_consume(
    bootstrap: str,
    group: str,
    topic: str,
    count: int,
    *,
    timeout: float = 60.0,
    extra_args: Sequence = (),
) -> list:
    """`kcat -G group topic -c count -J`: a balanced consumer (librdkafka's KafkaConsumer, classic
    protocol, auto commit on) that exits after `count` records, committing on close (-c rather
    than -e, which older kcat does not honour in -G mode)."""
    args = [
        "-b", bootstrap, "-G", group, "-J", "-q", "-c", str(count),
        "-X", "auto.offset.reset=earliest",
        "-X", f"session.timeout.ms={GROUP_SESSION_MS}",
        "-X", f"heartbeat.interval.ms={GROUP_HEARTBEAT_MS}",
        *extra_args,
        topic,
    ]
    try:
        proc = subprocess.run(
            [kcat_path(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        lines = len((e.stdout or b"").splitlines())
        raise AssertionError(
            f"kcat {' '.join(args)} read {lines} of {count} records and had not exited after {timeout}s\n"
            f"stderr: {(e.stderr or b'').decode(errors='replace')[-3000:]}"
        ) from None
    if proc.returncode != 0:
        raise AssertionError(
            f"kcat {' '.join(args)} exited {proc.returncode}\nstderr: {proc.stderr.decode(errors='replace')[-3000:]}"
        )
    return kcat_json_records(proc.stdout)


def api_versions(port: int) -> dict:
    """{api_key: (min, max)} from the broker's ApiVersions v3 answer."""
    with connect(port) as s:
        s.sendall(request_frame(18, 3, 1, "brook-interop", api_versions_v3_body()))
        _, err, apis = parse_api_versions(read_response(s), 3)
    if err != 0:
        raise AssertionError(f"ApiVersions v3 answered error {err}")
    return apis


# A confluent-kafka group member in its own process, so that a test can SIGKILL it (no
# LeaveGroup, no final commit: a crashed consumer). It prints one JSON event per line on stdout:
# assignment changes, the records it consumed (printed, i.e. "processed", before it commits
# them when opts["commit"]), commit outcomes and errors. It exits on SIGTERM (closing the
# consumer, which leaves the group), when its parent goes away, or after opts["lifetime"] s.
_CK_MEMBER_SCRIPT = r"""
import json, os, signal, sys, time
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

conf, topic, opts = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
parent = os.getppid()
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))


def emit(kind, **fields):
    fields["ev"] = kind
    fields["t"] = time.time()
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


conf["error_cb"] = lambda err: emit("error", err=str(err))
c = Consumer(conf)
c.subscribe(
    [topic],
    on_assign=lambda _c, ps: emit("assign", parts=sorted(p.partition for p in ps)),
    on_revoke=lambda _c, ps: emit("revoke", parts=sorted(p.partition for p in ps)),
)
emit("started", pid=os.getpid())
commit = bool(opts.get("commit"))
batch = int(opts.get("batch", 100))
end = time.monotonic() + float(opts.get("lifetime", 240))
last = None
try:
    while not stopping and time.monotonic() < end and os.getppid() == parent:
        recs, upto = [], {}
        for m in c.consume(num_messages=batch, timeout=0.1):
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    emit("error", err=str(err))
                continue
            v = m.value()
            recs.append([m.partition(), m.offset(), None if v is None else v.decode("utf-8", "replace")])
            upto[m.partition()] = m.offset() + 1
        if recs:
            emit("msgs", recs=recs)
            if commit:
                offsets = sorted(upto.items())
                try:
                    res = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets], asynchronous=False)
                    failed = [[tp.partition, str(tp.error)] for tp in (res or []) if tp.error is not None]
                    emit("commit", offsets=offsets, failed=failed)
                except KafkaException as e:
                    emit("commit_error", offsets=offsets, err=str(e))
        parts = sorted(tp.partition for tp in c.assignment())
        if parts != last:
            last = parts
            emit("assignment", parts=parts)
finally:
    c.close()
    emit("closed")
"""


class CkMemberProcess:
    """A librdkafka group member running _CK_MEMBER_SCRIPT in a child process. `conf` is a plain
    ck_group_conf dict (no callbacks). The events it prints are gathered by a reader thread:
    `records` [(partition, offset, value)], `assignment` (the last one it reported, None before
    the first), `events` (all of them)."""

    def __init__(self, name: str, conf: dict, topic: str, log_path, *, commit: bool = False, batch: int = 100, lifetime: float = 240.0) -> None:
        self.name = name
        self.log_path = log_path
        self.records: list = []
        self.events: list = []
        self.assignment: Optional[tuple] = None
        self.closed = False
        self._lock = threading.Lock()
        opts = {"commit": commit, "batch": batch, "lifetime": lifetime}
        self._log = open(log_path, "wb")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CK_MEMBER_SCRIPT, json.dumps(conf), topic, json.dumps(opts)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name=f"member-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(ev)
                kind = ev.get("ev")
                if kind == "msgs":
                    self.records.extend(tuple(r) for r in ev["recs"])
                elif kind == "assignment":
                    self.assignment = tuple(ev["parts"])
                elif kind == "closed":
                    self.closed = True

    # The interface the group tests' wait loops use for every kind of member.
    def step(self, timeout: float = 0.02) -> None:
        time.sleep(timeout)

    def parts(self) -> Optional[tuple]:
        with self._lock:
            return self.assignment

    def values(self) -> list:
        with self._lock:
            return [r[2] for r in self.records]

    def errors(self) -> list:
        with self._lock:
            return [ev for ev in self.events if ev.get("ev") in ("error", "commit_error") or (ev.get("ev") == "commit" and ev.get("failed"))]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL by PID: no LeaveGroup, no commit."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._finish(10.0)

    def terminate(self) -> None:
        """SIGTERM by PID, without waiting: the child closes its consumer (LeaveGroup) and exits."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def close(self, timeout: float = 20.0) -> None:
        """SIGTERM (the child closes its consumer: LeaveGroup), SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def _finish(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self._reader.join(timeout=5)
        if not self._log.closed:
            self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = open(self.log_path, "rb").read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
