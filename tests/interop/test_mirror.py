"""`brook mirror` (issue 21): topics mirrored from a source cluster to a target under the same
names, judged by librdkafka on both sides. Brook -> Brook: topics made with the source's
partition count and own settings, records copied with keys, headers and timestamps to the same
partitions, a consumer group's offsets translated, new topics, partitions and setting changes
followed, a hard-killed mirror resumes from its checkpoint without losing a record, a stopped one
without copying one twice; `brook mirror status` shows the checkpoints, the lag and the
heartbeat. Tansu -> Brook: a broker that is not Brook as the source. Every mirror process is
stopped by its PID at the end, pass or fail."""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from brook_interop import Spec, ck_admin, ck_consume, ck_create_topic, ck_produce, unique_topic
from conftest import BROOK_BIN
from conftest import free_port
from test_client_library import tansu, tansu_binary  # noqa: F401 (tansu: a fixture)
from test_metrics import fetch, promtool_ok, scrape, value


class MirrorProcess:
    def __init__(self, source: str, target: str, topics: str, *extra: str, log=None) -> None:
        self.args = [str(BROOK_BIN), "mirror", "--source", source, "--target", target, "--topics", topics,
                     "--refresh-interval-ms", "1000", "--checkpoint-interval-ms", "300", *extra]
        self.log = log
        self.proc = None

    def start(self) -> "MirrorProcess":
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.log or subprocess.DEVNULL)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


def rec_view(r, extra: tuple = ()) -> tuple:
    return (r.key, r.value, tuple(r.headers) + extra, r.timestamp)


def origin(bootstrap: str) -> tuple:
    """The header a copy carries (loop prevention): the cluster the record began on."""
    cluster_id = ck_admin(bootstrap).list_topics(timeout=10).cluster_id
    return (("brook.mirror.origin", cluster_id.encode()),) if cluster_id else ()


def wait_for(what: str, check, limit_s: float = 60):
    deadline = time.monotonic() + limit_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"not within {limit_s} s: {what}"
        time.sleep(0.3)


def topic_partitions(bootstrap: str, topic: str) -> int:
    # All topics: asking for one by name could create it (auto.create.topics.enable).
    meta = ck_admin(bootstrap).list_topics(timeout=10)
    t = meta.topics.get(topic)
    return 0 if t is None or t.error is not None else len(t.partitions)


def own_configs(bootstrap: str, topic: str) -> dict:
    from confluent_kafka.admin import ConfigResource
    admin = ck_admin(bootstrap)
    [future] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    # CONFIG_SOURCE 1: DYNAMIC_TOPIC_CONFIG, a setting made on the topic.
    return {name: entry.value for name, entry in future.result(30).items() if entry.source == 1}


@pytest.mark.timeout(300)
def test_brook_to_brook(broker_factory, tmp_path):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions
    source, target = broker_factory(), broker_factory()
    base = unique_topic("mir")
    a, b, other, late = f"{base}-a", f"{base}-b", f"{base}x", f"{base}-late"
    ck_create_topic(source.bootstrap, a, partitions=3, config={"retention.ms": "987654321", "message.timestamp.type": "CreateTime",
                                                                "max.message.bytes": "2000000"})
    ck_create_topic(source.bootstrap, b, partitions=1)
    ck_create_topic(source.bootstrap, other, partitions=1)
    now = int(time.time() * 1000)
    specs = [Spec(i, f"k{i % 9}".encode(), None if i % 17 == 0 else f"a{i}".encode(), (("h", f"{i}".encode()),), None, now - 100_000 + i)
             for i in range(600)]
    ck_produce(source.bootstrap, a, specs)
    ck_produce(source.bootstrap, b, [Spec(i, None, f"b{i}".encode(), (), 0) for i in range(50)])
    ck_produce(source.bootstrap, other, [Spec(0, None, b"not mirrored", (), 0)])
    # A source group that read part of `a` and committed.
    group = unique_topic("mir-g")
    committer = Consumer({"bootstrap.servers": source.bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = {0: 40, 1: 70, 2: 5}
    committer.commit(offsets=[TopicPartition(a, p, o) for p, o in committed.items()], asynchronous=False)
    committer.close()

    log = open(tmp_path / "mirror.log", "wb")
    mirror = MirrorProcess(source.bootstrap, target.bootstrap, f"{base}-.*", "--groups", "mir-g-.*", "--name", base, log=log).start()
    try:
        wait_for("the mirrored topics", lambda: topic_partitions(target.bootstrap, a) == 3 and topic_partitions(target.bootstrap, b) == 1)
        theirs = ck_consume(source.bootstrap, a, range(3), 600)
        ours = ck_consume(target.bootstrap, a, range(3), 600, timeout=60)
        began = origin(source.bootstrap)
        assert began, "the source names its cluster"
        for p in range(3):
            want = [rec_view(r, began) for r in sorted(theirs, key=lambda r: r.offset) if r.partition == p]
            got = [rec_view(r) for r in sorted(ours, key=lambda r: r.offset) if r.partition == p]
            assert got == want, f"partition {p} differs"
        assert sorted(r.value for r in ck_consume(target.bootstrap, b, [0], 50)) == sorted(f"b{i}".encode() for i in range(50))
        # kcat reads the copy as librdkafka does.
        out = subprocess.run(["kcat", "-b", target.bootstrap, "-C", "-t", b, "-e", "-q", "-f", "%s\n"], capture_output=True, text=True, timeout=60)
        assert sorted(out.stdout.split()) == sorted(f"b{i}" for i in range(50)), out.stderr
        assert topic_partitions(target.bootstrap, other) == 0, "a topic the pattern does not match was mirrored"
        configs = own_configs(target.bootstrap, a)
        assert configs.get("retention.ms") == "987654321" and configs.get("max.message.bytes") == "2000000"
        assert "message.timestamp.type" not in configs
        # The group's offsets, translated (a fresh target: the same offsets).
        peer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            wait_for("the group's offsets on the target", lambda: {tp.partition: tp.offset for tp in peer.committed(
                [TopicPartition(a, p) for p in range(3)], timeout=10)} == committed, limit_s=30)
        finally:
            peer.close()

        # A new matching topic, a partition more, a setting changed: followed.
        ck_create_topic(source.bootstrap, late, partitions=2)
        ck_produce(source.bootstrap, late, [Spec(i, None, f"late{i}".encode(), (), i % 2) for i in range(20)])
        admin = ck_admin(source.bootstrap)
        admin.create_partitions([NewPartitions(a, 4)])[a].result(30)
        ck_produce(source.bootstrap, a, [Spec(i, None, f"p3-{i}".encode(), (), 3) for i in range(30)])
        change = ConfigResource("topic", a, incremental_configs=[
            ConfigEntry("retention.ms", "123123123", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([change])[change].result(30)
        wait_for("the late topic", lambda: topic_partitions(target.bootstrap, late) == 2)
        assert sorted(r.value for r in ck_consume(target.bootstrap, late, range(2), 20, timeout=60)) == sorted(f"late{i}".encode() for i in range(20))
        wait_for("the fourth partition", lambda: topic_partitions(target.bootstrap, a) == 4)
        assert [r.value for r in sorted(ck_consume(target.bootstrap, a, [3], 30, timeout=60), key=lambda r: r.offset)] == \
            [f"p3-{i}".encode() for i in range(30)]
        wait_for("the changed setting", lambda: own_configs(target.bootstrap, a).get("retention.ms") == "123123123", limit_s=30)

        # Killed hard: restarted, it loses nothing (it may copy again what it copied after its
        # last checkpoint).
        assert mirror.stop(signal.SIGKILL) != 0
        ck_produce(source.bootstrap, b, [Spec(i, None, f"b{i}".encode(), (), 0) for i in range(50, 100)])
        mirror = MirrorProcess(source.bootstrap, target.bootstrap, f"{base}-.*", "--groups", "mir-g-.*", "--name", base, log=log).start()
        wait_for("the records written while the mirror was down",
                 lambda: {r.value for r in ck_consume(target.bootstrap, b, [0], 100, timeout=10, strict=False)} >= {f"b{i}".encode() for i in range(100)})
        # The offset syncs came back from the checkpoints: the group moves within what the first
        # run copied, and the restarted mirror translates it (it copies nothing new of `a`).
        committer = Consumer({"bootstrap.servers": source.bootstrap, "group.id": group, "enable.auto.commit": False})
        committer.commit(offsets=[TopicPartition(a, 0, 150)], asynchronous=False)
        committer.close()
        peer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            wait_for("the group's offset translated after a restart",
                     lambda: peer.committed([TopicPartition(a, 0)], timeout=10)[0].offset == 150, limit_s=30)
        finally:
            peer.close()
        # Stopped cleanly: restarted, it copies nothing twice.
        assert mirror.stop(signal.SIGTERM) == 0, (tmp_path / "mirror.log").read_text(errors="replace")[-2000:]
        before = len(ck_consume(target.bootstrap, b, [0], 100, timeout=10, strict=False))
        ck_produce(source.bootstrap, b, [Spec(i, None, f"b{i}".encode(), (), 0) for i in range(100, 120)])
        http = f"http://127.0.0.1:{free_port()}"
        mirror = MirrorProcess(source.bootstrap, target.bootstrap, f"{base}-.*", "--name", base, "--http-listeners", http, log=log).start()
        wait_for("the records after a clean stop", lambda: len(ck_consume(target.bootstrap, b, [0], before + 20, timeout=10, strict=False)) >= before + 20)
        time.sleep(1.5)
        after = ck_consume(target.bootstrap, b, [0], before + 20, timeout=10, strict=False)
        assert len(after) == before + 20, f"{len(after) - before - 20} records copied twice after a clean stop"
        # Its metrics, as Prometheus reads them: the 20 records copied in this run, no lag, a
        # recent checkpoint.
        assert fetch(http + "/ready")[0] == 200
        text, samples = wait_for("the mirror's metrics at rest", lambda: (lambda t, s: (t, s) if value(s, "brook_mirror_records_behind", mirror=base) == 0
                                                                         and value(s, "brook_mirror_records_copied_total", mirror=base) == 20 else None)(*scrape(http)),
                                 limit_s=30)
        promtool_ok(text)
        assert value(samples, "brook_mirror_topics", mirror=base) == 3
        assert value(samples, "brook_mirror_lag_records", mirror=base, topic=a, partition="3") == 0
        assert abs(value(samples, "brook_mirror_last_checkpoint_timestamp_seconds", mirror=base) - time.time()) < 30
        # The status: checkpoints at the source's end, and a recent heartbeat.
        status = subprocess.run([str(BROOK_BIN), "mirror", "status", "--target", target.bootstrap, "--source", source.bootstrap, "--name", base],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        rows = [line.split() for line in status.stdout.splitlines() if line.startswith(base)]
        assert {(row[1], row[2]) for row in rows} >= {(a, "0"), (a, "3"), (b, "0"), (late, "1")}
        assert all(row[5] == "0" for row in rows), status.stdout
        assert "last heartbeat" in status.stdout, status.stdout
    finally:
        mirror.stop()
        log.close()


@pytest.mark.timeout(900)
def test_tansu_to_brook(tansu, broker):  # noqa: F811 (tansu: the fixture)
    """A broker that is not Brook as the source: Tansu's topic made on Brook and its records
    copied, each to its partition, in order."""
    from confluent_kafka.admin import NewTopic
    topic = unique_topic("mir-tansu")
    admin = ck_admin(tansu)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    ck_produce(tansu, topic, [Spec(i, f"k{i % 5}".encode(), f"t{i}".encode(), (("n", f"{i}".encode()),), None) for i in range(400)])
    mirror = MirrorProcess(tansu, broker.bootstrap, f"{topic}").start()
    try:
        wait_for("the mirrored topic", lambda: topic_partitions(broker.bootstrap, topic) == 2)
        theirs = ck_consume(tansu, topic, range(2), 400)
        ours = ck_consume(broker.bootstrap, topic, range(2), 400, timeout=60)
        began = origin(tansu)
        for p in range(2):
            want = [(r.key, r.value, tuple(r.headers) + began) for r in sorted(theirs, key=lambda r: r.offset) if r.partition == p]
            got = [(r.key, r.value, tuple(r.headers)) for r in sorted(ours, key=lambda r: r.offset) if r.partition == p]
            assert got == want, f"partition {p} differs"
    finally:
        assert mirror.stop() == 0


@pytest.mark.timeout(300)
def test_mirrors_both_ways_copy_each_record_once_each_way(broker_factory, tmp_path):
    """Two clusters, a topic of the same name on each and a mirror each way (active-active):
    each record is copied once to the other side and never back (loop prevention), also for
    records written while the mirrors run; a copy names the cluster it began on; a mirror of a
    cluster onto itself is refused."""
    one, two = broker_factory(), broker_factory()
    topic = unique_topic("mir-both")
    for side in (one, two):
        ck_create_topic(side.bootstrap, topic, partitions=2)
    ck_produce(one.bootstrap, topic, [Spec(i, None, f"one{i}".encode(), (("n", b"1"),), i % 2) for i in range(200)])
    ck_produce(two.bootstrap, topic, [Spec(i, None, f"two{i}".encode(), (), i % 2) for i in range(100)])
    http = f"http://127.0.0.1:{free_port()}"
    log = open(tmp_path / "mirrors.log", "wb")
    forth = MirrorProcess(one.bootstrap, two.bootstrap, topic, "--name", "forth", "--http-listeners", http, log=log).start()
    back = MirrorProcess(two.bootstrap, one.bootstrap, topic, "--name", "back", log=log).start()
    try:
        def values(side, count):
            return sorted(r.value.decode() for r in ck_consume(side.bootstrap, topic, range(2), count, timeout=10, strict=False))
        want = sorted([f"one{i}" for i in range(200)] + [f"two{i}" for i in range(100)])
        for side in (one, two):
            wait_for("each record on both sides", lambda: values(side, 300) == want)
        # Written while both run.
        ck_produce(one.bootstrap, topic, [Spec(i, None, f"one{i}".encode(), (), i % 2) for i in range(200, 250)])
        ck_produce(two.bootstrap, topic, [Spec(i, None, f"two{i}".encode(), (), i % 2) for i in range(100, 150)])
        want = sorted([f"one{i}" for i in range(250)] + [f"two{i}" for i in range(150)])
        for side in (one, two):
            wait_for("the later records on both sides", lambda: values(side, 400) == want)
        # Several checkpoints and fetches later nothing came back.
        time.sleep(3)
        for side in (one, two):
            assert values(side, 400) == want, "a record copied back"
        # The copies name where they began; records written on a side carry no such header.
        on_two = ck_consume(two.bootstrap, topic, range(2), 400)
        began_one, began_two = origin(one.bootstrap), origin(two.bootstrap)
        assert began_one and began_one != began_two
        for r in on_two:
            mark = tuple(h for h in r.headers if h[0] == "brook.mirror.origin")
            assert mark == (began_one if r.value.startswith(b"one") else ()), r
        # The forth mirror left out the 150 records that began on `two` and came back to `one`.
        wait_for("the records left out, counted", lambda: value(scrape(http)[1], "brook_mirror_records_skipped_total", mirror="forth") == 150)
    finally:
        assert forth.stop() == 0, (tmp_path / "mirrors.log").read_text(errors="replace")[-2000:]
        assert back.stop() == 0, (tmp_path / "mirrors.log").read_text(errors="replace")[-2000:]
        log.close()
    # A cluster mirrored onto itself under the same names would copy its own copies.
    selfish = subprocess.run([str(BROOK_BIN), "mirror", "--source", one.bootstrap, "--target", one.bootstrap, "--topics", topic],
                             capture_output=True, text=True, timeout=60)
    assert selfish.returncode != 0 and "same cluster" in selfish.stderr, selfish.stderr


@pytest.mark.timeout(300)
def test_exactly_once_through_kills(broker_factory, tmp_path):
    """`--exactly-once` while librdkafka writes to the source and the mirror is SIGKILLed three
    times and started again: a read_committed consumer of the target reads every source record
    once, each partition in the source's order. Then a mirror started again with --groups
    translates a group's offset through the offset syncs the transactions' checkpoints kept."""
    import random
    import threading
    source, target = broker_factory(), broker_factory()
    topic, name = unique_topic("mir-eos"), unique_topic("eos")
    ck_create_topic(source.bootstrap, topic, partitions=3)
    total = 6000

    def write() -> None:
        for start in range(0, total, 500):
            ck_produce(source.bootstrap, topic, [Spec(i, f"k{i % 7}".encode(), f"e{i}".encode(), (), None) for i in range(start, start + 500)])
            time.sleep(0.3)

    writer = threading.Thread(target=write)
    writer.start()
    log = open(tmp_path / "mirror.log", "wb")
    mirror = MirrorProcess(source.bootstrap, target.bootstrap, topic, "--exactly-once", "--name", name, log=log).start()
    try:
        rng = random.Random(7)
        for _ in range(3):
            time.sleep(rng.uniform(1.0, 2.5))
            mirror.stop(signal.SIGKILL)
            mirror = MirrorProcess(source.bootstrap, target.bootstrap, topic, "--exactly-once", "--name", name, log=log).start()
        writer.join(120)
        theirs = ck_consume(source.bootstrap, topic, range(3), total, timeout=60)
        ours = ck_consume(target.bootstrap, topic, range(3), total, timeout=90, linger=2.0, **{"isolation.level": "read_committed"})
        values = [r.value for r in ours]
        assert len(values) == len(set(values)) == total, f"{len(values)} read, {len(set(values))} distinct, of {total}"
        for p in range(3):
            want = [r.value for r in sorted(theirs, key=lambda r: r.offset) if r.partition == p]
            got = [r.value for r in sorted(ours, key=lambda r: r.offset) if r.partition == p]
            assert got == want, f"partition {p} differs"
        assert mirror.stop(signal.SIGTERM) == 0, (tmp_path / "mirror.log").read_text(errors="replace")[-2000:]
        # The offset syncs went with the transactions' checkpoints: a mirror started again with
        # --groups translates a source group's offset within what earlier runs copied (it
        # copies nothing new). The target's offsets differ from the source's (commit markers).
        from confluent_kafka import Consumer, TopicPartition
        group = unique_topic("mir-eos-g")
        source_p0 = sorted((r for r in theirs if r.partition == 0), key=lambda r: r.offset)
        target_at = {r.value: r.offset for r in ours if r.partition == 0}
        expected = target_at[source_p0[-1].value] + 1
        assert expected != source_p0[-1].offset + 1, "the target's offsets should differ from the source's"
        committer = Consumer({"bootstrap.servers": source.bootstrap, "group.id": group, "enable.auto.commit": False})
        committer.commit(offsets=[TopicPartition(topic, 0, source_p0[-1].offset + 1)], asynchronous=False)
        committer.close()
        mirror = MirrorProcess(source.bootstrap, target.bootstrap, topic, "--exactly-once", "--groups", group, "--name", name, log=log).start()
        peer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            wait_for("the group's offset translated by a restarted exactly-once mirror",
                     lambda: peer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == expected, limit_s=30)
        finally:
            peer.close()
        assert mirror.stop(signal.SIGTERM) == 0, (tmp_path / "mirror.log").read_text(errors="replace")[-2000:]
    finally:
        mirror.stop()
        writer.join(30)
        log.close()


@pytest.mark.timeout(300)
def test_offset_preserving_mirror_topics(broker_factory, tmp_path):
    """`--preserve-offsets` (Brook as the target): every committed source record is on the
    target at its own offset (an aborted transaction and a log start moved by DeleteRecords
    leave their offsets unused there too), as librdkafka reads both; producers are refused
    (POLICY_VIOLATION) until `brook mirror promote`; a group's offsets are the same numbers; a
    SIGKILLed mirror goes on from the target's log without a copy twice; once promoted, the
    topic takes librdkafka's writes and the running mirror stops copying it."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    source, target = broker_factory(), broker_factory()
    topic, name = unique_topic("mir-po"), unique_topic("po")
    ck_create_topic(source.bootstrap, topic, partitions=2, config={"retention.ms": "86400000"})
    ck_produce(source.bootstrap, topic, [Spec(i, f"k{i}".encode(), f"a{i}".encode(), (("h", b"1"),), i % 2) for i in range(40)])
    txn = Producer({"bootstrap.servers": source.bootstrap, "transactional.id": unique_topic("po-txn")})
    txn.init_transactions(30)
    txn.begin_transaction()
    for i in range(10):
        txn.produce(topic, value=f"aborted{i}".encode(), partition=0)
    txn.flush(30)
    txn.abort_transaction(30)
    txn.begin_transaction()
    for i in range(10):
        txn.produce(topic, value=f"committed{i}".encode(), partition=0)
    txn.commit_transaction(30)
    ck_produce(source.bootstrap, topic, [Spec(i, None, f"b{i}".encode(), (), i % 2) for i in range(20)])
    # Partition 1 starts at 7 on the source.
    source_admin = ck_admin(source.bootstrap)  # referenced until its futures are done
    [deleted] = source_admin.delete_records([TopicPartition(topic, 1, 7)], request_timeout=30).values()
    assert deleted.result(30).low_watermark == 7
    group = unique_topic("po-g")
    committer = Consumer({"bootstrap.servers": source.bootstrap, "group.id": group, "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(topic, 0, 33), TopicPartition(topic, 1, 12)], asynchronous=False)
    committer.close()

    def records(bootstrap: str, expected: int) -> list:
        got = ck_consume(bootstrap, topic, range(2), expected, timeout=60, **{"isolation.level": "read_committed"})
        return sorted((r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp) for r in got)

    committed_count = 40 + 10 + 20 - 7  # less the aborted ten and the seven deleted
    log = open(tmp_path / "mirror.log", "wb")
    args = ("--preserve-offsets", "--name", name, "--groups", "po-g-.*")
    mirror = MirrorProcess(source.bootstrap, target.bootstrap, topic, *args, log=log).start()
    try:
        wait_for("the mirror topic", lambda: topic_partitions(target.bootstrap, topic) == 2)
        want = records(source.bootstrap, committed_count)
        assert len(want) == committed_count
        assert records(target.bootstrap, committed_count) == want
        assert own_configs(target.bootstrap, topic).get("brook.mirror.link") == name
        # Producers are refused.
        refused = []
        p = Producer({"bootstrap.servers": target.bootstrap})
        p.produce(topic, value=b"nope", partition=0, on_delivery=lambda err, msg: refused.append(err))
        p.flush(30)
        assert refused and refused[0] is not None and refused[0].code() == KafkaError.POLICY_VIOLATION, refused
        # The group's offsets, the same numbers.
        peer = Consumer({"bootstrap.servers": target.bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            wait_for("the group's offsets", lambda: {tp.partition: tp.offset for tp in peer.committed(
                [TopicPartition(topic, q) for q in range(2)], timeout=10)} == {0: 33, 1: 12}, limit_s=30)
        finally:
            peer.close()
        # Killed hard and started again: goes on from the target's log, nothing twice.
        assert mirror.stop(signal.SIGKILL) != 0
        ck_produce(source.bootstrap, topic, [Spec(i, None, f"c{i}".encode(), (), i % 2) for i in range(30)])
        mirror = MirrorProcess(source.bootstrap, target.bootstrap, topic, *args, log=log).start()
        want = records(source.bootstrap, committed_count + 30)
        wait_for("the records written while the mirror was down",
                 lambda: len(ck_consume(target.bootstrap, topic, range(2), committed_count + 30, timeout=10, strict=False)) >= committed_count + 30)
        time.sleep(1.0)
        assert records(target.bootstrap, committed_count + 30) == want
        # Promoted: librdkafka writes; the mirror stops copying it.
        out = subprocess.run([str(BROOK_BIN), "mirror", "promote", "--target", target.bootstrap, "--name", name, "--topic", topic],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "promoted" in out.stdout, out.stdout + out.stderr
        again = subprocess.run([str(BROOK_BIN), "mirror", "promote", "--target", target.bootstrap, "--name", name, "--topic", topic],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode != 0 and "not a mirror topic" in again.stderr
        delivered = []
        p.produce(topic, value=b"after promotion", partition=0, on_delivery=lambda err, msg: delivered.append((err, msg.offset() if msg else None)))
        p.flush(30)
        assert delivered and delivered[0][0] is None, delivered
        ck_produce(source.bootstrap, topic, [Spec(i, None, f"d{i}".encode(), (), 0) for i in range(5)])
        time.sleep(3)
        values = [r.value for r in ck_consume(target.bootstrap, topic, [0], 1, timeout=10, strict=False, start={0: delivered[0][1]})]
        assert values[:1] == [b"after promotion"] and not any(v.startswith(b"d") for v in values), values
        assert mirror.stop(signal.SIGTERM) == 0
        assert "not copied" in (tmp_path / "mirror.log").read_text(errors="replace")
    finally:
        mirror.stop()
        log.close()
