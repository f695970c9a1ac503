"""BrookClient's admin client (KafkaAdmin), through the `brook` tools built on it (topic,
config, group, acl, user), judged by confluent-kafka's admin client: topics, partitions and
configs it makes are what librdkafka describes; records it deletes are gone for librdkafka;
a group's offsets it resets and deletes are where librdkafka's consumer and admin see them; a
group with a live librdkafka member is refused a reset with Kafka's error. Against Tansu (a
broker that is not Brook) the same calls negotiate, and an API Tansu lacks fails at once with
UNSUPPORTED_VERSION instead of being retried."""
from __future__ import annotations

import subprocess
import time

import pytest

from brook_interop import Spec, ck_admin, ck_produce, unique_topic, wait_for_partitions
from conftest import BROOK_BIN
from test_client_library import tansu, tansu_binary  # noqa: F401 (tansu: a fixture)


def brook(bootstrap: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(BROOK_BIN), *args, "--bootstrap-server", bootstrap], capture_output=True, text=True, timeout=timeout)


def ok(bootstrap: str, *args: str) -> str:
    out = brook(bootstrap, *args)
    assert out.returncode == 0, f"brook {' '.join(args)}: {out.stderr}"
    return out.stdout


def refused(bootstrap: str, code: str, *args: str) -> str:
    out = brook(bootstrap, *args)
    assert out.returncode != 0 and code in out.stderr, f"brook {' '.join(args)} should fail with {code}: {out.stdout} {out.stderr}"
    return out.stderr


def topic_configs(admin, topic: str) -> dict:
    from confluent_kafka.admin import ConfigResource, ResourceType
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {name: entry for name, entry in entries.items()}


def group_offsets(admin, group: str) -> dict:
    from confluent_kafka import ConsumerGroupTopicPartitions
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


@pytest.mark.timeout(180)
def test_topics_configs_and_records_are_what_librdkafka_sees(broker):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec
    topic = unique_topic("adm-topic")
    admin = ck_admin(broker.bootstrap)
    ok(broker.bootstrap, "topic", "create", topic, "--partitions", "3", "--config", "retention.ms=3600000",
       "--config", "max.message.bytes=500000")
    configs = topic_configs(admin, topic)
    assert configs["retention.ms"].value == "3600000" and configs["max.message.bytes"].value == "500000"
    assert configs["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert len(admin.list_topics(topic, timeout=30).topics[topic].partitions) == 3
    assert topic in ok(broker.bootstrap, "topic", "list").split()
    refused(broker.bootstrap, "TOPIC_ALREADY_EXISTS", "topic", "create", topic)
    refused(broker.bootstrap, "UNKNOWN_TOPIC_OR_PARTITION", "topic", "describe", unique_topic("adm-none"))

    # More partitions, settings changed and one returned to its default.
    ok(broker.bootstrap, "topic", "alter", topic, "--partitions", "5")
    wait_for_partitions(broker.bootstrap, topic, 5)
    refused(broker.bootstrap, "INVALID_PARTITIONS", "topic", "alter", topic, "--partitions", "2")
    ok(broker.bootstrap, "config", "alter", "--topic", topic, "--add-config", "retention.ms=7200000", "--delete-config", "max.message.bytes")
    configs = topic_configs(admin, topic)
    assert configs["retention.ms"].value == "7200000" and configs["max.message.bytes"].source != 1
    described = ok(broker.bootstrap, "topic", "describe", topic)
    assert "PartitionCount: 5" in described and "retention.ms=7200000" in described and "max.message.bytes" not in described
    refused(broker.bootstrap, "INVALID_CONFIG", "config", "alter", "--topic", topic, "--add-config", "no.such.setting=1")

    # Records before an offset deleted: librdkafka's earliest offset moves there.
    ck_produce(broker.bootstrap, topic, [Spec(i, None, f"v{i}".encode(), (), 0) for i in range(100)])
    printed = ok(broker.bootstrap, "topic", "delete-records", topic, "--partition", "0", "--before", "40")
    assert any(line.split() == [topic, "0", "40"] for line in printed.splitlines()), printed
    earliest = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()})
    assert [f.result(30).offset for f in earliest.values()] == [40]
    refused(broker.bootstrap, "OFFSET_OUT_OF_RANGE", "topic", "delete-records", topic, "--partition", "0", "--before", "500")

    ok(broker.bootstrap, "topic", "delete", topic)
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=30).topics:
        assert time.monotonic() < deadline, "the topic is still listed"
        time.sleep(0.2)


@pytest.mark.timeout(180)
def test_a_groups_offsets_reset_and_deleted_where_librdkafka_sees_them(broker):
    from confluent_kafka import Consumer
    topic, group = unique_topic("adm-group"), unique_topic("adm-group-g")
    ok(broker.bootstrap, "topic", "create", topic, "--partitions", "2")
    ck_produce(broker.bootstrap, topic, [Spec(i, None, f"v{i}".encode(), (), i % 2) for i in range(60)])
    admin = ck_admin(broker.bootstrap)

    # librdkafka's classic member reads everything and commits; the tools see it.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "client.id": "adm-reader"})
    try:
        consumer.subscribe([topic])
        read, deadline = 0, time.monotonic() + 60
        while read < 60:
            assert time.monotonic() < deadline, f"librdkafka read {read} of 60"
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                read += 1
        consumer.commit(asynchronous=False)
        assert group_offsets(admin, group) == {(topic, 0): 30, (topic, 1): 30}
        # A live member: the tools show it and a reset is refused, as Kafka refuses it.
        described = ok(broker.bootstrap, "group", "describe", group)
        assert "adm-reader" in described and "state Stable" in described, described
        refused(broker.bootstrap, "NON_EMPTY_GROUP", "group", "reset-offsets", "--group", group, "--all-topics", "--to-earliest", "--execute")
    finally:
        consumer.close()

    listed = ok(broker.bootstrap, "group", "list").splitlines()
    assert any(line.split()[:3] == [group, "classic", "Empty"] for line in listed), listed
    rows = [line.split() for line in ok(broker.bootstrap, "group", "describe", group).splitlines() if line.startswith(group + " ")]
    assert sorted((r[1], r[2], r[3], r[4], r[5]) for r in rows) == [(topic, "0", "30", "30", "0"), (topic, "1", "30", "30", "0")]

    # A dry run commits nothing; --execute does, and librdkafka sees the new offsets.
    assert "dry run" in ok(broker.bootstrap, "group", "reset-offsets", "--group", group, "--all-topics", "--to-earliest")
    assert group_offsets(admin, group) == {(topic, 0): 30, (topic, 1): 30}
    ok(broker.bootstrap, "group", "reset-offsets", "--group", group, "--all-topics", "--to-earliest", "--execute")
    assert group_offsets(admin, group) == {(topic, 0): 0, (topic, 1): 0}
    ok(broker.bootstrap, "group", "reset-offsets", "--group", group, "--topic", f"{topic}:1", "--shift-by", "12", "--execute")
    assert group_offsets(admin, group) == {(topic, 0): 0, (topic, 1): 12}
    ok(broker.bootstrap, "group", "reset-offsets", "--group", group, "--topic", topic, "--to-offset", "1000", "--execute")
    assert group_offsets(admin, group) == {(topic, 0): 30, (topic, 1): 30}

    ok(broker.bootstrap, "group", "delete", group)
    assert group not in {g.group_id for g in admin.list_consumer_groups().result(30).valid}
    refused(broker.bootstrap, "GROUP_ID_NOT_FOUND", "group", "delete", group)


@pytest.mark.timeout(900)
def test_the_admin_client_works_against_a_broker_that_is_not_brook(tansu):
    """Tansu negotiates its own versions; what it serves works, and what it lacks
    (CreatePartitions) is refused at once with UNSUPPORTED_VERSION."""
    topic, group = unique_topic("adm-tansu"), unique_topic("adm-tansu-g")
    ok(tansu, "topic", "create", topic, "--partitions", "3")
    assert topic in ok(tansu, "topic", "list").split()
    admin = ck_admin(tansu)
    assert len(admin.list_topics(topic, timeout=30).topics[topic].partitions) == 3
    described = ok(tansu, "topic", "describe", topic)
    assert "PartitionCount: 3" in described and described.count("\tPartition: ") == 3
    started = time.monotonic()
    refused(tansu, "UNSUPPORTED_VERSION", "topic", "alter", topic, "--partitions", "4")
    assert time.monotonic() - started < 5, "an API the broker lacks is not retried"

    # A group's offsets committed by `brook consume` (without joining), then reset and deleted.
    ck_produce(tansu, topic, [Spec(i, None, f"v{i}".encode(), (), 0) for i in range(5)])
    consumed = subprocess.run([str(BROOK_BIN), "consume", "--bootstrap-server", tansu, "--topic", topic, "--partition", "0",
                               "--offset", "0", "--max-messages", "5", "--group", group], capture_output=True, text=True, timeout=60)
    assert consumed.returncode == 0 and consumed.stdout.split() == [f"v{i}" for i in range(5)], consumed.stderr
    assert group_offsets(admin, group) == {(topic, 0): 5}
    assert any(line.split()[:1] == [group] for line in ok(tansu, "group", "list").splitlines())
    ok(tansu, "group", "reset-offsets", "--group", group, "--all-topics", "--to-earliest", "--execute")
    assert group_offsets(admin, group) == {(topic, 0): 0}
    ok(tansu, "group", "delete", group)

    ok(tansu, "topic", "delete", topic)
    assert topic not in ok(tansu, "topic", "list").split()


@pytest.mark.timeout(120)
def test_log_dirs_describes_and_moves_a_replica_between_a_brokers_dirs(broker_factory, tmp_path):
    """`brook log-dirs` (DescribeLogDirs and AlterReplicaLogDirs through KafkaAdmin) on a broker
    with two log dirs: it lists the replica where it is, moves it to the other dir, where
    confluent-kafka then reads every record; a broker that is not in the cluster and a path that
    is not a log dir are refused readably."""
    from brook_interop import ck_consume, ck_create_topic
    dirs = [(tmp_path / "first").resolve(), (tmp_path / "second").resolve()]
    b = broker_factory({"log.dirs": ",".join(str(d) for d in dirs)})
    topic = unique_topic("logdirs")
    ck_create_topic(b.bootstrap, topic, partitions=1)
    ck_produce(b.bootstrap, topic, [Spec(i, None, f"v{i}".encode(), (), 0) for i in range(500)])

    def where() -> dict:
        """Each listed replica of the topic -> (its dir, whether it is a move's copy)."""
        found, current = {}, None
        for line in ok(b.bootstrap, "log-dirs", "describe", "--broker", "1").splitlines():
            if not line.startswith("  "):
                current = line.split(" ")[0]
            elif line.strip().startswith(f"{topic}-0 "):
                found.setdefault(f"{topic}-0", []).append((current, "future" in line))
        return found

    placed = where()[f"{topic}-0"]
    assert len(placed) == 1 and not placed[0][1], placed
    source = placed[0][0]
    target = next(str(d) for d in dirs if str(d) != source)
    assert "moving" in ok(b.bootstrap, "log-dirs", "move", f"{topic}:0={target}")
    deadline = time.monotonic() + 60
    while where()[f"{topic}-0"] != [(target, False)]:
        assert time.monotonic() < deadline, where()
        time.sleep(0.3)
    assert len(ck_consume(b.bootstrap, topic, [0], 500)) == 500
    out = brook(b.bootstrap, "log-dirs", "describe", "--broker", "9")
    assert out.returncode != 0 and "no broker 9" in out.stderr, out
    out = brook(b.bootstrap, "log-dirs", "move", f"{topic}:0=/no/such/dir")
    assert out.returncode != 0 and "LOG_DIR_NOT_FOUND" in out.stdout.upper().replace(" ", "_"), out


def test_features_describes_and_updates_as_kafka_features_sh(broker):
    """`brook features` (BrookClient's describeFeatures over ApiVersions v3+ and updateFeatures
    over UpdateFeatures) prints the levels kafka-python's describe_features reads, names
    metadata.version by its release in `describe` as kafka-features.sh does, grants the level a feature is at
    (--dry-run too) and fails readably with the broker's INVALID_UPDATE_VERSION otherwise."""
    from brook_interop import kp_admin
    described = ok(broker.bootstrap, "features", "describe")
    lines = {line.split("\t")[0]: line for line in described.splitlines()}
    assert lines["Feature: metadata.version"].split("\t")[1:4] == [
        "SupportedMinVersion: 3.3-IV3", "SupportedMaxVersion: 4.0-IV3", "FinalizedVersionLevel: 4.0-IV3"], described
    assert lines["Feature: group.version"].split("\t")[1:4] == [
        "SupportedMinVersion: 0", "SupportedMaxVersion: 1", "FinalizedVersionLevel: 1"], described
    admin = kp_admin(broker.bootstrap)
    try:
        features = admin.describe_features()
    finally:
        admin.close()
    assert set(features) == {line.split(": ", 1)[1] for line in lines}, (features, described)
    assert ok(broker.bootstrap, "features", "upgrade", "--metadata", "4.0", "--dry-run") == "metadata.version can be upgraded to 25\n"
    assert ok(broker.bootstrap, "features", "upgrade", "--feature", "group.version=1") == "group.version was upgraded to 1.\n"
    assert "levels are fixed" in refused(broker.bootstrap, "INVALID_UPDATE_VERSION", "features", "downgrade", "--metadata", "3.9")
    assert "supports versions 0-1" in refused(broker.bootstrap, "INVALID_UPDATE_VERSION", "features", "upgrade", "--feature", "group.version=2")
    assert "NAME=LEVEL" in brook(broker.bootstrap, "features", "upgrade", "--feature", "group.version").stderr
    assert "unknown metadata.version '4'" in brook(broker.bootstrap, "features", "upgrade", "--metadata", "4").stderr
