"""Restarts: everything acknowledged is there after a clean stop (SIGTERM) and after a SIGKILL
(with the default flush settings the data is in the page cache, which survives the process);
topics, partitions and configs survive too; clients reconnect; producing goes on after it."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from brook_interop import (
    CkErrors,
    check_received,
    ck_admin,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_produce,
    ck_producer,
    ck_send,
    ck_wait,
    kp_consume,
    make_records,
    unique_topic,
    wait_for_partitions,
)

CLEAN_EXIT = (0, 143)  # exit(0), or 128 + SIGTERM from a handler that re-raises it


def _retention_ms(bootstrap, topic):
    admin = ck_admin(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic)
    (configs,) = ck_wait(admin.describe_configs([res], request_timeout=15)).values()
    return configs["retention.ms"].value


@pytest.mark.timeout(600)
def test_sigterm_restart_keeps_everything(fresh_broker):
    b = fresh_broker
    topic = unique_topic("restart-term")
    auto = unique_topic("restart-auto")
    ck_create_topic(b.bootstrap, topic, partitions=2, config={"retention.ms": "123456789"})

    first = make_records(5000, "r1", partitions=2)
    errs = CkErrors()
    producer = ck_producer(b.bootstrap, acks="all", errors=errs)  # kept across the restart
    ck_send(producer, topic, first)
    ck_produce(b.bootstrap, auto, make_records(10, "auto", partitions=1))  # auto-created topic

    started = time.monotonic()
    rc = b.restart()
    assert rc in CLEAN_EXIT, f"SIGTERM should stop brook cleanly, got status {rc}\n{b.log_tail()}"
    assert time.monotonic() - started < 30

    # Topics, partition counts and configs are back; so is every record, with the same offsets.
    wait_for_partitions(b.bootstrap, topic, 2)
    wait_for_partitions(b.bootstrap, auto, 1)
    assert _retention_ms(b.bootstrap, topic) == "123456789"
    assert (b.data_dir / f"{topic}-0").is_dir() and (b.data_dir / f"{topic}-1").is_dir()
    check_received(first, ck_consume(b.bootstrap, topic, [0, 1], len(first)), what="after SIGTERM restart")
    assert len(ck_consume(b.bootstrap, auto, [0], 10, timeout=60)) == 10

    # The producer from before the restart reconnects and goes on; offsets continue.
    second = make_records(5000, "r2", partitions=2, start=5000)
    delivered, _ = ck_send(producer, topic, second)
    assert min(off for _, off in delivered.values()) == 2500
    got = ck_consume(b.bootstrap, topic, [0, 1], len(first) + len(second))
    check_received(first + second, got, what="after SIGTERM restart, more produced")
    check_received(first + second, kp_consume(b.bootstrap, topic, [0, 1], len(first) + len(second)), what="kafka-python reads it")


@pytest.mark.timeout(600)
def test_sigkill_restart_keeps_acknowledged_records(fresh_broker):
    b = fresh_broker
    topic = unique_topic("restart-kill")
    ck_create_topic(b.bootstrap, topic, partitions=3, config={"retention.ms": "987654321"})

    first = make_records(9000, "k1", partitions=3)
    ck_produce(b.bootstrap, topic, first, acks="all")

    b.restart(hard=True)  # SIGKILL: no shutdown code runs

    wait_for_partitions(b.bootstrap, topic, 3)
    assert _retention_ms(b.bootstrap, topic) == "987654321"
    c = ck_consumer(b.bootstrap)
    try:
        for p in range(3):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) == (0, 3000)
    finally:
        c.close()
    check_received(first, ck_consume(b.bootstrap, topic, range(3), len(first)), what="after SIGKILL restart")

    second = make_records(3000, "k2", partitions=3, start=9000)
    ck_produce(b.bootstrap, topic, second, acks="all")
    got = ck_consume(b.bootstrap, topic, range(3), len(first) + len(second))
    check_received(first + second, got, what="after SIGKILL restart, more produced")


@pytest.mark.timeout(600)
def test_repeated_kills_while_idle(fresh_broker):
    """Three SIGKILL restarts in a row, producing between them: recovery of an already recovered
    log, and of logs whose tail was just written."""
    b = fresh_broker
    topic = unique_topic("restart-many")
    ck_create_topic(b.bootstrap, topic, partitions=1)
    sent = []
    for round_ in range(3):
        batch = make_records(1000, "m", partitions=1, start=round_ * 1000)
        ck_produce(b.bootstrap, topic, batch, acks="all")
        sent += batch
        b.restart(hard=True)
        wait_for_partitions(b.bootstrap, topic, 1)
        check_received(sent, ck_consume(b.bootstrap, topic, [0], len(sent)), what=f"after kill #{round_ + 1}")
    rc = b.stop()
    assert rc in CLEAN_EXIT, f"SIGTERM should stop brook cleanly, got status {rc}\n{b.log_tail()}"
