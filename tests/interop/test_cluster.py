"""Brook as a cluster (process.roles): real `brook serve` processes on loopback, each on free
ports, every one stopped by its PID at teardown, pass or fail.

What this covers so far (docs/cluster.md): three combined nodes form a quorum and register as
brokers; the controller fences a broker whose process is killed and unfences its next
incarnation; the active controller's death moves the controller without fencing anyone; SIGTERM
is a controlled shutdown and exits 0; Kafka's own sample KRaft server.properties starts Brook
unchanged but for ports and the data folder; clients see the cluster through Metadata and
DescribeCluster; topics are made by the controller and spread over the brokers, and
confluent-kafka, kafka-python and kcat produce, consume and commit group offsets through
whichever broker they bootstrap from; with replication factor 3 and min.insync.replicas=2, an
idempotent acks=all producer keeps going while the leader's broker (and the active controller)
is SIGKILLed round after round, and every acknowledged record is read back exactly once, in
order, the killed broker back in the ISR each time; a group's coordinator is the leader of its
__consumer_offsets partition (the others answer NOT_COORDINATOR) and its committed offsets
survive its death; offsets sent to a transaction while the group's coordinator partition has
no leader come back within their timeout and go through once it has one; a transactional
consume-transform-produce copy is exactly once while the coordinator of its transactional id
is SIGKILLed with a transaction open; a broker that does
not lead a partition names its current leader (KIP-951); `brook dev cluster` starts three nodes
and stops them on SIGTERM; preferred leaders are elected again after a failover
(ElectLeaders); a partition moves to other brokers with its records (reassignment); topic
configs are set through the controller; a throttled move copies at its rate (KIP-73) until the
throttle is lifted; a failed log dir (a loop-mounted disk shut down under the broker) takes its
replicas offline and their leaderships move, while the broker serves the rest.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from brook_cluster import (HEARTBEAT_MS, SESSION_MS, Cluster, Node, _procs, all_unfenced, cluster, java_hash_partition,
                           partition_states, read_values, reap, settle)
from brook_interop import ck_admin, ck_describe_cluster, unique_topic
from conftest import BROOK_BIN, die_with_parent, free_port

@pytest.mark.timeout(120)
def test_three_nodes_form_a_cluster_and_clients_see_its_brokers(cluster):
    view = cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    assert view["controller"] in (1, 2, 3)
    epochs = {int(b["epoch"]) for b in view["brokers"].values()}
    assert len(epochs) == 3, f"each registration has its own broker epoch: {view}"

    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{cluster.nodes[2].broker_port}", request_timeout_ms=10000)
    try:
        described = admin.describe_cluster()
    finally:
        admin.close()
    ports = sorted(b["port"] for b in described["brokers"])
    assert ports == sorted(n.broker_port for n in cluster.nodes.values()), described
    assert described["controller_id"] == view["controller"] or described["controller_id"] in (1, 2, 3)
    # confluent-kafka's describe_cluster is built from Metadata, which lists only the answering
    # broker until partitions come from the image (docs/cluster.md): not checked yet.

    # DescribeQuorum through a broker that may not lead the quorum: forwarded to its leader.
    quorum = wait_describe_quorum(cluster.nodes[2].bootstrap, lambda q: all(v["log_end_offset"] >= 0 for v in q["current_voters"]))
    assert {v["replica_id"] for v in quorum["current_voters"]} == {1, 2, 3}, quorum
    assert quorum["leader_id"] == cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))["controller"], quorum
    leader = next(v for v in quorum["current_voters"] if v["replica_id"] == quorum["leader_id"])
    assert leader["log_end_offset"] >= quorum["high_watermark"] > 0, quorum
    for follower in (v for v in quorum["current_voters"] if v is not leader):
        assert follower["last_fetch_timestamp"] > 0 and follower["last_caught_up_timestamp"] > 0, quorum
    assert quorum["observers"] == [], "combined nodes are voters only"
    assert {n["node_id"]: n["listeners"][0]["port"] for n in quorum["nodes"]} == \
        {n.node_id: n.controller_port for n in cluster.nodes.values()}, quorum


def describe_quorum(bootstrap: str) -> dict:
    """kafka-python's describe_metadata_quorum: the one partition, with the answer's nodes."""
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        answer = admin.describe_metadata_quorum()
    finally:
        admin.close()
    (partition,) = answer["topics"][0]["partitions"]
    assert partition["error"] is None, answer
    return {**partition, "nodes": answer["nodes"]}


def wait_describe_quorum(bootstrap: str, check, limit_s: float = 20) -> dict:
    deadline, seen = time.monotonic() + limit_s, None
    while time.monotonic() < deadline:
        seen = describe_quorum(bootstrap)
        if check(seen):
            return seen
        time.sleep(0.3)
    raise AssertionError(f"DescribeQuorum: not within {limit_s} s; last {seen}")


@pytest.mark.timeout(180)
def test_a_killed_broker_is_fenced_and_its_next_incarnation_unfenced(cluster):
    view = cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    # Kill a node that is not the active controller, so that only the session decides.
    victim = next(i for i in (1, 2, 3) if i != view["controller"])
    old_epoch = int(view["brokers"][victim]["epoch"])
    cluster.nodes[victim].kill()
    killed_at = time.monotonic()
    cluster.wait_for(f"broker {victim} fenced", lambda v: v["brokers"][victim]["fenced"] == "true", limit_s=SESSION_MS / 1000 + 15)
    fenced_after = time.monotonic() - killed_at
    assert fenced_after >= SESSION_MS / 1000 * 0.8, f"fenced after {fenced_after:.1f} s, before its session lapsed"
    cluster.nodes[victim].start()
    view = cluster.wait_for(f"broker {victim} back", lambda v: v["brokers"][victim]["fenced"] == "false"
                            and int(v["brokers"][victim]["epoch"]) > old_epoch)
    others = [i for i in (1, 2, 3) if i != victim]
    assert all_unfenced(others)(view)


@pytest.mark.timeout(180)
def test_the_active_controller_dies_and_another_takes_over_without_fencing_anyone(cluster):
    view = cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    leader = view["controller"]
    cluster.nodes[leader].kill()
    survivors = [i for i in (1, 2, 3) if i != leader]
    view = cluster.wait_for("a new active controller", lambda v: v.get("controller") in survivors)
    # The survivors keep their sessions with the new controller; the dead one is fenced.
    cluster.wait_for(f"broker {leader} fenced", lambda v: v["brokers"][leader]["fenced"] == "true")
    time.sleep(SESSION_MS / 1000 * 1.5)
    view = cluster.wait_for("survivors unfenced", all_unfenced(survivors))
    cluster.nodes[leader].start()
    cluster.wait_for("everyone back", all_unfenced([1, 2, 3]))


@pytest.mark.timeout(180)
def test_sigterm_is_a_controlled_shutdown_that_exits_cleanly(cluster):
    view = cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    leaving = next(i for i in (1, 2, 3) if i != view["controller"])
    started = time.monotonic()
    code = cluster.nodes[leaving].terminate()
    assert code == 0, cluster.nodes[leaving].tail()
    assert "controlled shutdown done" in cluster.nodes[leaving].log.read_text(errors="replace")
    # It was fenced by the controller when it left, not by its session lapsing later.
    view = cluster.describe()
    assert view["brokers"][leaving]["fenced"] == "true", view
    assert time.monotonic() - started < 15
    # Every other node stops cleanly too, the active controller last.
    order = [i for i in (1, 2, 3) if i not in (leaving, view["controller"])] + [view["controller"]]
    for i in order:
        assert cluster.nodes[i].terminate() == 0, cluster.nodes[i].tail()


# Kafka's sample KRaft server.properties (config/kraft/server.properties of Kafka 3.x): the same
# keys and values; only the ports (free ones) and the data folder differ.
KAFKA_SAMPLE = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:{controller}
listeners=PLAINTEXT://:{broker},CONTROLLER://:{controller}
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:{broker}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs={data}
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""


@pytest.mark.timeout(120)
def test_kafkas_sample_kraft_properties_start_brook(tmp_path):
    broker_port, controller_port = free_port(), free_port()
    props = tmp_path / "server.properties"
    props.write_text(KAFKA_SAMPLE.format(broker=broker_port, controller=controller_port, data=tmp_path / "kraft-combined-logs"))
    log = tmp_path / "brook.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BROOK_BIN), "serve", str(props)], stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)
    _procs.add(proc)
    try:
        topic = unique_topic("kraft")
        deadline = time.monotonic() + 30
        while True:
            sent = subprocess.run(["kcat", "-b", f"127.0.0.1:{broker_port}", "-P", "-t", topic, "-X", "socket.timeout.ms=3000"],
                                  input=b"one\ntwo\n", capture_output=True, timeout=30)
            if sent.returncode == 0:
                break
            assert time.monotonic() < deadline, f"kcat could not produce: {sent.stderr!r}\n{log.read_text(errors='replace')}"
            time.sleep(0.5)
        got = subprocess.run(["kcat", "-b", f"127.0.0.1:{broker_port}", "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                             capture_output=True, timeout=30)
        assert got.stdout.split() == [b"one", b"two"], got
        # The one-voter quorum elects itself and the broker registers with it.
        deadline = time.monotonic() + 20
        while True:
            out = subprocess.run([str(BROOK_BIN), "cluster", "describe", "--controller", f"127.0.0.1:{controller_port}"],
                                 capture_output=True, text=True, timeout=15)
            if "controller=1" in out.stdout and "broker=1 " in out.stdout and "fenced=false" in out.stdout:
                break
            assert time.monotonic() < deadline, f"{out.stdout}\n{log.read_text(errors='replace')}"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text(errors="replace")
    finally:
        reap(proc)


@pytest.mark.timeout(180)
def test_admin_clients_work_with_a_dedicated_controller(tmp_path):
    """A controller-only node and two broker-only nodes: clients never reach the quorum, so the
    controller Metadata and DescribeCluster name is a broker (as in Kafka's KRaft mode), and
    librdkafka's and kafka-python's admin clients create topics through it."""
    from confluent_kafka.admin import NewTopic
    from kafka.admin import KafkaAdminClient, NewTopic as KpNewTopic
    controller_port = free_port()
    voters = f"1@127.0.0.1:{controller_port}"
    nodes = {}
    for node_id in (1, 2, 3):
        node = Node(tmp_path, node_id, voters, free_port(), controller_port if node_id == 1 else free_port())
        role = "controller" if node_id == 1 else "broker"
        listener = f"CONTROLLER://127.0.0.1:{controller_port}" if node_id == 1 else f"PLAINTEXT://127.0.0.1:{node.broker_port}"
        node.props.write_text("\n".join([
            f"process.roles={role}", f"node.id={node_id}", f"controller.quorum.voters={voters}",
            f"listeners={listener}", "controller.listener.names=CONTROLLER", f"log.dirs={node.data}",
            f"broker.session.timeout.ms={SESSION_MS}", f"broker.heartbeat.interval.ms={HEARTBEAT_MS}",
            f"http.listeners=http://127.0.0.1:{node.http_port}", "offsets.topic.replication.factor=2",
            "transaction.state.log.replication.factor=2", "transaction.state.log.min.isr=1", ""]))
        nodes[node_id] = node
    try:
        for node in nodes.values():
            node.start()
        bootstraps = f"127.0.0.1:{nodes[2].broker_port},127.0.0.1:{nodes[3].broker_port}"
        deadline = time.monotonic() + 30
        while True:
            out = subprocess.run([str(BROOK_BIN), "cluster", "describe", "--controller", f"127.0.0.1:{controller_port}",
                                  "--timeout-ms", "1000"], capture_output=True, text=True, timeout=15).stdout
            if "controller=1" in out and out.count("fenced=false") == 2:
                break
            assert time.monotonic() < deadline, f"{out}\n" + "\n".join(n.tail() for n in nodes.values())
            time.sleep(0.3)
        described = ck_describe_cluster(bootstraps)
        assert described.controller is not None and described.controller.id in (2, 3), described.controller
        assert sorted(n.id for n in described.nodes) == [2, 3]
        topic = unique_topic("dedicated")
        admin = ck_admin(bootstraps)  # kept alive until the future is done
        admin.create_topics([NewTopic(topic, 2, 2)])[topic].result(30)
        kp = KafkaAdminClient(bootstrap_servers=bootstraps, request_timeout_ms=30000)
        try:
            other = unique_topic("dedicated-kp")
            kp.create_topics([KpNewTopic(other, 1, 2)])
            assert {topic, other} <= set(kp.list_topics())
        finally:
            kp.close()
        deadline = time.monotonic() + 30
        while True:
            sent = subprocess.run(["kcat", "-b", bootstraps, "-P", "-t", topic, "-p", "1"], input=b"one\ntwo\n",
                                  capture_output=True, timeout=30)
            if sent.returncode == 0:
                break
            assert time.monotonic() < deadline, sent.stderr
            time.sleep(0.5)
        got = subprocess.run(["kcat", "-b", bootstraps, "-C", "-t", topic, "-p", "1", "-o", "beginning", "-e", "-q"],
                             capture_output=True, timeout=30)
        assert got.stdout.split() == [b"one", b"two"], got
        # The console's overview names the quorum's leader as the active controller, not the
        # broker Metadata names.
        import json
        import urllib.request
        with urllib.request.urlopen(f"{nodes[2].http}/api/cluster", timeout=10) as response:
            overview = json.loads(response.read())
        assert overview["controller"] == 1, overview
        assert sorted(b["id"] for b in overview["brokers"]) == [2, 3], overview
    finally:
        for node in nodes.values():
            if node.up:
                node.kill()


@pytest.mark.timeout(240)
def test_topics_spread_over_the_brokers_and_every_client_uses_them(cluster):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstrap = f"127.0.0.1:{cluster.nodes[1].broker_port}"
    topic = unique_topic("spread")
    admin = ck_admin(bootstrap)
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    # More replicas than brokers is refused.
    refused = unique_topic("rf4")
    with pytest.raises(Exception) as error:
        admin.create_topics([NewTopic(refused, 1, 4)])[refused].result(30)
    assert "INVALID_REPLICATION_FACTOR" in str(error.value)

    # Leaders on every broker, as Metadata tells kcat.
    deadline = time.monotonic() + 20
    while True:
        listing = subprocess.run(["kcat", "-b", bootstrap, "-L", "-t", topic], capture_output=True, text=True, timeout=30).stdout
        leaders = {int(line.split("leader ")[1].split(",")[0]) for line in listing.splitlines() if "partition" in line and "leader " in line}
        if leaders == {1, 2, 3}:
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.3)
    assert "3 brokers" in listing

    acked = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(300):
        producer.produce(topic, key=str(i).encode(), value=f"v{i}".encode(),
                         on_delivery=lambda err, msg: acked.append((msg.partition(), msg.offset(), msg.value())) if err is None else None)
    assert producer.flush(60) == 0
    assert len(acked) == 300 and {p for p, _, _ in acked} == set(range(6))

    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{cluster.nodes[2].broker_port}", "group.id": unique_topic("g"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = {}
    deadline = time.monotonic() + 60
    while len(got) < 300 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        got[(msg.partition(), msg.offset())] = msg.value()
    assert got == {(p, o): v for p, o, v in acked}
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(6)], timeout=15)
    ends = {p: max(o for q, o, _ in acked if q == p) + 1 for p in range(6)}
    assert {tp.partition: tp.offset for tp in committed} == ends
    consumer.close()

    from kafka import KafkaConsumer, KafkaProducer
    kp = KafkaProducer(bootstrap_servers=f"127.0.0.1:{cluster.nodes[3].broker_port}", acks="all")
    for i in range(60):
        kp.send(topic, f"k{i}".encode()).get(timeout=30)
    kp.close()
    kc = KafkaConsumer(topic, bootstrap_servers=f"127.0.0.1:{cluster.nodes[3].broker_port}", group_id=unique_topic("kg"),
                       auto_offset_reset="earliest", consumer_timeout_ms=10000)
    assert len(list(kc)) == 360
    kc.close()

    # Deleting goes through the controller too; every broker stops serving it.
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 20
    while True:
        listing = subprocess.run(["kcat", "-b", f"127.0.0.1:{cluster.nodes[2].broker_port}", "-L"], capture_output=True, text=True, timeout=30).stdout
        if f'"{topic}"' not in listing:
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.3)


def free_port_run(count: int) -> int:
    """A base port with `count` free ports from it on (for `brook dev cluster`), below the
    kernel's ephemeral range (32768 and up): a port picked from that range can be taken by any
    outgoing connection before the nodes bind it (seen once in CI: "Address already in use")."""
    import random
    import socket
    for _ in range(200):
        base = random.randrange(20_000, 32_000 - count)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


@pytest.mark.timeout(180)
def test_brook_dev_cluster_starts_three_nodes_and_stops_them_on_sigterm(tmp_path):
    # Six client and controller ports, then three HTTP ones (the default HTTP ports, 9644 on,
    # are a `brook serve`'s own: a broker running beside the tests would hold them).
    base = free_port_run(9)
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BROOK_BIN), "dev", "cluster", "--nodes", "3", "--base-port", str(base),
                                 "--http-base-port", str(base + 6),
                                 "--data", str(tmp_path / "dev"), "--set", f"broker.session.timeout.ms={SESSION_MS}",
                                 "--set", f"broker.heartbeat.interval.ms={HEARTBEAT_MS}"],
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    _procs.add(proc)
    bootstrap = ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(3))
    try:
        deadline = time.monotonic() + 60
        while True:
            listing = subprocess.run(["kcat", "-b", bootstrap, "-L", "-m", "3"], capture_output=True, text=True, timeout=30).stdout
            if " 3 brokers:" in listing:
                break
            assert time.monotonic() < deadline, f"{listing}\n{log.read_text(errors='replace')}"
            time.sleep(0.5)
        topic = unique_topic("dev")
        deadline = time.monotonic() + 30
        while True:
            sent = subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-X", "socket.timeout.ms=3000"],
                                  input=b"hello\n", capture_output=True, timeout=30)
            if sent.returncode == 0:
                break
            assert time.monotonic() < deadline, sent.stderr
            time.sleep(0.5)
        got = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                             capture_output=True, timeout=30)
        assert got.stdout.split() == [b"hello"], got
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text(errors="replace")
        assert "stopped 3 nodes" in log.read_text(errors="replace")
        for i in range(3):
            node_log = (tmp_path / "dev" / f"node{i + 1}.log").read_text(errors="replace")
            assert "stopped cleanly" in node_log, node_log[-2000:]
    finally:
        reap(proc)
        # Nodes the parent could not stop: only processes still running this node's properties.
        for pid_file in (tmp_path / "dev").glob("node*.pid"):
            try:
                pid = int(pid_file.read_text())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if str(pid_file.with_suffix(".properties")).encode() in cmdline:
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass


@pytest.mark.timeout(300)
def test_acks_all_survives_leader_kills_without_losing_an_acknowledged_record(cluster):
    import threading
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic
    view = cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic = unique_topic("replicated")
    admin = ck_admin(bootstraps)  # kept alive until the future is done
    admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[topic].result(30)

    def wait_full_isr(limit_s=60):
        deadline = time.monotonic() + limit_s
        while True:
            live = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values() if n.up)
            states = partition_states(live, topic)
            if len(states) == 3 and all(len(isr) == 3 and leader >= 0 for leader, _, isr in states.values()):
                return states
            assert time.monotonic() < deadline, f"ISR not full again: {states}"
            time.sleep(0.3)

    states = wait_full_isr()
    acked, errors = [], []
    lock = threading.Lock()

    def delivered(err, msg):
        with lock:
            if err is None:
                acked.append((msg.partition(), msg.offset(), msg.value()))
            else:
                errors.append(str(err))

    producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 120000, "linger.ms": 5})
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            producer.produce(topic, key=str(i % 7).encode(), value=f"r{i}".encode(), on_delivery=delivered)
            producer.poll(0)
            i += 1
            time.sleep(0.002)

    worker = threading.Thread(target=produce)
    worker.start()
    try:
        rounds = []
        for round_ in range(2):
            time.sleep(2)
            # Round 0 kills partition 0's leader; round 1 the active controller (a leader too, or not).
            victim = states[0][0] if round_ == 0 else cluster.describe()["controller"]
            before = len(acked)
            cluster.nodes[victim].kill()
            killed_at = time.monotonic()
            survivors = [i for i in (1, 2, 3) if i != victim]
            # Writes go on through the new leaders once the controller fenced the victim.
            deadline = time.monotonic() + 60
            while len(acked) < before + 200:
                assert time.monotonic() < deadline, f"no progress after killing {victim}: {len(acked) - before} acks, errors {errors[:3]}"
                time.sleep(0.1)
            rounds.append((victim, time.monotonic() - killed_at))
            cluster.nodes[victim].start()
            states = wait_full_isr()
            assert all(leader in (1, 2, 3) for leader, _, _ in states.values())
    finally:
        stop.set()
        worker.join(timeout=30)
    assert producer.flush(120) == 0
    assert not errors, errors[:5]
    assert len(acked) > 500

    consumer = Consumer({"bootstrap.servers": bootstraps, "group.id": unique_topic("verify"), "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    read = {}
    # librdkafka acknowledges some records without an offset (None here): a batch whose answer
    # was lost with its leader, once a later batch of the partition succeeded (its sequence
    # number says the earlier one was written). Those are looked for by value below.
    ends = {p: max([o for q, o, _ in acked if q == p and o is not None], default=-1) for p in range(3)}
    deadline = time.monotonic() + 90
    while any(max((o for (q, o) in read if q == p), default=-1) < ends[p] for p in range(3)):
        assert time.monotonic() < deadline, "could not read every acknowledged record back"
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            read[(msg.partition(), msg.offset())] = msg.value()
    consumer.close()
    where = {(p_, value): offset for (p_, offset), value in read.items()}
    for p_, offset, value in acked:
        if offset is None:
            assert (p_, value) in where, f"acknowledged {value} (without an offset) is not in partition {p_}"
            continue
        assert read.get((p_, offset)) == value, f"acknowledged {value} at {p_}/{offset} reads back as {read.get((p_, offset))}"
    values = list(read.values())
    assert len(values) == len(set(values)), "a record was written twice (idempotence)"
    for p in range(3):
        offsets = sorted(o for q, o in read if q == p)
        assert offsets == list(range(offsets[0], offsets[-1] + 1)) if offsets else True
    print(f"rounds (victim, seconds to 200 more acks): {rounds}; {len(acked)} acknowledged, "
          f"{sum(o is None for _, o, _ in acked)} of them without an offset")


@pytest.mark.timeout(240)
def test_a_consumer_group_resumes_from_its_committed_offsets_after_its_coordinator_dies(cluster):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic, group = unique_topic("grp"), unique_topic("g")
    admin = ck_admin(bootstraps)
    admin.create_topics([NewTopic(topic, 2, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstraps, "acks": "all"})
    for i in range(200):
        producer.produce(topic, value=f"a{i}".encode())
    assert producer.flush(60) == 0

    def consume(count, limit_s=60):
        consumer = Consumer({"bootstrap.servers": bootstraps, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + limit_s
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
        consumer.commit(asynchronous=False)
        consumer.close()
        return got

    first = consume(200)
    assert sorted(first) == sorted(f"a{i}".encode() for i in range(200))
    # The group's coordinator is the leader of its __consumer_offsets partition: kill it.
    offsets_states = partition_states(bootstraps, "__consumer_offsets")
    index = java_hash_partition(group, len(offsets_states))
    victim = offsets_states[index][0]
    described = admin.describe_consumer_groups([group])[group].result(30)
    assert described.coordinator.id == victim, (described.coordinator, victim, index)
    # Only the coordinator answers for the group; the others say NOT_COORDINATOR (16).
    for node in cluster.nodes.values():
        assert offset_fetch_error(node.broker_port, group) == (0 if node.node_id == victim else 16), node.node_id
    time.sleep(1)  # the commit reaches the followers
    cluster.nodes[victim].kill()
    for i in range(100):
        producer.produce(topic, value=f"b{i}".encode())
    assert producer.flush(90) == 0
    # A new member of the group starts from the committed offsets: only the new records.
    second = consume(100, limit_s=90)
    assert sorted(second) == sorted(f"b{i}".encode() for i in range(100)), f"{len(second)} records, e.g. {second[:3]}"


@pytest.mark.timeout(300)
def test_a_transactional_copy_is_exactly_once_across_its_coordinators_death(cluster):
    """Consume-transform-produce in transactions (read_committed, offsets sent to the
    transaction) while the broker that coordinates the transactional id is SIGKILLed: the copy
    holds every source record exactly once, and no aborted or unfinished write is visible."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    source, copy, group, txn_id = unique_topic("src"), unique_topic("dst"), unique_topic("g"), unique_topic("tx")
    admin = ck_admin(bootstraps)
    for f in admin.create_topics([NewTopic(t, 2, 3, config={"min.insync.replicas": "2"}) for t in (source, copy)]).values():
        f.result(30)
    total = 400
    producer = Producer({"bootstrap.servers": bootstraps, "acks": "all"})
    for i in range(total):
        producer.produce(source, key=str(i).encode(), value=f"v{i}".encode())
    assert producer.flush(60) == 0

    consumer = Consumer({"bootstrap.servers": bootstraps, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.subscribe([source])
    txn = Producer({"bootstrap.servers": bootstraps, "transactional.id": txn_id, "transaction.timeout.ms": 60000,
                    "message.timeout.ms": 60000})
    txn.init_transactions(60)

    def committed_or_aborted(call) -> bool:
        """Runs a transaction call (see settle); False when it had to abort."""
        if settle(call, cluster=cluster):
            return True
        txn.abort_transaction(60)
        return False

    def rewind():
        assigned = consumer.assignment()
        for tp in consumer.committed(assigned, timeout=30):
            consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))

    copied, killed, aborts = 0, None, 0
    deadline = time.monotonic() + 180
    while copied < total:
        assert time.monotonic() < deadline, f"copied {copied} of {total}; killed {killed}, aborts {aborts}"
        batch = [m for m in consumer.consume(num_messages=25, timeout=1.0) if not m.error()]
        if not batch:
            continue
        txn.begin_transaction()
        for m in batch:
            txn.produce(copy, key=m.key(), value=b"copy-" + m.value())
        if killed is None and copied >= total // 3:
            # The coordinator dies with this transaction open (its records sent, not committed).
            txn.flush(30)
            states = partition_states(bootstraps, "__transaction_state")
            killed = states[java_hash_partition(txn_id, len(states))][0]
            cluster.nodes[killed].kill()
        positions = consumer.position(consumer.assignment())
        ok = committed_or_aborted(lambda: txn.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 60))
        ok = ok and committed_or_aborted(lambda: txn.commit_transaction(60))
        if ok:
            copied += len(batch)
        else:
            aborts += 1
            rewind()
    consumer.close()
    assert killed is not None

    reader = Consumer({"bootstrap.servers": bootstraps, "group.id": unique_topic("check"), "auto.offset.reset": "earliest",
                       "enable.auto.commit": False, "isolation.level": "read_committed"})
    reader.assign([TopicPartition(copy, p, 0) for p in range(2)])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < total and time.monotonic() < deadline:
        m = reader.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    time.sleep(1)
    while (m := reader.poll(0.5)) is not None:
        if not m.error():
            got.append(m.value())
    reader.close()
    assert sorted(got) == sorted(f"copy-v{i}".encode() for i in range(total)), \
        f"{len(got)} copies, {len(set(got))} distinct, killed coordinator {killed}, {aborts} aborted"
    print(f"killed coordinator {killed}; {aborts} transactions aborted and redone")


@pytest.mark.timeout(180)
def test_preferred_leaders_are_elected_again_after_a_failover(cluster):
    """After a leader's broker dies and returns, its partitions stay led elsewhere until a
    preferred election (ElectLeaders: confluent-kafka's elect_leaders, and `brook elect`)."""
    from confluent_kafka import ElectionType, TopicPartition
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    first, second = unique_topic("pref"), unique_topic("pref")
    admin = ck_admin(bootstraps)
    for f in admin.create_topics([NewTopic(t, 3, 3) for t in (first, second)]).values():
        f.result(30)

    def states_when(check, topic, limit_s=60):
        deadline = time.monotonic() + limit_s
        while True:
            live = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values() if n.up)
            states = partition_states(live, topic)
            if len(states) == 3 and check(states):
                return states
            assert time.monotonic() < deadline, states
            time.sleep(0.3)

    full = lambda states: all(len(isr) == 3 and leader >= 0 for leader, _, isr in states.values())
    states = states_when(full, first)
    victim = states[0][0]
    assert victim == states[0][1][0], states  # a new topic's leader is its preferred replica
    cluster.nodes[victim].kill()
    states_when(lambda s: all(leader not in (victim, -1) for leader, _, _ in s.values()), first)
    cluster.nodes[victim].start()
    for topic in (first, second):
        skewed = states_when(full, topic)
        assert any(leader != replicas[0] for leader, replicas, _ in skewed.values()), skewed
    # confluent-kafka: the preferred replicas of the first topic lead again.
    result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(first, p) for p in range(3)]).result(30)
    assert all(err is None or err.name() == "ELECTION_NOT_NEEDED" for err in result.values()), result
    states_when(lambda s: all(leader == replicas[0] for leader, replicas, _ in s.values()), first, limit_s=20)
    # brook elect: the second topic.
    out = subprocess.run([str(BROOK_BIN), "elect", "--bootstrap-server", bootstraps, "--type", "preferred", "--topic", second],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "elected" in out.stdout, out
    states_when(lambda s: all(leader == replicas[0] for leader, replicas, _ in s.values()), second, limit_s=20)
    # Unclean elections are not needed where a leader exists.
    out = subprocess.run([str(BROOK_BIN), "elect", "--bootstrap-server", bootstraps, "--type", "unclean", "--topic", second],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.count("ELECTION_NOT_NEEDED") == 3, out


@pytest.mark.timeout(180)
def test_a_partition_moves_to_other_brokers_with_its_records(cluster):
    """AlterPartitionReassignments (kafka-python and `brook reassign`): a partition's replicas
    move while records are produced; the move completes once the new replicas are in sync,
    ListPartitionReassignments shows it meanwhile, and every record is read back after."""
    from kafka import KafkaAdminClient, TopicPartition as KpTopicPartition
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic = unique_topic("move")
    admin = ck_admin(bootstraps)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    deadline = time.monotonic() + 30
    while True:
        states = partition_states(bootstraps, topic)
        if len(states) == 2 and all(leader >= 0 for leader, _, _ in states.values()):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.3)
    # Each broker holds a directory for its own replicas only.
    wait_for_directories(cluster, topic, {p: states[p][1] for p in range(2)})
    producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "enable.idempotence": True})
    for i in range(2000):
        producer.produce(topic, partition=i % 2, value=f"m{i}".encode())
    assert producer.flush(60) == 0
    # Partition 0 moves to the two brokers that do not hold it (kafka-python), partition 1 to
    # all three (brook reassign).
    old = states[0][1]
    target = [b for b in (1, 2, 3) if b not in old]
    kp = KafkaAdminClient(bootstrap_servers=bootstraps, request_timeout_ms=30000)
    try:
        answer = kp.alter_partition_reassignments({KpTopicPartition(topic, 0): target})
        assert all(err is None for err in answer.values()), answer
        out = subprocess.run([str(BROOK_BIN), "reassign", "execute", "--bootstrap-server", bootstraps, f"{topic}:1=3,2,1"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "moving" in out.stdout, out
        for i in range(2000, 3000):
            producer.produce(topic, partition=i % 2, value=f"m{i}".encode())
        assert producer.flush(60) == 0
        deadline = time.monotonic() + 60
        while kp.list_partition_reassignments({topic: [0, 1]}):
            assert time.monotonic() < deadline, kp.list_partition_reassignments({topic: [0, 1]})
            time.sleep(0.3)
    finally:
        kp.close()
    deadline = time.monotonic() + 30
    while True:
        states = partition_states(bootstraps, topic)
        if sorted(states[0][1]) == sorted(target) and sorted(states[1][1]) == [1, 2, 3] and len(states[1][2]) == 3:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.3)
    assert states[0][0] in target
    # The broker partition 0 left deleted its replica; the new replicas have theirs.
    wait_for_directories(cluster, topic, {0: target, 1: [1, 2, 3]})
    listed = subprocess.run([str(BROOK_BIN), "reassign", "list", "--bootstrap-server", bootstraps], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and topic not in listed.stdout, listed
    got = set(read_values(bootstraps, topic, 2, 3000))
    assert got == {f"m{i}".encode() for i in range(3000)}, f"{len(got)} of 3000"


@pytest.mark.timeout(150)
def test_a_throttled_move_copies_at_its_rate_until_the_throttle_is_lifted(cluster):
    """Replication throttles (KIP-73): `brook reassign execute --throttle` sets the brokers'
    leader/follower.replication.throttled.rate (confluent-kafka describes them as dynamic broker
    configs) and the topic's throttled replicas; the new replica then copies at about that rate.
    Deleting the rates with confluent-kafka lets it finish; `verify` then removes the rest."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic, ResourceType
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic = unique_topic("throttle")
    admin = ck_admin(bootstraps)
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    deadline = time.monotonic() + 30
    while not (states := partition_states(bootstraps, topic)) or states[0][0] < 0:
        assert time.monotonic() < deadline, states
        time.sleep(0.3)
    source = states[0][0]
    target = next(b for b in (1, 2, 3) if b != source)
    producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "linger.ms": 5})
    value = b"v" * 1000
    for i in range(4000):
        producer.produce(topic, value=value)
    assert producer.flush(60) == 0
    move = f"{topic}:0={target}"
    out = subprocess.run([str(BROOK_BIN), "reassign", "execute", "--bootstrap-server", bootstraps, "--throttle", "50000", move],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Throttled at 50000" in out.stdout and "moving" in out.stdout, out
    # Every broker of the move has the rates, as dynamic broker configs. The controller commits
    # them; each broker applies them when its copy of the metadata log reaches them (as in Kafka),
    # so a busy machine may describe the default for a moment.
    rates = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
    for broker in (source, target):
        resource = ConfigResource(ResourceType.BROKER, str(broker))
        deadline = time.monotonic() + 10
        while True:
            described = admin.describe_configs([resource])[resource].result(30)
            if all(described[name].value == "50000" for name in rates) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for name in rates:
            assert described[name].value == "50000", (broker, name, described[name].value)
            assert described[name].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value, described[name].source
            assert not described[name].is_read_only
    topic_configs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    described = list(topic_configs.values())[0].result(30)
    assert described["leader.replication.throttled.replicas"].value == f"0:{source}"
    assert described["follower.replication.throttled.replicas"].value == f"0:{target}"
    # At 50 kB/s, after 6 s the new replica has at most a fetch or two of the 4 MB.
    time.sleep(6)
    copied = sum(f.stat().st_size for f in (cluster.nodes[target].data / f"{topic}-0").glob("*.log"))
    assert copied < 2_200_000, f"{copied} bytes copied in 6 s at 50 kB/s"
    out = subprocess.run([str(BROOK_BIN), "reassign", "verify", "--bootstrap-server", bootstraps, move],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "still in progress" in out.stdout and "removed" not in out.stdout, out
    # The follower's throttle on its own: the leader's rate lifted, the copy stays slow.
    for b in (1, 2, 3):  # librdkafka takes one BROKER resource per call, sent to that broker
        lift = ConfigResource(ResourceType.BROKER, str(b), incremental_configs=[
            ConfigEntry("leader.replication.throttled.rate", None, incremental_operation=AlterConfigOpType.DELETE)])
        admin.incremental_alter_configs([lift])[lift].result(30)
    time.sleep(4)
    grown = sum(f.stat().st_size for f in (cluster.nodes[target].data / f"{topic}-0").glob("*.log")) - copied
    assert grown < 1_200_000, f"{grown} bytes copied in 4 s with only the follower throttled at 50 kB/s"
    # The rates lifted on every broker (confluent-kafka, IncrementalAlterConfigs DELETE), the move ends.
    for b in (1, 2, 3):
        lift = ConfigResource(ResourceType.BROKER, str(b), incremental_configs=[
            ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)
            for name in ("leader.replication.throttled.rate", "follower.replication.throttled.rate")])
        admin.incremental_alter_configs([lift])[lift].result(30)
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run([str(BROOK_BIN), "reassign", "verify", "--bootstrap-server", bootstraps, move],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out
        if "complete" in out.stdout:
            break
        assert time.monotonic() < deadline, out.stdout
        time.sleep(0.5)
    assert "Throttles removed." in out.stdout, out
    described = list(admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values())[0].result(30)
    assert described["leader.replication.throttled.replicas"].value == ""
    resource = ConfigResource(ResourceType.BROKER, str(target))
    rate = admin.describe_configs([resource])[resource].result(30)["leader.replication.throttled.rate"]
    assert rate.source == ConfigSource.DEFAULT_CONFIG.value, rate.source
    assert len(read_values(bootstraps, topic, 1, 4000)) == 4000


def wait_for_directories(cluster, topic: str, replicas: dict, limit_s: float = 20) -> None:
    """Waits until partition P of `topic` has a directory on exactly the brokers `replicas[P]`."""
    deadline = time.monotonic() + limit_s
    while True:
        found = {p: sorted(n for n, node in cluster.nodes.items() if (node.data / f"{topic}-{p}").is_dir()) for p in replicas}
        if found == {p: sorted(r) for p, r in replicas.items()}:
            return
        assert time.monotonic() < deadline, f"partition directories {found}, replicas {replicas}"
        time.sleep(0.2)


@pytest.mark.timeout(120)
def test_topic_configs_are_set_through_the_controller_and_take_effect_everywhere(cluster):
    """IncrementalAlterConfigs sent to one broker is set by the controller: every broker
    describes it, and min.insync.replicas takes effect on the leader at once."""
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic = unique_topic("cfg")
    admin = ck_admin(bootstraps)
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(30)
    first = ck_admin(f"127.0.0.1:{cluster.nodes[1].broker_port}")
    change = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("min.insync.replicas", "4", incremental_operation=AlterConfigOpType.SET)])
    first.incremental_alter_configs([change])[change].result(30)
    for node in cluster.nodes.values():
        one = ck_admin(f"127.0.0.1:{node.broker_port}")
        deadline = time.monotonic() + 20
        while True:
            described = one.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
            configs = list(described.values())[0].result(30)
            if configs["retention.ms"].value == "7200000" and configs["min.insync.replicas"].value == "4":
                break
            assert time.monotonic() < deadline, (node.node_id, configs["retention.ms"].value)
            time.sleep(0.3)
    # Four in-sync replicas cannot be had with three: acks=all is refused (NOT_ENOUGH_REPLICAS).
    # Describing shows the broker's copy of the metadata; the leader's partition takes the new
    # minimum when its replica manager applies that copy, a moment later on a busy machine. A
    # produce in between is written, then answered NOT_ENOUGH_REPLICAS_AFTER_APPEND or success.
    producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "message.timeout.ms": 5000, "retries": 0})
    errors = []
    deadline = time.monotonic() + 10
    while True:
        producer.produce(topic, value=b"x", on_delivery=lambda err, msg: errors.append(err))
        producer.flush(30)
        if errors[-1] is not None and errors[-1].name() == "NOT_ENOUGH_REPLICAS":
            break
        assert time.monotonic() < deadline and (errors[-1] is None or errors[-1].name() == "NOT_ENOUGH_REPLICAS_AFTER_APPEND"), errors
        time.sleep(0.3)
    # A bad value is refused before it reaches the controller, and changes nothing.
    bad = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        first.incremental_alter_configs([bad])[bad].result(30)
    assert refused.value.args[0].name() == "INVALID_CONFIG"
    # A value longer than a cluster carries to its controller is refused, not cut.
    long = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "0" * 2000 + "7200000", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        first.incremental_alter_configs([long])[long].result(30)
    assert refused.value.args[0].name() == "INVALID_CONFIG"


@pytest.mark.timeout(300)
def test_consumers_read_from_a_replica_in_their_rack(tmp_path):
    """KIP-392: with racks and the rack-aware replica selector, a leader sends a consumer that
    names another rack to the in-sync replica there (PreferredReadReplica), that follower
    serves it up to its high watermark, and confluent-kafka with client.rack reads every record;
    so does BrookClient's consumer, at the follower. KIP-881: a classic group of BrookClient
    consumers, one per rack, gets the partitions of its own rack from the range assignor, and
    from the cooperative-sticky one."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic
    c = Cluster(tmp_path, extra=lambda i: [f"broker.rack=rack-{i}",
                                           "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"])
    c.start()
    try:
        c.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
        bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in c.nodes.values())
        topic = unique_topic("rack")
        admin = ck_admin(bootstraps)
        admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstraps, "acks": "all"})
        for i in range(500):
            producer.produce(topic, value=f"r{i}".encode())
        assert producer.flush(60) == 0
        deadline = time.monotonic() + 30
        while True:
            leader, replicas, isr = partition_states(bootstraps, topic)[0]
            if len(isr) == 3:
                break
            assert time.monotonic() < deadline, isr
            time.sleep(0.3)
        follower = next(r for r in replicas if r != leader)
        rack = f"rack-{follower}"
        # The leader points a consumer of the follower's rack there, and reads nothing itself.
        sent = fetch_v12(c.nodes[leader].broker_port, topic, rack=rack).responses[0].partitions[0]
        assert sent.error_code == 0 and sent.preferred_read_replica == follower and not sent.records, sent
        # A consumer of the leader's own rack reads at the leader.
        own = fetch_v12(c.nodes[leader].broker_port, topic, rack=f"rack-{leader}").responses[0].partitions[0]
        assert own.error_code == 0 and own.preferred_read_replica == -1 and own.records, own
        # The follower serves it, up to its high watermark.
        deadline = time.monotonic() + 20
        while True:
            served = fetch_v12(c.nodes[follower].broker_port, topic, rack=rack).responses[0].partitions[0]
            if served.error_code == 0 and served.high_watermark == 500 and served.records:
                break
            assert time.monotonic() < deadline, served
            time.sleep(0.3)
        import logging

        class Lines(logging.Handler):
            def __init__(self):
                super().__init__()
                self.lines = []

            def emit(self, record):
                self.lines.append(record.getMessage())

        lines = Lines()
        log = logging.getLogger(f"rdkafka-{topic}")
        log.addHandler(lines)
        log.setLevel(logging.DEBUG)
        consumer = Consumer({"bootstrap.servers": bootstraps, "group.id": unique_topic("rk"), "client.rack": rack,
                             "enable.auto.commit": False, "debug": "fetch"}, logger=log)
        consumer.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 500 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
        consumer.close()
        assert got == [f"r{i}".encode() for i in range(500)], f"{len(got)} records"
        # librdkafka moved its fetching to the follower the leader named.
        assert any("preferred" in line.lower() for line in lines.lines), [l for l in lines.lines if "fetch" in l.lower()][:20]

        # BrookClient's consumer (`brook consume`) with client.rack: every record, read at the
        # follower (the bytes each node served consumers of the topic; the leader serves none).
        from test_metrics import scrape, value

        def served(node: int) -> float:
            return value(scrape(f"http://127.0.0.1:{c.nodes[node].http_port}")[1], "brook_topic_bytes_out_total", topic=topic) or 0
        before = {n: served(n) for n in c.nodes}
        out = subprocess.run([str(BROOK_BIN), "consume", "--bootstrap-server", bootstraps, "--topic", topic, "--from-beginning",
                              "--max-messages", "500", "--timeout-ms", "30000", "--consumer-property", f"client.rack={rack}"],
                             capture_output=True, timeout=90)
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        assert out.stdout.decode().splitlines() == [f"r{i}" for i in range(500)]
        grown = {n: served(n) - before[n] for n in c.nodes}
        assert grown[follower] >= 500 * 2 and grown[leader] == 0, grown

        # KIP-881: three `brook consume` members of a classic group, one per rack, with a
        # partition of six in each rack twice (one replica each): the leader's assignor
        # (whichever member leads), range and then cooperative-sticky, gives each member the
        # partitions in its own rack.
        spread = unique_topic("rack-range")
        admin.create_topics([NewTopic(spread, 6, 1)])[spread].result(30)
        deadline = time.monotonic() + 30
        while True:
            states = partition_states(bootstraps, spread)
            if len(states) == 6 and all(s[0] > 0 for s in states.values()):
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.3)
        for strategy in ("range", "cooperative-sticky"):
            group = unique_topic("rack-g")
            members = []
            try:
                for n in sorted(c.nodes):
                    members.append(subprocess.Popen(
                        [str(BROOK_BIN), "consume", "--bootstrap-server", bootstraps, "--topic", spread, "--group", group,
                         "--timeout-ms", "90000", "--consumer-property", "group.protocol=classic",
                         "--consumer-property", f"partition.assignment.strategy={strategy}",
                         "--consumer-property", f"client.rack=rack-{n}", "--consumer-property", f"client.id=member-{n}"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent))
                deadline = time.monotonic() + 60
                while True:
                    try:
                        desc = admin.describe_consumer_groups([group], request_timeout=15)[group].result(20)
                        given = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in desc.members}
                    except Exception as e:  # noqa: BLE001 (not described yet)
                        given = {"error": str(e)}
                    if len(given) == 3 and sum(len(v) for v in given.values()) == 6 and str(desc.state).endswith("STABLE"):
                        break
                    assert time.monotonic() < deadline, (strategy, given)
                    time.sleep(0.5)
                assert desc.partition_assignor == strategy, desc.partition_assignor
                for n in c.nodes:
                    in_rack = sorted(p for p, state in states.items() if state[0] == n)
                    mine = given[f"member-{n}"]
                    assert len(mine) == 2 and len(set(mine) & set(in_rack)) == min(2, len(in_rack)), (strategy, n, mine, states)
            finally:
                for m in members:
                    m.terminate()
                    m.wait(timeout=30)
    finally:
        c.stop()


@pytest.mark.timeout(120)
def test_a_broker_that_does_not_lead_names_the_current_leader(cluster):
    """KIP-951: Produce v10+ to a broker that does not lead the partition answers
    NOT_LEADER_OR_FOLLOWER with the current leader, its epoch and its endpoint."""
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic = unique_topic("hint")
    admin = ck_admin(bootstraps)  # kept alive until the future is done
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    deadline = time.monotonic() + 30
    while True:
        states = partition_states(bootstraps, topic)
        if states.get(0, (-1,))[0] in (1, 2, 3):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.3)
    leader = states[0][0]
    other = next(n for n in cluster.nodes.values() if n.node_id != leader)
    deadline = time.monotonic() + 30
    while True:
        answer = produce_v11(other.broker_port, topic)
        partition = answer.responses[0].partition_responses[0]
        if partition.error_code == 6 and partition.current_leader.leader_id == leader:
            break
        assert time.monotonic() < deadline, answer  # the other broker's image may lag a moment
        time.sleep(0.3)
    assert partition.current_leader.leader_epoch >= 0
    endpoints = {e.node_id: e.port for e in answer.node_endpoints}
    assert endpoints == {leader: cluster.nodes[leader].broker_port}, endpoints
    # A consumer's Fetch v12 gets the leader too (the endpoints come from v16).
    fetched = fetch_v12(other.broker_port, topic)
    data = fetched.responses[0].partitions[0]
    assert data.error_code == 6 and data.current_leader.leader_id == leader, fetched


def send_and_decode(port: int, request, response_class):
    """One request with its header to one broker; its decoded answer."""
    import socket
    import struct
    body = request.encode(header=True)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        frame = b""
        while len(frame) < 4 or len(frame) < 4 + struct.unpack(">i", frame[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            frame += chunk
    return response_class.decode(frame[4:], header=True)


def fetch_v12(port: int, topic: str, rack: str = ""):
    """A consumer's Fetch v12 of partition 0 from offset 0 (from `rack`), sent to one broker; its answer."""
    from kafka.protocol.consumer import FetchRequest, FetchResponse
    request_class = FetchRequest[12]
    t = request_class.FetchTopic
    request = request_class(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0,
                            session_epoch=-1, topics=[t(topic=topic, partitions=[t.FetchPartition(
                                partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                                log_start_offset=-1, partition_max_bytes=1 << 20)])],
                            forgotten_topics_data=[], rack_id=rack)
    request.with_header(correlation_id=12, client_id="interop")
    return send_and_decode(port, request, FetchResponse[12])


def produce_v11(port: int, topic: str):
    """A Produce v11 of one record to partition 0, sent to one broker; its decoded answer."""
    from kafka.protocol.producer import ProduceRequest, ProduceResponse
    from kafka.record.memory_records import MemoryRecordsBuilder
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    builder.append(timestamp=None, key=None, value=b"hint", headers=[])
    builder.close()
    request_class = ProduceRequest[11]
    data = request_class.TopicProduceData
    request = request_class(transactional_id=None, acks=1, timeout_ms=5000, topic_data=[
        data(name=topic, partition_data=[data.PartitionProduceData(index=0, records=bytes(builder.buffer()))])])
    request.with_header(correlation_id=11, client_id="kip951")
    return send_and_decode(port, request, ProduceResponse[11])


@pytest.mark.timeout(120)
def test_producer_ids_come_from_the_controllers_blocks(cluster):
    """Every broker hands out producer ids from blocks the controller allocated in the metadata
    log (AllocateProducerIds): ids from different brokers never collide, and stay small."""
    from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    ids = {}
    for node in cluster.nodes.values():
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3:
            request = InitProducerIdRequest[4](transactional_id=None, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1)
            request.with_header(correlation_id=3, client_id="pid")
            answer = send_and_decode(node.broker_port, request, InitProducerIdResponse[4])
            if answer.error_code == 0:
                got.append(answer.producer_id)
            else:
                assert answer.error_code == 15, answer  # COORDINATOR_NOT_AVAILABLE until the first block comes
                assert time.monotonic() < deadline, answer
                time.sleep(0.2)
        ids[node.node_id] = got
    every = [i for got in ids.values() for i in got]
    assert len(set(every)) == len(every), ids
    assert all(0 <= i < 1_000_000 for i in every), ids
    assert all(got == sorted(got) for got in ids.values()), ids


def offset_fetch_error(port: int, group: str) -> int:
    """The group error of an OffsetFetch v2 for no topic, sent to one broker as raw bytes."""
    import socket
    import struct
    name = group.encode()
    body = struct.pack(">hhih", 9, 2, 7, -1) + struct.pack(">h", len(name)) + name + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = sock.recv(4096)
            assert chunk, "connection closed"
            data += chunk
    correlation, topics, error = struct.unpack(">iih", data[4:14])
    assert correlation == 7 and topics == 0, data
    return error


@pytest.mark.timeout(180)
def test_a_broker_is_drained_stopped_and_unregistered(cluster):
    """`brook cluster decommission` moves every replica off a broker (each partition keeps its
    replication factor, every record stays readable), and once the broker is stopped `brook
    cluster unregister` (UnregisterBroker) removes it: clients then see two brokers."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic = unique_topic("drain")
    admin = ck_admin(bootstraps)
    admin.create_topics([NewTopic(topic, 3, 2)])[topic].result(30)
    deadline = time.monotonic() + 30
    while True:
        states = partition_states(bootstraps, topic)
        if len(states) == 3 and all(leader >= 0 and len(isr) == 2 for leader, _, isr in states.values()):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.3)
    assert any(3 in replicas for _, replicas, _ in states.values()), states
    producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "enable.idempotence": True})
    for i in range(1500):
        producer.produce(topic, partition=i % 3, value=f"d{i}".encode())
    assert producer.flush(60) == 0

    out = subprocess.run([str(BROOK_BIN), "cluster", "decommission", "--bootstrap-server", bootstraps, "--id", "3", "--timeout-s", "90"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "holds no replicas" in out.stdout, out
    states = partition_states(bootstraps, topic)
    assert all(3 not in replicas and len(replicas) == 2 for _, replicas, _ in states.values()), states
    wait_for_directories(cluster, topic, {p: states[p][1] for p in range(3)})

    assert cluster.nodes[3].terminate() == 0
    survivors = ",".join(f"127.0.0.1:{cluster.nodes[n].broker_port}" for n in (1, 2))
    out = subprocess.run([str(BROOK_BIN), "cluster", "unregister", "--bootstrap-server", survivors, "--id", "3"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "unregistered" in out.stdout, out
    again = subprocess.run([str(BROOK_BIN), "cluster", "unregister", "--bootstrap-server", survivors, "--id", "3"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "BROKER_ID_NOT_REGISTERED" in (again.stdout + again.stderr).upper().replace(" ", "_"), again
    deadline = time.monotonic() + 20
    while True:
        listing = subprocess.run(["kcat", "-b", survivors, "-L", "-t", topic], capture_output=True, text=True, timeout=30).stdout
        if "2 brokers" in listing:
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.3)
    got = set(read_values(survivors, topic, 3, 1500))
    assert got == {f"d{i}".encode() for i in range(1500)}, f"{len(got)} of 1500"


def quorum_status(port: int) -> "dict | None":
    out = subprocess.run([str(BROOK_BIN), "quorum", "status", "--controller", f"127.0.0.1:{port}", "--timeout-ms", "1000"],
                         capture_output=True, text=True, timeout=15)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line) if out.returncode == 0 else None


def wait_for_quorum(what: str, ports, check, limit_s: float = 30) -> dict:
    deadline, seen = time.monotonic() + limit_s, {}
    while time.monotonic() < deadline:
        seen = {p: quorum_status(p) for p in ports}
        if all(s is not None and check(s) for s in seen.values()):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {limit_s} s; last {seen}")


@pytest.mark.timeout(300)
def test_controllers_are_added_and_removed_while_the_cluster_runs(cluster, tmp_path):
    """A fourth controller starts outside the voters and waits; `brook cluster
    add-controller` makes it a voter; leadership moves to it and the brokers, configured with
    the three founders only, follow it (create a topic, produce, consume); `remove-controller`
    takes a founder out; then the new controller is killed and the remaining two voters elect
    a leader that the brokers use in turn."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = cluster.bootstrap
    admin = ck_admin(bootstraps)
    founders = {n.node_id: n.controller_port for n in cluster.nodes.values()}
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in founders.items())
    port4 = free_port()
    with open(tmp_path / "controller4.log", "ab") as log:
        c4 = subprocess.Popen([str(BROOK_BIN), "controller", "--node-id", "4", "--controller-quorum-voters", voters,
                               "--data-dir", str(tmp_path / "controller4"), "--listen", f"127.0.0.1:{port4}",
                               "--election-timeout-ms", "500"], stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    _procs.add(c4)
    try:
        wait_for_quorum("controller 4 answers, outside the voters", [port4], lambda s: s["voters"] == "" and s["role"] == "follower")

        def cli(*args):
            return subprocess.run([str(BROOK_BIN), "cluster", *args, "--timeout-ms", "20000"], capture_output=True, text=True, timeout=60)

        bad = cli("add-controller", "--controller", f"127.0.0.1:{founders[1]}", "--id", "2", "--address", "127.0.0.1:1")
        assert bad.returncode != 0 and "founding voter" in bad.stdout, bad
        added = cli("add-controller", "--controller", f"127.0.0.1:{founders[1]}", "--id", "4", "--address", f"127.0.0.1:{port4}")
        assert added.returncode == 0 and "voters=1,2,3,4" in added.stdout, added
        all_ports = list(founders.values()) + [port4]
        seen = wait_for_quorum("four voters everywhere, controller 4 caught up", all_ports,
                               lambda s: s["voters"] == "1,2,3,4" and int(s["applied"]) > 0)
        leader = int(seen[port4]["leader"])
        assert "4@127.0.0.1:" in seen[founders[1 if leader != 1 else 2]]["voter_addresses"], seen

        # Leadership to the new controller: the brokers learn its address from the founders.
        moved = subprocess.run([str(BROOK_BIN), "quorum", "transfer", "--controller", f"127.0.0.1:{founders[leader]}", "--to", "4"],
                               capture_output=True, text=True, timeout=30)
        assert moved.returncode == 0, moved
        wait_for_quorum("controller 4 leads", [port4], lambda s: s["role"] == "leader" and s["active_controller"] == "true")
        topic = unique_topic("ctl")
        admin.create_topics([NewTopic(topic, 2, 3)])[topic].result(30)
        time.sleep(SESSION_MS / 1000 + 1)  # every broker's session went through controller 4
        cluster.wait_for("three unfenced brokers under controller 4", lambda v: v.get("controller") == 4 and all_unfenced([1, 2, 3])(v))
        producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "enable.idempotence": True})
        for i in range(200):
            producer.produce(topic, partition=i % 2, value=f"c{i}".encode())
        assert producer.flush(60) == 0

        removed = cli("remove-controller", "--controller", f"127.0.0.1:{founders[2]}", "--id", "1")
        assert removed.returncode == 0 and "voters=2,3,4" in removed.stdout, removed
        wait_for_quorum("voters 2, 3, 4", [founders[2], founders[3], port4], lambda s: s["voters"] == "2,3,4")
        # DescribeQuorum: node 1, a broker no longer a voter, is an observer that heartbeats;
        # controller 4 (no broker) is a voter at its own address.
        quorum = wait_describe_quorum(cluster.nodes[1].bootstrap, lambda q: [o["replica_id"] for o in q["observers"]] == [1]
                                      and q["observers"][0]["log_end_offset"] > 0)
        assert {v["replica_id"] for v in quorum["current_voters"]} == {2, 3, 4}, quorum
        assert quorum["leader_id"] == 4 and quorum["observers"][0]["last_fetch_timestamp"] > 0, quorum
        assert {n["node_id"]: n["listeners"][0]["port"] for n in quorum["nodes"]}[4] == port4, quorum

        # The new controller dies: two of the three remaining voters elect a leader; node 1,
        # no longer a voter, does not campaign.
        c4.kill()
        c4.wait(timeout=10)
        seen = wait_for_quorum("a leader among 2 and 3", [founders[2], founders[3]], lambda s: s["leader"] in ("2", "3"))
        assert quorum_status(founders[1])["role"] != "leader"
        other = unique_topic("ctl")
        admin.create_topics([NewTopic(other, 1, 3)])[other].result(30)
        cluster.wait_for("three unfenced brokers after controller 4 died", all_unfenced([1, 2, 3]))
        got = read_values(bootstraps, topic, 2, 200)
        assert sorted(got) == sorted(f"c{i}".encode() for i in range(200)), f"{len(got)} records"
    finally:
        reap(c4)


@pytest.mark.timeout(180)
def test_a_restarted_broker_serves_clients_only_once_it_has_the_metadata(cluster):
    """A broker that restarts while no quorum can answer it keeps its client port closed: it
    does not answer Metadata from an empty image (its own cluster id, no topics, which
    librdkafka took for a topic with 0 partitions). Once the quorum is back it serves the
    cluster's id and topics."""
    import socket
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    admin = ck_admin(cluster.bootstrap)
    topic = unique_topic("gate")
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(30)
    cluster_id = ck_describe_cluster(cluster.bootstrap).cluster_id
    node3 = cluster.nodes[3]
    node3.kill()
    paused = [cluster.nodes[1].proc, cluster.nodes[2].proc]
    for proc in paused:
        proc.send_signal(signal.SIGSTOP)
    try:
        node3.start()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex(("127.0.0.1", node3.broker_port)) != 0, "broker 3 serves clients without the metadata"
            time.sleep(0.3)
        assert node3.up, node3.tail()
    finally:
        for proc in paused:
            proc.send_signal(signal.SIGCONT)
    only3 = f"127.0.0.1:{node3.broker_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", node3.broker_port), timeout=1):
                break
        except OSError:
            assert time.monotonic() < deadline, f"broker 3 never served clients\n{node3.tail()}"
            time.sleep(0.3)
    described = ck_describe_cluster(only3)
    assert described.cluster_id == cluster_id, (described.cluster_id, cluster_id)
    assert len(partition_states(only3, topic)) == 3


@pytest.mark.timeout(180)
def test_a_failed_log_dir_takes_its_replicas_offline_and_their_leaders_move(tmp_path, failing_disk):
    """A disk that fails under a running broker takes the replicas in that log dir offline,
    not the broker: it keeps serving the partitions in its healthy dir, tells the controller,
    and the lost replicas' leaderships move to the others. The disk is ext4 on a loop device,
    shut down with FS_IOC_SHUTDOWN: every I/O on it then fails with EIO, as on a dead disk. An
    idempotent acks=all producer (confluent-kafka) writing throughout loses nothing."""
    import threading
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    disk = failing_disk.path
    cluster = None
    try:
        root = tmp_path / "cluster"
        root.mkdir()
        cluster = Cluster(root, extra=lambda i: [f"log.dirs={root}/node{i},{disk}"] if i == 1 else [])
        cluster.start()
        cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
        bootstraps = cluster.bootstrap
        topic = unique_topic("disk")
        admin = ck_admin(bootstraps)
        admin.create_topics([NewTopic(topic, num_partitions=6, replica_assignment=[[1, 2, 3]] * 6, config={"min.insync.replicas": "2"})])[topic].result(30)
        deadline = time.monotonic() + 30
        while not (states := partition_states(bootstraps, topic)) or len(states) < 6 or any(s[0] != 1 for s in states.values()):
            assert time.monotonic() < deadline, states
            time.sleep(0.3)
        # The metadata may name broker 1 the leader before it has made every replica's
        # directory: wait for all six, in one log dir or the other, before telling them apart.
        def replicas_in(directory):
            return sorted(int(p.name.rsplit("-", 1)[1]) for p in directory.iterdir() if p.name.startswith(f"{topic}-"))
        deadline = time.monotonic() + 30
        while len(replicas_in(disk)) + len(replicas_in(root / "node1")) < 6:
            assert time.monotonic() < deadline, (replicas_in(disk), replicas_in(root / "node1"))
            time.sleep(0.2)
        on_disk = replicas_in(disk)
        healthy = [p for p in range(6) if p not in on_disk]
        assert on_disk and healthy, f"broker 1 spreads its replicas over both log dirs: {on_disk} on the disk"

        acked, errors, unflushed, stop = [], [], [], threading.Event()

        def produce():
            producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                                 "message.timeout.ms": 60000})
            i = 0
            while not stop.is_set():
                value = f"m{i}".encode()
                producer.produce(topic, partition=i % 6, value=value,
                                 on_delivery=lambda err, msg: (errors if err else acked).append(err or msg.value()))
                producer.poll(0)
                i += 1
                time.sleep(0.002)
            unflushed.append(producer.flush(90))

        writer = threading.Thread(target=produce)
        writer.start()
        try:
            time.sleep(2)
            failing_disk.fail()
            deadline = time.monotonic() + 45
            while True:
                states = partition_states(bootstraps, topic)
                moved = all(states.get(p, (1,))[0] in (2, 3) and 1 not in states[p][2] for p in on_disk)
                kept = all(states.get(p, (0,))[0] == 1 for p in healthy)
                if moved and kept:
                    break
                assert cluster.nodes[1].proc.poll() is None, cluster.nodes[1].tail()
                assert time.monotonic() < deadline, (f"on the disk {on_disk}: {[states.get(p) for p in on_disk]}; "
                                                     f"healthy {healthy}: {[states.get(p) for p in healthy]}; {cluster.nodes[1].tail()}")
                time.sleep(0.5)
            time.sleep(2)
        finally:
            stop.set()
            writer.join(120)
        assert cluster.nodes[1].proc.poll() is None, "the broker kept running"
        assert "failed" in cluster.nodes[1].tail(400), cluster.nodes[1].tail()
        assert unflushed == [0], f"the producer's last flush left {unflushed} records"
        assert not errors, errors[:5]
        got = read_values(bootstraps, topic, 6, len(acked), limit_s=90)
        assert set(got) == set(acked) and len(got) == len(acked), f"{len(got)} read, {len(acked)} acknowledged"
    finally:
        if cluster:
            cluster.stop()


@pytest.mark.timeout(240)
def test_a_replica_moves_to_another_log_dir_of_its_broker(tmp_path):
    """AlterReplicaLogDirs (kafka-python's alter_replica_log_dirs) moves broker 1's replica of a
    partition holding 30 MB to its other log dir while an idempotent acks=all producer writes:
    the copy catches up while the replica serves, so the producer never waits on it; DescribeLogDirs
    (kafka-python) shows the replica there, the old directory goes, broker 1 is back in the ISR,
    and every acknowledged record reads back once. Then broker 1's replicas of
    `__consumer_offsets` move too, under a group whose commits survive. A path that is not a log
    dir gets LOG_DIR_NOT_FOUND, a replica the broker does not hold REPLICA_NOT_AVAILABLE."""
    import threading
    from kafka import KafkaAdminClient
    from kafka.errors import LogDirNotFoundError, NoError, ReplicaNotAvailableError
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import NewTopic
    root = tmp_path / "cluster"
    root.mkdir()
    second = (tmp_path / "second").resolve()
    cluster = Cluster(root, extra=lambda i: [f"log.dirs={root}/node{i},{second}"] if i == 1 else [])
    cluster.start()
    try:
        cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
        bootstraps = cluster.bootstrap
        topic, elsewhere = unique_topic("dirs"), unique_topic("dirs-other")
        admin = ck_admin(bootstraps)
        for made in admin.create_topics([NewTopic(topic, num_partitions=2, replica_assignment=[[1, 2, 3], [1, 2, 3]]),
                                         NewTopic(elsewhere, num_partitions=1, replica_assignment=[[2]])]).values():
            made.result(30)
        deadline = time.monotonic() + 30
        while not (states := partition_states(bootstraps, topic)) or len(states) < 2 or any(len(s[2]) < 3 for s in states.values()):
            assert time.monotonic() < deadline, states
            time.sleep(0.3)
        kp = KafkaAdminClient(bootstrap_servers=bootstraps, request_timeout_ms=30000)

        def where(name: str, partition: int) -> "str | None":
            for entry in kp.describe_log_dirs(brokers=[1])[0]["log_dirs"]:
                for t in entry["topics"]:
                    if t["name"] == name and any(p["partition_index"] == partition and not p["is_future_key"] for p in t["partitions"]):
                        return entry["log_dir"]
            return None

        acked, errors, unflushed, stop = [], [], [], threading.Event()
        on_delivery = lambda err, msg: (errors if err else acked).append(err or msg.value())  # noqa: E731
        preload = Producer({"bootstrap.servers": bootstraps, "acks": "all", "linger.ms": 20})
        for i in range(30_000):
            preload.produce(topic, partition=0, value=f"pre{i}".encode().ljust(1000, b"."), on_delivery=on_delivery)
            if i % 1000 == 0:
                preload.poll(0)
        assert preload.flush(60) == 0 and len(acked) == 30_000 and not errors
        gaps = []

        def produce():
            producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
            i, last = 0, time.monotonic()
            while not stop.is_set():
                producer.produce(topic, partition=i % 2, value=f"m{i}".encode(), on_delivery=on_delivery)
                producer.poll(0)
                i += 1
                time.sleep(0.002)
                if len(acked) != last_count[0]:
                    now = time.monotonic()
                    gaps.append(now - last)
                    last, last_count[0] = now, len(acked)
            unflushed.append(producer.flush(60))

        last_count = [len(acked)]
        writer = threading.Thread(target=produce)
        writer.start()
        try:
            time.sleep(2)
            before = where(topic, 0)
            assert before is not None
            target = str(second) if Path(before).resolve() != second else str((root / "node1").resolve())
            gaps.clear()
            answer = kp.alter_replica_log_dirs({(topic, 0, 1): target, (elsewhere, 0, 1): target, (topic, 1, 1): "/no/such/dir"})
            by = {(tpr.topic, tpr.partition): error for tpr, error in answer.items()}
            assert by[(topic, 0)] is NoError, by
            assert by[(elsewhere, 0)] is ReplicaNotAvailableError, by
            assert by[(topic, 1)] is LogDirNotFoundError, by
            deadline = time.monotonic() + 60
            while Path(where(topic, 0) or "/").resolve() != Path(target).resolve():
                assert time.monotonic() < deadline, (where(topic, 0), cluster.nodes[1].tail())
                time.sleep(0.3)
            assert (Path(target) / f"{topic}-0").is_dir() and not (Path(before) / f"{topic}-0").exists()
            assert not (Path(target) / f"{topic}-0.future").exists()
            # The old directory (renamed `.delete`) goes just after the replica serves from its
            # new one, not before: DescribeLogDirs may list the new place while its 30 MB are
            # still being removed (once on CI).
            deadline = time.monotonic() + 30
            while (Path(before) / f"{topic}-0.delete").exists():
                assert time.monotonic() < deadline, cluster.nodes[1].tail()
                time.sleep(0.2)
            # The 30 MB were copied while the replica served: acknowledgements never stopped for long.
            assert gaps and max(gaps) < 5, sorted(gaps)[-5:]
            # Every replica in sync again (once seen on CI: broker 2, not moved, out of both
            # ISRs after 30 s; the brokers' fencing and logs say why if it comes back).
            deadline = time.monotonic() + 60
            while any(len(state[2]) < 3 for state in partition_states(bootstraps, topic).values()):
                assert time.monotonic() < deadline, (partition_states(bootstraps, topic), cluster.describe(),
                                                     "\n".join(f"--- node {n.node_id}\n{n.tail(60)}" for n in cluster.nodes.values()))
                time.sleep(0.3)
            time.sleep(1)
        finally:
            stop.set()
            writer.join(90)
        assert unflushed == [0] and not errors, (unflushed, errors[:5])
        got = read_values(bootstraps, topic, 2, len(acked), limit_s=90)
        assert set(got) == set(acked) and len(got) == len(acked), f"{len(got)} read, {len(acked)} acknowledged"

        # Broker 1's replicas of __consumer_offsets move too, under a group that has committed.
        # (The topic was made just now by read_values' consumer: wait until each partition has
        # its leader in the metadata, or no group is seen to have broker 1 as coordinator.)
        # Broker 1 hosts its replicas only once it has applied the topic's records, which may be
        # after another broker's metadata names the leaders (once on CI: DescribeLogDirs listed
        # none of them yet, and no group could be placed): wait until it lists every one.
        def offsets_hosted_by_1() -> "dict[int, str]":
            return {p["partition_index"]: entry["log_dir"] for entry in kp.describe_log_dirs(brokers=[1])[0]["log_dirs"]
                    for t in entry["topics"] if t["name"] == "__consumer_offsets" for p in t["partitions"]
                    if not p["is_future_key"]}

        deadline = time.monotonic() + 30
        while not ((states := partition_states(bootstraps, "__consumer_offsets"))
                   and len(states) == 50 and all(state[0] in (1, 2, 3) for state in states.values())
                   and set(hosted := offsets_hosted_by_1()) == {p for p, state in states.items() if 1 in state[1]}):
            assert time.monotonic() < deadline, (states, offsets_hosted_by_1())
            time.sleep(0.3)
        leaders = {p: state[0] for p, state in states.items()}
        offsets_replicas = [p for p, log_dir in hosted.items() if Path(log_dir).resolve() != Path(target).resolve()]
        assert offsets_replicas, hosted
        # Broker 1 may lead none of them (once on CI: the topic was placed while broker 1 was
        # busy): the preferred leaders are elected, broker 1 first among its own replicas.
        deadline = time.monotonic() + 30
        while not any(leaders.get(p) == 1 for p in offsets_replicas):
            assert time.monotonic() < deadline, (leaders, offsets_replicas)
            subprocess.run([str(BROOK_BIN), "elect", "--bootstrap-server", bootstraps, "--type", "preferred",
                            "--topic", "__consumer_offsets"], capture_output=True, text=True, timeout=30)
            time.sleep(1)
            leaders = {p: state[0] for p, state in partition_states(bootstraps, "__consumer_offsets").items()}
        # A group whose coordinator is broker 1, on a partition that moves: it stops and loads again.
        group = next(g for g in (f"dirs-group-{i}" for i in range(10_000))
                     if java_hash_partition(g, len(leaders)) in offsets_replicas and leaders[java_hash_partition(g, len(leaders))] == 1)
        consumer = Consumer({"bootstrap.servers": bootstraps, "group.id": group, "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition(topic, 0, 1234), TopicPartition(topic, 1, 567)], asynchronous=False)
        answer = kp.alter_replica_log_dirs({("__consumer_offsets", p, 1): target for p in offsets_replicas})
        assert all(error is NoError for error in answer.values()), answer
        deadline = time.monotonic() + 90
        while any(Path(where("__consumer_offsets", p) or "/").resolve() != Path(target).resolve() for p in offsets_replicas):
            assert time.monotonic() < deadline, cluster.nodes[1].tail()
            time.sleep(0.5)
        committed = {tp.partition: tp.offset for tp in consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=30)}
        assert committed == {0: 1234, 1: 567}, committed
        consumer.commit(offsets=[TopicPartition(topic, 0, 2000)], asynchronous=False)
        assert consumer.committed([TopicPartition(topic, 0)], timeout=30)[0].offset == 2000
        consumer.close()
        kp.close()
    finally:
        cluster.stop()


@pytest.mark.timeout(240)
def test_offsets_sent_to_a_transaction_while_the_groups_coordinator_is_down(tmp_path):
    """`send_offsets_to_transaction` while the group's `__consumer_offsets` partition has no
    leader (its only replica's broker SIGKILLed) comes back within its timeout, and the copy
    goes through once that broker is back. librdkafka looks its group coordinator up for a
    TxnOffsetCommit with two retries and then waits for a connection to change state, without
    a timeout of its own: answered COORDINATOR_NOT_AVAILABLE, the call waited for good (the
    fault campaign's stalled copier, seed 1555952120)."""
    import threading

    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
    from confluent_kafka.admin import NewTopic
    cluster = Cluster(tmp_path, extra=lambda i: ["offsets.topic.replication.factor=1"])
    cluster.start()
    try:
        cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
        bootstraps = cluster.bootstrap
        source, copy, group, txn_id = unique_topic("src"), unique_topic("dst"), unique_topic("g"), unique_topic("tx")
        admin = ck_admin(bootstraps)
        for f in admin.create_topics([NewTopic(t, 1, 3) for t in (source, copy)]).values():
            f.result(30)
        producer = Producer({"bootstrap.servers": bootstraps, "acks": "all"})
        for i in range(10):
            producer.produce(source, value=f"v{i}".encode())
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": bootstraps, "group.id": group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        consumer.subscribe([source])
        got, deadline = [], time.monotonic() + 60
        while len(got) < 10 and time.monotonic() < deadline:
            got += [m for m in consumer.consume(num_messages=10, timeout=1.0) if not m.error()]
        assert len(got) == 10
        positions = consumer.position(consumer.assignment())
        metadata = consumer.consumer_group_metadata()

        states = partition_states(bootstraps, "__consumer_offsets")
        down = states[java_hash_partition(group, len(states))][0]
        txn = Producer({"bootstrap.servers": bootstraps, "transactional.id": txn_id, "transaction.timeout.ms": 120000})
        txn.init_transactions(60)
        txn.begin_transaction()
        txn.produce(copy, value=b"copy")
        assert txn.flush(30) == 0
        cluster.nodes[down].kill()
        cluster.wait_for(f"node {down} fenced",
                         lambda view: view["brokers"].get(down, {}).get("fenced") == "true")

        outcome = []
        call = threading.Thread(daemon=True, target=lambda: outcome.append(_attempt(
            lambda: txn.send_offsets_to_transaction(positions, metadata, 10))))
        call.start()
        call.join(40)
        assert outcome, f"send_offsets_to_transaction with a 10 s timeout still waits 40 s on (node {down} down)"
        print(f"node {down} down, the group's coordinator partition leaderless: {outcome[0]}")

        cluster.nodes[down].start()
        cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
        if outcome[0] is not None:
            txn.abort_transaction(60)
            txn.begin_transaction()
            txn.produce(copy, value=b"copy")
        assert settle(lambda: txn.send_offsets_to_transaction(positions, metadata, 60), cluster=cluster)
        assert settle(lambda: txn.commit_transaction(60), cluster=cluster)
        # The consumer's own coordinator may still be the broker named during the outage for a
        # heartbeat or so: NOT_COORDINATOR then, retriable, as after any coordinator move.
        deadline = time.monotonic() + 30
        while True:
            try:
                committed = {tp.partition: tp.offset for tp in consumer.committed(consumer.assignment(), timeout=10)}
                break
            except KafkaException as e:
                assert e.args[0].code() == KafkaError.NOT_COORDINATOR and time.monotonic() < deadline, e
                time.sleep(0.5)
        print(f"committed offsets read {30 - (deadline - time.monotonic()):.1f} s after the first try")
        assert committed == {tp.partition: tp.offset for tp in positions}
        consumer.close()
        try:
            txn.flush(5)
        except KafkaException:
            pass
    finally:
        cluster.stop()


def _attempt(call):
    """None when `call` returned, else the KafkaError it raised."""
    from confluent_kafka import KafkaException
    try:
        call()
        return None
    except KafkaException as e:
        return e.args[0]
