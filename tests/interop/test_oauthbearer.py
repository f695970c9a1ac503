"""SASL OAUTHBEARER with real clients: librdkafka's unsecured development tokens where the broker
takes them, and tokens signed with ES256 and RS256 (keys made here; the broker reads their JSON
Web Key Set from a file) given by confluent-kafka's oauth_cb. Expired tokens, tokens signed by
another key, for another audience, and unsecured tokens where they are not taken are refused."""
from __future__ import annotations

import base64
import json
import time

from confluent_kafka import KafkaError, Producer

from brook_interop import ck_create_topic, unique_topic
from conftest import Broker, _finish, free_port, sasl_broker, start_or_fail

TIMEOUT = 30
UNSECURED = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """An ES256 and an RS256 key, their JWKS, and tokens signed with them."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict:
        ec_numbers = self.ec.public_key().public_numbers()
        rsa_numbers = self.rsa.public_key().public_numbers()
        n = rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")
        return {"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256", "use": "sig",
             "x": b64url(ec_numbers.x.to_bytes(32, "big")), "y": b64url(ec_numbers.y.to_bytes(32, "big"))},
            {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": b64url(n), "e": b64url(rsa_numbers.e.to_bytes(3, "big"))},
        ]}

    def token(self, alg: str, sub: str = "alice", lifetime: int = 300, aud: str = "brook", kid: str | None = None) -> tuple:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        now = int(time.time())
        header = {"alg": alg, "typ": "JWT", "kid": kid or ("ec-1" if alg == "ES256" else "rsa-1")}
        claims = {"sub": sub, "iat": now, "exp": now + lifetime, "iss": "test-issuer", "aud": aud}
        signed = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()
        if alg == "ES256":
            r, s = decode_dss_signature(self.ec.sign(signed, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = self.rsa.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        # librdkafka refuses a token it is told has expired: an expired one is handed over as if it had not.
        return f"{signed.decode()}.{b64url(signature)}", max(now + lifetime, now + 60)


def start(tmp_path, overrides: dict) -> Broker:
    return start_or_fail(sasl_broker(tmp_path, {"listener.name.sasl_plaintext.sasl.enabled.mechanisms": "OAUTHBEARER", **overrides}))


def produce(b: Broker, topic: str, **conf) -> list:
    errors = []
    p = Producer({"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanisms": "OAUTHBEARER", "message.timeout.ms": 8000, "acks": "all", **conf})
    p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT)
    return errors


def test_signed_tokens_are_verified_against_the_key_set(tmp_path):
    keys = Keys()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    b = start(tmp_path, {"sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
                         "sasl.oauthbearer.expected.audience": "brook", "sasl.oauthbearer.expected.issuer": "test-issuer"})
    try:
        topic = unique_topic("oauth")
        ck_create_topic(b.bootstrap, topic)
        for alg in ("ES256", "RS256"):
            assert produce(b, topic, oauth_cb=lambda _config, alg=alg: keys.token(alg)) == [None], alg
        other = Keys()
        refused = {
            "another key": lambda _c: other.token("ES256"),
            "expired": lambda _c: keys.token("ES256", lifetime=-120),
            "another audience": lambda _c: keys.token("RS256", aud="elsewhere"),
        }
        for what, cb in refused.items():
            errors = produce(b, topic, oauth_cb=cb, **{"message.timeout.ms": 1500})
            assert errors and errors[0] is not None, what
        unsecured = produce(b, topic, **{"enable.sasl.oauthbearer.unsecure.jwt": True, "sasl.oauthbearer.config": "principal=alice",
                                         "message.timeout.ms": 1500})
        assert unsecured and unsecured[0] is not None
        # (The broker's log says why, rate-limited: the first refusal in each few seconds.)
        assert "no configured key verifies" in b.log_tail(400)
    finally:
        _finish(b)


def test_unsecured_tokens_only_where_enabled(tmp_path):
    b = start(tmp_path, {"sasl.server.callback.handler.class": UNSECURED})
    try:
        topic = unique_topic("oauth-dev")
        ck_create_topic(b.bootstrap, topic)
        assert produce(b, topic, **{"enable.sasl.oauthbearer.unsecure.jwt": True, "sasl.oauthbearer.config": "principal=alice"}) == [None]
    finally:
        _finish(b)


def test_oauthbearer_without_keys_or_the_unsecured_validator_stops_the_start(tmp_path):
    import subprocess
    from conftest import BROOK_BIN
    result = subprocess.run([BROOK_BIN, "serve", "--override", f"listeners=SASL_PLAINTEXT://127.0.0.1:{free_port()}",
                             "--override", "sasl.enabled.mechanisms=OAUTHBEARER", "--override", f"log.dirs={tmp_path}"],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode != 0
    assert "sasl.oauthbearer.jwks.endpoint.url" in result.stderr + result.stdout


def brook_tool(*args) -> "subprocess.CompletedProcess":
    import subprocess
    from conftest import BROOK_BIN
    return subprocess.run([str(BROOK_BIN), *args], capture_output=True, text=True, timeout=TIMEOUT)


def test_brooks_tools_log_in_with_a_token_file_or_an_unsecured_token(tmp_path):
    """`--command-config` with sasl.mechanism=OAUTHBEARER: a signed token read from
    sasl.oauthbearer.token.endpoint.url=file://... (Kafka's file retriever), refused when
    expired with the broker's reason; Kafka's unsecured login module where the broker takes it."""
    keys = Keys()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    b = start(tmp_path, {"sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}", "sasl.oauthbearer.expected.audience": "brook"})
    try:
        topic = unique_topic("oauth-tool")
        ck_create_topic(b.bootstrap, topic)
        token = tmp_path / "token.jwt"
        props = tmp_path / "client.properties"
        props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n"
                         f"sasl.oauthbearer.token.endpoint.url=file://{token}\n")
        token.write_text(keys.token("ES256")[0] + "\n")
        listed = brook_tool("topic", "list", "--bootstrap-server", f"127.0.0.1:{b.sasl_port}", "--command-config", str(props))
        assert listed.returncode == 0 and topic in listed.stdout, listed
        token.write_text(keys.token("RS256", lifetime=-120)[0])
        refused = brook_tool("topic", "list", "--bootstrap-server", f"127.0.0.1:{b.sasl_port}", "--command-config", str(props))
        assert refused.returncode != 0 and "invalid_token" in refused.stdout + refused.stderr, refused
    finally:
        _finish(b)
    (tmp_path / "dev").mkdir()
    dev = start(tmp_path / "dev", {"sasl.server.callback.handler.class": UNSECURED})
    try:
        props = tmp_path / "dev.properties"
        props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\nsasl.jaas.config="
                         "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"alice\";\n")
        topic = unique_topic("oauth-dev-tool")
        made = brook_tool("topic", "create", topic, "--bootstrap-server", f"127.0.0.1:{dev.sasl_port}", "--command-config", str(props))
        assert made.returncode == 0, made
    finally:
        _finish(dev)
