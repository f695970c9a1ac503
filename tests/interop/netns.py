"""Network partitions between the nodes of a test cluster, made with network namespaces.

Each node runs in its own namespace with one veth interface on a bridge in the root namespace,
where the test's clients run: nodes and clients reach each other on a private /24 (10.x.y.0).
A cut between two nodes makes each drop, on input, every packet from the other (a policy rule
of type blackhole placed before the local table): connections between them hang, as across a
real partition (nothing is refused, nothing reset), while clients still reach both. Healing
removes the rules. Needs root (CAP_NET_ADMIN) and iproute2; `Network.unavailable()` says why
not where it cannot run. Everything made is removed at exit, pass or fail.
"""
from __future__ import annotations

import atexit
import os
import random
import shutil
import subprocess

_networks: "set[Network]" = set()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=check)


class Network:
    # Rule preferences: cuts come before the local table, which moves from 0 to LOCAL_PREF.
    CUT_PREF = 100
    LOCAL_PREF = 1000

    @staticmethod
    def unavailable() -> "str | None":
        """Why namespaces cannot be made here, or None."""
        if shutil.which("ip") is None:
            return "iproute2's ip is not installed"
        if os.geteuid() != 0:
            return "network namespaces need root"
        probe = f"brook-probe-{os.getpid()}"
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"ip netns add failed: {made.stderr.strip()}"
        _ip("netns", "del", probe, check=False)
        return None

    def __init__(self, node_ids) -> None:
        rng = random.SystemRandom()
        self.tag = f"{rng.randrange(1 << 20):05x}"
        self.subnet = f"10.{rng.randrange(200, 250)}.{rng.randrange(256)}"
        self.bridge = f"bk{self.tag}br"
        self.ids = sorted(node_ids)
        self.cuts: "set[tuple[int, int]]" = set()
        _networks.add(self)
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in self.ids:
                ns, veth = self.namespace(i), f"bk{self.tag}h{i}"
                _ip("netns", "add", ns)
                _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _ip("link", "set", veth, "master", self.bridge, "up")
                _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "rule", "add", "pref", str(self.LOCAL_PREF), "lookup", "local")
                _ip("-n", ns, "rule", "del", "pref", "0")
        except subprocess.CalledProcessError as error:
            self.destroy()
            raise RuntimeError(f"cannot make the test network: {error.cmd}: {error.stderr}") from error

    def namespace(self, node: int) -> str:
        return f"brook-{self.tag}-{node}"

    def address(self, node: int) -> str:
        return f"{self.subnet}.{10 + node}"

    def prefix(self, node: int) -> "list[str]":
        """The command prefix that runs a program in `node`'s namespace."""
        return ["ip", "netns", "exec", self.namespace(node)]

    def cut(self, a: int, b: int) -> None:
        """Nothing passes between nodes a and b, either way, until `heal`."""
        if a == b or (min(a, b), max(a, b)) in self.cuts:
            return
        for here, there in ((a, b), (b, a)):
            _ip("-n", self.namespace(here), "rule", "add", "pref", str(self.CUT_PREF), "from", self.address(there), "blackhole")
        self.cuts.add((min(a, b), max(a, b)))

    def isolate(self, node: int) -> None:
        """Cuts `node` off from every other node (clients still reach it)."""
        for other in self.ids:
            self.cut(node, other)

    def heal(self) -> None:
        for a, b in sorted(self.cuts):
            for here, there in ((a, b), (b, a)):
                _ip("-n", self.namespace(here), "rule", "del", "pref", str(self.CUT_PREF), "from", self.address(there),
                    "blackhole", check=False)
        self.cuts.clear()

    def destroy(self) -> None:
        for i in self.ids:
            _ip("netns", "del", self.namespace(i), check=False)
        _ip("link", "del", self.bridge, check=False)
        _networks.discard(self)


@atexit.register
def _destroy_all() -> None:
    for network in list(_networks):
        network.destroy()
