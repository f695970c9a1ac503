"""Fixtures for the interop suite: real `brook serve` processes on loopback.

`broker` (one per test module) and `fresh_broker` (one per test, for tests that restart it) start
`$BROOK_BIN serve` (default: .build/debug/brook) on a free port with a fresh data directory,
wait up to 20 s for the port to accept connections, and at teardown stop it by its PID (SIGTERM,
then SIGKILL after a timeout), pass or fail. `broker_factory(overrides)` starts brokers with extra
`--override key=value` settings. The broker's stderr goes to a file in the test's temp directory;
a failed test's report ends with the tail of it.

Every test runs under a SIGALRM watchdog (BROOK_INTEROP_TEST_TIMEOUT seconds, default 300; a
`@pytest.mark.timeout(N)` marker raises it) unless pytest-timeout is installed, which then applies.
"""
from __future__ import annotations

import atexit
import faulthandler
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from brook_interop import unique_topic

REPO = Path(__file__).resolve().parents[2]
BROOK_BIN = Path(os.environ.get("BROOK_BIN", str(REPO / ".build" / "debug" / "brook")))
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0
TEST_TIMEOUT = int(os.environ.get("BROOK_INTEROP_TEST_TIMEOUT", "300"))
HARD_STOP_GRACE = 60  # seconds past a test's limit before the run is ended (see pytest_runtest_call)

_live: "set[Broker]" = set()


def die_with_parent() -> None:
    """In a broker child before exec: SIGKILL when the test process dies, however it dies (a
    killed pytest runs no atexit, and its brokers would live on)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_handed_out: set = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port from 10,000 to 19,999 (below the kernel's ephemeral range), never handed out
    twice in this run. A port from the ephemeral range (what binding port 0 gives) can be taken
    again before the broker binds it, by an outgoing connection or by a single node's
    controller, which binds port 0 itself: seen in CI as a broker's "Address already in use" for
    the port its own controller had just taken."""
    import random
    # (20,000 and up, below the ephemeral range, is test_cluster.py's free_port_run's.)
    high = min(_ephemeral_low(), 20_000)
    for _ in range(1000):
        port = random.randrange(10_000, max(10_001, high))
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One `brook serve` process, restartable on the same port and data directory."""

    def __init__(self, data_dir: Path, log_path: Path, overrides: Optional[dict] = None) -> None:
        self.binary = BROOK_BIN
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = free_port()
        # Each broker its own HTTP port (metrics, health): two never contend for the default.
        # None: http.listeners not given (the default, 127.0.0.1:9644, if free).
        self.http_port: Optional[int] = free_port()
        self.host = "127.0.0.1"
        self.overrides = dict(overrides or {})
        self.extra_args: list = []  # more `brook serve` options (e.g. --add-scram)
        self.preexec: Optional[Callable] = None  # run in the child before exec (e.g. a setrlimit)
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.expected_down = False

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def pid(self) -> Optional[int]:
        return None if self.proc is None else self.proc.pid

    def command(self) -> list:
        cmd = [
            str(self.binary),
            "serve",
            "--override", f"listeners=PLAINTEXT://{self.host}:{self.port}",
            "--override", f"log.dirs={self.data_dir}",
            "--override", "node.id=1",
        ]
        if self.http_port is not None:
            cmd += ["--override", f"http.listeners=http://{self.host}:{self.http_port}"]
        for k, v in self.overrides.items():
            cmd += ["--override", f"{k}={v}"]
        cmd += self.extra_args
        if os.environ.get("BROOK_LOG_LEVEL"):  # e.g. debug, to follow a failing test in the broker's log
            cmd += ["--log-level", os.environ["BROOK_LOG_LEVEL"]]
        # The broker dies with this process even if pytest itself is killed (util-linux setpriv).
        setpriv = shutil.which("setpriv")
        if setpriv:
            cmd = [setpriv, "--pdeathsig", "KILL", *cmd]
        return cmd

    def start(self, ready_timeout: float = READY_TIMEOUT) -> None:
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a ^C to pytest does not reach the broker directly
                preexec_fn=self._before_exec,
            )
        _live.add(self)
        self.expected_down = False
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"brook exited with {self.proc.returncode} before accepting connections\n{self.log_tail()}"
                )
            if all(self._accepts(port) for port in self.listener_ports()):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"brook did not accept connections on {self.bootstrap} within {ready_timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def _before_exec(self) -> None:
        die_with_parent()
        if self.preexec is not None:
            self.preexec()

    def listener_ports(self) -> list:
        """The Kafka listeners' ports: `self.port` and every one named in a `listeners` override
        (a SASL or TLS listener binds after the first one; a test must not connect before it)."""
        ports = [self.port]
        for listener in self.overrides.get("listeners", "").split(","):
            port = listener.rsplit(":", 1)[-1]
            if "://" in listener and port.isdigit() and int(port) not in ports:
                ports.append(int(port))
        return ports

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """Send `sig` to the broker's PID and wait; SIGKILL if it has not exited after `timeout`
        seconds. Returns its exit status (negative: killed by that signal), or None if it had to
        be killed after the timeout."""
        if self.proc is None:
            return None
        self.expected_down = True
        if self.proc.poll() is not None:
            _live.discard(self)
            return self.proc.returncode
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        _live.discard(self)
        return rc

    def kill(self) -> None:
        """SIGKILL by PID and reap."""
        if self.proc is None:
            return
        self.expected_down = True
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _live.discard(self)

    def restart(self, hard: bool = False, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """Stop (SIGTERM, or SIGKILL when hard) and start again on the same port and data
        directory. Returns the stopped process's exit status (None: SIGTERM timed out)."""
        if hard:
            self.kill()
            rc = self.proc.returncode if self.proc else None
        else:
            rc = self.stop(signal.SIGTERM, timeout)
        self.start()
        return rc

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_bytes().decode(errors="replace")
        except OSError:
            return f"(no broker log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    def close(self) -> Optional[str]:
        """Teardown: returns a complaint if the broker had died on its own, else None."""
        complaint = None
        if self.proc is not None and self.proc.poll() is not None and not self.expected_down:
            complaint = f"brook (pid {self.proc.pid}) died during the tests with status {self.proc.returncode}"
        self.stop(signal.SIGTERM, timeout=15)
        return complaint


def _kill_leftovers() -> None:
    for b in list(_live):
        b.kill()


atexit.register(_kill_leftovers)


def _launch(tmp_path_factory, name: str, overrides: Optional[dict] = None) -> Broker:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
    base = tmp_path_factory.mktemp(safe or "broker")
    b = Broker(base / "data", base / "brook.log", overrides)
    try:
        b.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    return b


def _finish(b: Broker) -> None:
    complaint = b.close()
    if complaint:
        pytest.fail(f"{complaint}\n{b.log_tail()}", pytrace=False)


# --------------------------------------------------------------------------------------------
# Fixtures


def sasl_broker(base: Path, overrides: dict, plaintext: bool = True) -> Broker:
    """A broker (not started) with a SASL_PLAINTEXT listener on `b.sasl_port`, and a PLAINTEXT one
    on `b.port` unless `plaintext` is False; one partition per topic; `overrides` on top."""
    b = Broker(base / "data", base / "brook.log")
    b.sasl_port = free_port()
    listeners = [f"SASL_PLAINTEXT://127.0.0.1:{b.sasl_port}"]
    if plaintext:
        listeners.insert(0, f"PLAINTEXT://127.0.0.1:{b.port}")
    else:
        b.port = b.sasl_port
    b.overrides = {"listeners": ",".join(listeners), "num.partitions": "1", **overrides}
    return b


def start_or_fail(b: Broker) -> Broker:
    """Starts `b`; a broker that does not come up fails the test with its log."""
    try:
        b.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    return b


@pytest.fixture(scope="module")
def broker(request, tmp_path_factory):
    """A broker shared by the tests of one module."""
    b = _launch(tmp_path_factory, request.module.__name__)
    yield b
    _finish(b)


@pytest.fixture
def fresh_broker(request, tmp_path_factory):
    """A broker of this test's own, free to restart or kill."""
    b = _launch(tmp_path_factory, request.node.name)
    yield b
    _finish(b)


class BrokerFactory:
    def __init__(self, tmp_path_factory, name: str) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.name = name
        self.brokers: list = []

    def __call__(self, overrides: Optional[dict] = None) -> Broker:
        b = _launch(self.tmp_path_factory, self.name, overrides)
        self.brokers.append(b)
        return b


@pytest.fixture
def broker_factory(request, tmp_path_factory):
    """Start brokers with extra `--override`s: broker_factory({"num.partitions": 3})."""
    f = BrokerFactory(tmp_path_factory, request.node.name)
    yield f
    complaints = [c for c in (b.close() for b in f.brokers) if c]
    if complaints:
        pytest.fail("\n".join(complaints) + "\n" + "\n".join(b.log_tail() for b in f.brokers), pytrace=False)


class FailingDisk:
    """An ext4 file system on a loop device, mounted at `path`, that `fail()` shuts down
    (FS_IOC_SHUTDOWN without flushing the journal): every I/O on it then fails with EIO, as on
    a dead disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self) -> None:
        import fcntl
        import struct
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, 0x8004587D, struct.pack("I", 2))
        finally:
            os.close(fd)


@pytest.fixture
def failing_disk(tmp_path):
    """A FailingDisk of 256 MiB (skips without root, losetup and mkfs.ext4); unmounted and
    detached at teardown. Ask for it before the brokers that use it, so that they stop first."""
    if os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("mkfs.ext4"):
        pytest.skip("needs root, losetup and mkfs.ext4 for a disk that can fail")
    image, disk = tmp_path / "disk.img", tmp_path / "disk"
    with open(image, "wb") as f:
        f.truncate(256 << 20)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True).stdout.strip()
    mounted = False
    try:
        subprocess.run(["mkfs.ext4", "-q", loop], check=True, timeout=60)
        disk.mkdir()
        subprocess.run(["mount", loop, str(disk)], check=True, timeout=30)
        mounted = True
        yield FailingDisk(disk)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], timeout=30)
        subprocess.run(["losetup", "-d", loop], timeout=30)


@pytest.fixture
def topic(request) -> str:
    return unique_topic(request.node.name)


# --------------------------------------------------------------------------------------------
# Hooks: the broker's stderr on failure, a per-test watchdog, a clear stop without a binary


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit (the suite's own watchdog)")
    # kafka-python 3 loads its protocol schemas with importlib.resources' legacy calls.
    config.addinivalue_line("filterwarnings", "ignore:read_text is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:open_text is deprecated:DeprecationWarning")

    def on_sigterm(signum, frame):  # e.g. timeout(1) around pytest: tear the brokers down first
        _kill_leftovers()
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)


def pytest_sessionstart(session):
    if not BROOK_BIN.is_file() or not os.access(BROOK_BIN, os.X_OK):
        pytest.exit(
            f"brook binary not found at {BROOK_BIN}: build it first (swift build), or set BROOK_BIN",
            returncode=2,
        )


def _brokers_of(item) -> list:
    found = []
    for v in getattr(item, "funcargs", {}).values():
        if isinstance(v, Broker):
            found.append(v)
        elif isinstance(v, BrokerFactory):
            found.extend(v.brokers)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in _brokers_of(item):
            state = "running" if b.alive() else f"exited with {b.proc.returncode if b.proc else None}"
            rep.sections.append((f"brook pid {b.pid} on {b.bootstrap} ({state})", b.log_tail()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if item.config.pluginmanager.hasplugin("timeout"):
        yield
        return
    marker = item.get_closest_marker("timeout")
    limit = int(marker.args[0]) if marker and marker.args else TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded its {limit}s limit")

    def hard_stop():
        # SIGALRM only interrupts Python code: a client stuck inside C (a librdkafka close) is
        # reported and the run ends here rather than hanging until CI's own limit. Capture is
        # suspended first and stdout flushed: os._exit drops buffers, and the report was lost.
        capman = item.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            try:
                capman.suspend_global_capture(in_=False)
            except Exception:
                pass
        sys.stdout.flush()
        sys.stderr.write(f"\n{item.nodeid} is still running {HARD_STOP_GRACE}s after its {limit}s limit; stacks:\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        for b in _brokers_of(item):
            sys.stderr.write(f"--- brook pid {b.pid} on {b.bootstrap}\n{b.log_tail()}\n")
        sys.stderr.flush()
        _kill_leftovers()
        os._exit(3)

    backstop = threading.Timer(limit + HARD_STOP_GRACE, hard_stop)
    backstop.daemon = True
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    backstop.start()
    try:
        yield
    finally:
        backstop.cancel()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
