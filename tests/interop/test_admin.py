"""Topic administration through confluent-kafka's AdminClient and kafka-python's
KafkaAdminClient: create (partitions, configs), describe / alter configs, create partitions,
delete topics, delete records, describe log dirs, and the errors Kafka answers with."""
from __future__ import annotations

import os
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from brook_interop import (
    ck_admin,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_errors,
    ck_produce,
    ck_wait,
    kp_admin,
    make_records,
    unique_topic,
    wait_for_partitions,
)

# The topic configs Brook's log has (LogConfig.names), all of which DescribeConfigs must list,
# with Kafka's defaults for some of them.
TOPIC_CONFIGS = {
    "cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes", "segment.ms",
    "segment.index.bytes", "index.interval.bytes", "delete.retention.ms", "min.compaction.lag.ms",
    "flush.messages", "flush.ms", "max.message.bytes", "message.timestamp.type",
}
KAFKA_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
}


def source_of(entry) -> int:
    return int(getattr(entry.source, "value", entry.source))


def describe_topic(bootstrap: str, topic: str) -> dict:
    admin = ck_admin(bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic)
    (configs,) = ck_wait(admin.describe_configs([res], request_timeout=15)).values()
    return configs


def create_error(bootstrap: str, new_topic) -> "KafkaError | None":
    admin = ck_admin(bootstrap)
    (err,) = ck_errors(admin.create_topics([new_topic], operation_timeout=10, request_timeout=30)).values()
    return err


# --------------------------------------------------------------------------------------------
# Create, describe configs


def test_create_topic_with_configs_and_describe(broker, topic):
    ck_create_topic(
        broker.bootstrap,
        topic,
        partitions=3,
        config={"retention.ms": "3600000", "cleanup.policy": "compact", "max.message.bytes": "500000"},
    )
    configs = describe_topic(broker.bootstrap, topic)

    missing = TOPIC_CONFIGS - set(configs)
    assert not missing, f"DescribeConfigs (all configs) lacks {sorted(missing)}; has {sorted(configs)}"

    for name, value in {"retention.ms": "3600000", "cleanup.policy": "compact", "max.message.bytes": "500000"}.items():
        e = configs[name]
        assert e.value == value, (name, e.value)
        assert not e.is_default, f"{name} was set at creation, so it is not a default"
        assert source_of(e) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (name, e.source)
        assert not e.is_read_only and not e.is_sensitive

    for name, value in KAFKA_DEFAULTS.items():
        if name in ("retention.ms", "cleanup.policy", "max.message.bytes"):
            continue
        e = configs[name]
        assert e.value == value, (name, e.value)
        assert e.is_default, f"{name} was not set, so it is a default ({e.source})"
        assert source_of(e) != ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def test_default_topic_describes_kafka_defaults(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    configs = describe_topic(broker.bootstrap, topic)
    for name, value in KAFKA_DEFAULTS.items():
        assert configs[name].value == value, (name, configs[name].value)
        assert configs[name].is_default, name


def test_describe_broker_configs(broker_factory):
    b = broker_factory({"num.partitions": "3"})
    admin = ck_admin(b.bootstrap)
    res = ConfigResource(ResourceType.BROKER, "1")
    (configs,) = ck_wait(admin.describe_configs([res], request_timeout=15)).values()
    assert configs["num.partitions"].value == "3" and not configs["num.partitions"].is_default
    assert configs["auto.create.topics.enable"].value == "true" and configs["auto.create.topics.enable"].is_default
    assert os.path.realpath(configs["log.dirs"].value) == os.path.realpath(b.data_dir)
    assert configs["node.id"].value == "1"


def test_create_topic_kafka_python(broker):
    t1, t2 = unique_topic("kp-create"), unique_topic("kp-default")
    admin = kp_admin(broker.bootstrap)
    try:
        result = admin.create_topics(
            {t1: {"num_partitions": 2, "replication_factor": 1, "configs": {"retention.ms": "7200000"}}}
        )
        assert [(t["name"], t["error_code"]) for t in result["topics"]] == [(t1, 0)]
        # Broker defaults for partitions and replication factor (-1, -1): num.partitions = 1.
        result = admin.create_topics([t2])
        assert [(t["name"], t["error_code"]) for t in result["topics"]] == [(t2, 0)]
        admin.wait_for_topics([t1, t2], timeout_ms=15000)

        described = {t["name"]: t for t in admin.describe_topics([t1, t2])}
        assert len(described[t1]["partitions"]) == 2
        assert len(described[t2]["partitions"]) == 1

        from kafka.admin import ConfigResource as KpConfigResource

        modified = admin.describe_configs([KpConfigResource("TOPIC", t1)])  # only non-defaults
        assert modified["topic"][t1]["retention.ms"]["value"] == "7200000"
        assert "segment.bytes" not in modified["topic"][t1], "a default config was reported as modified"

        everything = admin.describe_configs([KpConfigResource("TOPIC", t1)], config_filter="all")
        seg = everything["topic"][t1]["segment.bytes"]
        assert seg["value"] == "1073741824"
        assert seg["config_source"] == "DEFAULT_CONFIG"
        assert everything["topic"][t1]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    finally:
        admin.close()


# --------------------------------------------------------------------------------------------
# Alter configs


def test_incremental_alter_configs_confluent(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=1, config={"cleanup.policy": "compact"})
    admin = ck_admin(broker.bootstrap)

    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    ck_wait(admin.incremental_alter_configs([res], request_timeout=15))
    configs = describe_topic(broker.bootstrap, topic)
    assert configs["retention.ms"].value == "7200000" and not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete" and configs["cleanup.policy"].is_default

    # validate_only changes nothing.
    dry = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)],
    )
    ck_wait(admin.incremental_alter_configs([dry], request_timeout=15, validate_only=True))
    assert describe_topic(broker.bootstrap, topic)["retention.ms"].value == "7200000"

    # An invalid value is refused with INVALID_CONFIG and leaves the config alone.
    bad = ConfigResource(
        ResourceType.TOPIC, topic,
        incremental_configs=[ConfigEntry("retention.ms", "forever", incremental_operation=AlterConfigOpType.SET)],
    )
    (err,) = ck_errors(admin.incremental_alter_configs([bad], request_timeout=15)).values()
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err
    assert describe_topic(broker.bootstrap, topic)["retention.ms"].value == "7200000"


def test_alter_configs_kafka_python(broker, topic):
    from kafka.admin import ConfigResource as KpConfigResource

    ck_create_topic(broker.bootstrap, topic, partitions=1, config={"cleanup.policy": "compact"})
    admin = kp_admin(broker.bootstrap)
    try:
        # Legacy AlterConfigs (replaces the whole set; kafka-python re-sends the other modified
        # configs, so cleanup.policy must survive).
        result = admin.alter_configs([KpConfigResource("TOPIC", topic, {"retention.ms": "86400000"})], incremental=False)
        assert result == {"topic": {topic: "OK"}}, result
        configs = describe_topic(broker.bootstrap, topic)
        assert configs["retention.ms"].value == "86400000" and not configs["retention.ms"].is_default
        assert configs["cleanup.policy"].value == "compact"

        # IncrementalAlterConfigs through kafka-python too.
        result = admin.alter_configs([KpConfigResource("TOPIC", topic, {"segment.ms": "3600000"})], incremental=True)
        assert result == {"topic": {topic: "OK"}}, result
        configs = describe_topic(broker.bootstrap, topic)
        assert configs["segment.ms"].value == "3600000"
        assert configs["retention.ms"].value == "86400000"
        assert configs["cleanup.policy"].value == "compact"
    finally:
        admin.close()


# --------------------------------------------------------------------------------------------
# Partitions, deletion


def test_create_partitions(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    admin = ck_admin(broker.bootstrap)
    ck_wait(admin.create_partitions([NewPartitions(topic, 3)], operation_timeout=10, request_timeout=30))
    wait_for_partitions(broker.bootstrap, topic, 3)

    specs = make_records(30, "cp", partitions=3)
    ck_produce(broker.bootstrap, topic, specs)
    got = ck_consume(broker.bootstrap, topic, [0, 1, 2], 30, timeout=60)
    assert sorted((r.partition, r.offset) for r in got) == sorted((p, o) for p in range(3) for o in range(10))

    kp = kp_admin(broker.bootstrap)
    try:
        kp.create_partitions({topic: 5})
    finally:
        kp.close()
    wait_for_partitions(broker.bootstrap, topic, 5)

    # Fewer partitions than the topic has: INVALID_PARTITIONS.
    (err,) = ck_errors(admin.create_partitions([NewPartitions(topic, 2)], operation_timeout=10, request_timeout=30)).values()
    assert err is not None and err.code() == KafkaError.INVALID_PARTITIONS, err
    wait_for_partitions(broker.bootstrap, topic, 5)


def _gone(bootstrap: str, topic: str, timeout: float = 15.0) -> None:
    admin = ck_admin(bootstrap)
    deadline = time.monotonic() + timeout
    while topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"{topic} still listed {timeout}s after deletion"
        time.sleep(0.2)


def test_delete_topic_and_recreate(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    ck_produce(broker.bootstrap, topic, make_records(20, "del", partitions=2))
    partition_dir = broker.data_dir / f"{topic}-0"
    assert partition_dir.is_dir(), f"expected the partition directory {partition_dir}"

    admin = ck_admin(broker.bootstrap)
    ck_wait(admin.delete_topics([topic], operation_timeout=10, request_timeout=30))
    _gone(broker.bootstrap, topic)
    deadline = time.monotonic() + 15
    while partition_dir.exists():
        assert time.monotonic() < deadline, f"{partition_dir} still there 15 s after the topic was deleted"
        time.sleep(0.2)

    # The same name again is a new, empty topic.
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    c = ck_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 0)
    finally:
        c.close()
    ck_produce(broker.bootstrap, topic, make_records(3, "again", partitions=1))
    got = ck_consume(broker.bootstrap, topic, [0], 3, timeout=60)
    assert [r.offset for r in got] == [0, 1, 2]
    assert all(r.key.startswith(b"again-") for r in got)


def test_delete_topics_kafka_python_and_unknown(broker):
    t = unique_topic("kp-del")
    ck_create_topic(broker.bootstrap, t, partitions=1)
    kp = kp_admin(broker.bootstrap)
    try:
        result = kp.delete_topics([t])
        assert [(x["name"], x["error_code"]) for x in result["topics"]] == [(t, 0)]
    finally:
        kp.close()
    _gone(broker.bootstrap, t)

    missing = unique_topic("never-was")
    admin = ck_admin(broker.bootstrap)
    (err,) = ck_errors(admin.delete_topics([missing], operation_timeout=10, request_timeout=30)).values()
    assert err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, err


# --------------------------------------------------------------------------------------------
# Errors


def test_create_topic_errors_confluent(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=1)

    err = create_error(broker.bootstrap, NewTopic(topic, num_partitions=1, replication_factor=1))
    assert err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS, err

    for bad in ("bad name!", "a" * 250, ".", "..", "slash/name"):
        err = create_error(broker.bootstrap, NewTopic(bad, num_partitions=1, replication_factor=1))
        assert err is not None and err.code() == KafkaError.TOPIC_EXCEPTION, (bad, err)  # INVALID_TOPIC_EXCEPTION (17)

    t = unique_topic("rf3")
    err = create_error(broker.bootstrap, NewTopic(t, num_partitions=1, replication_factor=3))
    assert err is not None and err.code() == KafkaError.INVALID_REPLICATION_FACTOR, err

    t_bad_value = unique_topic("badcfg")
    err = create_error(broker.bootstrap, NewTopic(t_bad_value, num_partitions=1, replication_factor=1, config={"retention.ms": "soon"}))
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err

    t_bad_name = unique_topic("unknowncfg")
    err = create_error(broker.bootstrap, NewTopic(t_bad_name, num_partitions=1, replication_factor=1, config={"no.such.config": "1"}))
    assert err is not None and err.code() == KafkaError.INVALID_CONFIG, err

    time.sleep(0.3)
    listed = ck_admin(broker.bootstrap).list_topics(timeout=10).topics
    for refused in (t, t_bad_value, t_bad_name):
        assert refused not in listed, f"{refused} was refused but exists"


def test_create_topic_errors_kafka_python(broker):
    existing = unique_topic("kp-exists")
    ck_create_topic(broker.bootstrap, existing, partitions=1)
    kp = kp_admin(broker.bootstrap)
    try:
        cases = {
            existing: ({"num_partitions": 1, "replication_factor": 1}, 36),  # TOPIC_ALREADY_EXISTS
            "bad name!": ({"num_partitions": 1, "replication_factor": 1}, 17),  # INVALID_TOPIC_EXCEPTION
            unique_topic("kp-rf3"): ({"num_partitions": 1, "replication_factor": 3}, 38),  # INVALID_REPLICATION_FACTOR
            unique_topic("kp-zero"): ({"num_partitions": 0, "replication_factor": 1}, 37),  # INVALID_PARTITIONS
        }
        for name, (spec, code) in cases.items():
            result = kp.create_topics({name: spec}, raise_errors=False)
            (t,) = result["topics"]
            assert (t["name"], t["error_code"]) == (name, code), (name, t)
    finally:
        kp.close()


# --------------------------------------------------------------------------------------------
# Records and log dirs


def test_delete_records(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    ck_produce(broker.bootstrap, topic, make_records(200, "dr", partitions=2))  # 100 per partition
    admin = ck_admin(broker.bootstrap)
    if not hasattr(admin, "delete_records"):
        pytest.skip("this confluent-kafka has no AdminClient.delete_records")

    (deleted,) = ck_wait(admin.delete_records([TopicPartition(topic, 0, 40)], request_timeout=30, operation_timeout=10)).values()
    assert deleted.low_watermark == 40

    tp0 = TopicPartition(topic, 0)
    (earliest,) = ck_wait(admin.list_offsets({tp0: OffsetSpec.earliest()}, request_timeout=15)).values()
    assert earliest.offset == 40
    c = ck_consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(tp0, timeout=10, cached=False) == (40, 100)
    finally:
        c.close()

    # Reading from the beginning starts at the new log start; partition 1 is untouched.
    got = ck_consume(broker.bootstrap, topic, [0, 1], 160, timeout=60)
    assert sorted(r.offset for r in got if r.partition == 0) == list(range(40, 100))
    assert sorted(r.offset for r in got if r.partition == 1) == list(range(100))

    # kafka-python's delete_records moves it further.
    from kafka import TopicPartition as KpTopicPartition

    kp = kp_admin(broker.bootstrap)
    try:
        result = kp.delete_records({KpTopicPartition(topic, 0): 70})
        assert result[KpTopicPartition(topic, 0)]["low_watermark"] == 70
    finally:
        kp.close()

    # Past the high watermark: OFFSET_OUT_OF_RANGE.
    (err,) = ck_errors(admin.delete_records([TopicPartition(topic, 0, 1000)], request_timeout=30)).values()
    assert err is not None and err.code() == KafkaError.OFFSET_OUT_OF_RANGE, err

    # -1 (OFFSET_END): everything up to the high watermark.
    (deleted,) = ck_wait(admin.delete_records([TopicPartition(topic, 0, -1)], request_timeout=30)).values()
    assert deleted.low_watermark == 100


def test_describe_log_dirs_kafka_python(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    ck_produce(broker.bootstrap, topic, make_records(50, "ld", partitions=1))  # all to partition 0
    kp = kp_admin(broker.bootstrap)
    try:
        for query in (None, {topic: [0, 1]}):
            result = kp.describe_log_dirs(topic_partitions=query)
            (per_broker,) = result
            assert per_broker["broker"] == 1
            (log_dir,) = per_broker["log_dirs"]
            assert log_dir["error_code"] == 0, log_dir
            assert os.path.realpath(log_dir["log_dir"]) == os.path.realpath(broker.data_dir)
            if log_dir.get("total_bytes", -1) != -1:
                assert log_dir["total_bytes"] > 0 and 0 <= log_dir["usable_bytes"] <= log_dir["total_bytes"]
            (t,) = [t for t in log_dir["topics"] if t["name"] == topic]
            sizes = {p["partition_index"]: p for p in t["partitions"]}
            assert set(sizes) == {0, 1}
            assert sizes[0]["partition_size"] > 50 * 20, sizes[0]  # 50 records of 20+ bytes each
            assert sizes[1]["partition_size"] == 0, sizes[1]
            assert all(p["offset_lag"] == 0 and not p["is_future_key"] for p in sizes.values())
    finally:
        kp.close()


def test_describe_metadata_quorum_kafka_python(broker):
    """kafka-python's describe_metadata_quorum (DescribeQuorum v2) and `brook metadata-quorum`
    on a single node: one voter that leads, holds the whole log and listens where its node says;
    a request for another partition is refused per partition."""
    import subprocess
    from kafka.errors import UnknownTopicOrPartitionError  # noqa: F401 (the code the refusal names)
    from conftest import BROOK_BIN
    before = time.time() * 1000
    kp = kp_admin(broker.bootstrap)
    try:
        quorum = kp.describe_metadata_quorum()
        (topic,) = quorum["topics"]
        assert topic["topic_name"] == "__cluster_metadata"
        (p,) = topic["partitions"]
        assert p["error"] is None and p["partition_index"] == 0, p
        assert p["leader_id"] == 1 and p["leader_epoch"] >= 1, p
        (voter,) = p["current_voters"]
        assert voter["replica_id"] == 1 and voter["log_end_offset"] >= p["high_watermark"] > 0, p
        assert voter["last_caught_up_timestamp"] >= before - 1000, voter  # the leader: now, by its clock
        assert p["observers"] == [], "a single node's broker is its voter"
        (node,) = quorum["nodes"]
        assert node["node_id"] == 1 and node["listeners"][0]["port"] > 0, node
        # Another partition of the metadata topic: UNKNOWN_TOPIC_OR_PARTITION on it.
        from kafka.protocol.admin.cluster import DescribeQuorumRequest
        T = DescribeQuorumRequest.TopicData
        bad = kp._manager.run(lambda: kp._manager.send(DescribeQuorumRequest(topics=[
            T(topic_name="__cluster_metadata", partitions=[T.PartitionData(partition_index=1)])])))
        assert bad.topics[0].partitions[0].error_code == 3, bad
    finally:
        kp.close()
    status = subprocess.run([str(BROOK_BIN), "metadata-quorum", "describe", "--bootstrap-server", broker.bootstrap],
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status
    fields = dict(line.split(":", 1) for line in status.stdout.splitlines())
    assert fields["LeaderId"].strip() == "1" and fields["CurrentVoters"].strip().startswith("[1@127.0.0.1:"), status.stdout
    replication = subprocess.run([str(BROOK_BIN), "metadata-quorum", "describe", "--replication", "--bootstrap-server", broker.bootstrap],
                                 capture_output=True, text=True, timeout=30)
    assert replication.returncode == 0, replication
    lines = replication.stdout.splitlines()
    assert lines[0].split() == ["NodeId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"], lines
    assert lines[1].split()[0] == "1" and lines[1].split()[-1] == "Leader", lines
