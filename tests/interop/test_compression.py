"""Compression: gzip, snappy, lz4 and zstd batches produced by confluent-kafka, kafka-python and
kcat are stored as they came (checked in the segment files) and read back intact by all three;
a topic with compression.type=zstd recompresses an lz4 producer's batches; `brook produce
--compression` writes what the clients read; corrupt compressed batches and a zip bomb are
refused with CORRUPT_MESSAGE and leave the log as it was."""
from __future__ import annotations

import functools
import re
import struct
import subprocess
import zlib

import pytest

from conftest import BROOK_BIN
from brook_interop import (
    check_received,
    ck_consume,
    ck_create_topic,
    ck_produce,
    compact_string,
    connect,
    kcat_consume,
    kcat_produce,
    kp_consume,
    kp_produce,
    make_records,
    read_response,
    request_frame,
    unique_topic,
)

CODECS = ["gzip", "snappy", "lz4", "zstd"]
CLIENTS = ["confluent", "kafka-python", "kcat"]
PARTITIONS = 2
N = 2000
KCAT_HEADERS = (("src", b"kcat"), ("codec", b"on"))
CORRUPT_MESSAGE = 2
CODEC_ID = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def produce(client: str, bootstrap: str, topic: str, codec: str) -> list:
    """Text records (kcat reads them back as JSON), with keys and headers."""
    if client == "confluent":
        specs = make_records(N, "ck", PARTITIONS, text_only=True)
        # linger: batches large enough that every codec has something to work on.
        ck_produce(bootstrap, topic, specs, **{"compression.type": codec, "linger.ms": 50})
    elif client == "kafka-python":
        specs = make_records(N, "kp", PARTITIONS, text_only=True)
        kp_produce(bootstrap, topic, specs, compression_type=codec, linger_ms=50)
    else:
        specs = make_records(N, "kc", PARTITIONS, text_only=True, explicit_partition=False, static_headers=KCAT_HEADERS)
        kcat_produce(bootstrap, topic, specs, compression=codec, linger_ms=50)
    return specs


def consume(client: str, bootstrap: str, topic: str, n: int) -> list:
    if client == "confluent":
        return ck_consume(bootstrap, topic, range(PARTITIONS), n)
    if client == "kafka-python":
        return kp_consume(bootstrap, topic, range(PARTITIONS), n)
    return kcat_consume(bootstrap, topic)


def stored_batches(broker, topic: str) -> list:
    """(codec name, record count) of every batch in the topic's segment files, from `brook log dump`."""
    batches = []
    for part in range(PARTITIONS):
        d = broker.data_dir / f"{topic}-{part}"
        for log in sorted(d.glob("*.log")):
            out = subprocess.run([str(BROOK_BIN), "log", "dump", str(log)], capture_output=True, timeout=60)
            assert out.returncode == 0, out.stderr.decode(errors="replace")
            for count, codec in re.findall(rb"count: (\d+) .*?compresscodec: (\w+)", out.stdout):
                batches.append((codec.decode(), int(count)))
    return batches


def stored_codecs(broker, topic: str) -> dict:
    """{codec name: batches} over the topic's segment files."""
    counts: dict = {}
    for codec, _ in stored_batches(broker, topic):
        counts[codec] = counts.get(codec, 0) + 1
    return counts


# librdkafka sends a batch uncompressed when compressing it would make it larger, which happens
# to a batch of a record or two under a slow machine's short linger; such batches prove nothing
# about the broker, which keeps whatever codec a batch came with.
SMALL_BATCH = 4


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", CLIENTS)
def test_codec_roundtrip_across_clients(broker, producer, codec):
    topic = unique_topic(f"cmp-{producer}-{codec}")
    ck_create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    specs = produce(producer, broker.bootstrap, topic, codec)
    batches = stored_batches(broker, topic)
    stored = {c for c, _ in batches}
    large = {c for c, n in batches if n > SMALL_BATCH}
    tolerated = {codec, "none"} if producer in ("confluent", "kcat") else {codec}
    assert codec in stored and large <= {codec} and stored <= tolerated, \
        f"{producer} {codec}: the log holds batches (codec, records) {sorted(batches)}"
    for consumer in CLIENTS:
        got = consume(consumer, broker.bootstrap, topic, len(specs))
        check_received(specs, got, what=f"{producer} {codec} → {consumer}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("target,producer_codec", [("zstd", "lz4"), ("uncompressed", "snappy"), ("gzip", "none")])
def test_topic_compression_type_recompresses(broker, target, producer_codec):
    topic = unique_topic(f"cmp-topic-{target}")
    ck_create_topic(broker.bootstrap, topic, partitions=PARTITIONS, config={"compression.type": target})
    specs = make_records(N, "ck", PARTITIONS)  # with binary headers, null keys and values
    ck_produce(broker.bootstrap, topic, specs, **{"compression.type": producer_codec, "linger.ms": 50})
    stored = stored_codecs(broker, topic)
    want = "none" if target == "uncompressed" else target
    assert set(stored) == {want}, f"topic compression.type={target}, producer {producer_codec}: log holds {stored}"
    for consumer in ["confluent", "kafka-python"]:
        check_received(specs, consume(consumer, broker.bootstrap, topic, len(specs)),
                       what=f"{producer_codec} → topic {target} → {consumer}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
def test_brook_produce_compression(broker, codec):
    topic = unique_topic(f"cmp-cli-{codec}")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    lines = [f"k{i}\tvalue {i} " + "x" * (i % 50) for i in range(500)]
    out = subprocess.run(
        [str(BROOK_BIN), "produce", "--bootstrap-server", broker.bootstrap, "--topic", topic,
         "--key-separator", "\t", "--compression", codec],
        input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    counts = {}
    d = broker.data_dir / f"{topic}-0"
    for log in d.glob("*.log"):
        dump = subprocess.run([str(BROOK_BIN), "log", "dump", "--print-data-log", str(log)], capture_output=True, timeout=60)
        for c in re.findall(rb"compresscodec: (\w+)", dump.stdout):
            counts[c.decode()] = counts.get(c.decode(), 0) + 1
        assert b"payload: value 499" in dump.stdout, "log dump decodes the compressed records"
    assert set(counts) == {codec}, counts
    got = kcat_consume(broker.bootstrap, topic)
    assert [(r.key, r.value) for r in got] == [tuple(x.encode() for x in l.split("\t")) for l in lines]


# --------------------------------------------------------------------------------------------
# Bad compressed batches, through a raw Produce v3 request


def batch(codec: str, records_section: bytes, count: int) -> bytes:
    """A RecordBatch v2 whose records section is `records_section` as given (compressed or not),
    with a correct CRC: only what is inside is wrong."""
    from kafka.record.util import calc_crc32c

    attributes = CODEC_ID[codec]
    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, 1000, 1000, -1, -1, -1, count) + records_section
    crc = calc_crc32c(after_crc)
    body = struct.pack(">ibI", 0, 2, crc) + after_crc  # leader epoch, magic, crc
    return struct.pack(">qi", 0, len(body)) + body


def plain_records(n: int, value: bytes = b"v") -> bytes:
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i in range(n):
        b.append(i, timestamp=1000, key=b"k%d" % i, value=value, headers=[])
    return bytes(b.build())[61:]


def compress(codec: str, data: bytes) -> bytes:
    if codec == "gzip":
        c = zlib.compressobj(wbits=31)
        return c.compress(data) + c.flush()
    if codec == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    if codec == "lz4":
        import lz4.frame
        return lz4.frame.compress(data)
    import snappy
    return snappy.compress(data)


@functools.lru_cache(maxsize=None)
def bomb(codec: str) -> bytes:
    return compress(codec, bytes(80 << 20))


def produce_raw(port: int, topic: str, records: bytes) -> int:
    """Produce v3 to partition 0; returns the partition's error code."""
    body = struct.pack(">hhi", -1, -1, 10000)  # null transactional id, acks=all, timeout
    body += struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic.encode()
    body += struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(records)) + records
    with connect(port) as sock:
        sock.sendall(request_frame(0, 3, 7, "raw", body))
        resp = read_response(sock)
    # correlation id, topics[1]: name, partitions[1]: index, error code
    _corr, _n = struct.unpack(">ii", resp[:8])
    name_len = struct.unpack(">h", resp[8:10])[0]
    pos = 10 + name_len + 4
    _index, code = struct.unpack(">ih", resp[pos:pos + 6])
    return code


def end_offset(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


BAD = {
    "garbage": lambda codec: (b"\x00\x01not a compressed stream at all" * 3, 3),
    "truncated": lambda codec: (compress(codec, plain_records(50))[:-7], 50),
    "count mismatch": lambda codec: (compress(codec, plain_records(5)), 9),
    # 80 MiB of zeros, over the 64 MiB a batch's records may decompress to.
    "bomb": lambda codec: (bomb(codec), 1),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", list(BAD))
def test_bad_compressed_batch_is_corrupt_message(broker, codec, kind):
    topic = unique_topic(f"cmp-bad-{codec}")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    section, count = BAD[kind](codec)
    if kind == "bomb":
        assert len(section) < 8 << 20, f"{codec} bomb is {len(section)} bytes"
    code = produce_raw(broker.port, topic, batch(codec, section, count))
    assert code == CORRUPT_MESSAGE, f"{kind} {codec} batch: error {code}, expected CORRUPT_MESSAGE (2)"
    # A good batch right after is taken at offset 0: nothing of the bad one was written.
    good = compress(codec, plain_records(3))
    assert produce_raw(broker.port, topic, batch(codec, good, 3)) == 0
    assert end_offset(broker.bootstrap, topic) == 3


# Large compressed produces off the event loop, in the order they came


def random_records(n: int, size: int) -> bytes:
    """n records of `size` random (incompressible) bytes: compressed, about as large."""
    import os
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i in range(n):
        b.append(i, timestamp=1000, key=b"k%d" % i, value=os.urandom(size), headers=[])
    return bytes(b.build())[61:]


def produce_pipelined(port: int, topic: str, batches: list) -> list:
    """One Produce v3 request per batch to partition 0, all sent on one connection before any
    answer is read; returns (correlation id, error code, base offset) per answer, as they came."""
    frames = b""
    for i, records in enumerate(batches):
        body = struct.pack(">hhi", -1, 1, 10000)  # null transactional id, acks=1, timeout
        body += struct.pack(">i", 1) + struct.pack(">h", len(topic)) + topic.encode()
        body += struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(records)) + records
        frames += request_frame(0, 3, 100 + i, "raw", body)
    answers = []
    with connect(port) as sock:
        sock.sendall(frames)
        for _ in batches:
            resp = read_response(sock)
            corr, _n = struct.unpack(">ii", resp[:8])
            name_len = struct.unpack(">h", resp[8:10])[0]
            pos = 10 + name_len + 4
            _index, code, base = struct.unpack(">ihq", resp[pos:pos + 14])
            answers.append((corr, code, base))
    return answers


@pytest.mark.timeout(120)
def test_large_compressed_produces_keep_their_order_on_a_connection(broker):
    """A produce with large compressed batches is decompressed and checked off the event loop;
    the requests after it on the same connection wait for it, so they reach the partition in
    the order they came. Raw: a 600 KB gzip batch, then small ones, pipelined on one connection,
    get offsets in request order. confluent-kafka (no idempotence, 10 requests in flight, linger
    0) alternating 300 KB and tiny gzip records: the partition holds them in the order sent."""
    topic = unique_topic("cmp-order")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    large = batch("gzip", compress("gzip", random_records(600, 1000)), 600)
    assert len(large) > 64 * 1024
    small = batch("gzip", compress("gzip", plain_records(2)), 2)
    answers = produce_pipelined(broker.port, topic, [large, small, small, large, small])
    assert answers == [(100, 0, 0), (101, 0, 600), (102, 0, 602), (103, 0, 604), (104, 0, 1204)], answers

    from confluent_kafka import Producer
    topic = unique_topic("cmp-order-ck")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    import os
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "gzip", "linger.ms": 0, "acks": 1,
                         "enable.idempotence": False, "max.in.flight": 10, "retries": 0})
    sent, errors = [], []
    for i in range(40):
        value = (b"%04d" % i) + (os.urandom(300_000) if i % 2 == 0 else b"tiny")
        sent.append(value)
        producer.produce(topic, value=value, partition=0, on_delivery=lambda err, _m: err and errors.append(err))
    assert producer.flush(60) == 0 and not errors, errors
    got = [r.value for r in ck_consume(broker.bootstrap, topic, [0], len(sent))]
    assert [v[:4] for v in got] == [v[:4] for v in sent]
    assert got == sent
