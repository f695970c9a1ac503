"""ACLs with real clients: a broker with Kafka's StandardAuthorizer settings, PLAIN users admin
(a super user), alice and bob on a SASL_PLAINTEXT listener. The administrator grants and removes
entries with confluent-kafka's AdminClient (CreateAcls / DescribeAcls / DeleteAcls); alice may
use what was granted and bob nothing: produce, consume, group membership and offsets, topic
listing and creation, and the ACL APIs themselves are allowed and refused both ways, with
Kafka's error codes, through confluent-kafka, kcat and kafka-python."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, NewTopic, ResourcePatternType, ResourceType,
)

from brook_interop import ck_admin, kcat, unique_topic
from conftest import Broker, _finish, sasl_broker, start_or_fail

TIMEOUT = 30
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_admin="admin-pw" user_alice="alice-pw" user_bob="bob-pw";')
ANY = AclPermissionType.ANY


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    b = start_or_fail(sasl_broker(tmp_path_factory.mktemp("acls"), {
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # The broker's own connections (transaction markers) use its first listener, as ANONYMOUS.
        "super.users": "User:admin;User:ANONYMOUS",
    }))
    yield b
    _admins.clear()  # their handles go before the broker does
    _finish(b)


def conf(b: Broker, user: str) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": user, "sasl.password": f"{user}-pw"}


_admins: dict = {}


def admin(b: Broker, user: str) -> AdminClient:
    """One client per broker and user, kept: a client dropped while its futures wait fails them."""
    key = (b.sasl_port, user)
    if key not in _admins:
        _admins[key] = AdminClient(conf(b, user))
    return _admins[key]


def grant(b: Broker, *bindings: AclBinding) -> None:
    for binding, future in admin(b, "admin").create_acls(list(bindings)).items():
        assert future.result(timeout=TIMEOUT) is None, binding


def allow(type_, name, pattern, principal, operation) -> AclBinding:
    return AclBinding(type_, name, pattern, principal, "*", operation, AclPermissionType.ALLOW)


def produce(b: Broker, user: str, topic: str, n: int = 3) -> list:
    errors = []
    p = Producer({**conf(b, user), "acks": "all", "message.timeout.ms": 10_000})
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT)
    return errors


@pytest.fixture(scope="module")
def granted(secured):
    """alice: WRITE, READ and DESCRIBE on topics starting alice-, READ on group alice-group."""
    a = admin(secured, "admin")
    for _, f in a.create_topics([NewTopic("alice-orders", 1, 1), NewTopic("private", 1, 1)]).items():
        f.result(timeout=TIMEOUT)
    grant(secured,
          allow(ResourceType.TOPIC, "alice-", ResourcePatternType.PREFIXED, "User:alice", AclOperation.WRITE),
          allow(ResourceType.TOPIC, "alice-", ResourcePatternType.PREFIXED, "User:alice", AclOperation.READ),
          allow(ResourceType.GROUP, "alice-group", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ))
    return secured


def test_the_acls_are_described_and_filtered(granted):
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, ANY)
    found = admin(granted, "admin").describe_acls(everything).result(timeout=TIMEOUT)
    assert {(a.restype, a.name, a.operation) for a in found} >= {
        (ResourceType.TOPIC, "alice-", AclOperation.WRITE), (ResourceType.TOPIC, "alice-", AclOperation.READ),
        (ResourceType.GROUP, "alice-group", AclOperation.READ)}
    groups = AclBindingFilter(ResourceType.GROUP, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, ANY)
    assert [a.name for a in admin(granted, "admin").describe_acls(groups).result(timeout=TIMEOUT)] == ["alice-group"]


def test_alice_writes_and_reads_her_topics_and_bob_is_refused(granted):
    assert produce(granted, "alice", "alice-orders") == [None] * 3
    refused = produce(granted, "bob", "alice-orders", n=1)
    assert [e.code() for e in refused] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    refused = produce(granted, "alice", "private", n=1)
    assert [e.code() for e in refused] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    out = kcat(["-b", f"127.0.0.1:{granted.sasl_port}", "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
                "-X", "sasl.username=alice", "-X", "sasl.password=alice-pw", "-C", "-t", "alice-orders", "-e", "-o", "beginning",
                "-f", "%k\\n"], timeout=TIMEOUT)
    assert out.stdout.decode().split()[:3] == ["k0", "k1", "k2"]


def test_topics_alice_may_not_describe_are_not_listed(granted):
    seen_by_alice = set(admin(granted, "alice").list_topics(timeout=TIMEOUT).topics)
    assert "alice-orders" in seen_by_alice and "private" not in seen_by_alice
    seen_by_bob = set(admin(granted, "bob").list_topics(timeout=TIMEOUT).topics)
    assert not seen_by_bob & {"alice-orders", "private"}
    # Named: refused, whether the topic exists or not.
    named = admin(granted, "bob").list_topics(topic="private", timeout=TIMEOUT).topics["private"]
    assert named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    missing = admin(granted, "bob").list_topics(topic="no-such-topic", timeout=TIMEOUT).topics["no-such-topic"]
    assert missing.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_group_membership_and_offsets_need_read_on_the_group(granted):
    assert produce(granted, "alice", "alice-orders") == [None] * 3
    c = Consumer({**conf(granted, "alice"), "group.id": "alice-group", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["alice-orders"])
    got = None
    deadline = time.monotonic() + TIMEOUT
    while got is None and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got = m
    assert got is not None
    c.commit(message=got, asynchronous=False)
    c.close()
    other = Consumer({**conf(granted, "alice"), "group.id": "other-group", "auto.offset.reset": "earliest"})
    other.subscribe(["alice-orders"])
    errors = []
    deadline = time.monotonic() + TIMEOUT
    while not errors and time.monotonic() < deadline:
        m = other.poll(1.0)
        if m is not None and m.error() is not None:
            errors.append(m.error())
    other.close()
    assert errors and errors[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_kafka_python_is_refused_with_kafka_errors(granted):
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError
    p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{granted.sasl_port}", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                      sasl_plain_username="bob", sasl_plain_password="bob-pw", max_block_ms=10_000)
    with pytest.raises(TopicAuthorizationFailedError):
        p.send("alice-orders", b"x").get(timeout=TIMEOUT)
    p.close()


def test_only_administrators_change_acls_and_a_deny_wins(granted):
    binding = allow(ResourceType.TOPIC, "bob-", ResourcePatternType.PREFIXED, "User:bob", AclOperation.ALL)
    with pytest.raises(KafkaException) as refused:
        for _, f in admin(granted, "bob").create_acls([binding]).items():
            f.result(timeout=TIMEOUT)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    deny = AclBinding(ResourceType.TOPIC, "alice-orders", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.WRITE,
                      AclPermissionType.DENY)
    grant(granted, deny)
    assert [e.code() for e in produce(granted, "alice", "alice-orders", n=1)] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    deny_filter = AclBindingFilter(ResourceType.TOPIC, "alice-orders", ResourcePatternType.LITERAL, "User:alice", None,
                                   AclOperation.WRITE, AclPermissionType.DENY)
    deleted = {f: r.result(timeout=TIMEOUT) for f, r in admin(granted, "admin").delete_acls([deny_filter]).items()}
    assert [len(v) for v in deleted.values()] == [1]
    deadline = time.monotonic() + 10
    while produce(granted, "alice", "alice-orders", n=1) != [None]:
        assert time.monotonic() < deadline, "the removed DENY still applies"
        time.sleep(0.2)


def test_acls_survive_a_restart(granted):
    granted.stop()
    granted.start()
    everything = AclBindingFilter(ResourceType.GROUP, "alice-group", ResourcePatternType.LITERAL, None, None, AclOperation.ANY, ANY)
    assert len(admin(granted, "admin").describe_acls(everything).result(timeout=TIMEOUT)) == 1


def test_without_an_authorizer_the_acl_apis_say_security_is_disabled(broker):
    binding = allow(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ)
    client = ck_admin(broker.bootstrap)
    with pytest.raises(KafkaException) as disabled:
        for _, f in client.create_acls([binding]).items():
            f.result(timeout=TIMEOUT)
    assert disabled.value.args[0].code() == KafkaError.SECURITY_DISABLED


def test_brook_acl_adds_lists_and_removes(granted, tmp_path):
    import subprocess
    from conftest import BROOK_BIN
    props = tmp_path / "admin.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                     'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-pw";\n')
    base = [str(BROOK_BIN), "acl"]
    where = ["--bootstrap-server", f"127.0.0.1:{granted.sasl_port}", "--command-config", str(props)]

    def run(*args):
        return subprocess.run(base + list(args) + where, capture_output=True, text=True, timeout=60)

    added = run("add", "--principal", "User:bob", "--operation", "read", "--operation", "describe", "--topic", "bob-", "--prefixed")
    assert added.returncode == 0, added.stderr
    listed = run("list", "--principal", "User:bob")
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split("\n")[:-1]) == ["ALLOW\tUser:bob\tDESCRIBE\tTopic\tPREFIXED\tbob-\t*",
                                                      "ALLOW\tUser:bob\tREAD\tTopic\tPREFIXED\tbob-\t*"]
    removed = run("remove", "--topic", "bob-", "--prefixed", "--operation", "read")
    assert removed.returncode == 0 and "removed 1 entries" in removed.stdout, removed.stderr
    # bob himself may not change ACLs: a readable error and a non-zero exit.
    props.write_text(props.read_text().replace('username="admin" password="admin-pw"', 'username="bob" password="bob-pw"'))
    refused = run("add", "--principal", "User:bob", "--operation", "all", "--cluster")
    assert refused.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr


def test_transactions_need_write_on_the_transactional_id(granted):
    grant(granted,
          allow(ResourceType.TRANSACTIONAL_ID, "alice-tx", ResourcePatternType.LITERAL, "User:alice", AclOperation.WRITE),
          allow(ResourceType.GROUP, "alice-group", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ))
    p = Producer({**conf(granted, "alice"), "transactional.id": "alice-tx"})
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    p.produce("alice-orders", key=b"tx", value=b"committed")
    p.commit_transaction(TIMEOUT)
    refused = Producer({**conf(granted, "bob"), "transactional.id": "alice-tx"})
    with pytest.raises(KafkaException) as error:
        refused.init_transactions(TIMEOUT)
    assert error.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_configs_and_groups_are_described_only_with_permission(granted):
    from confluent_kafka.admin import ConfigResource
    resource = ConfigResource(ConfigResource.Type.TOPIC, "private")
    with pytest.raises(KafkaException) as refused:
        admin(granted, "alice").describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    described = admin(granted, "admin").describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert "retention.ms" in described
    groups = admin(granted, "bob").list_consumer_groups().result(timeout=TIMEOUT)
    assert "alice-group" not in [g.group_id for g in groups.valid]


def test_configs_are_altered_only_with_alter_configs(granted):
    """ALTER_CONFIGS per resource (Kafka's rule): on the topic for a topic, on the cluster for a
    broker; refusals come back per resource with Kafka's codes, the connection stays usable."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    topic = ConfigResource(ConfigResource.Type.TOPIC, "alice-orders",
                           incremental_configs=[ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        admin(granted, "alice").incremental_alter_configs([topic])[topic].result(timeout=TIMEOUT)
    assert refused.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    grant(granted, allow(ResourceType.TOPIC, "alice-", ResourcePatternType.PREFIXED, "User:alice", AclOperation.ALTER_CONFIGS))
    deadline = time.monotonic() + 10
    while True:
        try:
            admin(granted, "alice").incremental_alter_configs([topic])[topic].result(timeout=TIMEOUT)
            break
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED and time.monotonic() < deadline, e
            time.sleep(0.2)
    described = admin(granted, "admin").describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "alice-orders")])
    assert list(described.values())[0].result(timeout=TIMEOUT)["retention.ms"].value == "3600000"
    broker = ConfigResource(ConfigResource.Type.BROKER, "1",
                            incremental_configs=[ConfigEntry("log.cleaner.threads", "2", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        admin(granted, "alice").incremental_alter_configs([broker])[broker].result(timeout=TIMEOUT)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_cluster_apis_are_answered_cluster_authorization_failed(granted):
    """An API checked on the cluster (DescribeCluster and DescribeUserScramCredentials need
    DESCRIBE on it, UpdateFeatures ALTER, ListConfigResources DESCRIBE_CONFIGS) is answered with CLUSTER_AUTHORIZATION_FAILED, as Kafka does, and the
    connection stays open. (librdkafka's describe_cluster asks Metadata: kafka-python's asks
    DescribeCluster.)"""
    from kafka import KafkaAdminClient
    from kafka.errors import ClusterAuthorizationFailedError

    def kp_admin(user):
        return KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{granted.sasl_port}", security_protocol="SASL_PLAINTEXT",
                                sasl_mechanism="PLAIN", sasl_plain_username=user, sasl_plain_password=f"{user}-pw",
                                request_timeout_ms=TIMEOUT * 1000)
    bob = kp_admin("bob")
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            bob.describe_cluster()
        # (Not through librdkafka 2.16: a DescribeUserScramCredentials answer with a top-level
        # error, as Kafka gives, aborts it.)
        with pytest.raises(ClusterAuthorizationFailedError):
            bob.describe_user_scram_credentials()
        # UpdateFeatures needs ALTER on the cluster, ListConfigResources DESCRIBE_CONFIGS.
        with pytest.raises(ClusterAuthorizationFailedError):
            bob.update_features({"metadata.version": 25})
        with pytest.raises(ClusterAuthorizationFailedError):
            bob.list_config_resources()
        assert bob.list_topics() == [], "the connection was not usable after the refusal"
    finally:
        bob.close()
    a = kp_admin("admin")
    try:
        assert [b["broker_id"] for b in a.describe_cluster()["brokers"]] == [1]
        assert a.update_features({"metadata.version": 25}) == {"metadata.version": "OK"}
        assert a.list_config_resources(["BROKER"]) == {"broker": ["1"]}
    finally:
        a.close()
