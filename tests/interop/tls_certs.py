"""Test certificates made with openssl (Debian's): a CA, a broker certificate for 127.0.0.1 and
localhost, a client certificate, a certificate from another CA, and the broker's key store in
the forms Brook reads (PEM with key and chain, the same with an encrypted key, PKCS12)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "2", "-subj", f"/CN={name}", cwd=d)


def make_signed(d: Path, name: str, ca: str, subject: str, san: str | None) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name, cwd=d)


def make_certs(d: Path) -> dict:
    """Writes the files into `d` and returns their paths by role."""
    d.mkdir(parents=True, exist_ok=True)
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_signed(d, "broker", "ca", "/CN=localhost/O=Brook", "IP:127.0.0.1,DNS:localhost")
    make_signed(d, "client", "ca", "/CN=client-1/O=Brook", None)
    make_signed(d, "stranger", "other-ca", "/CN=stranger", None)
    make_signed(d, "renewed", "other-ca", "/CN=localhost/O=Brook renewed", "IP:127.0.0.1,DNS:localhost")
    (d / "keystore-renewed.pem").write_text((d / "renewed.key").read_text() + (d / "renewed.pem").read_text())
    (d / "keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text() + (d / "ca.pem").read_text())
    _openssl("pkey", "-in", "broker.key", "-aes256", "-passout", "pass:key-pass", "-out", "broker-encrypted.key", cwd=d)
    (d / "keystore-encrypted.pem").write_text((d / "broker-encrypted.key").read_text() + (d / "broker.pem").read_text())
    _openssl("pkcs12", "-export", "-inkey", "broker.key", "-in", "broker.pem", "-certfile", "ca.pem", "-out", "keystore.p12",
             "-passout", "pass:store-pass", cwd=d)
    return {name: str(d / name) for name in (
        "ca.pem", "other-ca.pem", "keystore.pem", "keystore-encrypted.pem", "keystore.p12", "client.pem", "client.key",
        "stranger.pem", "stranger.key", "broker.pem", "keystore-renewed.pem")}
