"""Hostile TLS handshakes for a listener (the security issue's "TLS handshake path" under
hostile input): a real ClientHello (Python's ssl, through memory BIOs) truncated, bit-flipped,
with its record length inflated, or replaced by random bytes; and handshakes that complete and
are followed by records that do not decrypt. Seeded, bounded in count and time; each connection
is closed by us or by the broker. The caller then checks the listener still serves."""
from __future__ import annotations

import random
import socket
import ssl
import time


def client_hello() -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def mutate(hello: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:  # cut anywhere
        return hello[:rng.randrange(1, len(hello))]
    if kind == 1:  # flipped bytes
        data = bytearray(hello)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 2:  # the record or the handshake message claims more than follows
        data = bytearray(hello)
        at = rng.choice([3, 6])  # the record's length, the handshake message's (24-bit, low bytes)
        data[at] = 0xFF
        data[at + 1] = 0xFF
        return bytes(data)
    if kind == 3:  # random bytes, sometimes under a TLS record header
        body = rng.randbytes(rng.randrange(1, 600))
        return (b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body) if rng.random() < 0.5 else body
    return hello + rng.randbytes(rng.randrange(1, 64))  # trailing junk after a good hello


def barrage(host: str, port: int, rounds: int = 150, seed: int = 18, limit_s: float = 30) -> int:
    """Sends `rounds` hostile handshakes; returns how many connections the peer closed."""
    rng = random.Random(seed)
    hello = client_hello()
    closed = 0
    deadline = time.monotonic() + limit_s
    for _ in range(rounds):
        if time.monotonic() > deadline:
            break
        with socket.create_connection((host, port), timeout=2) as s:
            s.settimeout(0.15)
            try:
                s.sendall(mutate(hello, rng))
                while s.recv(4096):
                    pass
                closed += 1
            except (socket.timeout, ConnectionError):
                pass
    # Handshakes that complete, then an application record that does not decrypt.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for _ in range(5):
        with socket.create_connection((host, port), timeout=2) as raw:
            try:
                tls = ctx.wrap_socket(raw, server_hostname="localhost")
            except (ssl.SSLError, ConnectionError, socket.timeout):
                continue  # a listener that wants a client certificate may refuse here already
            tls.settimeout(0.5)
            body = rng.randbytes(48)
            try:
                socket.socket.sendall(tls, b"\x17\x03\x03" + len(body).to_bytes(2, "big") + body)
                while socket.socket.recv(tls, 4096):
                    pass
                closed += 1
            except (socket.timeout, ConnectionError, OSError):
                pass
    return closed
