"""A cluster whose nodes talk to each other only over TLS (the security issue's proof): three
`brook serve` nodes (broker and controller each) on loopback, certificates made by openssl
for the test (tls_certs.py).

1. Everything SSL with required client certificates: the controllers' quorum (controller ↔
   controller, broker → controller) on an SSL controller listener, the brokers' replica fetches
   and transaction markers on `inter.broker.listener.name`, and clients, with an authorizer whose
   super users are the certificates' subjects. A plaintext client is refused on every port; the
   cluster forms, replicates (full ISR over TLS), survives its partition leader's SIGKILL without
   losing an acknowledged record, commits a transaction across brokers, and the restarted
   node catches up.
2. Brokers authenticating to each other with SASL PLAIN, and SCRAM-SHA-512 (credentials from
   `--add-scram`), over TLS (`sasl.mechanism.inter.broker.protocol`, the broker's own
   `username`/`password` in the listener's JAAS config) under an authorizer whose only super
   user is that broker login.
"""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time

import pytest

from brook_cluster import Cluster, all_unfenced, partition_states
from brook_interop import unique_topic
from conftest import BROOK_BIN
from tls_certs import make_certs
from tls_hostile import barrage

TIMEOUT = 30


def kcat_x(conf: dict) -> list:
    args = []
    for k, v in conf.items():
        args += ["-X", f"{k}={v}"]
    return args


def wait_full_isr(bootstrap: str, topic: str, partitions: int, args: list, limit_s: float = 60) -> dict:
    deadline = time.monotonic() + limit_s
    while True:
        states = partition_states(bootstrap, topic, args)
        if len(states) == partitions and all(len(isr) == 3 and leader >= 0 for leader, _, isr in states.values()):
            return states
        assert time.monotonic() < deadline, f"ISR not full over TLS: {states}"
        time.sleep(0.3)


def served_subject(host: str, port: int, certs: dict) -> str:
    """The subject of the certificate a TLS listener serves (read, not checked), shown a client
    certificate from the test CA."""
    from cryptography import x509
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(certs["client.pem"], certs["client.key"])
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def write_props(path, **settings) -> str:
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return str(path)


@pytest.mark.timeout(180)
def test_a_three_node_cluster_whose_nodes_talk_only_tls(tmp_path):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    certs = make_certs(tmp_path / "certs")
    for i in (1, 2, 3):  # each node its own key store file, so that one can be renewed
        shutil.copy(certs["keystore.pem"], tmp_path / f"keystore-{i}.pem")
    settings = lambda i: [
        "listener.security.protocol.map=BROKER:SSL,CONTROLLER:SSL",
        "inter.broker.listener.name=BROKER",
        f"ssl.keystore.location={tmp_path / f'keystore-{i}.pem'}",
        f"ssl.truststore.location={certs['ca.pem']}",
        "ssl.client.auth=required",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # The brokers' certificate and the test client's, as the default mapping names them.
        "super.users=User:O=Brook,CN=localhost;User:O=Brook,CN=client-1",
    ]
    tool_config = write_props(tmp_path / "tool.properties", **{
        "security.protocol": "SSL", "ssl.truststore.location": certs["ca.pem"],
        "ssl.certificate.location": certs["client.pem"], "ssl.key.location": certs["client.key"]})
    cluster = Cluster(tmp_path, listener="BROKER", extra=settings, tool_args=["--command-config", tool_config])
    cluster.start()
    try:
        cluster.wait_for("three unfenced brokers over TLS", all_unfenced([1, 2, 3]), limit_s=60)
        bootstrap = cluster.bootstrap
        client = {"security.protocol": "SSL", "ssl.ca.location": certs["ca.pem"],
                  "ssl.certificate.location": certs["client.pem"], "ssl.key.location": certs["client.key"]}
        tls_args = kcat_x(client)

        # Plaintext is refused everywhere: the controllers' ports and the brokers'.
        node = cluster.nodes[1]
        plain = subprocess.run([str(BROOK_BIN), "cluster", "describe", "--controller", f"{node.host}:{node.controller_port}",
                                "--timeout-ms", "1000"], capture_output=True, text=True, timeout=15)
        assert plain.returncode != 0, plain.stdout
        refused = subprocess.run(["kcat", "-b", node.bootstrap, "-L", "-m", "3"], capture_output=True, text=True, timeout=15)
        assert refused.returncode != 0, refused.stdout
        # A client certificate from another CA is refused too.
        stranger = dict(client, **{"ssl.certificate.location": certs["stranger.pem"], "ssl.key.location": certs["stranger.key"]})
        refused = subprocess.run(["kcat", "-b", node.bootstrap, *kcat_x(stranger), "-L", "-m", "3"], capture_output=True, text=True, timeout=15)
        assert refused.returncode != 0, refused.stdout
        # Hostile handshakes at a controller: its connections close, the quorum goes on.
        assert barrage(node.host, node.controller_port, rounds=60, seed=7) > 40
        assert node.up

        topic = unique_topic("tls-replicated")
        admin = AdminClient({"bootstrap.servers": bootstrap, **client})
        admin.create_topics([NewTopic(topic, 2, 3, config={"min.insync.replicas": "2"})])[topic].result(TIMEOUT)
        states = wait_full_isr(bootstrap, topic, 2, tls_args)

        acked, errors = [], []

        def delivered(err, msg):
            (errors.append(str(err)) if err else acked.append((msg.partition(), msg.offset(), msg.value())))

        producer = Producer({"bootstrap.servers": bootstrap, **client, "acks": "all", "enable.idempotence": True,
                             "message.timeout.ms": 60000, "linger.ms": 5})
        for i in range(300):
            producer.produce(topic, key=str(i % 5).encode(), value=f"a{i}".encode(), on_delivery=delivered)
        assert producer.flush(TIMEOUT) == 0 and not errors, errors[:3]
        victim = states[0][0]
        cluster.nodes[victim].kill()
        for i in range(300):
            producer.produce(topic, key=str(i % 5).encode(), value=f"b{i}".encode(), on_delivery=delivered)
        assert producer.flush(60) == 0 and not errors, errors[:3]
        assert len(acked) == 600

        # A transaction over both partitions: its markers go to the leaders over TLS.
        txn = Producer({"bootstrap.servers": bootstrap, **client, "transactional.id": unique_topic("tls-txn"),
                        "transaction.timeout.ms": 30000})
        txn.init_transactions(TIMEOUT)
        txn.begin_transaction()
        for p in (0, 1):
            txn.produce(topic, partition=p, value=f"t{p}".encode())
        txn.commit_transaction(TIMEOUT)

        cluster.nodes[victim].start()
        wait_full_isr(bootstrap, topic, 2, tls_args, limit_s=90)  # the restarted node caught up over TLS

        consumer = Consumer({"bootstrap.servers": bootstrap, **client, "group.id": unique_topic("tls-read"),
                             "enable.auto.commit": False, "isolation.level": "read_committed"})
        consumer.assign([TopicPartition(topic, p, 0) for p in range(2)])
        read, deadline = {}, time.monotonic() + 60
        while len(read) < 602 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                read[(msg.partition(), msg.offset())] = msg.value()
        consumer.close()
        for p, offset, value in acked:
            assert read.get((p, offset)) == value, f"acknowledged {value} at {p}/{offset} reads back as {read.get((p, offset))}"
        assert {b"t0", b"t1"} <= set(read.values()), "the committed transaction is not visible"

        # A renewed certificate on node 1 is what its controller listener serves next, without
        # a restart (checked every 5 s).
        node = cluster.nodes[1]
        assert "O=Brook renewed" not in served_subject(node.host, node.controller_port, certs)
        shutil.copy(certs["keystore-renewed.pem"], tmp_path / "keystore-1.pem")
        deadline = time.monotonic() + 20
        while "O=Brook renewed" not in served_subject(node.host, node.controller_port, certs):
            assert time.monotonic() < deadline, f"the controller listener still serves {served_subject(node.host, node.controller_port, certs)}"
            time.sleep(0.5)
    finally:
        cluster.stop()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_brokers_authenticate_to_each_other_with_sasl_over_tls(tmp_path, mechanism):
    """PLAIN: the broker's login and the users in the listener's JAAS config. SCRAM-SHA-512: the
    credentials in the metadata log from the first start (`--add-scram`, as Kafka's storage
    format), the broker's login in the listener's SCRAM JAAS config."""
    from confluent_kafka.admin import AdminClient, NewTopic
    certs = make_certs(tmp_path / "certs")
    if mechanism == "PLAIN":
        jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker-secret" '
                'user_broker="broker-secret" user_alice="alice-secret";')
        args = []
    else:
        jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";'
        args = ["--add-scram", "SCRAM-SHA-512=[name=broker,password=broker-secret]",
                "--add-scram", "SCRAM-SHA-512=[name=alice,password=alice-secret]"]
    settings = [
        "listener.security.protocol.map=BROKER:SASL_SSL,CONTROLLER:SSL",
        "inter.broker.listener.name=BROKER",
        f"sasl.enabled.mechanisms={mechanism}",
        f"sasl.mechanism.inter.broker.protocol={mechanism}",
        f"listener.name.broker.{mechanism.lower()}.sasl.jaas.config={jaas}",
        f"ssl.keystore.location={certs['keystore.pem']}",
        f"ssl.truststore.location={certs['ca.pem']}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:broker",
    ]
    tool_config = write_props(tmp_path / "tool.properties", **{"security.protocol": "SSL", "ssl.truststore.location": certs["ca.pem"]})
    cluster = Cluster(tmp_path, listener="BROKER", extra=lambda i: settings, tool_args=["--command-config", tool_config], args=args)
    cluster.start()
    try:
        cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]), limit_s=60)
        # The broker login administers (a super user); its replica fetches are what fill the ISR.
        client = {"security.protocol": "SASL_SSL", "ssl.ca.location": certs["ca.pem"], "sasl.mechanism": mechanism,
                  "sasl.username": "broker", "sasl.password": "broker-secret"}
        topic = unique_topic("sasl-replicated")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap, **client})
        admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(TIMEOUT)
        wait_full_isr(cluster.bootstrap, topic, 1, kcat_x(client))
        # alice, no super user and no ACL, is authenticated but sees no topic.
        alice = dict(client, **{"sasl.username": "alice", "sasl.password": "alice-secret"})
        listed = subprocess.run(["kcat", "-b", cluster.bootstrap, *kcat_x(alice), "-L", "-t", topic, "-m", "5"],
                                capture_output=True, text=True, timeout=30)
        assert "leader " not in listed.stdout, listed.stdout
    finally:
        cluster.stop()


def test_an_inter_broker_sasl_listener_without_the_brokers_login_stops_the_start(tmp_path):
    jaas = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";'
    props = write_props(tmp_path / "node.properties", **{
        "process.roles": "broker,controller", "node.id": "1", "controller.quorum.voters": "1@127.0.0.1:1",
        "listeners": "BROKER://127.0.0.1:0,CONTROLLER://127.0.0.1:1", "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "BROKER:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "BROKER", "listener.name.broker.plain.sasl.jaas.config": jaas,
        "log.dirs": str(tmp_path / "data")})
    result = subprocess.run([str(BROOK_BIN), "serve", props], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode != 0
    assert "username and password" in result.stderr + result.stdout, result.stderr
