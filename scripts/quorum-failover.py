#!/usr/bin/env python3
"""Three `brook controller` processes on loopback: a leader is elected; SIGKILL it and another
is elected; every entry acknowledged before the kill is still committed, with the same term and
data, on the new leader and, after a restart, on the killed node. Prints the failover times.

    scripts/quorum-failover.py --brook .build/debug/brook [--rounds 3] [--election-timeout-ms 1000]

Every process it starts is killed on exit, pass or fail; every wait is bounded.
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class Quorum:
    def __init__(self, brook, election_ms, size=3):
        self.brook = brook
        self.election_ms = election_ms
        self.root = tempfile.mkdtemp(prefix="brook-quorum-")
        self.ports = {i: free_port() for i in range(1, size + 1)}
        self.voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in self.ports.items())
        self.procs = {}

    def start(self, node):
        log = open(os.path.join(self.root, f"controller-{node}.log"), "ab")
        self.procs[node] = subprocess.Popen(
            [self.brook, "controller", "--node-id", str(node), "--controller-quorum-voters", self.voters,
             "--data-dir", os.path.join(self.root, f"data-{node}"), "--election-timeout-ms", str(self.election_ms)],
            stdout=log, stderr=subprocess.STDOUT)

    def kill(self, node):
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def terminate(self, node, limit_s=10):
        """SIGTERM: the controller must stop cleanly (exit 0) within the limit."""
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(f"controller {node} did not stop within {limit_s} s of SIGTERM")
        if code != 0:
            raise AssertionError(f"controller {node} exited {code} on SIGTERM (see its log in {self.root})")

    def stop_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs = {}

    def ask(self, node, *args, timeout_ms=2000):
        cmd = [self.brook, "quorum", *args, "--controller", f"127.0.0.1:{self.ports[node]}", "--timeout-ms", str(timeout_ms)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 10)
        return out.returncode, out.stdout

    def status(self, node):
        code, out = self.ask(node, "status", timeout_ms=500)
        if code != 0:
            return None
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for_leader(self, nodes, newer_than=0, limit_s=20):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for node in nodes:
                s = self.status(node)
                if s and s["role"] == "leader" and int(s["term"]) > newer_than:
                    return node, int(s["term"]), time.monotonic()
            time.sleep(0.01)
        raise SystemExit(f"FAIL: no leader among {nodes} within {limit_s} s (logs in {self.root})")

    def append(self, node, count, prefix):
        code, out = self.ask(node, "append", "--count", str(count), "--value", f"{prefix}-N", timeout_ms=5000)
        if code != 0:
            raise SystemExit(f"FAIL: append through leader {node}: {out}")
        acked = []
        for n, line in enumerate(out.splitlines()):
            fields = dict(kv.split("=", 1) for kv in line.split())
            acked.append((int(fields["index"]), int(fields["term"]), f"{prefix}-{n}"))
        return acked

    def check_entries(self, node, acked):
        for index, term, data in acked:
            code, out = self.ask(node, "read", "--index", str(index))
            fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            if code != 0 or int(fields["term"]) != term or fields["data"] != data:
                raise SystemExit(f"FAIL: acknowledged entry {index} (term {term}, {data}) is not intact on node {node}: {out.strip()}")

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--brook", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--election-timeout-ms", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=20)
    args = parser.parse_args()
    quorum = Quorum(os.path.abspath(args.brook), args.election_timeout_ms)
    failovers = []
    ok = False
    try:
        for node in quorum.ports:
            quorum.start(node)
        leader, term, _ = quorum.wait_for_leader(list(quorum.ports))
        acked = []
        for round in range(args.rounds):
            acked += quorum.append(leader, args.entries, f"round{round}")
            quorum.check_entries(leader, acked)
            killed_at = time.monotonic()
            quorum.kill(leader)
            survivors = [n for n in quorum.ports if n != leader]
            new_leader, new_term, elected_at = quorum.wait_for_leader(survivors, newer_than=term)
            failover_ms = (elected_at - killed_at) * 1000
            failovers.append(failover_ms)
            print(f"round {round}: killed leader {leader} (term {term}); node {new_leader} leads term {new_term} after {failover_ms:.0f} ms")
            quorum.check_entries(new_leader, acked)
            acked += quorum.append(new_leader, 5, f"after{round}")
            # The killed node comes back as a follower and catches up from the new leader.
            quorum.start(leader)
            deadline = time.monotonic() + 20
            target = int(quorum.status(new_leader)["commit"])
            while True:
                s = quorum.status(leader)
                if s and int(s["commit"]) >= target and int(s["term"]) >= new_term:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"FAIL: restarted node {leader} did not catch up to {target}: {s}")
                time.sleep(0.05)
            quorum.check_entries(leader, acked)
            leader, term = new_leader, new_term
        # Every controller stops cleanly on SIGTERM, the leader included.
        for node in list(quorum.procs):
            quorum.terminate(node)
        print("every controller stopped cleanly on SIGTERM")
        ok = True
        print(f"{len(acked)} acknowledged entries intact on every node; failover ms over {len(failovers)} kills: "
              f"min {min(failovers):.0f}, median {statistics.median(failovers):.0f}, max {max(failovers):.0f} "
              f"(election timeout {args.election_timeout_ms} ms)")
    finally:
        quorum.stop_all()
        if ok:
            shutil.rmtree(quorum.root, ignore_errors=True)
        else:
            print(f"controller logs kept in {quorum.root}", file=sys.stderr)

if __name__ == "__main__":
    main()
