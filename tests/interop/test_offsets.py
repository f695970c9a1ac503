"""ListOffsets (earliest, latest, by time, max timestamp) through confluent-kafka, kafka-python and
kcat, on records with explicit timestamps; OffsetForLeaderEpoch as librdkafka's consumer uses it
to validate a position that carries a leader epoch."""
from __future__ import annotations

import json
import logging
import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import OffsetSpec

from brook_interop import (
    Spec,
    check_received,
    ck_admin,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_drain,
    ck_produce,
    ck_wait,
    kcat,
    kp_consumer,
    make_records,
)

# Kafka 4.0 refuses CreateTime more than message.timestamp.after.max.ms (1 hour) in the future,
# and accepts any age; these are two hours old, a second apart.
BASE = (int(time.time() * 1000) // 1000) * 1000 - 2 * 3_600_000


def timed_records(n, partition=0, src="ts"):
    return [
        Spec(i, f"{src}-k{i}".encode(), f"{src}-v{i}".encode(), (("seq", str(i).encode()),), partition, BASE + i * 1000)
        for i in range(n)
    ]


def test_list_offsets_earliest_and_latest(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    ck_produce(broker.bootstrap, topic, make_records(30, "lo", partitions=1))  # all to partition 0
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    admin = ck_admin(broker.bootstrap)
    res = ck_wait(admin.list_offsets({tp0: OffsetSpec.earliest(), tp1: OffsetSpec.earliest()}, request_timeout=15))
    assert {tp.partition: r.offset for tp, r in res.items()} == {0: 0, 1: 0}
    res = ck_wait(admin.list_offsets({tp0: OffsetSpec.latest(), tp1: OffsetSpec.latest()}, request_timeout=15))
    assert {tp.partition: r.offset for tp, r in res.items()} == {0: 30, 1: 0}

    c = ck_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(tp0, timeout=10, cached=False) == (0, 30)
        assert c.get_watermark_offsets(tp1, timeout=10, cached=False) == (0, 0)
    finally:
        c.close()

    from kafka import TopicPartition as KpTP

    kc = kp_consumer(broker.bootstrap)
    try:
        k0, k1 = KpTP(topic, 0), KpTP(topic, 1)
        assert kc.beginning_offsets([k0, k1], timeout_ms=15000) == {k0: 0, k1: 0}
        assert kc.end_offsets([k0, k1], timeout_ms=15000) == {k0: 30, k1: 0}
    finally:
        kc.close(autocommit=False, timeout_ms=5000)

    # kcat -Q passes -1 (latest) and -2 (earliest) through as ListOffsets timestamps.
    for ts, want in ((-1, 30), (-2, 0)):
        out = json.loads(kcat(["-Q", "-b", broker.bootstrap, "-t", f"{topic}:0:{ts}", "-J", "-m", "10"], timeout=30).stdout)
        entry = out[topic]["0"]
        assert "error" not in entry, entry
        assert entry["offset"] == want, (ts, entry)


def test_offsets_for_times(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    specs = timed_records(10)
    ck_produce(broker.bootstrap, topic, specs)

    # The timestamps are stored as sent.
    got = ck_consume(broker.bootstrap, topic, [0], 10, timeout=60)
    check_received(specs, got, what="explicit timestamps")

    # timestamp -> first offset whose timestamp is >= it (None: past the last record)
    queries = {BASE - 5000: 0, BASE: 0, BASE + 2500: 3, BASE + 9000: 9, BASE + 9001: None}

    c = ck_consumer(broker.bootstrap)
    try:
        for ts, want in queries.items():
            (res,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=15)
            assert res.error is None, res.error
            assert res.offset == (-1 if want is None else want), (ts, res.offset)
    finally:
        c.close()

    admin = ck_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    for ts, want in queries.items():
        (r,) = ck_wait(admin.list_offsets({tp: OffsetSpec.for_timestamp(ts)}, request_timeout=15)).values()
        assert r.offset == (-1 if want is None else want), (ts, r.offset)
        if want is not None:
            assert r.timestamp == BASE + want * 1000, (ts, r.timestamp)

    from kafka import TopicPartition as KpTP

    kc = kp_consumer(broker.bootstrap)
    try:
        k0 = KpTP(topic, 0)
        for ts, want in queries.items():
            found = kc.offsets_for_times({k0: ts}, timeout_ms=15000)[k0]
            if want is None:
                assert found is None, (ts, found)
            else:
                assert (found.offset, found.timestamp) == (want, BASE + want * 1000), (ts, found)
    finally:
        kc.close(autocommit=False, timeout_ms=5000)

    out = json.loads(kcat(["-Q", "-b", broker.bootstrap, "-t", f"{topic}:0:{BASE + 2500}", "-J", "-m", "10"], timeout=30).stdout)
    assert out[topic]["0"]["offset"] == 3, out


def test_offsets_for_times_across_batches_and_partitions(broker, topic):
    """Timestamps spread over many batches (one flush each) and two partitions."""
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    for i in range(20):
        ck_produce(broker.bootstrap, topic, [Spec(i, b"k", b"v", (), i % 2, BASE + i * 1000)])
    c = ck_consumer(broker.bootstrap)
    try:
        res = c.offsets_for_times([TopicPartition(topic, 0, BASE + 7000), TopicPartition(topic, 1, BASE + 7000)], timeout=15)
        # partition 0 holds i = 0, 2, 4, ... at offsets 0, 1, 2, ...; partition 1 holds 1, 3, 5, ...
        assert {r.partition: r.offset for r in res} == {0: 4, 1: 3}
    finally:
        c.close()


def test_list_offsets_max_timestamp(broker, topic):
    """OffsetSpec.max_timestamp (ListOffsets v7+, timestamp -3): the record with the largest
    timestamp, wherever it sits in the log."""
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    stamps = [BASE + 5000, BASE + 9000, BASE + 1000, BASE + 3000]
    ck_produce(broker.bootstrap, topic, [Spec(i, b"k", b"v", (), 0, ts) for i, ts in enumerate(stamps)])
    admin = ck_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    (r,) = ck_wait(admin.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=15)).values()
    assert (r.offset, r.timestamp) == (1, BASE + 9000)


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_seek_with_leader_epoch_validates_with_offset_for_leader_epoch(broker, topic):
    """librdkafka validates a position carrying a leader epoch with OffsetForLeaderEpoch (KIP-320)
    before fetching from it; the broker's answer must let it go on at that position."""
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    specs = make_records(20, "ep", partitions=1)
    ck_produce(broker.bootstrap, topic, specs)

    first = ck_consume(broker.bootstrap, topic, [0], 20, timeout=60)
    epochs = {r.leader_epoch for r in first}
    assert len(epochs) == 1 and next(iter(epochs)) is not None and next(iter(epochs)) >= 0, (
        f"every batch should carry the partition leader epoch, got {epochs}"
    )
    epoch = next(iter(epochs))

    capture = _Capture()
    logger = logging.getLogger(f"brook-interop-{topic}")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    logger.propagate = False
    c = ck_consumer(broker.bootstrap, **{"debug": "protocol,fetch", "logger": logger})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        head = ck_drain(c, 20, timeout=60, linger=0.2)
        assert [r.offset for r in head] == list(range(20))
        c.seek(TopicPartition(topic, 0, 5, leader_epoch=epoch))
        again = ck_drain(c, 15, timeout=60, linger=0.5)
        assert [r.offset for r in again] == list(range(5, 20)), [r.offset for r in again][:10]
        c.poll(0.1)  # deliver the remaining log lines
    finally:
        c.close()
    used = [line for line in capture.lines if "OffsetForLeaderEpoch" in line]
    assert used, "librdkafka did not send OffsetForLeaderEpoch (no such line in its protocol debug log)"
    errors = [line for line in used if "rror" in line and "NO_ERROR" not in line and "Success" not in line]
    assert not errors, errors[:5]
