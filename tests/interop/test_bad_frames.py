"""Malformed input on raw sockets: the broker drops the connection (and only that connection),
answers an ApiVersions request of a version it does not know the way Kafka does (a v0 response
with UNSUPPORTED_VERSION and its API list, so the client can pick a version), and serves real
clients normally afterwards."""
from __future__ import annotations

import random
import socket
import struct
import time

import pytest

from brook_interop import (
    api_versions_v3_body,
    ck_admin,
    connect,
    parse_api_versions,
    read_response,
    request_frame,
)

CLOSE_TIMEOUT = 10.0


def expect_closed(sock: socket.socket, what: str) -> None:
    """The broker closes the connection within CLOSE_TIMEOUT (EOF or reset); any bytes it sends
    first are ignored."""
    sock.settimeout(CLOSE_TIMEOUT)
    deadline = time.monotonic() + CLOSE_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return
    except (ConnectionResetError, BrokenPipeError):
        return
    except socket.timeout:
        pass
    pytest.fail(f"{what}: the broker kept the connection open for {CLOSE_TIMEOUT}s")


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send, tolerating a broker that already closed the connection."""
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass


def still_serving(broker) -> None:
    assert broker.alive(), f"brook died\n{broker.log_tail()}"
    md = ck_admin(broker.bootstrap).list_topics(timeout=10)
    assert set(md.brokers) == {1}


def header_v1(api_key: int, version: int, corr: int, client_id: str = "interop") -> bytes:
    cid = client_id.encode()
    return struct.pack(">hhih", api_key, version, corr, len(cid)) + cid


def framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


BAD_FRAMES = {
    # An HTTP request: its first four bytes read as a size of ~1.2 GB.
    "http request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    # Random bytes (seeded) whose size prefix is small and positive: a body that decodes to nothing.
    "random body": framed(random.Random(7).randbytes(64)),
    # 200 MiB announced, more than socket.request.max.bytes (100 MiB): refused before reading it.
    "200 MiB size": struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 1024,
    "negative size": struct.pack(">i", -5) + b"\x00" * 16,
    "size -1": struct.pack(">i", -1),
    # Valid sizes, undecodable bodies.
    "header cut short": framed(b"\x00\x12\x00"),
    "client id longer than the frame": framed(struct.pack(">hhih", 18, 0, 1, 1000) + b"abc"),
    "unknown api key": framed(header_v1(9999, 0, 1)),
    "Metadata v12 with a garbage body": framed(header_v1(3, 12, 1) + b"\x00" + b"\xff" * 5),
    "Produce v9 with a truncated body": framed(header_v1(0, 9, 1) + b"\x00" + b"\x01"),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_frame_closes_connection(broker, name):
    with connect(broker.port) as s:
        send_quietly(s, BAD_FRAMES[name])
        expect_closed(s, name)
    still_serving(broker)


def test_bad_frame_does_not_disturb_other_connections(broker):
    """A healthy connection opened before a bad one keeps working after it."""
    with connect(broker.port) as good:
        good.sendall(request_frame(18, 0, 1, "good"))
        assert parse_api_versions(read_response(good), 0)[:2] == (1, 0)
        with connect(broker.port) as bad:
            send_quietly(bad, BAD_FRAMES["negative size"])
            expect_closed(bad, "negative size")
        good.sendall(request_frame(18, 0, 2, "good"))
        assert parse_api_versions(read_response(good), 0)[:2] == (2, 0)
    still_serving(broker)


def test_slow_client_half_frame_then_close(broker):
    """A client that sends half a frame and hangs up must not upset the broker."""
    frame = request_frame(18, 3, 5, "half", api_versions_v3_body())
    with connect(broker.port) as s:
        s.sendall(frame[: len(frame) // 2])
        time.sleep(0.2)
    still_serving(broker)


@pytest.mark.parametrize("version", [99, 5, 32767])
def test_api_versions_unsupported_version(broker, version):
    """ApiVersions of an unknown version: a v0-format response (correlation id, error code 35
    UNSUPPORTED_VERSION, the API list), as Kafka answers a newer client."""
    # A newer client sends header v2 (the v1 fields then an empty tagged-field byte) and a
    # flexible body; both parse whether the broker reads the header as v1 or v2.
    with connect(broker.port) as s:
        s.sendall(request_frame(18, version, 4242, "future-client", api_versions_v3_body()))
        corr, err, apis = parse_api_versions(read_response(s), 0)
        assert corr == 4242
        assert err == 35, f"error code {err}, expected 35 (UNSUPPORTED_VERSION)"
        assert 18 in apis, f"the response must list the supported APIs: {apis}"
        lo, hi = apis[18]
        assert lo == 0 and hi >= 4, f"ApiVersions listed as {lo}..{hi}, expected 0..4"
        assert 0 in apis and 1 in apis and 3 in apis, apis

        # The connection stays usable: the client retries with a version the broker knows.
        s.sendall(request_frame(18, 3, 4243, "future-client", api_versions_v3_body()))
        corr, err, apis3 = parse_api_versions(read_response(s), 3)
        assert (corr, err) == (4243, 0)
        assert apis3 == apis
    still_serving(broker)


def test_pipelined_requests_answered_in_order(broker):
    """Ten requests written back to back on one connection: ten responses, in order."""
    with connect(broker.port) as s:
        s.sendall(b"".join(request_frame(18, 0, 100 + i, "pipeline") for i in range(10)))
        corrs = [parse_api_versions(read_response(s), 0)[0] for _ in range(10)]
    assert corrs == list(range(100, 110))
