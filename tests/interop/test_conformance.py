"""Conformance gaps found with librdkafka against a fresh broker (issue 17), each checked with
confluent-kafka as a Kafka user meets it: record errors for keyless records on a compacted
topic, OffsetCommit for a topic that does not exist, and the authorized operations Metadata,
DescribeCluster and the group descriptions answer when asked; and a compacted topic as its
readers see it while the cleaner works. Also DescribeTopicPartitions (KIP-966), which
kafka-python's admin client pages through."""
from __future__ import annotations

import subprocess

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AclOperation

from conftest import BROOK_BIN
from brook_interop import ck_admin, ck_consume, ck_create_topic, ck_wait, kcat_consume, kp_admin, kp_producer, unique_topic

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


@pytest.mark.timeout(180)
def test_a_compacted_topic_keeps_each_keys_last_value_and_its_log_start(broker_factory, topic):
    """A compacted topic with 1 KiB segments and the cleaner running every 200 ms:
    confluent-kafka writes 1,500 records over 20 keys, then kafka-python writes 500 more while
    the cleaner compacts. kcat, reading from the beginning, sees fewer records than were
    written, and every key's last value. The low watermark stays 0, and confluent-kafka
    assigned at offset 0 reads the same records. The first segments hold only replaced records,
    and the cleaner does not move the log start past them (it once did, and a consumer there
    got OFFSET_OUT_OF_RANGE)."""
    import time
    b = broker_factory({"log.retention.check.interval.ms": "200"})
    ck_create_topic(b.bootstrap, topic, partitions=1, config={"cleanup.policy": "compact", "segment.bytes": "1024"})
    last = {}
    producer = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    for i in range(1500):
        key = f"k{i % 20}"
        last[key] = f"{key}-v{i}"
        producer.produce(topic, key=key.encode(), value=last[key].encode(), partition=0)
        if i % 100 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    kp = kp_producer(b.bootstrap)
    for i in range(1500, 2000):
        key = f"k{i % 20}"
        last[key] = f"{key}-v{i}"
        kp.send(topic, key=key.encode(), value=last[key].encode(), partition=0)
        if i % 50 == 0:
            kp.flush(30)
    kp.flush(30)
    kp.close()
    deadline = time.monotonic() + 60
    while len(records := kcat_consume(b.bootstrap, topic)) >= 2000:
        assert time.monotonic() < deadline, f"nothing compacted: {len(records)} records"
        time.sleep(0.5)
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets)) and offsets[-1] == 1999, offsets[-5:]
    latest = {r.key.decode(): r.value.decode() for r in records}
    assert latest == last
    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique_topic("compacted"), "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        assert (low, high) == (0, 2000)
        # From offset 0 to the end (the cleaner may have removed more since kcat's read).
        consumer.assign([TopicPartition(topic, 0, 0)])
        read, deadline = {}, time.monotonic() + 30
        while 1999 not in read:
            assert time.monotonic() < deadline, f"{len(read)} records read, up to {max(read, default=None)}"
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                read[msg.offset()] = (msg.key().decode(), msg.value().decode())
    finally:
        consumer.close()
    assert {key: value for _, (key, value) in sorted(read.items())} == last


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


def test_a_groups_own_configs_are_set_described_and_taken_by_its_consumers(broker, topic):
    """Kafka 4.0's GROUP config resource through confluent-kafka's admin client: a group's
    consumer.heartbeat.interval.ms is set (IncrementalAlterConfigs), described with source
    GROUP_CONFIG beside the broker's default for the rest, refused outside the broker's bounds
    (INVALID_CONFIG), and taken by the group's KIP-848 members: librdkafka, told 15 s, sends no
    heartbeat in the 8 s after its assignment settles, while a member of a group without
    configs of its own does (the broker's 5 s)."""
    import logging
    import threading
    import time
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType
    from brook_interop import ck_group_conf

    ck_create_topic(broker.bootstrap, topic, partitions=1)
    admin = ck_admin(broker.bootstrap)
    slow, plain = unique_topic("group-configs"), unique_topic("group-plain")

    def alter(group: str, name: str, value: str) -> None:
        resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([resource])[resource].result(30)

    alter(slow, "consumer.heartbeat.interval.ms", "15000")
    described = {}
    for resource, future in admin.describe_configs([ConfigResource(ResourceType.GROUP, slow)]).items():
        described = future.result(30)
    assert described["consumer.heartbeat.interval.ms"].value == "15000"
    assert described["consumer.heartbeat.interval.ms"].source == ConfigSource.GROUP_CONFIG.value
    assert described["consumer.session.timeout.ms"].value == "45000"
    assert described["consumer.session.timeout.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    with pytest.raises(KafkaException) as raised:
        alter(slow, "consumer.heartbeat.interval.ms", "100")
    assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG, raised.value
    with pytest.raises(KafkaException) as raised:
        alter(slow, "consumer.session.timeout.ms", "10")
    assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG, raised.value

    class Heartbeats(logging.Handler):
        """When librdkafka's protocol debug says a ConsumerGroupHeartbeat went out."""
        def __init__(self) -> None:
            super().__init__()
            self.sent: list = []

        def emit(self, record: logging.LogRecord) -> None:
            if "Sent ConsumerGroupHeartbeatRequest" in record.getMessage():
                self.sent.append(time.monotonic())

    def member(group: str, beats: Heartbeats, out: dict) -> None:
        logger = logging.getLogger(f"brook.{group}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(beats)
        consumer = Consumer(ck_group_conf(broker.bootstrap, group, protocol="consumer", debug="protocol", logger=logger))
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 30
            while not consumer.assignment() and time.monotonic() < deadline:
                consumer.poll(0.2)
            out["assigned"] = bool(consumer.assignment())
            time.sleep(1)  # the reconciling heartbeats (every 200 ms) are over
            out["settled"] = time.monotonic()
            while time.monotonic() < out["settled"] + 8:
                consumer.poll(0.2)
        finally:
            consumer.close()

    results = {slow: {}, plain: {}}
    beats = {slow: Heartbeats(), plain: Heartbeats()}
    threads = [threading.Thread(target=member, args=(g, beats[g], results[g])) for g in (slow, plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for group in (slow, plain):
        assert results[group].get("assigned"), (group, results[group])
    def after(group: str) -> list:
        settled = results[group]["settled"]
        return [round(t - settled, 1) for t in beats[group].sent if settled + 0.5 < t < settled + 8]
    assert after(plain), "the group without configs of its own heartbeats every 5 s"
    assert after(slow) == [], after(slow)


def test_the_broker_wide_topic_defaults_change_without_a_restart(fresh_broker):
    """Dynamic broker configs through confluent-kafka's admin client: message.max.bytes and
    log.retention.ms set on the BROKER resource (this broker's id) are described as dynamic and
    taken at once by a topic without its own values; a record too large before is written
    after; a value out of range is INVALID_CONFIG, a config that is not dynamic
    INVALID_REQUEST; deleted, the defaults return."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType

    broker = fresh_broker
    topic = unique_topic("dynamic")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    admin = ck_admin(broker.bootstrap)
    node = str(admin.describe_cluster().result(30).nodes[0].id)

    def alter(*entries) -> None:
        resource = ConfigResource(ResourceType.BROKER, node, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE)
            for name, value in entries])
        admin.incremental_alter_configs([resource])[resource].result(30)

    def describe(kind, name: str) -> dict:
        for future in admin.describe_configs([ConfigResource(kind, name)]).values():
            return future.result(30)

    def produce(size: int):
        reports = []
        producer = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 4_000_000, "retries": 0})
        producer.produce(topic, value=b"x" * size, partition=0, on_delivery=lambda err, msg: reports.append(err))
        assert producer.flush(30) == 0
        return reports[0]

    big = 1_500_000
    assert produce(big).code() == KafkaError.MSG_SIZE_TOO_LARGE
    alter(("message.max.bytes", "2000000"), ("log.retention.ms", "3600000"))
    described = describe(ResourceType.TOPIC, topic)
    assert described["retention.ms"].value == "3600000"
    assert described["retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert described["max.message.bytes"].value == "2000000"
    on_broker = describe(ResourceType.BROKER, node)
    assert on_broker["log.retention.ms"].value == "3600000" and not on_broker["log.retention.ms"].is_read_only
    assert produce(big) is None

    for name, value, code in (("log.segment.bytes", "10", KafkaError.INVALID_CONFIG),
                              ("num.partitions", "3", KafkaError.INVALID_REQUEST)):
        with pytest.raises(KafkaException) as raised:
            alter((name, value))
        assert raised.value.args[0].code() == code, raised.value

    alter(("message.max.bytes", None), ("log.retention.ms", None))
    described = describe(ResourceType.TOPIC, topic)
    assert described["retention.ms"].value == "604800000"
    assert described["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert produce(big).code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_describe_topic_partitions_pages_through_the_topics(broker_factory, topic):
    """kafka-python's describe_topic_partitions (DescribeTopicPartitions, API 75) on a broker
    whose `max.request.partition.size.limit` is 3: named topics come back in name order with
    their partitions, unknown and invalid names with Kafka's errors; following the cursors lists
    every partition of every topic once, no page holding more than the limit (the broker's 3,
    under the client's 4); a cursor outside the named topics is an invalid request."""
    b = broker_factory({"max.request.partition.size.limit": "3"})
    names = [f"{topic}-a", f"{topic}-b", f"{topic}-c"]
    for name, partitions in zip(names, (2, 5, 1)):
        ck_create_topic(b.bootstrap, name, partitions=partitions)
    admin = kp_admin(b.bootstrap)
    try:
        answer = admin.describe_topic_partitions([names[1], "nope", names[0], "bad name!"])
        topics = answer["topics"]
        by_name = {t["name"]: t for t in topics}
        assert [t["name"] for t in topics] == sorted(by_name), topics
        assert {n: t["error_code"] for n, t in by_name.items()} == {"bad name!": 17, "nope": 3, names[0]: 0, names[1]: 0}
        # A page holds at most 3 partitions: the second topic is cut after its first.
        assert [len(by_name[n]["partitions"]) for n in names[:2]] == [2, 1], topics
        assert answer["next_cursor"] == {"topic_name": names[1], "partition_index": 1}
        first = by_name[names[0]]["partitions"][0]
        assert first["leader_id"] == 1 and first["replica_nodes"] == [1] and first["isr_nodes"] == [1], first
        assert first["offline_replicas"] == [] and by_name[names[0]]["topic_id"] is not None
        assert not by_name[names[0]]["is_internal"]
        seen, cursor, pages = [], None, 0
        while True:
            page = admin.describe_topic_partitions(names, response_partition_limit=4, cursor=cursor)
            assert sum(len(t["partitions"]) for t in page["topics"]) <= 3, page
            seen += [(t["name"], p["partition_index"]) for t in page["topics"] for p in t["partitions"]]
            cursor, pages = page["next_cursor"], pages + 1
            if cursor is None or pages > 20:
                break
        assert seen == [(names[0], 0), (names[0], 1)] + [(names[1], i) for i in range(5)] + [(names[2], 0)], seen
        assert pages == 3
        # Every topic, when none is named: ours among them, in order, each partition once.
        everything, cursor = [], None
        for _ in range(20):
            page = admin.describe_topic_partitions([], cursor=cursor)
            everything += [(t["name"], p["partition_index"]) for t in page["topics"] for p in t["partitions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [e for e in everything if e[0].startswith(topic)] == seen
        assert everything == sorted(everything)
        refused = admin.describe_topic_partitions([names[0]], cursor={"topic_name": "zz", "partition_index": 0})
        assert [t["error_code"] for t in refused["topics"]] == [42], refused
    finally:
        admin.close()
    # `brook topic describe` pages through them too (three pages for these topics), and prints
    # the ELR columns as Kafka's kafka-topics.sh does.
    out = subprocess.run([str(BROOK_BIN), "topic", "describe", "--bootstrap-server", b.bootstrap, *names],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines() if line.startswith("\tTopic: ")]
    assert [(r[1], r[2]) for r in rows] == [(f"Topic: {n}", f"Partition: {i}") for n, i in seen], out.stdout
    assert all(r[-2] == "Elr: " and r[-1] == "LastKnownElr: " for r in rows), out.stdout


def test_update_features_grants_only_the_fixed_levels(broker):
    """kafka-python's update_features (UpdateFeatures, KIP-584): Brook's levels are fixed, so
    asking for the level a feature is at succeeds (validate-only too) and any other level is
    refused with INVALID_UPDATE_VERSION and why, as Kafka's controller refuses an update it
    cannot make; describe_features shows the levels unchanged after."""
    from kafka.errors import InvalidUpdateVersionError
    admin = kp_admin(broker.bootstrap)
    try:
        assert admin.update_features({"metadata.version": 25, "group.version": 1}) == {"metadata.version": "OK", "group.version": "OK"}
        assert admin.update_features({"metadata.version": 25}, validate_only=True) == {"metadata.version": "OK"}
        for updates, reason in [({"metadata.version": 26}, "supports versions 7-25"),
                                ({"metadata.version": ("SAFE_DOWNGRADE", 21)}, "levels are fixed"),
                                ({"group.version": 0}, "without setting the upgrade type"),
                                ({"transaction.version": 2}, "does not support")]:
            with pytest.raises(InvalidUpdateVersionError) as raised:
                admin.update_features(updates)
            assert reason in str(raised.value), (updates, raised.value)
        features = admin.describe_features()
    finally:
        admin.close()
    assert features["metadata.version"]["finalized"] == (25, 25) and features["group.version"]["finalized"] == (1, 1), features


def test_list_config_resources_lists_topics_brokers_and_groups_with_configs(broker):
    """kafka-python's list_config_resources (ListConfigResources v1, KIP-1142): every topic, the
    broker, and the groups with configs of their own (one set through confluent-kafka's
    IncrementalAlterConfigs), by type; no client metrics subscriptions; a type Brook keeps no
    configs for (BROKER_LOGGER) is UNSUPPORTED_VERSION."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    from kafka.errors import UnsupportedVersionError
    topic, group = unique_topic("listed"), unique_topic("listed-group")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("consumer.session.timeout.ms", "50000", incremental_operation=AlterConfigOpType.SET)])
    ck = ck_admin(broker.bootstrap)
    ck.incremental_alter_configs([resource])[resource].result(30)
    admin = kp_admin(broker.bootstrap)
    try:
        listed = admin.list_config_resources()
        assert topic in listed["topic"] and listed["broker"] == ["1"] and group in listed["group"], listed
        assert "client_metrics" not in listed, listed
        only = admin.list_config_resources(["GROUP", "BROKER"])
        assert set(only) == {"group", "broker"} and group in only["group"], only
        with pytest.raises(UnsupportedVersionError):
            admin.list_config_resources(["BROKER_LOGGER"])
    finally:
        admin.close()


def test_feature_flags_are_kafka_4_0s(broker):
    """kafka-python's describe_features (ApiVersions v3+'s tagged fields, KIP-584): Kafka 4.0's
    metadata.version (4.0-IV3, level 25) and group.version 1 (KIP-848 served), finalized; no
    transaction.version, whose level 2 would make Java producers skip AddPartitionsToTxn."""
    admin = kp_admin(broker.bootstrap)
    try:
        features = admin.describe_features()
    finally:
        admin.close()
    assert features["metadata.version"]["supported"] == (7, 25) and features["metadata.version"]["finalized"] == (25, 25), features
    assert features["group.version"]["supported"] == (0, 1) and features["group.version"]["finalized"] == (1, 1), features
    assert "transaction.version" not in features and features["metadata.version"]["finalized_epoch"] >= 0, features
