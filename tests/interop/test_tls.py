"""TLS with real clients: a broker with PLAINTEXT, SSL, SSL with required client certificates
(mTLS), SSL from a PKCS12 key store and from an encrypted PEM key, and SASL_SSL listeners, its
certificates made by openssl for the test (tls_certs.py).

kcat, confluent-kafka and kafka-python produce and consume over TLS (fetches go through TLS,
not sendfile); a client without the CA, a client without a certificate or with one from another
CA on the mTLS listener, and wrong SASL passwords over TLS are refused; a renewed certificate is
served without a restart; settings Brook cannot use stop `brook serve` with a readable error.
"""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from brook_interop import ck_admin, ck_create_topic, kcat, unique_topic
from conftest import BROOK_BIN, Broker, _finish, free_port
from tls_certs import make_certs
from tls_hostile import barrage

TIMEOUT = 30
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_alice="alice-secret";')


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory, certs):
    base = tmp_path_factory.mktemp("tls")
    b = Broker(base / "data", base / "brook.log")
    b.tls = {name: free_port() for name in ("SSL", "MTLS", "P12", "ENC", "SASL_SSL", "RENEW")}
    live = base / "renew-keystore.pem"
    shutil.copy(certs["keystore.pem"], live)
    b.renew_keystore = live
    listeners = [f"PLAINTEXT://127.0.0.1:{b.port}"] + [f"{n}://127.0.0.1:{p}" for n, p in b.tls.items()]
    b.overrides = {
        "listeners": ",".join(listeners),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,P12:SSL,ENC:SSL,SASL_SSL:SASL_SSL,RENEW:SSL",
        "ssl.keystore.location": certs["keystore.pem"],
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.mtls.ssl.truststore.location": certs["ca.pem"],
        "listener.name.p12.ssl.keystore.type": "PKCS12",
        "listener.name.p12.ssl.keystore.location": certs["keystore.p12"],
        "listener.name.p12.ssl.keystore.password": "store-pass",
        "listener.name.enc.ssl.keystore.location": certs["keystore-encrypted.pem"],
        "listener.name.enc.ssl.key.password": "key-pass",
        "listener.name.renew.ssl.keystore.location": str(live),
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        "num.partitions": "1",
    }
    try:
        b.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield b
    _finish(b)


def ssl_conf(b: Broker, certs, listener="SSL", **extra) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{b.tls[listener]}", "security.protocol": "SSL",
            "ssl.ca.location": certs["ca.pem"], **extra}


def kcat_args(conf: dict) -> list:
    args = ["-b", conf["bootstrap.servers"]]
    for k, v in conf.items():
        if k != "bootstrap.servers":
            args += ["-X", f"{k}={v}"]
    return args


def test_confluent_kafka_and_kcat_over_tls(tls_broker, certs):
    topic = unique_topic("tls-ck")
    p = Producer({**ssl_conf(tls_broker, certs), "acks": "all", "linger.ms": 5})
    value = bytes(range(256)) * 8  # 2 KiB: a fetch of them all is far above the inline size
    for i in range(500):
        p.produce(topic, key=b"k%d" % i, value=value)
    assert p.flush(TIMEOUT) == 0
    c = Consumer({**ssl_conf(tls_broker, certs), "group.id": "tls", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < 500 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m)
    c.close()
    assert [m.key() for m in got] == [b"k%d" % i for i in range(500)]
    assert all(m.value() == value for m in got)
    out = kcat(kcat_args(ssl_conf(tls_broker, certs)) + ["-C", "-t", topic, "-e", "-o", "-3", "-f", "%k\\n"], timeout=TIMEOUT)
    assert out.stdout.decode().split() == ["k497", "k498", "k499"]


def test_kafka_python_over_tls(tls_broker, certs):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    topic = unique_topic("tls-kp")
    conf = dict(bootstrap_servers=f"127.0.0.1:{tls_broker.tls['SSL']}", security_protocol="SSL", ssl_cafile=certs["ca.pem"])
    p = KafkaProducer(acks="all", **conf)
    for i in range(20):
        p.send(topic, key=b"k%d" % i, value=b"v%d" % i).get(timeout=TIMEOUT)
    p.close()
    c = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=10_000, **conf)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    got = []
    for m in c:
        got.append(m.value)
        if len(got) == 20:
            break
    c.close()
    assert got == [b"v%d" % i for i in range(20)]


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_broker, certs):
    out = kcat(kcat_args(ssl_conf(tls_broker, certs, **{"ssl.ca.location": certs["other-ca.pem"]})) + ["-L", "-m", "5"],
               timeout=TIMEOUT, check=False)
    assert out.returncode != 0
    assert b"certificate verify failed" in out.stderr, out.stderr[-1500:]


def test_mtls_takes_a_certificate_from_the_ca_and_refuses_others(tls_broker, certs):
    good = ssl_conf(tls_broker, certs, "MTLS", **{"ssl.certificate.location": certs["client.pem"], "ssl.key.location": certs["client.key"]})
    kcat(kcat_args(good) + ["-L", "-m", "10"], timeout=TIMEOUT)
    without = kcat(kcat_args(ssl_conf(tls_broker, certs, "MTLS")) + ["-L", "-m", "5"], timeout=TIMEOUT, check=False)
    assert without.returncode != 0
    stranger = ssl_conf(tls_broker, certs, "MTLS", **{"ssl.certificate.location": certs["stranger.pem"], "ssl.key.location": certs["stranger.key"]})
    refused = kcat(kcat_args(stranger) + ["-L", "-m", "5"], timeout=TIMEOUT, check=False)
    assert refused.returncode != 0
    assert b"SSL" in without.stderr and b"SSL" in refused.stderr
    # kafka-python with its certificate.
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{tls_broker.tls['MTLS']}", security_protocol="SSL",
                             ssl_cafile=certs["ca.pem"], ssl_certfile=certs["client.pem"], ssl_keyfile=certs["client.key"])
    assert isinstance(admin.list_topics(), list)
    admin.close()


@pytest.mark.parametrize("listener", ["P12", "ENC"])
def test_pkcs12_and_encrypted_pem_key_stores(tls_broker, certs, listener):
    kcat(kcat_args(ssl_conf(tls_broker, certs, listener)) + ["-L", "-m", "10"], timeout=TIMEOUT)


def test_sasl_over_tls(tls_broker, certs):
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    admin = ck_admin(tls_broker.bootstrap)
    upsert = UserScramCredentialUpsertion("tina", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"tina-pw")
    assert admin.alter_user_scram_credentials([upsert])["tina"].result(timeout=TIMEOUT) is None
    base = {"bootstrap.servers": f"127.0.0.1:{tls_broker.tls['SASL_SSL']}", "security.protocol": "SASL_SSL",
            "ssl.ca.location": certs["ca.pem"]}
    topic = unique_topic("sasl-ssl")
    for mechanism, user, password in [("PLAIN", "alice", "alice-secret"), ("SCRAM-SHA-512", "tina", "tina-pw")]:
        conf = {**base, "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password}
        kcat(kcat_args(conf) + ["-P", "-t", topic], input_bytes=f"{user}\n".encode(), timeout=TIMEOUT)
    out = kcat(kcat_args({**base, "sasl.mechanisms": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret"})
               + ["-C", "-t", topic, "-e", "-o", "beginning"], timeout=TIMEOUT)
    assert out.stdout.decode().split() == ["alice", "tina"]
    wrong = kcat(kcat_args({**base, "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "tina", "sasl.password": "nope"})
                 + ["-L", "-m", "5"], timeout=TIMEOUT, check=False)
    assert wrong.returncode != 0 and b"Authentication failed" in wrong.stderr


def test_a_renewed_certificate_is_served_without_a_restart(tls_broker, certs):
    conf = ssl_conf(tls_broker, certs, "RENEW")
    kcat(kcat_args(conf) + ["-L", "-m", "10"], timeout=TIMEOUT)
    shutil.copy(certs["keystore-renewed.pem"], tls_broker.renew_keystore)
    renewed = {**conf, "ssl.ca.location": certs["other-ca.pem"]}
    deadline = time.monotonic() + 20
    while kcat(kcat_args(renewed) + ["-L", "-m", "3"], timeout=TIMEOUT, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the renewed certificate was not served within 20 s"
        time.sleep(0.5)
    assert "reloaded its TLS key store" in tls_broker.log_path.read_text()
    assert kcat(kcat_args(conf) + ["-L", "-m", "3"], timeout=TIMEOUT, check=False).returncode != 0


@pytest.mark.parametrize("override,message", [
    ({"ssl.keystore.type": "JKS"}, "ssl.keystore.type JKS is not served"),
    ({"ssl.keystore.location": "/nonexistent/keystore.pem"}, "the key store does not load"),
    ({"ssl.client.auth": "required"}, "ssl.truststore.location is needed"),
    ({"ssl.enabled.protocols": "TLSv1.1"}, "TLSv1.1 is not served"),
])
def test_settings_brook_cannot_use_stop_it_readably(tmp_path, certs, override, message):
    port = free_port()
    cmd = [str(BROOK_BIN), "serve", "--override", f"listeners=SSL://127.0.0.1:{port}", "--override", f"log.dirs={tmp_path}",
           "--override", f"ssl.keystore.location={certs['keystore.pem']}"]
    for k, v in override.items():
        cmd += ["--override", f"{k}={v}"]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr.decode() + proc.stdout.decode()


def test_a_client_certificate_names_the_principal(tmp_path, certs):
    """mTLS with an authorizer: the certificate's subject (RFC 2253, `O=Brook,CN=client-1`) is
    mapped by `ssl.principal.mapping.rules` to `User:CLIENT-1`, which the ACLs then govern; a
    subject no rule maps is refused at the handshake's end."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, NewTopic, ResourcePatternType, ResourceType
    b = Broker(tmp_path / "data", tmp_path / "brook.log")
    b.tls = {"MTLS": free_port(), "STRICT": free_port()}
    b.overrides = {
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},MTLS://127.0.0.1:{b.tls['MTLS']},STRICT://127.0.0.1:{b.tls['STRICT']}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,MTLS:SSL,STRICT:SSL",
        "ssl.keystore.location": certs["keystore.pem"],
        "ssl.client.auth": "required",
        "ssl.truststore.location": certs["ca.pem"],
        "listener.name.mtls.ssl.principal.mapping.rules": "RULE:^O=Brook,CN=(.*)$/$1/U, DEFAULT",
        "listener.name.strict.ssl.principal.mapping.rules": "RULE:^CN=nobody$/nobody/",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",  # the PLAINTEXT listener: the test's administrator and the broker's own
        "num.partitions": "1",
    }
    try:
        b.start()
        admin = ck_admin(b.bootstrap)
        for _, f in admin.create_topics([NewTopic("cert-orders", 1, 1), NewTopic("other", 1, 1)]).items():
            f.result(timeout=TIMEOUT)
        bindings = [AclBinding(ResourceType.TOPIC, "cert-", ResourcePatternType.PREFIXED, "User:CLIENT-1", "*", op, AclPermissionType.ALLOW)
                    for op in (AclOperation.WRITE, AclOperation.READ)]
        for _, f in admin.create_acls(bindings).items():
            assert f.result(timeout=TIMEOUT) is None
        conf = ssl_conf(b, certs, "MTLS", **{"ssl.certificate.location": certs["client.pem"], "ssl.key.location": certs["client.key"],
                                             "acks": "all", "message.timeout.ms": 10_000})
        outcomes = {}
        p = Producer(conf)
        for topic in ("cert-orders", "other"):
            p.produce(topic, b"v", on_delivery=lambda err, msg, t=topic: outcomes.__setitem__(t, err))
        p.flush(TIMEOUT)
        assert outcomes["cert-orders"] is None, outcomes
        assert outcomes["other"] is not None and outcomes["other"].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, outcomes
        strict = ssl_conf(b, certs, "STRICT", **{"ssl.certificate.location": certs["client.pem"], "ssl.key.location": certs["client.key"]})
        refused = kcat(kcat_args(strict) + ["-L", "-m", "5"], timeout=TIMEOUT, check=False)
        assert refused.returncode != 0
        assert "no rule of ssl.principal.mapping.rules applies to 'O=Brook,CN=client-1'" in b.log_tail(200)
    finally:
        _finish(b)


def test_principal_mapping_rules_that_do_not_parse_stop_the_start(tmp_path, certs):
    result = subprocess.run([BROOK_BIN, "serve", "--override", f"listeners=SSL://127.0.0.1:{free_port()}",
                             "--override", f"ssl.keystore.location={certs['keystore.pem']}",
                             "--override", f"log.dirs={tmp_path}", "--override", "ssl.principal.mapping.rules=RULE:abc"],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode != 0
    assert "ssl.principal.mapping.rules" in result.stderr + result.stdout


def test_the_brook_tools_speak_tls(tls_broker, certs, tmp_path):
    """`--command-config` with Kafka's client properties: SSL with a trust store, mTLS with a key
    store, SASL_SSL; a trust store without the broker's CA is refused with a readable error."""
    def props(name: str, **settings) -> str:
        path = tmp_path / f"{name}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return str(path)

    def topics(listener: str, config: str) -> subprocess.CompletedProcess:
        return subprocess.run([BROOK_BIN, "topic", "list", "--bootstrap-server", f"127.0.0.1:{tls_broker.tls[listener]}",
                               "--command-config", config], capture_output=True, text=True, timeout=TIMEOUT)

    topic = unique_topic("tools-tls")
    ck_create_topic(tls_broker.bootstrap, topic)
    ssl = props("ssl", **{"security.protocol": "SSL", "ssl.truststore.location": certs["ca.pem"]})
    deadline = time.monotonic() + 10
    while True:
        listed = topics("SSL", ssl)
        if listed.returncode == 0 and topic in listed.stdout.split() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert listed.returncode == 0 and topic in listed.stdout.split(), listed.stderr
    mtls = props("mtls", **{"security.protocol": "SSL", "ssl.truststore.location": certs["ca.pem"],
                            "ssl.certificate.location": certs["client.pem"], "ssl.key.location": certs["client.key"]})
    assert topics("MTLS", mtls).returncode == 0
    assert topics("MTLS", ssl).returncode != 0  # no client certificate
    sasl = props("sasl", **{"security.protocol": "SASL_SSL", "ssl.truststore.location": certs["ca.pem"], "sasl.mechanism": "PLAIN",
                            "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";'})
    assert topics("SASL_SSL", sasl).returncode == 0
    stranger = props("stranger", **{"security.protocol": "SSL", "ssl.truststore.location": certs["other-ca.pem"]})
    refused = topics("SSL", stranger)
    assert refused.returncode != 0 and refused.stderr.strip(), refused


def test_hostile_handshakes_close_their_connections_and_the_listener_serves_on(tls_broker, certs):
    """Truncated, bit-flipped, inflated and random ClientHellos, and records that do not decrypt
    after a good handshake, on the SSL and the mTLS listeners: each connection is closed, the
    broker lives and serves TLS clients after them."""
    for listener in ("SSL", "MTLS"):
        closed = barrage("127.0.0.1", tls_broker.tls[listener], rounds=100, seed=18)
        assert closed > 60, f"{listener}: the broker closed only {closed} hostile connections"
    assert tls_broker.alive()
    topic = unique_topic("tls-after-hostile")
    p = Producer({**ssl_conf(tls_broker, certs), "acks": "all"})
    p.produce(topic, b"still-here")
    assert p.flush(TIMEOUT) == 0
    c = Consumer({**ssl_conf(tls_broker, certs), "group.id": "tls-hostile", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    deadline, got = time.monotonic() + TIMEOUT, None
    while got is None and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error() is None:
            got = m.value()
    c.close()
    assert got == b"still-here"


def test_the_http_listener_over_tls(tmp_path, certs):
    """`http.listeners=https://...`: /metrics, /ready and the console's API over TLS with the
    listener's `ssl.*` settings (`listener.name.https.ssl.*`); a client without the CA and a
    plain HTTP request are refused; the console's login cookie is `Secure` there and not on
    the plain listener beside it; a renewed key store is served without a restart; an https
    listener without a key store stops the start readably."""
    import http.client
    import json
    import ssl
    import urllib.error
    import urllib.request
    from conftest import sasl_broker
    from test_metrics import promtool_ok
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
    live = tmp_path / "http-keystore.pem"
    shutil.copy(certs["keystore.pem"], live)
    secure_port, plain_port = free_port(), free_port()
    b = sasl_broker(tmp_path, {"listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
                               "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
                               "inter.broker.listener.name": "SASL_PLAINTEXT",
                               "http.listeners": f"https://127.0.0.1:{secure_port},http://127.0.0.1:{plain_port}",
                               "listener.name.https.ssl.keystore.location": str(live)})
    b.http_port = None  # http.listeners is in the overrides
    try:
        b.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        trusting = ssl.create_default_context(cafile=certs["ca.pem"])
        base = f"https://127.0.0.1:{secure_port}"

        def get(path: str, context=trusting) -> tuple:
            with urllib.request.urlopen(base + path, timeout=10, context=context) as response:
                return response.status, response.read().decode()

        deadline = time.monotonic() + 30
        while True:
            try:
                if get("/ready")[0] == 200:
                    break
            except urllib.error.HTTPError:
                pass
            assert time.monotonic() < deadline, "the https listener never said ready"
            time.sleep(0.3)
        status, text = get("/metrics")
        assert status == 200 and "brook_build_info" in text
        promtool_ok(text)
        with pytest.raises(urllib.error.URLError) as untrusted:
            get("/health", context=ssl.create_default_context())
        assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
        # Plain HTTP to the TLS port gets no HTTP answer.
        plain = http.client.HTTPConnection("127.0.0.1", secure_port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            plain.request("GET", "/metrics")
            plain.getresponse().read()
        plain.close()

        def login(url: str, context=None) -> str:
            request = urllib.request.Request(url + "/api/login", method="POST", headers={"Content-Type": "application/json"},
                                             data=json.dumps({"user": "alice", "password": "alice-secret"}).encode())
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                return response.headers["Set-Cookie"]

        assert "; Secure" in login(base, trusting)
        assert "Secure" not in login(f"http://127.0.0.1:{plain_port}")
        # A renewed key store (another CA's certificate) is served without a restart.
        shutil.copy(certs["keystore-renewed.pem"], live)
        renewed = ssl.create_default_context(cafile=certs["other-ca.pem"])
        deadline = time.monotonic() + 20
        while True:
            try:
                if get("/health", context=renewed)[0] == 200:
                    break
            except urllib.error.URLError:
                pass
            assert time.monotonic() < deadline, "the renewed certificate was not served within 20 s"
            time.sleep(0.5)
    finally:
        _finish(b)
    # No key store: the start stops with a reason.
    port = free_port()
    proc = subprocess.run([str(BROOK_BIN), "serve", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override",
                           f"log.dirs={tmp_path / 'nokeys'}", "--override", f"http.listeners=https://127.0.0.1:{free_port()}"],
                          capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert "listener https" in proc.stderr.decode() + proc.stdout.decode(), proc.stderr.decode()[-2000:]
