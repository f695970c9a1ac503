#!/usr/bin/env python3
"""Rebalance time of a consumer group against a running broker, with confluent-kafka (librdkafka).

  scripts/bench-rebalance.py --bootstrap 127.0.0.1:9092 --protocol classic-range --members 20

Creates a topic (--partitions, default 60), starts --members consumers of one new group at
once, and reports:
  join   seconds from creating the first consumer until every member has its share and together they
         hold every partition exactly once;
  leave  seconds from one member's close (it leaves the group) until the others hold every
         partition exactly once again.
Protocols: classic-range, classic-roundrobin, classic-cooperative (cooperative-sticky) and
consumer (KIP-848, group.protocol=consumer; the broker's group.consumer.heartbeat.interval.ms
paces it). Each phase stops after --timeout seconds. Runs --rounds times (a new group each).
"""
import argparse
import statistics
import sys
import time
import uuid

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic


def make_consumer(args, group, i):
    conf = {"bootstrap.servers": args.bootstrap, "group.id": group, "client.id": f"bench-{i}",
            "enable.auto.commit": False, "log_level": 3}
    if args.protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"partition.assignment.strategy": {"classic-range": "range", "classic-roundrobin": "roundrobin",
                                                       "classic-cooperative": "cooperative-sticky"}[args.protocol],
                     "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
    c = ck.Consumer(conf)
    c.subscribe([args.topic])
    return c


def settled(consumers, partitions):
    owned = []
    for c in consumers:
        owned += [tp.partition for tp in c.assignment()]
    return len(owned) == partitions and len(set(owned)) == partitions and all(c.assignment() for c in consumers)


def wait(consumers, partitions, timeout):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        for c in consumers:
            c.poll(0.01)
        if settled(consumers, partitions):
            return time.monotonic() - start
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--protocol", default="classic-range",
                   choices=["classic-range", "classic-roundrobin", "classic-cooperative", "consumer"])
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--partitions", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--topic", default=None)
    args = p.parse_args()
    args.topic = args.topic or f"rebalance-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(args.topic, args.partitions, 1)]).values():
        f.result()
    joins, leaves = [], []
    for r in range(args.rounds):
        group = f"bench-{args.protocol}-{uuid.uuid4().hex[:8]}"
        start = time.monotonic()
        consumers = [make_consumer(args, group, i) for i in range(args.members)]
        created = time.monotonic() - start
        join = wait(consumers, args.partitions, args.timeout)
        if join is not None:
            join += created
        leave = None
        if join is not None:
            leaving = consumers.pop()
            t = time.monotonic()
            leaving.close()
            if wait(consumers, args.partitions, args.timeout) is not None:
                leave = time.monotonic() - t
        for c in consumers:
            c.close()
        print(f"round {r + 1}: join {fmt(join)} (of which {created:.3f} s creating the consumers), leave {fmt(leave)}", flush=True)
        joins.append(join)
        leaves.append(leave)
    ok_j = [x for x in joins if x is not None]
    ok_l = [x for x in leaves if x is not None]
    print(f"{args.protocol}, {args.members} members, {args.partitions} partitions: "
          f"join median {fmt(statistics.median(ok_j) if ok_j else None)}, "
          f"leave median {fmt(statistics.median(ok_l) if ok_l else None)}, "
          f"failed phases {len(joins) - len(ok_j) + len(leaves) - len(ok_l)}")
    return 0 if len(ok_j) == len(joins) and len(ok_l) == len(leaves) else 1


def fmt(x):
    return "timeout" if x is None else f"{x:.3f} s"


if __name__ == "__main__":
    sys.exit(main())
