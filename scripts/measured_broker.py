"""A `brook serve` for the measurement scripts (soak.py, compaction-latency.py): on a free
loopback port and a temporary data directory, served once it accepts connections, killed and
its directory removed on exit (a SIGTERM to the script included)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> tuple[float, int, int]:
    """CPU seconds (user+system), resident KiB, open files."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss, len(os.listdir(f"/proc/{pid}/fd"))


def percentiles(values: list[float]) -> str:
    """p50, p99 and the maximum of latencies in ms."""
    if not values:
        return "none"
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return f"p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, max {values[-1]:.2f} ms ({len(values)} records)"


class MeasuredBroker:
    """`with MeasuredBroker(brook, overrides, name="soak") as b:` b.bootstrap, b.proc, b.data, b.log_path."""

    def __init__(self, brook: Path, overrides: list[str], name: str, port: int = 0, log_level: str | None = None):
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.work = Path(tempfile.mkdtemp(prefix=f"brook-{name}-"))
        self.data = self.work / "data"
        self.log_path = self.work / "broker.log"
        self.name = name
        args = [str(brook), "serve", "--override", f"listeners=PLAINTEXT://{self.bootstrap}", "--override", f"log.dirs={self.data}"]
        for override in overrides:
            args += ["--override", override]
        if log_level:
            args += ["--log-level", log_level]
        self.args = args
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "MeasuredBroker":
        self.proc = subprocess.Popen(self.args, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)
        signal.signal(signal.SIGTERM, lambda *_: (self.stop(), sys.exit(1)))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    sys.exit(f"{self.name}: the broker did not start")
                time.sleep(0.2)

    def __exit__(self, *_) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.work, ignore_errors=True)
