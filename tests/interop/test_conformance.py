"""Conformance gaps found with librdkafka against a fresh broker (issue 17), each checked with
confluent-kafka as a Kafka user meets it: record errors for keyless records on a compacted
topic, OffsetCommit for a topic that does not exist, and the authorized operations Metadata,
DescribeCluster and the group descriptions answer when asked."""
from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AclOperation

from brook_interop import ck_admin, ck_consume, ck_create_topic, ck_wait, unique_topic

# Kafka's supported operations per resource type (AclEntry.supportedOperations), which it
# answers in full when no authorizer is configured.
TOPIC_OPERATIONS = {AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE, AclOperation.DELETE,
                    AclOperation.ALTER, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
GROUP_OPERATIONS = {AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE, AclOperation.DESCRIBE_CONFIGS,
                    AclOperation.ALTER_CONFIGS}
CLUSTER_OPERATIONS = {AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
                      AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER, AclOperation.DESCRIBE}


def test_keyless_records_to_a_compacted_topic_fail_alone_with_their_record_errors(broker, topic):
    """One batch of five records, two without a key, to a compacted topic: the two fail with
    INVALID_RECORD (librdkafka reads Kafka's record errors), the other three with librdkafka's
    _INVALID_DIFFERENT_RECORD (their batch was refused because of the others); sent again
    alone, the keyed ones are written."""
    ck_create_topic(broker.bootstrap, topic, partitions=1, config={"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 200, "retries": 0})
    reports = {}
    for i, key in enumerate([b"k0", None, b"k2", None, b"k4"]):
        producer.produce(topic, key=key, value=f"v{i}".encode(), partition=0,
                         on_delivery=lambda err, msg, i=i: reports.__setitem__(i, err))
    assert producer.flush(30) == 0
    assert {i: e.code() for i, e in reports.items()} == {
        0: KafkaError._INVALID_DIFFERENT_RECORD, 1: KafkaError.INVALID_RECORD, 2: KafkaError._INVALID_DIFFERENT_RECORD,
        3: KafkaError.INVALID_RECORD, 4: KafkaError._INVALID_DIFFERENT_RECORD}, reports
    # (confluent-kafka's delivery reports carry the code, not the record error's message.)
    for i in (0, 2, 4):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    assert [r.value for r in ck_consume(broker.bootstrap, topic, [0], 3)] == [b"v0", b"v2", b"v4"]


def test_committing_offsets_of_a_topic_that_does_not_exist_fails(broker, topic):
    """OffsetCommit answers UNKNOWN_TOPIC_OR_PARTITION for a missing topic or partition (a
    consumer's commit and the admin client's alter_consumer_group_offsets), and commits the
    partitions that exist in the same request."""
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    group = unique_topic("conformance-group")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        with pytest.raises(KafkaException) as raised:
            consumer.commit(offsets=[TopicPartition(unique_topic("missing"), 0, 5)], asynchronous=False)
        assert raised.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, raised.value
        # One existing partition, one beyond the topic's partitions: only the first is committed.
        with pytest.raises(KafkaException):
            consumer.commit(offsets=[TopicPartition(topic, 0, 7), TopicPartition(topic, 3, 7)], asynchronous=False)
        (committed,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        assert committed.offset == 7
    finally:
        consumer.close()
    admin = ck_admin(broker.bootstrap)
    futures = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(unique_topic("missing"), 0, 3)])],
                                                 request_timeout=30)
    (result,) = [future.result(30) for future in futures.values()]
    (partition,) = result.topic_partitions
    assert partition.error is not None and partition.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, partition.error


def test_authorized_operations_are_answered_in_full_without_an_authorizer(broker, topic):
    """describe_topics, describe_cluster and describe_consumer_groups with
    include_authorized_operations: every operation Kafka supports on each resource type, as
    Kafka answers with no authorizer configured (not 0, not left out)."""
    from confluent_kafka import TopicCollection
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    group = unique_topic("conformance-ops")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.subscribe([topic])
    for _ in range(40):
        consumer.poll(0.25)
        if consumer.assignment():
            break
    admin = ck_admin(broker.bootstrap)
    try:
        (described,) = ck_wait(admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True,
                                                     request_timeout=30)).values()
        assert set(described.authorized_operations) == TOPIC_OPERATIONS, described.authorized_operations
        cluster = admin.describe_cluster(include_authorized_operations=True, request_timeout=30).result(30)
        assert set(cluster.authorized_operations) == CLUSTER_OPERATIONS, cluster.authorized_operations
        (description,) = ck_wait(admin.describe_consumer_groups([group], include_authorized_operations=True,
                                                               request_timeout=30)).values()
        assert set(description.authorized_operations) == GROUP_OPERATIONS, description.authorized_operations
        # Not asked for: left out (None), as Kafka does.
        (plain,) = ck_wait(admin.describe_topics(TopicCollection([topic]), request_timeout=30)).values()
        assert plain.authorized_operations is None, plain.authorized_operations
    finally:
        consumer.close()
