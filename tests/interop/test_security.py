"""Authentication with real clients: a broker with a PLAINTEXT listener and a SASL_PLAINTEXT one.

PLAIN users come from the SASL listener's JAAS config (`user_NAME="password"`), SCRAM users are
made through the PLAINTEXT listener with confluent-kafka's AdminClient
(AlterUserScramCredentials: the client salts the password, the broker keeps the derived keys in
the metadata log). kcat, confluent-kafka and kafka-python then produce and consume on the SASL
listener with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512; wrong passwords, unknown users and
mechanisms the listener does not enable are refused with Kafka's errors, and a client that skips
authentication is disconnected before anything else is served.
"""
from __future__ import annotations

import logging
import socket
import struct
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from brook_interop import ck_admin, ck_create_topic, kcat, unique_topic
from conftest import Broker, _finish, sasl_broker, start_or_fail

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
TIMEOUT = 30


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    b = start_or_fail(sasl_broker(tmp_path_factory.mktemp("secured"), {"listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS}))
    admin = ck_admin(b.bootstrap)
    upserts = [
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-256"),
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"bob-512"),
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"carol-512"),
    ]
    for user, future in admin.alter_user_scram_credentials(upserts).items():
        assert future.result(timeout=TIMEOUT) is None, user
    yield b
    _finish(b)


def sasl_bootstrap(b: Broker) -> str:
    return f"127.0.0.1:{b.sasl_port}"


def ck_conf(b: Broker, mechanism: str, user: str, password: str) -> dict:
    return {"bootstrap.servers": sasl_bootstrap(b), "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": mechanism,
            "sasl.username": user, "sasl.password": password}


GOOD = [("PLAIN", "alice", "alice-secret"), ("SCRAM-SHA-256", "bob", "bob-256"), ("SCRAM-SHA-512", "bob", "bob-512"),
        ("SCRAM-SHA-512", "carol", "carol-512")]
BAD = [("PLAIN", "alice", "wrong"), ("PLAIN", "mallory", "x"), ("SCRAM-SHA-256", "bob", "bob-512"),
       ("SCRAM-SHA-256", "carol", "carol-512"), ("SCRAM-SHA-512", "mallory", "x")]


def test_the_credentials_are_described_without_their_secrets(secured):
    admin = ck_admin(secured.bootstrap)
    described = {user: f.result(timeout=TIMEOUT) for user, f in admin.describe_user_scram_credentials(["bob", "carol"]).items()}
    bob = sorted((i.mechanism, i.iterations) for i in described["bob"].scram_credential_infos)
    assert bob == [(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 8192)]
    with pytest.raises(KafkaException) as missing:
        for _, f in admin.describe_user_scram_credentials(["nobody"]).items():
            f.result(timeout=TIMEOUT)
    assert missing.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND


@pytest.mark.parametrize("mechanism,user,password", GOOD)
def test_confluent_kafka_produces_and_consumes_after_authenticating(secured, mechanism, user, password):
    topic = unique_topic(f"ck-{mechanism}-{user}")
    p = Producer({**ck_conf(secured, mechanism, user, password), "acks": "all"})
    delivered = []
    for i in range(5):
        p.produce(topic, key=b"k%d" % i, value=b"%s-%d" % (user.encode(), i), on_delivery=lambda err, msg: delivered.append(err))
    assert p.flush(TIMEOUT) == 0
    assert delivered == [None] * 5
    out = kcat(["-b", sasl_bootstrap(secured), "-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
                "-X", f"sasl.username={user}", "-X", f"sasl.password={password}", "-C", "-t", topic, "-e", "-o", "beginning",
                "-f", "%k=%s\\n"], timeout=TIMEOUT)
    assert out.stdout.decode().split() == [f"k{i}={user}-{i}" for i in range(5)]


@pytest.mark.parametrize("mechanism,user,password", GOOD)
def test_kafka_python_produces_and_consumes_after_authenticating(secured, mechanism, user, password):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    topic = unique_topic(f"kp-{mechanism}-{user}")
    conf = dict(bootstrap_servers=sasl_bootstrap(secured), security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                sasl_plain_username=user, sasl_plain_password=password)
    p = KafkaProducer(acks="all", **conf)
    for i in range(3):
        p.send(topic, key=b"k%d" % i, value=b"v%d" % i).get(timeout=TIMEOUT)
    p.close()
    c = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=10_000, **conf)
    c.assign([TopicPartition(topic, 0)])
    c.seek_to_beginning()
    got = []
    for m in c:
        got.append((m.key, m.value))
        if len(got) == 3:
            break
    c.close()
    assert got == [(b"k%d" % i, b"v%d" % i) for i in range(3)]


@pytest.mark.parametrize("mechanism,user,password", BAD)
def test_wrong_passwords_and_unknown_users_are_refused(secured, mechanism, user, password):
    # librdkafka (kcat and confluent-kafka) reports Kafka's authentication error.
    out = kcat(["-b", sasl_bootstrap(secured), "-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
                "-X", f"sasl.username={user}", "-X", f"sasl.password={password}", "-L", "-m", "5"], timeout=TIMEOUT, check=False)
    assert out.returncode != 0
    assert b"SASL authentication error: Authentication failed" in out.stderr
    errors = []
    p = Producer({**ck_conf(secured, mechanism, user, password), "error_cb": lambda e: errors.append(e)})
    deadline = time.monotonic() + TIMEOUT
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.monotonic() < deadline:
        p.poll(0.2)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    del p  # destroyed now, not retrying past the broker's life
    # kafka-python gets no further than its bootstrap, and says why in its log.
    from kafka.admin import KafkaAdminClient
    seen = Captured()
    logging.getLogger("kafka").addHandler(seen)
    try:
        with pytest.raises(Exception):
            KafkaAdminClient(bootstrap_servers=sasl_bootstrap(secured), security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                             sasl_plain_username=user, sasl_plain_password=password, bootstrap_timeout_ms=3000)
    finally:
        logging.getLogger("kafka").removeHandler(seen)
    assert any("SaslAuthenticationFailedError" in m and "Authentication failed" in m for m in seen.messages), seen.messages[-5:]
    assert "authentication failed from 127.0.0.1" in secured.log_path.read_text()


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_mechanism_the_listener_does_not_enable_is_refused(secured):
    out = kcat(["-b", sasl_bootstrap(secured), "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=OAUTHBEARER",
                "-X", "enable.sasl.oauthbearer.unsecure.jwt=true", "-L", "-m", "5"], timeout=TIMEOUT, check=False)
    assert out.returncode != 0
    # On the wire: UNSUPPORTED_SASL_MECHANISM (33) with the listener's mechanisms, then the close.
    with socket.create_connection(("127.0.0.1", secured.sasl_port), timeout=5) as s:
        name = b"GSSAPI"
        s.sendall(frame(17, 1, struct.pack(">h", len(name)) + name, correlation=7))
        size, correlation, error, count = struct.unpack(">iihi", read_exactly(s, 14))
        assert (correlation, error) == (7, 33)
        mechanisms = []
        for _ in range(count):
            n = struct.unpack(">h", read_exactly(s, 2))[0]
            mechanisms.append(read_exactly(s, n).decode())
        assert sorted(mechanisms) == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        assert s.recv(1) == b""


def read_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, f"closed after {len(out)} of {n} bytes"
        out += chunk
    return out


def frame(api_key: int, version: int, body: bytes, correlation: int = 1) -> bytes:
    client = b"raw"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def test_requests_before_authentication_close_the_connection(secured):
    # A Metadata request (v1, all topics) as the first thing on the SASL listener: closed unanswered.
    with socket.create_connection(("127.0.0.1", secured.sasl_port), timeout=5) as s:
        s.sendall(frame(3, 1, struct.pack(">i", -1)))
        assert s.recv(4) == b""
    # A frame larger than sasl.server.max.receive.size before authentication: closed at its size.
    with socket.create_connection(("127.0.0.1", secured.sasl_port), timeout=5) as s:
        s.sendall(struct.pack(">i", 1_000_000) + b"\0" * 64)
        assert s.recv(4) == b""
    # The PLAINTEXT listener of the same broker serves it.
    with socket.create_connection(("127.0.0.1", secured.port), timeout=5) as s:
        s.sendall(frame(3, 1, struct.pack(">i", -1)))
        size = struct.unpack(">i", s.recv(4))[0]
        assert size > 0


def test_metadata_names_the_listener_the_client_came_on(secured):
    # A client on the SASL listener is told of the broker's SASL address, not its PLAINTEXT one.
    from confluent_kafka.admin import AdminClient
    admin = AdminClient(ck_conf(secured, "PLAIN", "alice", "alice-secret"))
    brokers = admin.list_topics(timeout=TIMEOUT).brokers
    assert [(b.host, b.port) for b in brokers.values()] == [("127.0.0.1", secured.sasl_port)]
    plain = ck_admin(secured.bootstrap).list_topics(timeout=TIMEOUT).brokers
    assert [(b.host, b.port) for b in plain.values()] == [("127.0.0.1", secured.port)]


def test_credentials_are_removed_and_then_refused(secured):
    admin = ck_admin(secured.bootstrap)
    upsert = UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"dave-pw")
    assert admin.alter_user_scram_credentials([upsert])["dave"].result(timeout=TIMEOUT) is None
    args = ["-b", sasl_bootstrap(secured), "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-256",
            "-X", "sasl.username=dave", "-X", "sasl.password=dave-pw", "-L", "-m", "5"]
    kcat(args, timeout=TIMEOUT)
    deletion = UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_256)
    assert admin.alter_user_scram_credentials([deletion])["dave"].result(timeout=TIMEOUT) is None
    assert kcat(args, timeout=TIMEOUT, check=False).returncode != 0
    # Removing it again: RESOURCE_NOT_FOUND; too few iterations: UNACCEPTABLE_CREDENTIAL.
    with pytest.raises(KafkaException) as again:
        admin.alter_user_scram_credentials([deletion])["dave"].result(timeout=TIMEOUT)
    assert again.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    weak = UserScramCredentialUpsertion("erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000), b"pw")
    with pytest.raises(KafkaException) as refused:
        admin.alter_user_scram_credentials([weak])["erin"].result(timeout=TIMEOUT)
    assert refused.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL


def test_scram_users_survive_a_restart(secured):
    secured.stop()
    secured.start()
    kcat(["-b", sasl_bootstrap(secured), "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
          "-X", "sasl.username=carol", "-X", "sasl.password=carol-512", "-L", "-m", "10"], timeout=TIMEOUT)


def test_the_first_administrator_comes_from_add_scram(tmp_path):
    """`brook serve --add-scram` (Kafka's `kafka-storage format --add-scram`): the credential is
    in the cluster from its first start, so an administrator can log in over SCRAM with only a
    SASL listener and an authorizer; given again with another password on a later start, it is
    ignored (the metadata log exists)."""
    b = sasl_broker(tmp_path, {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                               "super.users": "User:root"}, plaintext=False)
    b.extra_args = ["--add-scram", "SCRAM-SHA-512=[name=root,password=\"first,secret\",iterations=8192]"]

    def describe(password: str) -> list:
        from confluent_kafka.admin import AdminClient
        admin = AdminClient(ck_conf(b, "SCRAM-SHA-512", "root", password) | {"socket.timeout.ms": 10_000})
        return admin.describe_user_scram_credentials().result(timeout=TIMEOUT)["root"].scram_credential_infos

    try:
        start_or_fail(b)
        infos = describe("first,secret")
        assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_512, 8192)]
        b.stop()
        b.extra_args = ["--add-scram", "SCRAM-SHA-512=[name=root,password=second]"]
        b.start()
        assert len(describe("first,secret")) == 1
        refused = kcat(["-b", sasl_bootstrap(b), "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
                        "-X", "sasl.username=root", "-X", "sasl.password=second", "-L", "-m", "5"], timeout=TIMEOUT, check=False)
        assert refused.returncode != 0
    finally:
        _finish(b)


def _plain_authenticate(s: socket.socket, user: str, password: str, correlation: int) -> tuple:
    """SaslHandshake v1 and SaslAuthenticate v1 with PLAIN on a raw socket: (error, lifetime ms)."""
    from brook_interop import read_response
    s.sendall(frame(17, 1, struct.pack(">h", 5) + b"PLAIN", correlation))
    body = read_response(s)
    assert struct.unpack(">ih", body[:6]) == (correlation, 0), body
    token = b"\0" + user.encode() + b"\0" + password.encode()
    s.sendall(frame(36, 1, struct.pack(">i", len(token)) + token, correlation + 1))
    body = read_response(s)
    (corr, error, message_len) = struct.unpack(">ihh", body[:8])
    at = 8 + max(message_len, 0)
    (auth_len,) = struct.unpack(">i", body[at:at + 4])
    (lifetime,) = struct.unpack(">q", body[at + 4 + auth_len:at + 12 + auth_len])
    assert corr == correlation + 1
    return error, lifetime


def _metadata_answered(s: socket.socket, correlation: int) -> bool:
    from brook_interop import read_response
    try:
        s.sendall(frame(3, 1, struct.pack(">i", -1), correlation))
        return struct.unpack(">i", read_response(s)[:4])[0] == correlation
    except (ConnectionError, OSError):
        return False


def test_sessions_end_without_reauthentication_and_clients_reauthenticate(tmp_path):
    """KIP-368 with `connections.max.reauth.ms`: SaslAuthenticate v1 gives the session's
    lifetime; a client that re-authenticates on its connection goes on, one that does not is
    disconnected at its next request past the end, and a re-authentication as someone else is
    refused. librdkafka re-authenticates by itself: a producer keeps one connection for 3 sessions."""
    b = sasl_broker(tmp_path, {"listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS, "connections.max.reauth.ms": "2000"})
    try:
        start_or_fail(b)
        # A client that does not re-authenticate: served within the session, cut after it.
        with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=10) as s:
            assert _plain_authenticate(s, "alice", "alice-secret", 1) == (0, 2000)
            assert _metadata_answered(s, 3)
            time.sleep(2.3)
            assert not _metadata_answered(s, 4), "a request past the session's end was served"
        # One that re-authenticates before the end goes on past the first session's end.
        with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=10) as s:
            assert _plain_authenticate(s, "alice", "alice-secret", 1) == (0, 2000)
            time.sleep(1.5)
            assert _plain_authenticate(s, "alice", "alice-secret", 3) == (0, 2000)
            time.sleep(1.0)
            assert _metadata_answered(s, 5)
            # Another principal on the same connection: refused, then closed.
            assert _plain_authenticate(s, "admin", "admin-secret", 6)[0] == 58  # SASL_AUTHENTICATION_FAILED
            time.sleep(0.5)
            assert not _metadata_answered(s, 8)
        # librdkafka: one connection across sessions (its statistics count the connects).
        topic = unique_topic("reauth")
        ck_create_topic(b.bootstrap, topic)
        stats = []
        errors = []
        p = Producer(ck_conf(b, "PLAIN", "alice", "alice-secret")
                     | {"statistics.interval.ms": 500, "stats_cb": stats.append, "acks": "all", "linger.ms": 0})
        deadline = time.monotonic() + 6.5
        sent = 0
        while time.monotonic() < deadline:
            p.produce(topic, b"%d" % sent, on_delivery=lambda err, msg: errors.append(err))
            sent += 1
            p.poll(0.2)
        p.flush(TIMEOUT)
        assert errors == [None] * sent
        import json
        last = json.loads(stats[-1])
        connects = {name: br["connects"] for name, br in last["brokers"].items() if br.get("nodeid", -1) >= 0}
        assert connects and all(n == 1 for n in connects.values()), connects
    finally:
        _finish(b)
