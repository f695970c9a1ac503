"""Fetch long polling: a fetch parked at the end of the log returns as soon as a record arrives,
and a fetch of an empty partition waits (max wait) instead of answering at once."""
from __future__ import annotations

import json
import time

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from brook_interop import (
    CkErrors,
    Spec,
    ck_consumer,
    ck_create_topic,
    ck_drain,
    ck_produce,
    ck_producer,
    kp_consumer,
    make_records,
)


def _fetches_sent(stats: dict) -> int:
    return sum(b.get("req", {}).get("Fetch", 0) for b in stats.get("brokers", {}).values())


def test_parked_fetch_returns_when_a_record_arrives(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    ck_produce(broker.bootstrap, topic, make_records(1, "lp", partitions=1))

    snapshots = []

    def on_stats(raw):
        snapshots.append((time.monotonic(), _fetches_sent(json.loads(raw))))

    errs = CkErrors()
    c = ck_consumer(
        broker.bootstrap,
        errors=errs,
        **{"fetch.wait.max.ms": 5000, "fetch.min.bytes": 1, "statistics.interval.ms": 500, "stats_cb": on_stats},
    )
    p = ck_producer(broker.bootstrap, acks="1", **{"linger.ms": 0})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        assert [r.offset for r in ck_drain(c, 1, timeout=30, linger=0)] == [0]

        # Sit at the end of the log for 3 s: with a 5 s max wait the broker holds each fetch,
        # so only a couple are sent (a broker answering at once would see hundreds).
        idle_from = time.monotonic()
        while time.monotonic() - idle_from < 3.0:
            assert not c.consume(num_messages=10, timeout=0.25), "nothing was produced"
        window = [n for t, n in snapshots if t >= idle_from + 0.5]
        if len(window) >= 2:
            assert window[-1] - window[0] <= 3, f"{window[-1] - window[0]} fetches while idle: not long-polling"

        # A record produced now reaches the parked fetch well before its 5 s are up.
        sent_at = time.monotonic()
        p.produce(topic, key=b"late", value=b"arrives", partition=0)
        assert p.flush(10) == 0
        got = ck_drain(c, 1, timeout=10, linger=0)
        latency = time.monotonic() - sent_at
        assert [(r.offset, r.value) for r in got] == [(1, b"arrives")]
        assert latency < 2.0, f"the parked fetch took {latency:.2f}s to deliver a new record (max wait 5 s)"
    finally:
        c.close()
    assert not errs.unexpected(), errs.unexpected()


def test_empty_fetch_waits_for_max_wait_kafka_python(broker, topic):
    from kafka import TopicPartition as KpTP

    ck_create_topic(broker.bootstrap, topic, partitions=1)
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=500)
    try:
        tp = KpTP(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            assert c.poll(timeout_ms=500) == {}, "an empty partition returned records"
        metrics = (c.metrics() or {}).get("consumer-fetch-manager-metrics", {})
        latency = metrics.get("fetch-latency-avg")
        if latency is not None and latency == latency:  # not NaN
            # Each fetch of an empty partition should be held ~500 ms by the broker.
            assert latency >= 250, f"empty fetches answered in {latency:.0f} ms on average: not waiting fetch_max_wait_ms"
    finally:
        c.close(autocommit=False, timeout_ms=5000)


def test_kafka_python_reads_through_an_incremental_fetch_session(broker, topic):
    """kafka-python opens a fetch session (KIP-227: session id 0, epoch 0) and then sends only the
    partitions that changed: the broker gives it a session id, answers with only the partitions
    that have something new, and every record of three partitions, written while the consumer
    reads, arrives once and in order."""
    from kafka import TopicPartition as KpTP

    ck_create_topic(broker.bootstrap, topic, partitions=3)
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=200)
    got: dict = {0: [], 1: [], 2: []}
    try:
        tps = [KpTP(topic, p) for p in range(3)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        for round_ in range(5):
            # Each round writes to one partition only: the others have nothing new.
            partition = round_ % 3
            ck_produce(broker.bootstrap, topic, [Spec(seq=i, key=f"k{round_}".encode(), value=f"{round_}-{i}".encode(), headers=(),
                                                      partition=partition) for i in range(20)])
            deadline = time.monotonic() + 20
            while sum(len(v) for v in got.values()) < 20 * (round_ + 1):
                assert time.monotonic() < deadline, {p: len(v) for p, v in got.items()}
                for tp, records in c.poll(timeout_ms=300).items():
                    got[tp.partition].extend(r.value.decode() for r in records)
        handlers = c._fetcher._session_handlers  # kafka-python's own session state
        sessions = [h.next_metadata for h in handlers.values()]
        assert sessions and all(m.session_id != 0 for m in sessions), [(m.session_id, m.epoch) for m in sessions]
        assert all(m.epoch > 3 for m in sessions), [(m.session_id, m.epoch) for m in sessions]
    finally:
        c.close(autocommit=False, timeout_ms=5000)
    expected = {p: [f"{r}-{i}" for r in range(5) if r % 3 == p for i in range(20)] for p in range(3)}
    assert got == expected
