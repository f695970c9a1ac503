"""Resource holes found by issue 14, against a real `brook serve`: fetches parked with huge
min_bytes / max_wait_ms die with their connections (memory comes back, later appends stay
cheap), frames still arriving count against queued.max.request.bytes, a frame that stops half
way and an idle connection are closed, and the broker serves normally afterwards."""
from __future__ import annotations

import os
import socket
import struct
import time

from brook_interop import (ck_create_topic, ck_produce, ck_consume, connect, kcat_consume, kp_consume, request_frame,
                           Spec)

INT32_MAX = 2**31 - 1


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch_v4(topic: str, partitions: int, correlation: int) -> bytes:
    """Fetch v4 from offset 0 of every partition, min_bytes and max_wait_ms at Int32.max."""
    name = topic.encode()
    parts = b"".join(struct.pack(">iqi", p, 0, 1 << 20) for p in range(partitions))
    body = struct.pack(">iiiib", -1, INT32_MAX, INT32_MAX, 50 << 20, 0)
    body += struct.pack(">i", 1) + struct.pack(">h", len(name)) + name + struct.pack(">i", partitions) + parts
    return request_frame(1, 4, correlation, "parker", body)


def specs(n: int, prefix: str) -> list:
    return [Spec(seq=i, key=f"{prefix}{i}".encode(), value=f"{prefix}-value-{i}".encode(), headers=(), partition=0)
            for i in range(n)]


def round_trip(bootstrap: str, topic: str, n: int, prefix: str) -> None:
    sent = specs(n, prefix)
    delivered = ck_produce(bootstrap, topic, sent)
    assert len(delivered) == n
    first = min(off for _, off in delivered.values())
    got = ck_consume(bootstrap, topic, [0], n, start={0: first})
    assert [r.value for r in got] == [s.value for s in sent]


def test_parked_fetches_end_with_their_connections(broker_factory):
    broker = broker_factory()
    topic = "parked"
    ck_create_topic(broker.bootstrap, topic, partitions=50)
    base = rss_mb(broker.pid)

    def park_round() -> None:
        socks = []
        for c in range(20):
            s = connect(broker.port)
            s.sendall(b"".join(fetch_v4(topic, 50, c * 1000 + i) for i in range(100)))
            socks.append(s)
        time.sleep(2)  # every fetch read and parked
        for s in socks:
            s.close()
        time.sleep(1)

    park_round()
    after_first = rss_mb(broker.pid)
    park_round()
    after_second = rss_mb(broker.pid)
    # 2,000 fetches x 50 partitions parked and gone: nothing of them stays behind.
    assert after_second - after_first < 64, f"RSS {base:.0f} -> {after_first:.0f} -> {after_second:.0f} MB"
    # Appends are not slowed by fetches that are gone (reported, not asserted: a measurement).
    cpu = cpu_seconds(broker.pid)
    round_trip(broker.bootstrap, topic, 2000, "after")
    print(f"RSS {base:.0f} -> {after_first:.0f} -> {after_second:.0f} MB; 2,000 records afterwards cost the broker {cpu_seconds(broker.pid) - cpu:.2f} CPU-s")
    assert broker.alive()


def test_frames_still_arriving_count_against_the_memory_budget(broker_factory):
    broker = broker_factory({"queued.max.request.bytes": str(64 << 20), "socket.request.max.bytes": str(100 << 20)})
    topic = "after-frames"
    ck_create_topic(broker.bootstrap, topic)
    base = rss_mb(broker.pid)
    chunk = b"\0" * (1 << 20)
    socks = []
    for _ in range(8):
        s = connect(broker.port)
        s.setblocking(False)
        s.send(struct.pack(">i", 100 << 20))  # a 100 MiB frame, of which 32 MiB will be offered
        socks.append([s, 0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(sent < (32 << 20) for _, sent in socks):
        progressed = False
        for entry in socks:
            s, sent = entry
            if sent >= (32 << 20):
                continue
            try:
                n = s.send(chunk)
                entry[1] += n
                progressed = True
            except BlockingIOError:
                pass
        if not progressed:
            time.sleep(0.05)
    time.sleep(1)
    peak = rss_mb(broker.pid)
    accepted = sorted(sent for _, sent in socks)
    # Only what the budget admits is read: one frame alone (it is larger than the budget);
    # the others wait in their sockets, not in the broker's memory.
    assert peak - base < 64 + 48, f"RSS {base:.0f} -> {peak:.0f} MB with 8 x 32 MiB offered (accepted by the kernel: {accepted})"
    for s, _ in socks:
        s.close()
    time.sleep(1)
    round_trip(broker.bootstrap, topic, 100, "frames")
    assert broker.alive()


def test_a_frame_that_stops_arriving_and_an_idle_connection_are_closed(broker_factory):
    broker = broker_factory({"socket.request.receive.timeout.ms": "1500", "connections.max.idle.ms": "2500"})
    half = connect(broker.port, timeout=15)
    half.sendall(struct.pack(">i", 1000) + b"\0" * 100)
    idle = connect(broker.port, timeout=15)
    started = time.monotonic()
    assert half.recv(1) == b"", "the half-sent frame's connection was not closed"
    half_closed = time.monotonic() - started
    assert idle.recv(1) == b"", "the idle connection was not closed"
    idle_closed = time.monotonic() - started
    assert 1.0 < half_closed < 10 and 2.0 < idle_closed < 12, (half_closed, idle_closed)
    ck_create_topic(broker.bootstrap, "after-timeouts")
    round_trip(broker.bootstrap, "after-timeouts", 10, "t")


def test_failed_acks0_produce_closes_the_connection(broker):
    """Kafka closes the connection of a failed acks=0 produce: the client's only signal."""
    # Produce v3 (acks=0) of garbage records to a topic that does not exist.
    name = b"no-such-topic-acks0"
    records = b"\x01\x02\x03"
    body = struct.pack(">hhi", -1, 0, 1000) + struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(records)) + records
    sock = connect(broker.port)
    sock.sendall(request_frame(0, 3, 1, "acks0", body))
    sock.settimeout(10)
    assert sock.recv(1) == b""


def test_at_the_open_file_limit_the_broker_pauses_accepting_instead_of_spinning(broker_factory):
    """With its open-file limit reached, accept fails at once on every poll: the broker pauses
    accepting for a second at a time (it spun a core before), and serves again once files free."""
    import resource

    broker = broker_factory()
    resource.prlimit(broker.pid, resource.RLIMIT_NOFILE, (300, 300))
    socks = []
    try:
        for _ in range(600):
            socks.append(socket.create_connection(("127.0.0.1", broker.port), timeout=5))
        before = cpu_seconds(broker.pid)
        time.sleep(3)
        spent = cpu_seconds(broker.pid) - before
        # A spinning listener burns about a core (3 CPU-s here); a paused one next to nothing.
        assert spent < 1.0, f"the broker used {spent:.2f} CPU-s in 3 s at its open-file limit"
    finally:
        for s in socks:
            s.close()
    time.sleep(1.5)
    ck_create_topic(broker.bootstrap, "after-fd-limit")
    round_trip(broker.bootstrap, "after-fd-limit", 10, "fd")


def test_a_broker_holds_more_segments_than_it_may_open_files(tmp_path):
    """Segments open their files on demand (docs/storage.md): a broker limited to 512 open files
    (soft and hard, so that its start cannot raise them; 256 are kept for connections and the
    rest) hosts 300 partitions of 3 segments each, 900 segment logs, and confluent-kafka, kcat
    and kafka-python read every record back, before and after a restart. The limit used to
    refuse partitions past 256, and rolls past it failed."""
    import resource

    from conftest import Broker, start_or_fail

    b = Broker(tmp_path / "data", tmp_path / "brook.log")
    b.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))
    start_or_fail(b)
    try:
        assert resource.prlimit(b.pid, resource.RLIMIT_NOFILE) == (512, 512)
        topic, partitions = "more-segments-than-files", 300
        ck_create_topic(b.bootstrap, topic, partitions=partitions, config={"segment.bytes": "1024"})
        # A round a batch a partition, each over segment.bytes: every round after the first rolls.
        for round in range(3):
            ck_produce(b.bootstrap, topic, [Spec(round * partitions + p, None, bytes([65 + round]) * 1000, (), p)
                                            for p in range(partitions)])
        expected = sorted((p, o, bytes([65 + o]) * 1000) for p in range(partitions) for o in range(3))
        segment_logs = sum(1 for p in range(partitions) for f in os.listdir(b.data_dir / f"{topic}-{p}") if f.endswith(".log"))
        assert segment_logs == 3 * partitions
        assert len(os.listdir(f"/proc/{b.pid}/fd")) < 512

        def read_back() -> None:
            got = ck_consume(b.bootstrap, topic, range(partitions), 3 * partitions)
            assert sorted((r.partition, r.offset, r.value) for r in got) == expected
            assert sorted((r.partition, r.offset, r.value) for r in kcat_consume(b.bootstrap, topic)) == expected
            got = kp_consume(b.bootstrap, topic, range(0, partitions, 30), 30)
            assert sorted((r.partition, r.offset, r.value) for r in got) == [e for e in expected if e[0] % 30 == 0]

        read_back()
        assert b.stop() == 0
        start_or_fail(b)
        read_back()
    finally:
        b.kill()


def api_versions_answered(s: socket.socket) -> bool:
    """ApiVersions v0 on `s`: True when answered, False when the broker closed the connection."""
    try:
        s.sendall(request_frame(18, 0, 1, "limits"))
        header = s.recv(4)
        return len(header) == 4
    except (ConnectionError, OSError):
        return False


def test_connections_beyond_max_connections_per_ip_are_closed_as_accepted(broker_factory):
    # 127.0.0.1 may hold 3, 127.0.0.2 is given 1 by an override, and the broker 5 in all.
    b = broker_factory({"max.connections.per.ip": "3", "max.connections.per.ip.overrides": "127.0.0.2:1",
                        "max.connections": "5"})
    # The start-up probe's connection may not have been seen closing yet: wait until 3 are held.
    held = []
    deadline = time.monotonic() + 10
    while len(held) < 3:
        s = connect(b.port)
        if api_versions_answered(s):
            held.append(s)
        else:
            s.close()
            assert time.monotonic() < deadline, f"only {len(held)} connections were taken"
            time.sleep(0.1)
    extra = connect(b.port)
    assert not api_versions_answered(extra)
    extra.close()
    other = socket.create_connection(("127.0.0.1", b.port), source_address=("127.0.0.2", 0), timeout=10)
    assert api_versions_answered(other)
    second = socket.create_connection(("127.0.0.1", b.port), source_address=("127.0.0.2", 0), timeout=10)
    assert not api_versions_answered(second)
    second.close()
    # A closed connection gives its place back.
    held.pop().close()
    deadline = time.monotonic() + 10
    while True:
        again = connect(b.port)
        if api_versions_answered(again):
            held.append(again)
            break
        again.close()
        assert time.monotonic() < deadline, "the place of a closed connection did not come back"
        time.sleep(0.1)
    # max.connections: 4 open (3 + 1), a fifth from 127.0.0.3 is taken, a sixth is not.
    fifth = socket.create_connection(("127.0.0.1", b.port), source_address=("127.0.0.3", 0), timeout=10)
    assert api_versions_answered(fifth)
    sixth = socket.create_connection(("127.0.0.1", b.port), source_address=("127.0.0.4", 0), timeout=10)
    assert not api_versions_answered(sixth)
    sixth.close()
    assert "max.connections.per.ip=3 reached for 127.0.0.1" in b.log_path.read_text()
    for s in held + [other, fifth]:
        s.close()
