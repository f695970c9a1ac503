#!/usr/bin/env python3
"""Runs the fault campaign (tests/interop/fault_campaign.py) against three real brook processes:

    python3 scripts/fault-campaign.py [--seed S] [--rounds N] [--partitions P] [--rate R] [--data DIR] [--transactions [--copiers]] [--network] [--disks] [--groups] [--clocks] [--controllers]

A seeded schedule of SIGKILLs and SIGSTOP pauses (leader, controller, random node), and with
--network (root) network partitions between nodes each in its own namespace, while an
idempotent acks=all producer writes numbered records; then every acknowledged record must read
back exactly once, in order. Node data and logs stay in --data (a fresh temporary folder by
default) for a failing seed. Uses .build/debug/brook unless BROOK_BIN names another binary; the
interop clients must be installed (scripts/interop.sh installs them). Exits 1 on any problem.
BROOK_CAMPAIGN_DEBUG=eos (or any of librdkafka's debug contexts) makes every client of the
workload write librdkafka's debug log on stderr, each named by its client.id.
"""
import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "interop"))
from fault_campaign import run_campaign  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1 << 31))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=int, default=300, help="records per second, all partitions together")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--transactions", action="store_true", help="also a transactional producer, checked with read_committed")
    parser.add_argument("--copiers", action="store_true", help="with --transactions, two transactional copiers in a ring, checked for exactly-one copies, G1a and G1c")
    parser.add_argument("--disks", action="store_true", help="second log dirs on loop disks, with disk failures among the faults (root)")
    parser.add_argument("--clocks", action="store_true", help="nodes under libfaketime, with wall-clock jumps among the faults")
    parser.add_argument("--controllers", action="store_true", help="voters taken out of the Raft quorum and added back among the faults")
    parser.add_argument("--groups", action="store_true", help="two consumer-group members read throughout, checked for queue anomalies")
    parser.add_argument("--network", action="store_true", help="nodes in network namespaces, with partitions among the faults (root)")
    args = parser.parse_args()
    root = args.data or Path(tempfile.mkdtemp(prefix="brook-campaign-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"campaign seed {args.seed}, {args.rounds} rounds{', with network partitions' if args.network else ''}, data in {root}", flush=True)
    outcome = run_campaign(root, seed=args.seed, rounds=args.rounds, partitions=args.partitions, rate=args.rate,
                           transactions=args.transactions, network=args.network, groups=args.groups, clocks=args.clocks,
                           controllers=args.controllers, copiers=args.copiers, disks=args.disks, log=lambda line: print(line, flush=True))
    print(outcome.summary())
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
