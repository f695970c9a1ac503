"""A bare `brook serve` is the one voter of its own metadata quorum. A data directory written by
the quorum-less single node (`brook.single.node.quorum=false`, what Brook ran before) is taken
over into the metadata log on first start: topics with their ids, partition counts and configs,
committed group offsets, transactions, every record at its offset. Nothing is taken over twice:
a topic deleted after the takeover stays deleted across restarts."""
from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicCollection, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from brook_interop import (
    check_received,
    ck_admin,
    ck_base_conf,
    ck_consume,
    ck_create_topic,
    ck_produce,
    ck_producer,
    ck_wait,
    kcat,
    make_records,
    unique_topic,
    wait_for_partitions,
)

CLEAN_EXIT = (0, 143)
LEGACY = {"brook.single.node.quorum": "false"}


def _topic_ids(bootstrap, topics):
    admin = ck_admin(bootstrap)
    described = admin.describe_topics(TopicCollection(list(topics)), request_timeout=15)
    return {name: str(f.result(timeout=30).topic_id) for name, f in described.items()}


def _retention(bootstrap, topic):
    admin = ck_admin(bootstrap)
    (configs,) = ck_wait(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=15)).values()
    return configs["retention.ms"].value


def _committed(bootstrap, group, topic, partitions):
    c = Consumer(ck_base_conf(bootstrap, **{"group.id": group, "enable.auto.commit": False}))
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)}
    finally:
        c.close()


def _transaction(bootstrap, topic, txn_id, specs):
    p = ck_producer(bootstrap, **{"transactional.id": txn_id})
    p.init_transactions(30)
    p.begin_transaction()
    for s in specs:
        p.produce(topic, key=s.key, value=s.value, partition=0)
    p.commit_transaction(30)


@pytest.mark.timeout(300)
def test_single_node_data_is_taken_over_once(broker_factory):
    # The quorum-less node writes the data.
    b = broker_factory(dict(LEGACY))
    topic, doomed, txn_topic = unique_topic("tk"), unique_topic("tk-doomed"), unique_topic("tk-txn")
    group, txn_id = unique_topic("tk-group"), unique_topic("tk-txn-id")
    ck_create_topic(b.bootstrap, topic, partitions=3, config={"retention.ms": "987654321"})
    records = make_records(3000, "tk", partitions=3)
    ck_produce(b.bootstrap, topic, records)
    ck_produce(b.bootstrap, doomed, make_records(5, "doomed", partitions=1))
    ck_create_topic(b.bootstrap, txn_topic, partitions=1)
    first_txn = make_records(20, "txn1", partitions=1)
    _transaction(b.bootstrap, txn_topic, txn_id, first_txn)
    c = Consumer(ck_base_conf(b.bootstrap, **{"group.id": group, "enable.auto.commit": False}))
    c.commit(offsets=[TopicPartition(topic, p, 100 + p) for p in range(3)], asynchronous=False)
    c.close()
    ids_before = _topic_ids(b.bootstrap, [topic, doomed, txn_topic])
    assert not (b.data_dir / "__cluster_metadata-0").exists()

    # A bare `brook serve` on the same directory: the one-voter quorum takes it over.
    for key in LEGACY:
        b.overrides.pop(key)
    assert b.restart() in CLEAN_EXIT, b.log_tail()
    assert (b.data_dir / "__cluster_metadata-0").is_dir()
    wait_for_partitions(b.bootstrap, topic, 3)
    assert _topic_ids(b.bootstrap, [topic, doomed, txn_topic]) == ids_before
    assert _retention(b.bootstrap, topic) == "987654321"
    check_received(records, ck_consume(b.bootstrap, topic, [0, 1, 2], len(records)), what="after the takeover")
    assert _committed(b.bootstrap, group, topic, 3) == {0: 100, 1: 101, 2: 102}
    # The transactional id goes on (its state was taken over with __transaction_state); a
    # read_committed consumer sees both transactions, the markers between them.
    second_txn = make_records(20, "txn2", partitions=1, start=20)
    _transaction(b.bootstrap, txn_topic, txn_id, second_txn)
    got = ck_consume(b.bootstrap, txn_topic, [0], 40, **{"isolation.level": "read_committed"})
    assert [r.key for r in got] == [s.key for s in first_txn + second_txn]
    meta = kcat(["-b", b.bootstrap, "-L", "-t", topic]).stdout.decode()
    assert "partition 2, leader 1, replicas: 1, isrs: 1" in meta, meta

    # Taken over means the cluster's: deleted through the controller, gone for good.
    admin = ck_admin(b.bootstrap)
    ck_wait(admin.delete_topics([doomed], request_timeout=15))
    assert b.restart() in CLEAN_EXIT, b.log_tail()
    wait_for_partitions(b.bootstrap, topic, 3)
    listed = ck_admin(b.bootstrap).list_topics(timeout=15).topics
    assert doomed not in listed and topic in listed
    assert not (b.data_dir / f"{doomed}-0").exists()
    more = make_records(300, "tk2", partitions=3, start=3000)
    ck_produce(b.bootstrap, topic, more)
    check_received(records + more, ck_consume(b.bootstrap, topic, [0, 1, 2], len(records) + len(more)), what="after two restarts")
