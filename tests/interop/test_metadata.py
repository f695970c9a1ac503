"""Metadata and ApiVersions through every client: confluent-kafka's AdminClient, kafka-python's
KafkaAdminClient, kcat -L (Debian's kcat on librdkafka 2.0.2); topic auto-creation by a produce
to a new topic, and its absence where the client does not ask for it or the broker forbids it."""
from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import KafkaError

from brook_interop import (
    Spec,
    api_versions_v3_body,
    ck_admin,
    ck_consumer,
    ck_create_topic,
    ck_describe_cluster,
    ck_produce,
    ck_producer,
    connect,
    kcat,
    kcat_produce,
    kp_admin,
    kp_produce,
    make_records,
    parse_api_versions,
    read_response,
    request_frame,
    unique_topic,
    wait_for_partitions,
)

# What Brook implements today (Kafka API keys).
IMPLEMENTED = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    18: "ApiVersions",
    19: "CreateTopics",
    20: "DeleteTopics",
    21: "DeleteRecords",
    23: "OffsetForLeaderEpoch",
    32: "DescribeConfigs",
    33: "AlterConfigs",
    35: "DescribeLogDirs",
    37: "CreatePartitions",
    44: "IncrementalAlterConfigs",
    60: "DescribeCluster",
}


def test_confluent_list_topics(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=3)
    md = ck_admin(broker.bootstrap).list_topics(timeout=10)

    assert set(md.brokers) == {1}
    b = md.brokers[1]
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
    assert md.controller_id == 1
    assert md.cluster_id, "Metadata must carry a cluster id"
    assert md.cluster_id == ck_describe_cluster(broker.bootstrap).cluster_id
    # The answering connection may still be the bootstrap one (id -1), as with Kafka.
    assert md.orig_broker_id in (-1, 1)

    t = md.topics[topic]
    assert t.error is None
    assert sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert p.error is None
        assert p.leader == 1
        assert list(p.replicas) == [1]
        assert list(p.isrs) == [1]


def test_confluent_describe_cluster(broker):
    desc = ck_describe_cluster(broker.bootstrap)
    assert desc.cluster_id
    assert [(n.id, n.host, n.port) for n in desc.nodes] == [(1, "127.0.0.1", broker.port)]
    assert desc.controller is not None and desc.controller.id == 1


def test_kafka_python_describe_cluster_and_list_topics(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    admin = kp_admin(broker.bootstrap)
    try:
        cluster = admin.describe_cluster()
        assert cluster["cluster_id"] == ck_describe_cluster(broker.bootstrap).cluster_id
        assert cluster["controller_id"] == 1
        brokers = [(x["broker_id"], x["host"], x["port"]) for x in cluster["brokers"]]
        assert brokers == [(1, "127.0.0.1", broker.port)]

        assert topic in admin.list_topics()
        (described,) = admin.describe_topics([topic])
        assert described["name"] == topic and described["error_code"] == 0
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1]
        assert all(p["leader_id"] == 1 for p in described["partitions"])
    finally:
        admin.close()


def test_kcat_metadata(broker, topic):
    ck_create_topic(broker.bootstrap, topic, partitions=3)

    md = json.loads(kcat(["-L", "-b", broker.bootstrap, "-J", "-m", "10"], timeout=30).stdout)
    assert md["brokers"] == [{"id": 1, "name": f"127.0.0.1:{broker.port}"}]
    assert md["controllerid"] == 1
    (t,) = [t for t in md["topics"] if t["topic"] == topic]
    assert "error" not in t
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    for p in t["partitions"]:
        assert "error" not in p
        assert p["leader"] == 1
        assert p["replicas"] == [{"id": 1}] and p["isrs"] == [{"id": 1}]

    text = kcat(["-L", "-b", broker.bootstrap, "-t", topic, "-m", "10"], timeout=30).stdout.decode()
    assert f'topic "{topic}" with 3 partitions' in text, text
    assert f"broker 1 at 127.0.0.1:{broker.port}" in text, text


def test_auto_create_on_produce_confluent(broker, topic):
    specs = make_records(10, "auto", partitions=1, explicit_partition=False)
    delivered = ck_produce(broker.bootstrap, topic, specs, acks="all")
    assert sorted(delivered.values()) == [(0, i) for i in range(10)]  # num.partitions=1
    wait_for_partitions(broker.bootstrap, topic, 1)


def test_auto_create_on_produce_kafka_python(broker, topic):
    specs = make_records(10, "auto", partitions=1)
    meta = kp_produce(broker.bootstrap, topic, specs, acks=1)
    assert sorted((m.partition, m.offset) for m in meta.values()) == [(0, i) for i in range(10)]
    wait_for_partitions(broker.bootstrap, topic, 1)


def test_auto_create_on_produce_kcat(broker, topic):
    specs = make_records(10, "kcat", partitions=1, text_only=True, explicit_partition=False, static_headers=(("src", b"kcat"),))
    kcat_produce(broker.bootstrap, topic, specs, acks="all", timeout=60)
    wait_for_partitions(broker.bootstrap, topic, 1)


def test_metadata_without_auto_create_does_not_create(broker):
    """A Metadata request with allow_auto_topic_creation=false (admin clients, librdkafka
    consumers) answers UNKNOWN_TOPIC_OR_PARTITION and creates nothing."""
    missing = unique_topic("missing")
    admin = kp_admin(broker.bootstrap)
    try:
        (described,) = admin.describe_topics([missing])
        assert described["error_code"] == 3, described  # UNKNOWN_TOPIC_OR_PARTITION

        c = ck_consumer(broker.bootstrap)  # allow.auto.create.topics defaults to false here
        try:
            t = c.list_topics(topic=missing, timeout=10).topics[missing]
            assert t.error is not None and t.error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)
        finally:
            c.close()

        time.sleep(0.5)
        assert missing not in admin.list_topics()
    finally:
        admin.close()


def test_auto_create_disabled(broker_factory):
    b = broker_factory({"auto.create.topics.enable": "false"})
    t = unique_topic("noauto")
    p = ck_producer(b.bootstrap, **{"allow.auto.create.topics": True})
    md = p.list_topics(topic=t, timeout=10)
    err = md.topics[t].error
    assert err is not None and err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), err
    time.sleep(0.5)
    assert t not in ck_admin(b.bootstrap).list_topics(timeout=10).topics

    # Explicit creation still works.
    ck_create_topic(b.bootstrap, t, partitions=2)


def test_num_partitions_for_auto_created_topics(broker_factory):
    b = broker_factory({"num.partitions": "3"})
    t = unique_topic("np3")
    p = ck_producer(b.bootstrap, **{"allow.auto.create.topics": True})
    p.list_topics(topic=t, timeout=10)  # asks the broker to create it
    wait_for_partitions(b.bootstrap, t, 3)
    delivered = ck_produce(b.bootstrap, t, make_records(30, "np", partitions=3))
    assert {part for part, _ in delivered.values()} == {0, 1, 2}


@pytest.mark.parametrize("version", [0, 3])
def test_api_versions_lists_implemented_apis(broker, version):
    body = api_versions_v3_body() if version >= 3 else b""
    with connect(broker.port) as s:
        s.sendall(request_frame(18, version, 7, "brook-interop", body))
        corr, err, apis = parse_api_versions(read_response(s), version)
    assert corr == 7
    assert err == 0
    missing = {name for key, name in IMPLEMENTED.items() if key not in apis}
    assert not missing, f"ApiVersions v{version} does not list {sorted(missing)}: {apis}"
    for key, (lo, hi) in apis.items():
        assert 0 <= lo <= hi, f"api {key}: bad range {lo}..{hi}"
    lo, hi = apis[18]
    assert lo == 0 and hi >= 4, f"ApiVersions range {lo}..{hi}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("quorum", ["quorum", "no-quorum"])
def test_a_partition_whose_log_dir_failed_stays_listed_without_a_leader(failing_disk, broker_factory, tmp_path, quorum):
    """A single broker with two log dirs, one on a disk that then fails (a loop device shut down):
    the partitions in the failed dir stay in Metadata by number, without a leader
    (LEADER_NOT_AVAILABLE), the broker still their replica and ISR, as Kafka lists a partition
    whose only replica is offline; so confluent-kafka, kafka-python and kcat still count six
    partitions, and the healthy ones go on taking records. Both on the node's own quorum (from
    its image) and without one (`brook.single.node.quorum=false`, which left them out before)."""
    from confluent_kafka import Producer
    from kafka import KafkaConsumer
    first = (tmp_path / "first").resolve()
    overrides = {"log.dirs": f"{first},{failing_disk.path}"}
    if quorum == "no-quorum":
        overrides["brook.single.node.quorum"] = "false"
    b = broker_factory(overrides)
    topic = unique_topic("offline")
    ck_create_topic(b.bootstrap, topic, partitions=6)

    def replicas_in(directory):
        return sorted(int(p.name.rsplit("-", 1)[1]) for p in directory.iterdir() if p.name.startswith(f"{topic}-"))

    on_disk = replicas_in(failing_disk.path)
    healthy = replicas_in(first)
    assert on_disk and healthy and sorted(on_disk + healthy) == list(range(6)), (on_disk, healthy)
    failing_disk.fail()
    # The broker finds the disk dead at its next write there.
    producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "1", "message.timeout.ms": 5000})
    for p in on_disk:
        producer.produce(topic, partition=p, value=b"lost?")
    producer.flush(10)

    admin = ck_admin(b.bootstrap)
    deadline = time.monotonic() + 30
    while True:
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        offline = {p for p, m in partitions.items() if m.leader == -1}
        if offline == set(on_disk):
            break
        assert time.monotonic() < deadline, ({p: (m.leader, m.error) for p, m in partitions.items()}, b.log_tail())
        time.sleep(0.3)
    assert sorted(partitions) == list(range(6))
    for p, m in partitions.items():
        if p in on_disk:
            assert m.error is not None and m.error.code() == KafkaError.LEADER_NOT_AVAILABLE, m.error
            assert m.replicas == [1] and m.isrs == [1], (m.replicas, m.isrs)
        else:
            assert m.error is None and m.leader == 1 and m.isrs == [1], (m.error, m.leader, m.isrs)

    consumer = KafkaConsumer(bootstrap_servers=b.bootstrap, request_timeout_ms=30000)
    try:
        assert consumer.partitions_for_topic(topic) == set(range(6))
    finally:
        consumer.close()

    md = json.loads(kcat(["-L", "-b", b.bootstrap, "-t", topic, "-J", "-m", "10"], timeout=30).stdout)
    (t,) = [t for t in md["topics"] if t["topic"] == topic]
    assert sorted(p["partition"] for p in t["partitions"]) == list(range(6))
    assert sorted(p["partition"] for p in t["partitions"] if p["leader"] == -1) == on_disk

    # The healthy partitions take records as before.
    delivered = ck_produce(b.bootstrap, topic, [Spec(i, None, f"v{i}".encode(), (), healthy[0]) for i in range(20)])
    assert sorted(delivered.values()) == [(healthy[0], i) for i in range(20)]
