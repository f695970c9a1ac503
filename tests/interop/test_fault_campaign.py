"""The fault campaign (fault_campaign.py) at a small size, as the test command runs it: a few
seeded rounds of kills, pauses, network partitions (each node in its own network namespace,
where this machine allows it: root and iproute2), clock jumps, controller changes and disk
failures (a loop disk per node, where root and losetup allow) against three real brokers while an idempotent
acks=all producer and a transactional one write and two consumer-group members read; no
acknowledged record may be lost, changed, duplicated or reordered, read_committed must see
exactly the committed transactions, the group must show none of Jepsen's queue anomalies
(check_group), and two transactional copiers in a ring must copy every record exactly once with
no aborted read and no cycle of transactions reading each other's writes (check_copies). The seed
is printed (and in the failure) so that a failing schedule can be run again with
scripts/fault-campaign.py --seed S."""
from __future__ import annotations

import os
import random

import pytest

from brook_cluster import FAKETIME_LIB
from fault_campaign import Disks, run_campaign
from netns import Network


@pytest.mark.timeout(600)
def test_a_small_fault_campaign_loses_no_acknowledged_record(tmp_path):
    seed = int(os.environ.get("BROOK_CAMPAIGN_SEED", random.SystemRandom().randrange(1 << 31)))
    rounds = int(os.environ.get("BROOK_CAMPAIGN_ROUNDS", "6"))
    without = Network.unavailable()
    if without:
        print(f"network partitions left out of this campaign: {without}")
    if not FAKETIME_LIB:
        print("clock jumps left out of this campaign: libfaketime is not installed")
    no_disks = Disks.unavailable()
    if no_disks:
        print(f"disk failures left out of this campaign: {no_disks}")
    outcome = run_campaign(tmp_path, seed=seed, rounds=rounds, transactions=True, network=without is None, groups=True,
                           clocks=FAKETIME_LIB is not None, controllers=True, copiers=True, disks=no_disks is None)
    print(outcome.summary())
    assert outcome.ok, outcome.summary()
    assert outcome.acked > 1000, outcome.summary()


def test_the_group_check_names_each_anomaly():
    """check_group must be able to fail: each anomaly it looks for, planted in a member's runs."""
    from fault_campaign import check_group

    class Member:
        name, error, commits = "m", None, {0: 5}
        runs = [(0, [(0, "0:0"), (1, "0:1"), (3, "0:3"), (2, "0:2")])]

    final = {0: {0: "0:0", 1: "0:1", 2: "0:2", 3: "0:other"}}
    acked = [(0, offset, offset) for offset in range(5)]
    problems = "\n".join(check_group([Member()], final, acked, committed={0: 3}))
    for anomaly in ("poll-skip", "nonmonotonic-poll", "inconsistent-offsets", "lost for the group", "committed-offset regression"):
        assert anomaly in problems, problems
    assert check_group([], final, [], committed={}) == []


def test_the_copy_check_names_each_anomaly():
    """check_copies must be able to fail: a clean ring passes, and each anomaly it looks for,
    planted, is named."""
    from fault_campaign import check_copies

    clean = ["0:0", "a1<0:0", "b1<a1<0:0", "a2<b1<a1<0:0"]
    assert check_copies(clean, {"a": ["0:0", "b1<a1<0:0"], "b": ["a1<0:0", "a2<b1<a1<0:0"]},
                        committed={"w0", "a1", "b1", "a2"}, aborted=set()) == []
    seeds = ["0:0", "0:1", "1:0"]
    x = ["a1<0:0", "a2<0:0", "a3<9:9", "a4<b1<0:0", "a4<0:1"]
    y = ["b1<0:0", "b1<a4<0:1"]
    problems = "\n".join(check_copies(seeds + x + y, {"a": seeds + y, "b": x}, committed={"w0", "a1", "a2", "a3", "a4", "b1"},
                                      aborted={"w1"}))
    for anomaly in ("G1a: 1:0 is visible, written by aborted transaction w1", "G1a: a3<9:9 copies a record that was never committed",
                    "0:0 copied 2 times", "1:0 copied 0 times", "G1c: transactions read each other's writes"):
        assert anomaly in problems, problems
