"""The MQTT listener (issue 20) with real MQTT clients: Debian's mosquitto_pub / mosquitto_sub and
paho-mqtt (PyPI), at 3.1.1 and 5.0; Kafka clients (confluent-kafka, kcat) on the same data.

Each broker here has `mqtt.listeners` on a free port. MQTT messages land in Kafka topics keyed by
their MQTT topic; Kafka records reach MQTT subscribers. Raw sockets check what the clients cannot
be made to do (a repeated QoS 2 publish, a bad packet, a silent client)."""
from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from brook_interop import ck_consumer, ck_producer
from conftest import free_port

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

STEP = 15.0  # seconds any one exchange may take


def mqtt_overrides(port: int, **extra) -> dict:
    return {"mqtt.listeners": f"mqtt://127.0.0.1:{port}", "num.partitions": "3", **extra}


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on MQTT port {port}")


@pytest.fixture(scope="module")
def mqtt_broker(tmp_path_factory):
    from conftest import _finish, _launch

    port = free_port()
    b = _launch(tmp_path_factory, "mqtt", mqtt_overrides(port))
    b.mqtt_port = port
    wait_port(port)
    yield b
    _finish(b)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------
# paho and raw-socket helpers


class Paho:
    """A connected paho client whose received messages queue up in `.messages`."""

    def __init__(self, port: int, client_id: str = "", v5: bool = False, clean: bool = True, will=None,
                 keepalive: int = 60, connect_properties=None, websocket: bool = False) -> None:
        protocol = paho.MQTTv5 if v5 else paho.MQTTv311
        kwargs = {} if v5 else {"clean_session": clean}
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                                  transport="websockets" if websocket else "tcp", **kwargs)
        if websocket:
            self.client.ws_set_options(path="/mqtt")
        self.messages: "queue.Queue" = queue.Queue()
        self.connected: "queue.Queue" = queue.Queue()
        self.subscribed: "queue.Queue" = queue.Queue()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_connect = lambda c, u, flags, rc, props: self.connected.put((flags, rc, props))
        self.client.on_subscribe = lambda c, u, mid, rcs, props: self.subscribed.put(rcs)
        if will:
            self.client.will_set(*will)
        start = {"clean_start": clean, "properties": connect_properties} if v5 else {}
        self.client.connect("127.0.0.1", port, keepalive=keepalive, **start)
        self.client.loop_start()
        flags, rc, props = self.connected.get(timeout=STEP)
        assert not rc.is_failure, f"CONNECT refused: {rc}"
        self.session_present = flags.session_present
        self.connack_properties = props

    def subscribe(self, topic: str, qos: int = 1, **kw) -> list:
        self.client.subscribe(topic, qos=qos, **kw)
        return self.subscribed.get(timeout=STEP)

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False, properties=None) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(timeout=STEP)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def expect(self, n: int = 1, timeout: float = STEP) -> list:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"got {len(out)} of {n} messages: {[(m.topic, m.payload) for m in out]}"
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                pass
        return out

    def nothing_more(self, wait: float = 1.0) -> None:
        time.sleep(wait)
        extra = []
        while not self.messages.empty():
            extra.append(self.messages.get())
        assert not extra, f"unexpected messages: {[(m.topic, m.payload) for m in extra]}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def s16(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def packet(first: int, body: bytes) -> bytes:
    n, out = len(body), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([first]) + bytes(out) + body


def raw_connect(port: int, client_id: bytes, level: int = 4, flags: int = 0x02, keepalive: int = 60, tail: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
    props = b"\x00" if level == 5 else b""
    s.sendall(packet(0x10, s16(b"MQTT") + bytes([level, flags]) + keepalive.to_bytes(2, "big") + props + s16(client_id) + tail))
    ack = read_packet(s)
    assert ack[0] == 0x20 and ack[1][1] == 0, f"CONNACK {ack}"
    return s


def read_packet(s: socket.socket):
    """(first byte, body) of the next packet; None when the server closed the connection."""
    first = s.recv(1)
    if not first:
        return None
    length, shift = 0, 0
    while True:
        byte = s.recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = s.recv(length - len(body))
        assert chunk, "closed inside a packet"
        body += chunk
    return first[0], body


def closed_by_server(s: socket.socket, timeout: float = STEP) -> list:
    """The packets the server sent before it closed the connection (fails if it did not)."""
    s.settimeout(timeout)
    seen = []
    try:
        while True:
            p = read_packet(s)
            if p is None:
                return seen
            seen.append(p)
    except ConnectionResetError:
        return seen


def find_records(bootstrap: str, topic: str, key: bytes, wait: float = 8.0, at_least: int = 0) -> list:
    """Every record of `topic` with `key`, read for `wait` seconds (other tests share the topic),
    and longer (up to STEP) until `at_least` of them came and then none for a second: joining the
    group can take seconds on a loaded machine."""
    c = ck_consumer(bootstrap)
    c.subscribe([topic])
    found = []
    start = last = time.monotonic()

    def reading() -> bool:
        now = time.monotonic()
        if now < start + wait:
            return True
        return at_least > 0 and now < start + STEP and (len(found) < at_least or now < last + 1.0)

    try:
        while reading():
            m = c.poll(0.5)
            if m is not None and not m.error() and m.key() == key:
                found.append(m)
                last = time.monotonic()
    finally:
        c.close()
    return found


def kafka_records(bootstrap: str, topic: str, n: int, timeout: float = STEP) -> list:
    """The first `n` records of `topic` (all partitions), read with confluent-kafka."""
    c = ck_consumer(bootstrap)
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append(m)
    finally:
        c.close()
    assert len(out) == n, f"{len(out)} of {n} records in {topic}"
    return out


# --------------------------------------------------------------------------------------------
# MQTT to MQTT and to Kafka


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_clients_every_qos(mqtt_broker, version, qos):
    if shutil.which("mosquitto_pub") is None:
        pytest.fail("mosquitto-clients is not installed (scripts/interop.sh installs it)")
    port = mqtt_broker.mqtt_port
    base = unique("mosq")
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-q", str(qos),
                            "-t", f"{base}/#", "-v", "-C", "3", "-W", "20"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # subscribed
        for i in range(3):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-q", str(qos),
                            "-t", f"{base}/dev{i}", "-m", f"reading {i}"], check=True, timeout=STEP)
        out, _ = sub.communicate(timeout=25)
    finally:
        if sub.poll() is None:
            sub.kill()
    lines = sorted(out.splitlines())
    assert lines == [f"{base}/dev{i} reading {i}" for i in range(3)]


def test_device_data_reaches_kafka_consumers(mqtt_broker):
    """Keyed by MQTT topic, payload as value, QoS and 5.0 properties as headers."""
    base = unique("kafka")
    p = Paho(mqtt_broker.mqtt_port, client_id=unique("dev"), v5=True)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("site", "north")]
    props.ContentType = "application/json"
    p.publish(f"{base}/t1", b'{"c": 21.5}', qos=1, properties=props)
    p.close()
    records = find_records(mqtt_broker.bootstrap, "mqtt-messages", f"{base}/t1".encode())
    assert records, "the MQTT message was not found in mqtt-messages"
    headers = dict(records[0].headers())
    assert records[0].value() == b'{"c": 21.5}'
    assert headers["site"] == b"north"
    assert headers["content-type"] == b"application/json"
    assert headers["mqtt.qos"] == b"1"


def test_kafka_records_reach_mqtt_subscribers(mqtt_broker):
    """A Kafka producer's record, keyed by an MQTT topic, reaches MQTT subscribers of it; its
    headers are 5.0 user properties."""
    base = unique("cmd")
    sub5 = Paho(mqtt_broker.mqtt_port, v5=True)
    sub3 = Paho(mqtt_broker.mqtt_port)
    assert sub5.subscribe(f"{base}/+/set", qos=1)
    assert sub3.subscribe(f"{base}/#", qos=0)
    prod = ck_producer(mqtt_broker.bootstrap)
    prod.produce("mqtt-messages", key=f"{base}/lamp/set", value=b"on", headers=[("origin", b"kafka")])
    prod.produce("mqtt-messages", key=b"unrelated/topic", value=b"x")
    assert prod.flush(STEP) == 0
    m5 = sub5.expect(1)[0]
    assert (m5.topic, m5.payload, m5.qos) == (f"{base}/lamp/set", b"on", 1)
    assert ("origin", "kafka") in m5.properties.UserProperty
    m3 = sub3.expect(1)[0]
    assert (m3.topic, m3.payload, m3.qos) == (f"{base}/lamp/set", b"on", 0)
    sub5.nothing_more(0.5)
    sub5.close()
    sub3.close()


def test_kcat_produces_to_mqtt_subscriber(mqtt_broker):
    base = unique("kcat")
    sub = Paho(mqtt_broker.mqtt_port, v5=True)
    sub.subscribe(f"{base}/#", qos=2)
    subprocess.run(["kcat", "-b", mqtt_broker.bootstrap, "-P", "-t", "mqtt-messages", "-K", "|"],
                   input=f"{base}/a|first\n{base}/b|second\n", text=True, check=True, timeout=STEP)
    got = sorted((m.topic, m.payload, m.qos) for m in sub.expect(2))
    assert got == [(f"{base}/a", b"first", 2), (f"{base}/b", b"second", 2)]
    sub.close()


def test_delivered_qos_is_the_lower_of_publish_and_subscription(mqtt_broker):
    base = unique("qos")
    sub = Paho(mqtt_broker.mqtt_port, v5=True)
    sub.subscribe(f"{base}/x", qos=2)
    pub = Paho(mqtt_broker.mqtt_port, v5=True)
    pub.publish(f"{base}/x", b"q0", qos=0)
    pub.publish(f"{base}/x", b"q1", qos=1)
    got = sorted((m.payload, m.qos) for m in sub.expect(2))
    assert got == [(b"q0", 0), (b"q1", 1)]
    pub.close()
    sub.close()


def test_no_local_and_subscription_identifier(mqtt_broker):
    from paho.mqtt.subscribeoptions import SubscribeOptions

    base = unique("nl")
    me = Paho(mqtt_broker.mqtt_port, client_id=unique("me"), v5=True)
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = 42
    me.client.subscribe(f"{base}/#", options=SubscribeOptions(qos=1, noLocal=True), properties=props)
    me.subscribed.get(timeout=STEP)
    other = Paho(mqtt_broker.mqtt_port, v5=True)
    me.publish(f"{base}/mine", b"mine")
    other.publish(f"{base}/theirs", b"theirs")
    m = me.expect(1)[0]
    assert m.payload == b"theirs"
    assert m.properties.SubscriptionIdentifier == [42]
    me.nothing_more(0.5)
    me.close()
    other.close()


# --------------------------------------------------------------------------------------------
# Retained messages, wills, sessions


def test_retained_messages(mqtt_broker):
    base = unique("ret")
    pub = Paho(mqtt_broker.mqtt_port)
    pub.publish(f"{base}/a", b"A", qos=1, retain=True)
    pub.publish(f"{base}/b", b"B", qos=1, retain=True)
    sub = Paho(mqtt_broker.mqtt_port, v5=True)
    sub.subscribe(f"{base}/#", qos=1)
    got = sorted((m.topic, m.payload, m.retain) for m in sub.expect(2))
    assert got == [(f"{base}/a", b"A", True), (f"{base}/b", b"B", True)]
    # An empty retained message clears it; live messages arrive with retain 0.
    pub.publish(f"{base}/a", b"", qos=1, retain=True)
    live = sub.expect(1)[0]
    assert (live.topic, live.payload, live.retain) == (f"{base}/a", b"", False)
    sub2 = Paho(mqtt_broker.mqtt_port)
    sub2.subscribe(f"{base}/#", qos=1)
    assert [(m.topic, m.payload) for m in sub2.expect(1)] == [(f"{base}/b", b"B")]
    sub2.nothing_more(0.5)
    for c in (pub, sub, sub2):
        c.close()


def test_retained_messages_survive_a_restart(broker_factory):
    port = free_port()
    b = broker_factory(mqtt_overrides(port))
    wait_port(port)
    pub = Paho(port)
    pub.publish("home/door", b"closed", qos=1, retain=True)
    pub.close()
    b.restart()
    wait_port(port)
    sub = Paho(port)
    sub.subscribe("home/#", qos=1)
    m = sub.expect(1)[0]
    assert (m.topic, m.payload, m.retain) == ("home/door", b"closed", True)
    sub.close()
    # They are records of a compacted topic, keyed by MQTT topic.
    rec = kafka_records(b.bootstrap, "mqtt-retained", 1)[0]
    assert (rec.key(), rec.value()) == (b"home/door", b"closed")


def test_will_on_lost_connection_not_on_disconnect(mqtt_broker):
    base = unique("will")
    watcher = Paho(mqtt_broker.mqtt_port)
    watcher.subscribe(f"{base}/#", qos=1)
    polite = Paho(mqtt_broker.mqtt_port, will=(f"{base}/polite", b"gone", 1, False))
    polite.close()  # DISCONNECT: the will is dropped
    tail = s16(f"{base}/rude".encode()) + s16(b"gone")
    s = raw_connect(mqtt_broker.mqtt_port, b"rude-client", flags=0x02 | 0x04 | 0x08, tail=tail)  # will, QoS 1
    s.close()  # no DISCONNECT
    m = watcher.expect(1)[0]
    assert m.topic == f"{base}/rude"
    watcher.nothing_more(1.0)
    watcher.close()


def test_will_after_keep_alive_expiry(mqtt_broker):
    base = unique("ka")
    watcher = Paho(mqtt_broker.mqtt_port)
    watcher.subscribe(f"{base}/#", qos=1)
    will = s16(f"{base}/silent".encode()) + s16(b"timed out")
    s = socket.create_connection(("127.0.0.1", mqtt_broker.mqtt_port), timeout=STEP)
    s.sendall(packet(0x10, s16(b"MQTT") + bytes([4, 0x02 | 0x04 | 0x08]) + (1).to_bytes(2, "big") + s16(b"silent-one") + will))
    assert read_packet(s) == (0x20, b"\x00\x00")
    started = time.monotonic()
    assert closed_by_server(s, timeout=10) == []
    waited = time.monotonic() - started
    assert 1.4 <= waited <= 4.0, f"closed after {waited:.1f}s, keep-alive 1 s"
    assert watcher.expect(1)[0].payload == b"timed out"
    watcher.close()


def test_persistent_session_queues_while_offline(mqtt_broker):
    base = unique("sess")
    cid = unique("persist")
    first = Paho(mqtt_broker.mqtt_port, client_id=cid, clean=False)
    assert first.session_present is False
    first.subscribe(f"{base}/#", qos=1)
    first.close()
    pub = Paho(mqtt_broker.mqtt_port)
    pub.publish(f"{base}/q1", b"while away", qos=1)
    pub.publish(f"{base}/q0", b"dropped", qos=0)
    pub.close()
    time.sleep(0.5)
    again = Paho(mqtt_broker.mqtt_port, client_id=cid, clean=False)
    assert again.session_present is True
    m = again.expect(1)[0]
    assert (m.topic, m.payload) == (f"{base}/q1", b"while away")
    again.nothing_more(0.5)
    again.close()
    # A clean session starts over: no subscription left.
    clean = Paho(mqtt_broker.mqtt_port, client_id=cid, clean=True)
    assert clean.session_present is False
    clean.close()


def test_session_expiry_and_takeover_v5(mqtt_broker):
    cid = unique("v5sess")
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    a = Paho(mqtt_broker.mqtt_port, client_id=cid, v5=True, clean=True, connect_properties=props)
    a.subscribe("takeover/#", qos=1)
    disconnected = queue.Queue()
    a.client.on_disconnect = lambda c, u, flags, rc, p: disconnected.put(rc)
    b = Paho(mqtt_broker.mqtt_port, client_id=cid, v5=True, clean=False, connect_properties=props)
    assert b.session_present is True
    rc = disconnected.get(timeout=STEP)
    assert rc.value == 0x8E, f"the first connection was told {rc}"
    a.client.loop_stop()
    b.close()


def test_topic_alias(mqtt_broker):
    base = unique("alias")
    sub = Paho(mqtt_broker.mqtt_port)
    sub.subscribe(f"{base}/#", qos=1)
    pub = Paho(mqtt_broker.mqtt_port, v5=True)
    assert pub.connack_properties.TopicAliasMaximum >= 1
    first = Properties(PacketTypes.PUBLISH)
    first.TopicAlias = 1
    pub.publish(f"{base}/long/topic/name", b"one", qos=1, properties=first)
    pub.publish("", b"two", qos=1, properties=first)  # the alias alone
    got = [(m.topic, m.payload) for m in sub.expect(2)]
    assert got == [(f"{base}/long/topic/name", b"one"), (f"{base}/long/topic/name", b"two")]
    pub.close()
    sub.close()


# --------------------------------------------------------------------------------------------
# Exactly once, bad input


def test_qos2_repeat_is_written_once(mqtt_broker):
    topic = unique("eo") + "/x"
    s = raw_connect(mqtt_broker.mqtt_port, b"eo-client")
    publish = s16(topic.encode()) + (7).to_bytes(2, "big") + b"exactly"
    s.sendall(packet(0x34, publish))
    assert read_packet(s) == (0x50, b"\x00\x07")  # PUBREC
    s.sendall(packet(0x3C, publish))  # DUP, same id, before PUBREL
    assert read_packet(s) == (0x50, b"\x00\x07")
    s.sendall(packet(0x62, b"\x00\x07"))  # PUBREL
    assert read_packet(s) == (0x70, b"\x00\x07")  # PUBCOMP
    s.close()
    assert len(find_records(mqtt_broker.bootstrap, "mqtt-messages", topic.encode())) == 1


def test_bad_packets_close_the_connection(mqtt_broker):
    port = mqtt_broker.mqtt_port
    # A protocol level the server does not speak: CONNACK "unacceptable protocol version".
    s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
    s.sendall(packet(0x10, s16(b"MQTT") + bytes([9, 2, 0, 60]) + s16(b"x")))
    assert closed_by_server(s) == [(0x20, b"\x00\x01")]
    # Anything before CONNECT.
    s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
    s.sendall(packet(0xC0, b""))
    assert closed_by_server(s) == []
    # A SUBSCRIBE with wrong flags (malformed) from a 5.0 client: DISCONNECT 0x81.
    s = raw_connect(port, b"bad-5", level=5)
    s.sendall(packet(0x80, (1).to_bytes(2, "big") + b"\x00" + s16(b"a/b") + b"\x01"))
    seen = closed_by_server(s)
    assert seen and seen[0][0] == 0xE0 and seen[0][1][0] == 0x81, seen
    # A remaining length of five bytes.
    s = raw_connect(port, b"bad-len")
    s.sendall(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
    assert closed_by_server(s) == []
    # A packet over mqtt.max.packet.bytes (1 MiB), refused from its length alone.
    s = raw_connect(port, b"too-big", level=5)
    s.sendall(bytes([0x30]) + bytes([0x80, 0x80, 0x80, 0x01]))  # 2 MiB announced
    seen = closed_by_server(s)
    assert seen and seen[0][0] == 0xE0 and seen[0][1][0] == 0x95, seen
    # The broker is fine.
    ok = Paho(port)
    ok.close()


def test_connect_timeout(broker_factory):
    port = free_port()
    broker_factory(mqtt_overrides(port, **{"mqtt.connect.timeout.ms": "500"}))
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
    started = time.monotonic()
    assert closed_by_server(s) == []
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------------------------
# Mapping rules


def test_mapping_rules_and_refused_topics(broker_factory):
    port = free_port()
    b = broker_factory(mqtt_overrides(port, **{"mqtt.topic.mappings": "sensors/+/temperature=sensor-temperature",
                                               "mqtt.default.topic": ""}))
    wait_port(port)
    pub = Paho(port, v5=True)
    pub.publish("sensors/s1/temperature", b"20.5", qos=1)
    refused = pub.client.publish("other/topic", b"x", qos=1)
    refused.wait_for_publish(timeout=STEP)
    rec = kafka_records(b.bootstrap, "sensor-temperature", 1)[0]
    assert (rec.key(), rec.value()) == (b"sensors/s1/temperature", b"20.5")
    pub.close()
    # A 3.1.1 client has no negative PUBACK: its connection is closed instead.
    s = raw_connect(port, b"old-client")
    s.sendall(packet(0x32, s16(b"other/topic") + (1).to_bytes(2, "big") + b"x"))
    assert closed_by_server(s) == []


def test_mqtt_metrics(mqtt_broker):
    import urllib.request

    c = Paho(mqtt_broker.mqtt_port)
    c.subscribe(unique("m") + "/#", qos=1)
    c.publish(unique("m") + "/x", b"1", qos=1)
    text = urllib.request.urlopen(mqtt_broker.http + "/metrics", timeout=STEP).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("brook_mqtt_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values["brook_mqtt_connections"] >= 1
    assert values['brook_mqtt_messages_in_total{qos="1"}'] >= 1
    assert values["brook_mqtt_subscriptions"] >= 1
    assert values["brook_mqtt_sessions"] >= 1
    c.close()
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, text=True, capture_output=True, timeout=STEP)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_shared_subscription_splits_messages_and_shows_lag(mqtt_broker):
    """`$share/GROUP/FILTER`: each message goes to one member; the members split the Kafka
    partitions; `brook group describe mqtt-share-GROUP` shows the group's offsets."""
    from conftest import BROOK_BIN

    base = unique("shared")
    group = unique("g")
    members = [Paho(mqtt_broker.mqtt_port, v5=True) for _ in range(2)]
    for m in members:
        assert m.subscribe(f"$share/{group}/{base}/#", qos=1)[0].value == 1
    pub = Paho(mqtt_broker.mqtt_port)
    n = 30
    for i in range(n):
        pub.publish(f"{base}/sensor{i}", f"v{i}".encode(), qos=1)
    got: list = []
    deadline = time.monotonic() + STEP
    while len(got) < n and time.monotonic() < deadline:
        for m in members:
            while not m.messages.empty():
                got.append((members.index(m), m.messages.get().payload))
        time.sleep(0.05)
    payloads = sorted(p for _, p in got)
    assert payloads == sorted(f"v{i}".encode() for i in range(n)), "each message once"
    assert {who for who, _ in got} == {0, 1}, "both members get messages"
    for m in members:
        m.nothing_more(0.5)
    # The share group's progress is a Kafka consumer group's committed offsets.
    deadline = time.monotonic() + STEP
    while True:
        out = subprocess.run([str(BROOK_BIN), "group", "describe", "--bootstrap-server", mqtt_broker.bootstrap,
                              f"mqtt-share-{group}"], capture_output=True, text=True, timeout=STEP)
        if out.returncode == 0 and "mqtt-messages" in out.stdout:
            break
        assert time.monotonic() < deadline, out.stdout + out.stderr
        time.sleep(0.5)
    for c in members + [pub]:
        c.close()


def test_mqtt_over_websocket(broker_factory):
    import urllib.error
    import urllib.request

    port, ws_port = free_port(), free_port()
    broker_factory({"mqtt.listeners": f"mqtt://127.0.0.1:{port},ws://127.0.0.1:{ws_port}", "num.partitions": "1"})
    wait_port(port)
    wait_port(ws_port)
    base = unique("ws")
    tcp = Paho(port)
    tcp.subscribe(f"{base}/#", qos=1)
    for v5 in (False, True):
        ws = Paho(ws_port, v5=v5, websocket=True)
        ws.subscribe(f"{base}/back", qos=1)
        ws.publish(f"{base}/from-browser", b"hello" + bytes([v5]), qos=1)
        assert tcp.expect(1)[0].payload == b"hello" + bytes([v5])
        tcp.publish(f"{base}/back", b"reply", qos=1)
        assert ws.expect(1)[0].payload == b"reply"
        tcp.expect(1)  # its own reply
        ws.close()
    tcp.close()
    # A plain HTTP request is refused.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{ws_port}/mqtt", timeout=STEP)
    assert refused.value.code == 400


def test_persistent_sessions_survive_a_restart(broker_factory):
    """Subscriptions and QoS 2 messages awaiting their PUBREL live in the compacted topic
    mqtt-sessions: after a restart the client's session is present, its subscription delivers,
    and a repeat of a QoS 2 message it sent before the restart is not written twice."""
    port = free_port()
    b = broker_factory(mqtt_overrides(port))
    wait_port(port)
    base = unique("restart")
    first = Paho(port, client_id="keeper", clean=False)
    first.subscribe(f"{base}/+/cmd", qos=1)
    first.close()
    # Messages for it while it is away: queued, and read again from the log after the restart.
    waiting = Paho(port)
    for i in range(3):
        waiting.publish(f"{base}/door{i}/cmd", f"open{i}".encode(), qos=1)
    waiting.close()
    short = Properties(PacketTypes.CONNECT)
    short.SessionExpiryInterval = 1
    brief = Paho(port, client_id="brief", v5=True, clean=True, connect_properties=short)
    brief.subscribe(f"{base}/#", qos=1)
    brief.close()
    # A QoS 2 message received (PUBREC) but not released when the broker stops.
    s = raw_connect(port, b"exact", flags=0)  # clean session 0: persistent
    topic = f"{base}/eo"
    publish = s16(topic.encode()) + (9).to_bytes(2, "big") + b"once"
    s.sendall(packet(0x34, publish))
    assert read_packet(s) == (0x50, b"\x00\x09")
    s.close()
    b.restart()
    wait_port(port)
    again = Paho(port, client_id="keeper", clean=False)
    assert again.session_present is True
    assert sorted((m.topic, m.payload) for m in again.expect(3)) == [(f"{base}/door{i}/cmd", f"open{i}".encode()) for i in range(3)]
    pub = Paho(port)
    pub.publish(f"{base}/lamp/cmd", b"on", qos=1)
    assert [(m.topic, m.payload) for m in again.expect(1)] == [(f"{base}/lamp/cmd", b"on")]
    time.sleep(1.5)
    expired = Paho(port, client_id="brief", v5=True, clean=False, connect_properties=short)
    assert expired.session_present is False
    s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
    s.sendall(packet(0x10, s16(b"MQTT") + bytes([4, 0]) + (60).to_bytes(2, "big") + s16(b"exact")))
    assert read_packet(s) == (0x20, b"\x01\x00")  # session present
    s.sendall(packet(0x3C, publish))  # the repeat, DUP
    assert read_packet(s) == (0x50, b"\x00\x09")
    s.sendall(packet(0x62, b"\x00\x09"))
    assert read_packet(s) == (0x70, b"\x00\x09")
    s.close()
    assert len(find_records(b.bootstrap, "mqtt-messages", topic.encode())) == 1
    for c in (again, pub, expired):
        c.close()


def test_qos2_written_before_a_crash_is_not_written_again(broker_factory):
    """QoS 2 messages go through the session's idempotent producer: after a crash, the
    partitions' last sequences of that producer tell which messages were written, also one the
    session record does not name. Here the record is put back as it was before the second
    message (as if the broker died between writing the message and writing the record): the
    client's resend (DUP, after no PUBREC) is answered without a second copy."""
    port = free_port()
    b = broker_factory(mqtt_overrides(port))
    wait_port(port)
    topic = unique("crash") + "/eo"
    client = b"crash-eo"

    def exchange(s, packet_id: int, payload: bytes, first: int = 0x34) -> None:
        body = s16(topic.encode()) + packet_id.to_bytes(2, "big") + payload
        s.sendall(packet(first, body))
        assert read_packet(s) == (0x50, packet_id.to_bytes(2, "big"))  # PUBREC
        s.sendall(packet(0x62, packet_id.to_bytes(2, "big")))
        assert read_packet(s) == (0x70, packet_id.to_bytes(2, "big"))  # PUBCOMP

    s = raw_connect(port, client, flags=0)  # clean session 0: persistent
    exchange(s, 1, b"one")
    [*_, before] = find_records(b.bootstrap, "mqtt-sessions", client, wait=4.0, at_least=1)
    s.sendall(packet(0x34, s16(topic.encode()) + (2).to_bytes(2, "big") + b"two"))
    assert read_packet(s) == (0x50, b"\x00\x02")  # written, and its record too
    producer = ck_producer(b.bootstrap)
    producer.produce("mqtt-sessions", key=client, value=before.value(), headers=before.headers())
    assert producer.flush(STEP) == 0
    b.restart(hard=True)
    wait_port(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
    s.sendall(packet(0x10, s16(b"MQTT") + bytes([4, 0]) + (60).to_bytes(2, "big") + s16(client)))
    assert read_packet(s) == (0x20, b"\x01\x00")  # session present
    exchange(s, 2, b"two", first=0x3C)  # the resend, DUP: not written again
    exchange(s, 3, b"three")  # something new: written
    s.close()
    values = sorted(m.value() for m in find_records(b.bootstrap, "mqtt-messages", topic.encode()))
    assert values == [b"one", b"three", b"two"]


def test_a_clean_restart_keeps_qos2_deliveries_exact(broker_factory):
    """At a shutdown every client gets DISCONNECT 0x8B and its persistent session is saved as it
    is, with the packet ids in flight: after the restart the subscriber is sent again the PUBREL
    of the message it had (PUBREC sent) and the two it had not acknowledged, with their ids and
    marked duplicate; nothing it had is sent as new."""
    port = free_port()
    b = broker_factory(mqtt_overrides(port))
    wait_port(port)
    base = unique("exact")
    client = b"exact-sub"

    def connect(present: int):
        s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
        expiry = b"\x05\x11" + (300).to_bytes(4, "big")  # session expiry 300 s
        s.sendall(packet(0x10, s16(b"MQTT") + bytes([5, 0x00]) + (60).to_bytes(2, "big") + expiry + s16(client)))
        kind, body = read_packet(s)
        assert kind == 0x20 and body[:2] == bytes([present, 0]), body
        return s

    def publish_of(p):
        kind, body = p
        assert kind & 0xF0 == 0x30 and (kind >> 1) & 3 == 2, p
        n = int.from_bytes(body[:2], "big")
        pid = int.from_bytes(body[2 + n:4 + n], "big")
        props = body[4 + n]  # a one-byte length here
        return pid, bool(kind & 0x08), body[5 + n + props:]

    s = connect(0)
    s.sendall(packet(0x82, (1).to_bytes(2, "big") + b"\x00" + s16(f"{base}/#".encode()) + b"\x02"))
    assert read_packet(s)[0] == 0x90  # SUBACK
    publisher = Paho(port, v5=True)
    for i in range(3):
        publisher.publish(f"{base}/a", f"m{i}".encode(), qos=2)
    got = [publish_of(read_packet(s)) for _ in range(3)]
    assert [g[2] for g in got] == [b"m0", b"m1", b"m2"]
    first = got[0][0]
    s.sendall(packet(0x50, first.to_bytes(2, "big")))  # PUBREC of the first only
    assert read_packet(s) == (0x62, first.to_bytes(2, "big"))  # PUBREL
    publisher.close()
    b.restart()  # SIGTERM
    seen = closed_by_server(s)
    assert seen and seen[0][0] == 0xE0 and seen[0][1][:1] == b"\x8b", seen  # DISCONNECT, server shutting down
    wait_port(port)
    s2 = connect(1)
    assert read_packet(s2) == (0x62, first.to_bytes(2, "big"))  # the PUBREL again
    again = [publish_of(read_packet(s2)) for _ in range(2)]
    assert again == [(got[1][0], True, b"m1"), (got[2][0], True, b"m2")]
    s2.settimeout(1.5)
    with pytest.raises(socket.timeout):
        read_packet(s2)
    s2.close()
    s.close()


def test_a_crash_sends_again_only_what_came_since_the_last_progress_save(broker_factory):
    """A connected persistent session whose client acknowledged messages is saved every
    `mqtt.session.save.interval.ms`: after a crash (SIGKILL) the client, reconnecting, is not
    sent again what it had acknowledged before that save."""
    port = free_port()
    b = broker_factory(mqtt_overrides(port, **{"mqtt.session.save.interval.ms": "300"}))
    wait_port(port)
    base = unique("progress")
    sub = Paho(port, client_id="progress", clean=False)
    sub.subscribe(f"{base}/#", qos=1)
    publisher = Paho(port)
    for i in range(20):
        publisher.publish(f"{base}/s", f"{i}".encode(), qos=1)
    publisher.close()
    assert [m.payload for m in sub.expect(20)] == [f"{i}".encode() for i in range(20)]
    time.sleep(1.5)  # a progress save or more
    b.restart(hard=True)
    wait_port(port)
    # paho connects again by itself, to the session it had.
    flags, rc, _ = sub.connected.get(timeout=STEP)
    assert not rc.is_failure and flags.session_present
    sub.nothing_more(2.0)
    publisher = Paho(port)
    publisher.publish(f"{base}/s", b"new", qos=1)
    assert [m.payload for m in sub.expect(1)] == [b"new"]
    publisher.close()
    sub.close()


def test_will_delay(mqtt_broker):
    """5.0: a will waits for its delay (a client back in time cancels it), and goes at once when
    the session ends first."""
    base = unique("delay")
    watcher = Paho(mqtt_broker.mqtt_port)
    watcher.subscribe(f"{base}/#", qos=1)

    def connect_with_will(cid: str, topic: str, delay: int, expiry: int) -> socket.socket:
        props = bytes([0x11]) + expiry.to_bytes(4, "big")  # session expiry
        will_props = bytes([0x18]) + delay.to_bytes(4, "big")  # will delay
        body = (s16(b"MQTT") + bytes([5, 0x02 | 0x04 | 0x08]) + (60).to_bytes(2, "big") + bytes([len(props)]) + props
                + s16(cid.encode()) + bytes([len(will_props)]) + will_props + s16(topic.encode()) + s16(b"gone"))
        s = socket.create_connection(("127.0.0.1", mqtt_broker.mqtt_port), timeout=STEP)
        s.sendall(packet(0x10, body))
        first, ack = read_packet(s)
        assert first == 0x20 and ack[1] == 0, ack
        return s

    s = connect_with_will(unique("d"), f"{base}/late", delay=2, expiry=60)
    started = time.monotonic()
    s.close()
    m = watcher.expect(1, timeout=10)[0]
    waited = time.monotonic() - started
    assert m.topic == f"{base}/late" and 1.5 <= waited <= 6, waited
    assert m.properties is None or not hasattr(m.properties, "WillDelayInterval")
    # The session ends at once (expiry 0): the will does not wait for its delay.
    s = connect_with_will(unique("e"), f"{base}/now", delay=30, expiry=0)
    s.close()
    assert watcher.expect(1, timeout=5)[0].topic == f"{base}/now"
    # Back within the delay: no will.
    cid = unique("back")
    s = connect_with_will(cid, f"{base}/cancelled", delay=3, expiry=60)
    s.close()
    back = Paho(mqtt_broker.mqtt_port, client_id=cid, v5=True, clean=False)
    watcher.nothing_more(4.0)
    back.close()
    watcher.close()


def test_large_publishes_are_split_into_batches(mqtt_broker):
    base = unique("big")
    sub = Paho(mqtt_broker.mqtt_port)
    sub.subscribe(f"{base}/#", qos=1)
    pub = Paho(mqtt_broker.mqtt_port, v5=True)
    infos = [pub.client.publish(f"{base}/{i}", bytes([i]) * 64_000, qos=1) for i in range(20)]
    infos.append(pub.client.publish(f"{base}/huge", b"h" * 990_000, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=STEP)
        assert info.is_published()
    got = sub.expect(21, timeout=30)
    assert sorted(len(m.payload) for m in got) == [64_000] * 20 + [990_000]
    pub.close()
    sub.close()


def test_aborted_kafka_transactions_do_not_reach_mqtt(mqtt_broker):
    from confluent_kafka import Producer

    base = unique("txn")
    sub = Paho(mqtt_broker.mqtt_port)
    sub.subscribe(f"{base}/#", qos=1)
    p = Producer({"bootstrap.servers": mqtt_broker.bootstrap, "transactional.id": unique("tx")})
    p.init_transactions(STEP)
    p.begin_transaction()
    p.produce("mqtt-messages", key=f"{base}/aborted", value=b"no")
    p.flush(STEP)
    p.abort_transaction(STEP)
    p.begin_transaction()
    p.produce("mqtt-messages", key=f"{base}/committed", value=b"yes")
    p.commit_transaction(STEP)
    m = sub.expect(1)[0]
    assert (m.topic, m.payload) == (f"{base}/committed", b"yes")
    sub.nothing_more(1.0)
    sub.close()


def test_a_long_bad_topic_is_refused_not_fatal(mqtt_broker):
    """A 64 KiB topic of one grapheme ('+' and combining marks) is an invalid name: the 5.0
    DISCONNECT's reason string is cut by bytes, and the broker stays up."""
    s = raw_connect(mqtt_broker.mqtt_port, b"long-topic", level=5)
    topic = ("+" + "\u0301" * 32_767).encode()
    s.sendall(packet(0x30, s16(topic) + b"\x00" + b"x"))
    seen = closed_by_server(s)
    assert seen and seen[0][0] == 0xE0 and seen[0][1][0] == 0x90, seen[:1]
    ok = Paho(mqtt_broker.mqtt_port)
    ok.close()


def test_mqtt_over_tls(broker_factory, tmp_path):
    """mqtts:// and wss:// with the broker's ssl.* key store: mosquitto_pub with the CA, paho
    over TLS WebSocket; a client that does not trust the CA is refused."""
    from tls_certs import make_certs

    certs = make_certs(tmp_path / "certs")
    port, wss_port = free_port(), free_port()
    broker_factory({"mqtt.listeners": f"mqtts://127.0.0.1:{port},wss://127.0.0.1:{wss_port}", "num.partitions": "1",
                    "ssl.keystore.location": certs["keystore.pem"]})
    wait_port(port)
    wait_port(wss_port)
    base = unique("tls")
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, transport="websockets")
    sub.ws_set_options(path="/mqtt")
    sub.tls_set(ca_certs=certs["ca.pem"])
    got: "queue.Queue" = queue.Queue()
    subscribed: "queue.Queue" = queue.Queue()
    sub.on_message = lambda c, u, m: got.put(m)
    sub.on_subscribe = lambda c, u, mid, rcs, props: subscribed.put(rcs)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{base}/#", qos=1)
    sub.connect("127.0.0.1", wss_port)
    sub.loop_start()
    subscribed.get(timeout=STEP)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile", certs["ca.pem"], "-q", "1",
                    "-t", f"{base}/secure", "-m", "over tls"], check=True, timeout=STEP)
    m = got.get(timeout=STEP)
    assert (m.topic, m.payload) == (f"{base}/secure", b"over tls")
    sub.loop_stop()
    sub.disconnect()
    # Without the CA the handshake fails.
    refused = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile", "/etc/ssl/certs/ca-certificates.crt",
                              "-t", f"{base}/x", "-m", "no"], capture_output=True, timeout=STEP)
    assert refused.returncode != 0


def test_mqtt_logins(broker_factory):
    """With mqtt.allow.anonymous=false a CONNECT needs a user: a PLAIN user of the MQTT listener
    (listener.name.mqtt.plain.sasl.jaas.config) or a SCRAM user of the cluster; a wrong password
    gets CONNACK 4 (3.1.1) / 0x86 (5.0), no user name 5 / 0x87."""
    from conftest import BROOK_BIN

    port = free_port()
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'user_device1="s3cret";')
    b = broker_factory(mqtt_overrides(port, **{"mqtt.allow.anonymous": "false",
                                               "listener.name.mqtt.plain.sasl.jaas.config": jaas}))
    wait_port(port)
    ok = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", "device1", "-P", "s3cret",
                         "-t", "login/ok", "-m", "1", "-q", "1"], capture_output=True, text=True, timeout=STEP)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", "device1", "-P", "wrong",
                          "-t", "login/bad", "-m", "1"], capture_output=True, text=True, timeout=STEP)
    assert bad.returncode != 0 and "bad user name or password" in (bad.stderr + bad.stdout).lower(), bad.stderr
    anonymous = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-t", "login/anon", "-m", "1"],
                               capture_output=True, text=True, timeout=STEP)
    assert anonymous.returncode != 0
    # A SCRAM user made with brook user, logging in over MQTT with its password.
    made = subprocess.run([str(BROOK_BIN), "user", "add", "--bootstrap-server", b.bootstrap, "scram-dev",
                           "--mechanism", "SCRAM-SHA-256", "--password", "pw-256"], capture_output=True, text=True, timeout=STEP)
    assert made.returncode == 0, made.stdout + made.stderr
    deadline = time.monotonic() + STEP
    while True:
        scram = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", "scram-dev", "-P", "pw-256",
                                "-t", "login/scram", "-m", "1", "-q", "1"], capture_output=True, text=True, timeout=STEP)
        if scram.returncode == 0:
            break
        assert time.monotonic() < deadline, scram.stderr
        time.sleep(0.3)


def test_kafka_python_reads_and_writes_mqtt_data(mqtt_broker):
    """kafka-python on the Kafka side: it reads a device's message (key, value, headers) and its
    producer's record reaches an MQTT subscriber."""
    from kafka import KafkaConsumer, KafkaProducer

    base = unique("kp")
    sub = Paho(mqtt_broker.mqtt_port)
    sub.subscribe(f"{base}/in", qos=1)
    dev = Paho(mqtt_broker.mqtt_port)
    dev.publish(f"{base}/out", b"from-device", qos=1)
    consumer = KafkaConsumer("mqtt-messages", bootstrap_servers=mqtt_broker.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=8000)
    found = [m for m in consumer if m.key == f"{base}/out".encode()]
    consumer.close()
    assert len(found) == 1 and found[0].value == b"from-device"
    assert dict(found[0].headers)["mqtt.qos"] == b"1"
    producer = KafkaProducer(bootstrap_servers=mqtt_broker.bootstrap)
    producer.send("mqtt-messages", key=f"{base}/in".encode(), value=b"to-device").get(timeout=STEP)
    producer.close()
    m = sub.expect(1)[0]
    assert (m.topic, m.payload) == (f"{base}/in", b"to-device")
    sub.close()
    dev.close()


def test_mqtt_clients_are_held_to_the_brokers_acls(broker_factory):
    """With an authorizer, an MQTT client's user is the principal its ACLs name: a PUBLISH needs
    WRITE on the Kafka topic its MQTT topic maps to (PUBACK 0x87 in 5.0, the connection closed in
    3.1.1), a SUBSCRIBE READ on every Kafka topic its filter may get messages from (SUBACK 0x87),
    a will WRITE (CONNACK 0x87)."""
    from conftest import BROOK_BIN

    port = free_port()
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'user_alice="alice-pw" user_bob="bob-pw";')
    b = broker_factory(mqtt_overrides(port, **{
        "mqtt.allow.anonymous": "false", "listener.name.mqtt.plain.sasl.jaas.config": jaas,
        "mqtt.topic.mappings": "alice/#=alice-data",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # The test's own Kafka clients (plaintext, anonymous) administer the broker.
        "super.users": "User:ANONYMOUS"}))
    wait_port(port)
    for principal, operations in (("User:alice", ["read", "write"]), ("User:bob", ["read"])):
        args = [str(BROOK_BIN), "acl", "add", "--bootstrap-server", b.bootstrap, "--principal", principal, "--topic", "alice-data"]
        for operation in operations:
            args += ["--operation", operation]
        made = subprocess.run(args, capture_output=True, text=True, timeout=STEP)
        assert made.returncode == 0, made.stderr

    def client(user: str, v5: bool = True, will=None) -> "paho.Client":
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=unique(user), protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        c.username_pw_set(user, f"{user}-pw")
        if will:
            c.will_set(*will)
        c.acks, c.connacks, c.subacks, c.gone = queue.Queue(), queue.Queue(), queue.Queue(), queue.Queue()
        c.messages = queue.Queue()
        c.on_message = lambda cl, u, m: cl.messages.put(m)
        c.on_connect = lambda cl, u, flags, rc, props: cl.connacks.put(rc)
        c.on_publish = lambda cl, u, mid, rc, props: cl.acks.put(rc)
        c.on_subscribe = lambda cl, u, mid, rcs, props: cl.subacks.put(rcs)
        c.on_disconnect = lambda cl, u, flags, rc, props: cl.gone.put(rc)
        c.connect("127.0.0.1", port)
        c.loop_start()
        return c

    alice = client("alice")
    assert not alice.connacks.get(timeout=STEP).is_failure
    alice.publish("alice/kitchen", b"21.5", qos=1)
    assert alice.acks.get(timeout=STEP).value == 0
    # Unmapped MQTT topics land in mqtt-messages, which alice may not write to.
    alice.publish("other/kitchen", b"x", qos=1)
    assert alice.acks.get(timeout=STEP).value == 0x87
    assert kafka_records(b.bootstrap, "alice-data", 1)[0].value() == b"21.5"

    bob = client("bob")
    assert not bob.connacks.get(timeout=STEP).is_failure
    bob.subscribe([("alice/#", 1), ("other/#", 1), ("#", 1)])
    assert [rc.value for rc in bob.subacks.get(timeout=STEP)] == [1, 0x87, 0x87]
    bob.publish("alice/kitchen", b"bob was here", qos=1)
    assert bob.acks.get(timeout=STEP).value == 0x87
    # What bob may read reaches him.
    alice.publish("alice/hall", b"19.0", qos=1)
    assert alice.acks.get(timeout=STEP).value == 0
    m = bob.messages.get(timeout=STEP)
    assert (m.topic, m.payload) == ("alice/hall", b"19.0")
    # A 3.1.1 client has no negative PUBACK: a refused QoS 1 publish ends its connection.
    old = client("bob", v5=False)
    assert old.connacks.get(timeout=STEP).value == 0
    old.publish("alice/kitchen", b"x", qos=1)
    old.gone.get(timeout=STEP)
    # A will to a topic the user may not write is refused at CONNECT.
    willing = client("bob", will=("alice/last-words", b"bye", 1))
    assert willing.connacks.get(timeout=STEP).value == 0x87
    for c in (alice, bob, old, willing):
        c.loop_stop()
        c.disconnect()


def test_message_expiry_of_queued_and_retained_messages(mqtt_broker):
    """A message whose expiry interval passes while it waits (for an offline session, or as a
    retained message) is not sent; one that is sent carries what is left of its interval."""
    base = unique("expiry")
    cid = unique("expiring")
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    away = Paho(mqtt_broker.mqtt_port, client_id=cid, v5=True, clean=False, connect_properties=props)
    away.subscribe(f"{base}/queued/#", qos=1)
    away.close()

    def expiring(seconds: int) -> Properties:
        p = Properties(PacketTypes.PUBLISH)
        p.MessageExpiryInterval = seconds
        return p

    pub = Paho(mqtt_broker.mqtt_port, v5=True)
    pub.publish(f"{base}/queued/short", b"s", qos=1, properties=expiring(2))
    pub.publish(f"{base}/queued/long", b"l", qos=1, properties=expiring(600))
    pub.publish(f"{base}/retained/short", b"s", qos=1, retain=True, properties=expiring(2))
    pub.publish(f"{base}/retained/long", b"l", qos=1, retain=True, properties=expiring(600))
    time.sleep(3.5)
    back = Paho(mqtt_broker.mqtt_port, client_id=cid, v5=True, clean=False, connect_properties=props)
    assert back.session_present
    [m] = back.expect(1)
    assert m.topic == f"{base}/queued/long"
    assert 590 <= m.properties.MessageExpiryInterval < 600, m.properties
    back.nothing_more(0.5)
    late = Paho(mqtt_broker.mqtt_port, v5=True)
    late.subscribe(f"{base}/retained/#", qos=1)
    [m] = late.expect(1)
    assert (m.topic, m.retain) == (f"{base}/retained/long", True)
    assert 590 <= m.properties.MessageExpiryInterval < 600, m.properties
    late.nothing_more(0.5)
    for c in (pub, back, late):
        c.close()


def props_bytes(items: "list[tuple[int, bytes]]") -> bytes:
    body = b"".join(bytes([code]) + value for code, value in items)
    n, length = len(body), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes(length) + body


def read_props(body: bytes, at: int) -> "tuple[dict, int]":
    length, shift = 0, 0
    while True:
        byte = body[at]
        at += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    end, found = at + length, {}
    while at < end:
        code = body[at]
        at += 1
        if code in (0x15, 0x16, 0x1F):  # method, data, reason string: 2-byte length
            n = int.from_bytes(body[at:at + 2], "big")
            found[code] = body[at + 2:at + 2 + n]
            at += 2 + n
        elif code in (0x11, 0x27):
            at += 4
        elif code in (0x21, 0x22, 0x13):
            at += 2
        elif code == 0x26:
            for _ in range(2):
                at += 2 + int.from_bytes(body[at:at + 2], "big")
        else:
            at += 1
    return found, end


class ScramClient:
    """The client's side of SCRAM-SHA-256 (RFC 5802), for MQTT 5.0 enhanced authentication."""

    def __init__(self, user: str, password: str) -> None:
        import base64, os
        self.user, self.password = user, password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={user},r={self.nonce}"

    def first(self) -> bytes:
        return ("n,," + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        import base64, hashlib, hmac
        attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.expected_final = "v=" + base64.b64encode(hmac.new(server_key, self.auth_message, hashlib.sha256).digest()).decode()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def test_enhanced_authentication_with_scram(broker_factory):
    """MQTT 5.0 AUTH with SCRAM-SHA-256 against a SCRAM user of the cluster: CONNECT names the
    method with the client-first message, AUTH 0x18 carries the challenge, the client's AUTH its
    proof, CONNACK the server's signature; the user is the ACL principal. A wrong password gets
    CONNACK 0x87, an unknown method 0x8C; a connected client re-authenticates (AUTH 0x19)."""
    from conftest import BROOK_BIN

    port = free_port()
    b = broker_factory(mqtt_overrides(port, **{"mqtt.allow.anonymous": "false"}))
    wait_port(port)
    made = subprocess.run([str(BROOK_BIN), "user", "add", "--bootstrap-server", b.bootstrap, "auth-dev",
                           "--mechanism", "SCRAM-SHA-256", "--password", "pw-auth"], capture_output=True, text=True, timeout=STEP)
    assert made.returncode == 0, made.stdout + made.stderr
    method = s16(b"SCRAM-SHA-256")

    def connect(password: str, method_name: bytes = b"SCRAM-SHA-256"):
        scram = ScramClient("auth-dev", password)
        s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
        props = props_bytes([(0x15, s16(method_name)), (0x16, s16(scram.first()))])
        s.sendall(packet(0x10, s16(b"MQTT") + bytes([5, 0x02]) + (60).to_bytes(2, "big") + props + s16(b"auth-" + uuid.uuid4().hex[:6].encode())))
        return s, scram

    def exchange(s, scram):
        first, body = read_packet(s)
        assert first == 0xF0 and body[0] == 0x18, (hex(first), body)
        found, _ = read_props(body, 1)
        assert found[0x15] == b"SCRAM-SHA-256"
        s.sendall(packet(0xF0, bytes([0x18]) + props_bytes([(0x15, method), (0x16, s16(scram.final(found[0x16])))])))
        return read_packet(s)

    deadline = time.monotonic() + STEP
    while True:
        s, scram = connect("pw-auth")
        first, body = exchange(s, scram)
        if body[1] == 0 or time.monotonic() > deadline:
            break
        s.close()  # the credential may not have reached the MQTT side yet
        time.sleep(0.3)
    assert first == 0x20 and body[1] == 0, body
    found, _ = read_props(body, 2)
    assert found[0x15] == b"SCRAM-SHA-256" and found[0x16].decode() == scram.expected_final
    # Connected: a PUBLISH goes through; then a re-authentication.
    s.sendall(packet(0x32, s16(b"auth/t") + (1).to_bytes(2, "big") + b"\x00" + b"hello"))
    first, body = read_packet(s)
    assert first == 0x40, (hex(first), body)
    again = ScramClient("auth-dev", "pw-auth")
    s.sendall(packet(0xF0, bytes([0x19]) + props_bytes([(0x15, method), (0x16, s16(again.first()))])))
    first, body = exchange(s, again)
    assert first == 0xF0 and body[0] == 0x00, (hex(first), body)
    assert read_props(body, 1)[0][0x16].decode() == again.expected_final
    s.close()

    wrong, scram = connect("not-it")
    first, body = exchange(wrong, scram)
    assert first == 0x20 and body[1] == 0x87, body
    wrong.close()
    unknown, _ = connect("pw-auth", b"KERBEROS")
    first, body = read_packet(unknown)
    assert first == 0x20 and body[1] == 0x8C, body
    unknown.close()


def test_a_client_certificate_names_the_mqtt_principal(broker_factory, tmp_path):
    """On mqtts:// with ssl.client.auth=required, a client certificate's subject, mapped by
    ssl.principal.mapping.rules, is the client's principal for the ACLs, and counts as a login
    when mqtt.allow.anonymous=false (mosquitto_pub --cert/--key)."""
    from conftest import BROOK_BIN
    from tls_certs import make_certs

    certs = make_certs(tmp_path / "certs")
    port = free_port()
    b = broker_factory({"mqtt.listeners": f"mqtts://127.0.0.1:{port}", "num.partitions": "1",
                        "ssl.keystore.location": certs["keystore.pem"], "ssl.client.auth": "required",
                        "ssl.truststore.location": certs["ca.pem"],
                        "ssl.principal.mapping.rules": "RULE:^.*CN=([^,]+).*$/$1/,DEFAULT",
                        "mqtt.allow.anonymous": "false", "mqtt.topic.mappings": "certified/#=certified-data",
                        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                        "super.users": "User:ANONYMOUS"})
    wait_port(port)
    pub = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile", certs["ca.pem"], "--cert", certs["client.pem"],
           "--key", certs["client.key"], "-V", "mqttv5", "-q", "1", "-m", "signed"]
    # Before any ACL names client-1, its write is refused (PUBACK 0x87).
    refused = subprocess.run(pub + ["-t", "certified/a"], capture_output=True, text=True, timeout=STEP)
    assert "not authorized" in (refused.stdout + refused.stderr).lower(), refused.stdout + refused.stderr
    made = subprocess.run([str(BROOK_BIN), "acl", "add", "--bootstrap-server", b.bootstrap, "--principal", "User:client-1",
                           "--operation", "write", "--topic", "certified-data"], capture_output=True, text=True, timeout=STEP)
    assert made.returncode == 0, made.stderr
    ok = subprocess.run(pub + ["-t", "certified/b"], capture_output=True, text=True, timeout=STEP)
    assert ok.returncode == 0 and "not authorized" not in (ok.stdout + ok.stderr).lower(), ok.stdout + ok.stderr
    assert kafka_records(b.bootstrap, "certified-data", 1)[0].key() == b"certified/b"
