"""The HTTP listener (`http.listeners`): `/metrics` in Prometheus's text format, linted by
promtool, with what real clients just did (requests by API, errors by code, records per topic,
partition offsets, consumer lag in records and seconds, group states), `/health` and `/ready`;
series of a deleted topic gone; a cluster's controller, leadership and under-replication
metrics across a node's loss."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError

from brook_cluster import Cluster, all_unfenced
from brook_interop import ck_create_topic, unique_topic
from conftest import Broker, free_port, start_or_fail

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def fetch(url: str, method: str = "GET") -> tuple:
    """(status, body text) of one request."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError) as e:  # not listening (yet)
        return 0, str(e)


def scrape(base: str) -> tuple:
    """(text, samples): samples map (name, frozenset of label pairs) to the value."""
    status, text = fetch(base + "/metrics")
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        samples[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return text, samples


def value(samples: dict, name: str, **labels) -> "float | None":
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    return sum(found) if found else None


def promtool_ok(text: str) -> None:
    assert shutil.which("promtool"), "promtool is missing (scripts/interop.sh installs Debian's prometheus package)"
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"promtool check metrics: {out.stdout}{out.stderr}"


def wait_until(what: str, check, limit_s: float = 30.0):
    deadline = time.monotonic() + limit_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {limit_s} s (last: {last})")


def test_health_ready_and_http_rules(broker):
    base = broker.http
    assert fetch(base + "/health") == (200, "ok\n")
    assert fetch(base + "/ready") == (200, "ready\n")
    assert fetch(base + "/nothing-here")[0] == 404
    assert fetch(base + "/metrics", method="POST")[0] == 405
    status, body = fetch(base + "/metrics", method="HEAD")
    assert status == 200 and body == ""
    assert "/console/app.js" in fetch(base + "/")[1]  # the console's page
    # A request with a body over the limit is cut off; the listener goes on serving.
    with socket.create_connection(("127.0.0.1", broker.http_port), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"x" * 100_000)
        s.settimeout(10)
        try:
            while s.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    # Garbage instead of HTTP: answered 400 or closed, and nothing else happens.
    with socket.create_connection(("127.0.0.1", broker.http_port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 4)
        s.settimeout(10)
        try:
            s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            pass
    assert fetch(base + "/health") == (200, "ok\n")


def test_metrics_follow_real_clients(broker):
    topic = unique_topic("metrics")
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(100):
        producer.produce(topic, value=f"v{i}".encode(), key=f"k{i}".encode(), partition=i % 2)
    assert producer.flush(30) == 0
    # A group that read partition 0 to offset 30 and partition 1 to its end (50).
    group = unique_topic("metrics-group")
    committer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(topic, 0, 30), TopicPartition(topic, 1, 50)], asynchronous=False)
    committer.close()
    time.sleep(1.5)  # the unread records are at least this old
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([unique_topic("never-made")], timeout_ms=10000)

    text, samples = scrape(broker.http)
    promtool_ok(text)
    assert value(samples, "brook_requests_total", api="Produce") >= 1
    assert value(samples, "brook_requests_total", api="ApiVersions") >= 1
    assert value(samples, "brook_request_seconds_count", api="Produce") >= 1
    assert value(samples, "brook_request_queue_seconds_count", api="Produce") >= 1
    assert value(samples, "brook_request_bytes_total", api="Produce") > 100
    assert value(samples, "brook_response_bytes_total", api="Metadata") > 0
    assert value(samples, "brook_request_errors_total", api="DeleteTopics", error="UNKNOWN_TOPIC_OR_PARTITION") >= 1
    assert value(samples, "brook_connections_created_total", listener="PLAINTEXT") >= 3
    assert value(samples, "brook_topic_records_in_total", topic=topic) == 100
    assert value(samples, "brook_topic_bytes_in_total", topic=topic) > 100
    for p in (0, 1):
        assert value(samples, "brook_partition_log_end_offset", topic=topic, partition=str(p)) == 50
        assert value(samples, "brook_partition_high_watermark", topic=topic, partition=str(p)) == 50
        assert value(samples, "brook_partition_log_start_offset", topic=topic, partition=str(p)) == 0
        assert value(samples, "brook_partition_log_segments", topic=topic, partition=str(p)) == 1
        assert value(samples, "brook_partition_log_size_bytes", topic=topic, partition=str(p)) > 0
    assert value(samples, "brook_consumer_group_lag", group=group, topic=topic, partition="0") == 20
    assert value(samples, "brook_consumer_group_lag", group=group, topic=topic, partition="1") == 0
    assert 1.0 <= value(samples, "brook_consumer_group_lag_seconds", group=group, topic=topic, partition="0") < 120
    assert value(samples, "brook_consumer_group_lag_seconds", group=group, topic=topic, partition="1") == 0
    assert value(samples, "brook_consumer_groups", protocol="classic", state="Empty") >= 1
    assert value(samples, "brook_controller_active") == 1
    assert value(samples, "brook_under_replicated_partitions") == 0
    assert value(samples, "process_resident_memory_bytes") > 1_000_000
    assert value(samples, "process_open_fds") > 5
    assert value(samples, "process_cpu_seconds_total") > 0

    # A member that joins with subscribe(): the group is Stable with one member; it reads the
    # rest and commits, and the lag drops to 0 in records and in time.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    read = 0
    deadline = time.monotonic() + 60
    while read < 20 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            read += 1
    assert read == 20
    consumer.commit(asynchronous=False)
    _, samples = scrape(broker.http)
    assert value(samples, "brook_consumer_group_members", group=group) == 1
    assert value(samples, "brook_consumer_groups", protocol="classic", state="Stable") >= 1
    assert value(samples, "brook_consumer_group_generation", group=group) >= 1
    assert value(samples, "brook_consumer_group_lag", group=group, topic=topic, partition="0") == 0
    assert value(samples, "brook_consumer_group_lag_seconds", group=group, topic=topic, partition="0") == 0
    assert value(samples, "brook_topic_bytes_out_total", topic=topic) > 0
    consumer.close()

    # A deleted topic's series go.
    admin.delete_topics([topic], timeout_ms=10000)
    admin.close()
    def gone():
        text, samples = scrape(broker.http)
        return f'topic="{topic}"' not in text and value(samples, "brook_partitions") is not None
    wait_until("the deleted topic's series gone", gone)


def test_http_port_taken(tmp_path):
    """A port given in http.listeners that is taken stops the start with a readable message; the
    default's port taken is only a warning."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    try:
        b = Broker(tmp_path / "a", tmp_path / "a.log")
        b.http_port = taken
        with pytest.raises(RuntimeError, match="http.listeners"):
            b.start(ready_timeout=30)
        # An error exit, not a crash (a watchdog released with the failed start used to trap).
        assert b.proc.returncode > 0, b.log_tail()
        b.kill()
        # Not given: 127.0.0.1:9644, which this test holds when it can (another process may).
        try:
            default = socket.socket()
            default.bind(("127.0.0.1", 9644))
            default.listen(1)
        except OSError:
            default = None
        b = Broker(tmp_path / "b", tmp_path / "b.log")
        b.http_port = None
        start_or_fail(b)
        assert b.alive()
        b.stop()
        if default is not None:
            assert "no HTTP listener" in Path(tmp_path / "b.log").read_text()
            default.close()
    finally:
        holder.close()


def cluster_metrics(cluster: Cluster, node_ids) -> dict:
    return {i: scrape(cluster.nodes[i].http)[1] for i in node_ids}


def create_replicated(bootstrap: str, topic: str, partitions: int, replicas: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replicas)],
                                      operation_timeout=30, request_timeout=60).values():
        future.result(60)


def test_cluster_metrics_across_a_node_loss(tmp_path):
    cluster = Cluster(tmp_path, size=3)
    try:
        cluster.start()
        cluster.wait_for("three brokers unfenced", all_unfenced([1, 2, 3]), limit_s=60)
        wait_until("every node ready", lambda: all(fetch(n.http + "/ready")[0] == 200 for n in cluster.nodes.values()))
        topic = unique_topic("metrics-cluster")
        create_replicated(cluster.bootstrap, topic, partitions=3, replicas=3)

        def placed():
            samples = cluster_metrics(cluster, [1, 2, 3])
            hosted = [value(s, "brook_partition_high_watermark", topic=topic) is not None for s in samples.values()]
            active = sum(value(s, "brook_controller_active") or 0 for s in samples.values())
            return all(hosted) and active == 1
        wait_until("a partition series on every node and one active controller", placed, limit_s=60)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        for i in range(30):
            producer.produce(topic, value=b"x", partition=i % 3)
        assert producer.flush(30) == 0
        texts = {i: scrape(cluster.nodes[i].http) for i in (1, 2, 3)}
        for text, _ in texts.values():
            promtool_ok(text)
        samples = {i: s for i, (_, s) in texts.items()}
        # The console of node 1 shows the whole cluster: every broker, and records of partitions
        # that other nodes lead (its API is a client of the cluster, not of node 1).
        import json
        view = json.loads(fetch(cluster.nodes[1].http + "/api/cluster")[1])
        assert [b["id"] for b in view["brokers"]] == [1, 2, 3]
        topic_view = json.loads(fetch(cluster.nodes[1].http + f"/api/topics/{topic}")[1])
        assert {p["leader"] for p in topic_view["partitions"]} - {1}, "a partition led by another node"
        assert [p["endOffset"] for p in topic_view["partitions"]] == [10, 10, 10]
        records = json.loads(fetch(cluster.nodes[1].http + f"/api/topics/{topic}/records?mode=latest&limit=100")[1])["records"]
        assert len(records) == 30 and {r["partition"] for r in records} == {0, 1, 2}
        terms = {value(s, "brook_raft_term") for s in samples.values()}
        assert len(terms) == 1
        assert sum(value(s, "brook_leader_partitions") or 0 for s in samples.values()) >= 3
        assert sum(value(s, "brook_under_replicated_partitions") for s in samples.values()) == 0
        # Node 3 stops: the partitions it held are under-replicated on their leaders once the
        # controller takes it out of their ISRs; it comes back and catches up.
        cluster.nodes[3].kill()
        def under():
            total = sum(value(s, "brook_under_replicated_partitions") for s in cluster_metrics(cluster, [1, 2]).values())
            return total if total >= 3 else None
        wait_until("three under-replicated partitions on the live leaders", under, limit_s=60)
        cluster.nodes[3].start()
        wait_until("node 3 ready again", lambda: fetch(cluster.nodes[3].http + "/ready")[0] == 200, limit_s=60)
        def healed():
            return sum(value(s, "brook_under_replicated_partitions") for s in cluster_metrics(cluster, [1, 2, 3]).values()) == 0
        wait_until("no under-replicated partition once node 3 caught up", healed, limit_s=90)
        assert cluster.nodes[1].terminate() == 0
    finally:
        cluster.stop()



def test_the_grafana_dashboard_uses_what_is_served(broker, tmp_path):
    """Every metric the dashboard in docs/grafana queries is in /metrics, and every query parses
    as PromQL (promtool checks them as recording rules)."""
    import json
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs/grafana/brook-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    assert len(exprs) > 20
    # Traffic for the per-topic and per-group series.
    topic, group = unique_topic("dashboard"), unique_topic("dashboard-group")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, value=b"x")
    assert producer.flush(30) == 0
    committer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    committer.close()
    text, _ = scrape(broker.http)
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    used = {name for e in exprs for name in re.findall(r"\b((?:brook|process)_[a-z_]+)\b", e)}
    assert used - served == set(), f"the dashboard queries metrics /metrics lacks: {sorted(used - served)}"
    rules = tmp_path / "dashboard-rules.yml"
    queries = [e.replace("$instance", ".*").replace("$topic", ".*").replace("$group", ".*") for e in exprs if not e.startswith("label_values")]
    rules.write_text("groups:\n- name: dashboard\n  rules:\n" + "".join(
        f"  - record: dashboard:query{i}\n    expr: {json.dumps(q)}\n" for i, q in enumerate(queries)))
    out = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


class OTLPCollector:
    """An OTLP/HTTP trace receiver (POST /v1/traces, JSON or protobuf), on a free port in a
    thread: what an OpenTelemetry collector would be sent."""

    def __init__(self):
        import http.server
        import threading
        collector = self
        self.posts = []  # (content type, body)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector.posts.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                kind = self.headers.get("Content-Type", "application/json")
                self.send_header("Content-Type", kind)
                answer = b"{}" if "json" in kind else b""
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def hex_id(text: str) -> str:
        """A trace or span id of OTLP/JSON: hex, as the specification has it (or base64)."""
        import base64
        import string
        if text and all(c in string.hexdigits for c in text) and len(text) in (16, 32):
            return text.lower()
        return base64.b64decode(text).hex() if text else ""

    def spans(self) -> list:
        """Every span received, as (name, kind, start ns, end ns, {attribute: value})."""
        out = []
        for path, kind, body in self.posts:
            assert path == "/v1/traces", path
            if "json" in kind:
                import json
                request = json.loads(body)
                for resource in request["resourceSpans"]:
                    for scope in resource["scopeSpans"]:
                        for s in scope["spans"]:
                            attrs = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                            out.append((s["name"], s.get("kind"), int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]), attrs,
                                        resource["resource"], self.hex_id(s.get("traceId", "")), self.hex_id(s.get("parentSpanId", ""))))
            else:
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for s in scope.spans:
                            attrs = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in s.attributes}
                            out.append((s.name, s.kind, s.start_time_unix_nano, s.end_time_unix_nano, attrs,
                                        {a.key: a.value.string_value for a in resource.resource.attributes},
                                        s.trace_id.hex(), s.parent_span_id.hex()))
        return out


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_produce_and_fetch_spans_reach_an_otlp_collector(tmp_path, protocol):
    """With tracing.otlp.endpoint set, each Produce and Fetch request is a server span sent by
    swift-otel's exporter: the topic, the records, the client id; the spans held at SIGTERM are
    sent before the broker exits. Without the setting nothing is sent (the other tests)."""
    from brook_interop import ck_consume, ck_produce, make_records
    collector = OTLPCollector()
    b = Broker(tmp_path / "data", tmp_path / "brook.log", overrides={
        "tracing.otlp.endpoint": f"http://127.0.0.1:{collector.port}", "tracing.otlp.protocol": protocol,
        "tracing.service.name": "brook-under-test"})
    try:
        start_or_fail(b)
        topic = unique_topic("traced")
        ck_create_topic(b.bootstrap, topic)
        started_ns = time.time_ns()
        ck_produce(b.bootstrap, topic, make_records(20, "tr", partitions=1), **{"client.id": "tracing-producer", "linger.ms": 50})
        ck_consume(b.bootstrap, topic, [0], 20)
        # A record carrying its producer's trace (W3C traceparent): the broker's span joins it.
        traced = unique_topic("traced-child")
        ck_create_topic(b.bootstrap, traced)
        producer = Producer({"bootstrap.servers": b.bootstrap, "compression.type": "none"})
        producer.produce(traced, value=b"v", headers=[("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode())])
        assert producer.flush(30) == 0
        assert b.stop() == 0
        spans = collector.spans()
    finally:
        b.stop()
        collector.close()
    produced = [s for s in spans if s[0] == "Produce" and s[4].get("messaging.destination.name") == topic]
    assert produced, f"no Produce span of {topic} among {[(s[0], s[4].get('brook.topics')) for s in spans][:20]}"
    assert sum(int(s[4]["messaging.batch.message_count"]) for s in produced) == 20, produced
    for name, kind, start, end, attrs, resource, _, _ in produced:
        assert attrs["messaging.system"] == "kafka" and attrs["messaging.operation.type"] == "send", attrs
        assert attrs["messaging.client.id"] == "tracing-producer" and attrs["brook.listener"] == "PLAINTEXT", attrs
        assert kind in (2, "SPAN_KIND_SERVER"), kind  # server
        assert started_ns - 5e9 < start <= end < time.time_ns(), (start, end)
        assert resource.get("service.name") == "brook-under-test" or any(
            a.get("key") == "service.name" and a["value"].get("stringValue") == "brook-under-test" for a in resource.get("attributes", [])), resource
    (child,) = [s for s in spans if s[0] == "Produce" and s[4].get("messaging.destination.name") == traced]
    assert (child[6], child[7]) == (TRACE_ID, PARENT_ID), child
    assert all(s[6] != TRACE_ID for s in produced), "a record without traceparent starts its own trace"
    fetched = [s for s in spans if s[0] == "Fetch" and topic in s[4].get("brook.topics", "").split(",")]
    assert fetched and all(s[4]["messaging.operation.type"] == "receive" for s in fetched), [s[4] for s in spans if s[0] == "Fetch"][:5]
