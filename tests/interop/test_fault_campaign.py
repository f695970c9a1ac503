"""The fault campaign (fault_campaign.py) at a small size, as the test command runs it: a few
seeded rounds of kills and pauses against three real brokers while an idempotent acks=all
producer and a transactional one write; no acknowledged record may be lost, changed, duplicated
or reordered, and read_committed must see exactly the committed transactions. The seed
is printed (and in the failure) so that a failing schedule can be run again with
scripts/fault-campaign.py --seed S."""
from __future__ import annotations

import os
import random

import pytest

from fault_campaign import run_campaign


@pytest.mark.timeout(600)
def test_a_small_fault_campaign_loses_no_acknowledged_record(tmp_path):
    seed = int(os.environ.get("BROOK_CAMPAIGN_SEED", random.SystemRandom().randrange(1 << 31)))
    rounds = int(os.environ.get("BROOK_CAMPAIGN_ROUNDS", "5"))
    outcome = run_campaign(tmp_path, seed=seed, rounds=rounds, transactions=True)
    print(outcome.summary())
    assert outcome.ok, outcome.summary()
    assert outcome.acked > 1000, outcome.summary()
