"""Produce and consume through every client, with keys and headers over 4 partitions, acks=1 and
acks=all; each record must come back exactly once, in order per partition, intact. Then across
clients, acks=0, and a record over max.message.bytes."""
from __future__ import annotations

import os
from collections import defaultdict

import pytest
from confluent_kafka import KafkaError, TopicPartition

from brook_interop import (
    RECORDS,
    check_received,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_produce,
    ck_producer,
    ck_send,
    CkErrors,
    kcat_consume,
    kcat_produce,
    kp_consume,
    kp_producer,
    kp_produce,
    kp_send,
    make_records,
    Spec,
    unique_topic,
)

PARTITIONS = 4
# kafka-python is pure Python, yet fast enough for all of them (about 16 s for 100,000 records
# each way against a debug build of brook); BROOK_INTEROP_KP_RECORDS lowers it on its own.
KP_RECORDS = min(RECORDS, int(os.environ.get("BROOK_INTEROP_KP_RECORDS", RECORDS)))
CROSS_RECORDS = min(RECORDS, 5000)
KCAT_HEADERS = (("src", b"kcat"), ("tool", b"kcat-interop"))


def check_delivery_offsets(specs, offsets_by_seq, what):
    """Delivery reports: each partition's records got offsets 0..n-1 in produce order."""
    per_part = defaultdict(list)
    for s in specs:
        part, off = offsets_by_seq[s.seq]
        if s.partition is not None:
            assert part == s.partition, f"{what}: seq {s.seq} went to partition {part}, not {s.partition}"
        per_part[part].append(off)
    for part, offs in per_part.items():
        assert offs == list(range(len(offs))), f"{what}: partition {part} delivery offsets {offs[:10]}..."


# --------------------------------------------------------------------------------------------
# One client each way


@pytest.mark.timeout(900)
@pytest.mark.parametrize("acks", ["1", "all"])
def test_confluent_roundtrip(broker, topic, acks):
    ck_create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    specs = make_records(RECORDS, "ck", PARTITIONS)
    delivered = ck_produce(broker.bootstrap, topic, specs, acks=acks)
    check_delivery_offsets(specs, delivered, f"confluent acks={acks}")
    got = ck_consume(broker.bootstrap, topic, range(PARTITIONS), len(specs))
    check_received(specs, got, what=f"confluent acks={acks}")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("acks", ["1", "all"])
def test_kafka_python_roundtrip(broker, topic, acks):
    ck_create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    specs = make_records(KP_RECORDS, "kp", PARTITIONS)
    meta = kp_produce(broker.bootstrap, topic, specs, acks=acks)
    check_delivery_offsets(specs, {seq: (m.partition, m.offset) for seq, m in meta.items()}, f"kafka-python acks={acks}")
    got = kp_consume(broker.bootstrap, topic, range(PARTITIONS), len(specs))
    check_received(specs, got, what=f"kafka-python acks={acks}")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("acks", ["1", "all"])
def test_kcat_roundtrip(broker, topic, acks):
    ck_create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    # kcat: text lines "key|value", the same headers on every record, partition by key hash.
    specs = make_records(RECORDS, "kc", PARTITIONS, text_only=True, explicit_partition=False, static_headers=KCAT_HEADERS)
    kcat_produce(broker.bootstrap, topic, specs, acks=acks)
    got = kcat_consume(broker.bootstrap, topic)
    check_received(specs, got, what=f"kcat acks={acks}")
    if len(specs) >= 1000:
        assert {r.partition for r in got} == set(range(PARTITIONS)), "the key partitioner should use every partition"


# --------------------------------------------------------------------------------------------
# Across clients


def _produce(client, bootstrap, topic, specs):
    if client == "confluent":
        ck_produce(bootstrap, topic, specs, acks="all")
    elif client == "kafka-python":
        kp_produce(bootstrap, topic, specs, acks="all")
    else:
        kcat_produce(bootstrap, topic, specs, acks="all")


def _consume(client, bootstrap, topic, n):
    if client == "confluent":
        return ck_consume(bootstrap, topic, range(PARTITIONS), n)
    if client == "kafka-python":
        return kp_consume(bootstrap, topic, range(PARTITIONS), n)
    return kcat_consume(bootstrap, topic)


CLIENTS = ["confluent", "kafka-python", "kcat"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "producer,consumer",
    [(p, c) for p in CLIENTS for c in CLIENTS if p != c],
    ids=lambda v: v,
)
def test_cross_client(broker, topic, producer, consumer):
    ck_create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    if producer == "kcat":
        specs = make_records(CROSS_RECORDS, "x", PARTITIONS, text_only=True, explicit_partition=False, static_headers=KCAT_HEADERS)
    else:
        # kcat prints JSON, so it is given text; the other readers get the binary cases too.
        specs = make_records(CROSS_RECORDS, "x", PARTITIONS, text_only=(consumer == "kcat"))
    _produce(producer, broker.bootstrap, topic, specs)
    got = _consume(consumer, broker.bootstrap, topic, len(specs))
    check_received(specs, got, what=f"{producer} -> {consumer}")


# --------------------------------------------------------------------------------------------
# acks=0


def test_acks_zero_confluent(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    specs = make_records(2000, "a0", 2)
    errs = CkErrors()
    p = ck_producer(broker.bootstrap, acks=0, errors=errs)
    ck_send(p, topic, specs)
    # The broker sends no response to an acks=0 produce: if it did, librdkafka's next request on
    # that connection would be paired with the wrong answer.
    assert topic in p.list_topics(topic=topic, timeout=10).topics
    more = make_records(500, "a0", 2, start=2000)
    ck_send(p, topic, more)
    assert not errs.unexpected(), errs.unexpected()
    got = ck_consume(broker.bootstrap, topic, [0, 1], len(specs) + len(more), timeout=60)
    check_received(specs + more, got, what="confluent acks=0")


def test_acks_zero_kafka_python(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    specs = make_records(2000, "a0kp", 2)
    p = kp_producer(broker.bootstrap, acks=0)
    try:
        kp_send(p, topic, specs)
        assert p.partitions_for(topic) == {0, 1}
        more = make_records(500, "a0kp", 2, start=2000)
        kp_send(p, topic, more)
    finally:
        p.close(timeout=10)
    got = kp_consume(broker.bootstrap, topic, [0, 1], len(specs) + len(more), timeout=60)
    check_received(specs + more, got, what="kafka-python acks=0")


# --------------------------------------------------------------------------------------------
# max.message.bytes


def _one(seq, size, partition=0):
    return Spec(seq, f"big-k{seq}".encode(), (b"x" * size), (("seq", str(seq).encode()),), partition)


def test_record_over_max_message_bytes_is_refused_confluent(broker):
    small = unique_topic("small-max")
    ck_create_topic(broker.bootstrap, small, partitions=1, config={"max.message.bytes": "10000"})
    # The client's own limits raised, so that the broker is the one to refuse.
    p = ck_producer(broker.bootstrap, acks="all", **{"message.max.bytes": 5_000_000, "batch.size": 4_000_000})
    _, failed = ck_send(p, small, [_one(1, 20_000)], expect_errors=True)
    assert 1 in failed and failed[1].code() == KafkaError.MSG_SIZE_TOO_LARGE, failed
    delivered, failed = ck_send(p, small, [_one(2, 1_000)])
    assert delivered[2] == (0, 0), "the refused record must not have taken an offset"

    default = unique_topic("default-max")  # max.message.bytes 1048588
    ck_create_topic(broker.bootstrap, default, partitions=1)
    _, failed = ck_send(p, default, [_one(3, 1_100_000)], expect_errors=True)
    assert 3 in failed and failed[3].code() == KafkaError.MSG_SIZE_TOO_LARGE, failed
    delivered, _ = ck_send(p, default, [_one(4, 1_000_000)])
    assert delivered[4] == (0, 0)

    c = ck_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(small, 0), timeout=10, cached=False) == (0, 1)
        assert c.get_watermark_offsets(TopicPartition(default, 0), timeout=10, cached=False) == (0, 1)
    finally:
        c.close()
    got = ck_consume(broker.bootstrap, default, [0], 1, timeout=60)
    assert len(got[0].value) == 1_000_000


def test_record_over_max_message_bytes_is_refused_kafka_python(broker, topic):
    import kafka.errors as Errors

    ck_create_topic(broker.bootstrap, topic, partitions=1, config={"max.message.bytes": "10000"})
    # Not idempotent: kafka-python 3.0's idempotent producer takes any refused batch that is not
    # a sequence or epoch error (here MESSAGE_TOO_LARGE, error 10) as fatal and fails every send
    # after it, so the same producer could not go on to the record that fits.
    p = kp_producer(broker.bootstrap, acks="all", max_request_size=5_000_000, enable_idempotence=False)
    try:
        future = p.send(topic, value=b"y" * 20_000, key=b"big", partition=0)
        p.flush(timeout=30)
        with pytest.raises(Errors.MessageSizeTooLargeError):
            future.get(timeout=30)
        ok = p.send(topic, value=b"y" * 1_000, key=b"fits", partition=0).get(timeout=30)
        assert (ok.partition, ok.offset) == (0, 0)
    finally:
        p.close(timeout=10)
