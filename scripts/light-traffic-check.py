#!/usr/bin/env python3
"""What a little traffic costs a cluster holding many partitions: starts `brook dev cluster`
(three nodes) from BINARY on BASE_PORT and up, creates 100 topics x 100 partitions with 3
replicas (confluent-kafka), waits 40 s, then measures each node's CPU over 20 s idle and over
20 s of 500 records/s (100 B, acks=all, linger.ms=0) to one partition, with the producer's
delivery times (p50, p99, max). Stops the cluster on exit, pass or fail; data in
/tmp/light-BASE_PORT.

    python3 scripts/light-traffic-check.py .build/release/brook 34000
"""
import subprocess, sys, time, os, signal, threading, shutil
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
binary, base = sys.argv[1], int(sys.argv[2])
data = f"/tmp/light-{base}"
shutil.rmtree(data, ignore_errors=True); os.makedirs(data)
p = subprocess.Popen([binary, "dev", "cluster", "--data", data, "--base-port", str(base), "--http-base-port", str(base + 1000)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
try:
    time.sleep(8)
    pids = [int(open(f"{data}/node{i}.pid").read()) for i in (1, 2, 3)]
    a = AdminClient({"bootstrap.servers": f"127.0.0.1:{base}"})
    for f in a.create_topics([NewTopic(f"t{i}", 100, 3) for i in range(100)]).values(): f.result(120)
    time.sleep(40)
    def window(label, secs, work=None):
        c0 = [cpu(x) for x in pids]; t0 = time.monotonic()
        n = work(secs) if work else (time.sleep(secs) or 0)
        dt = time.monotonic() - t0
        print(label, n, [f"{100*(cpu(x)-c)/dt:.1f}%" for x, c in zip(pids, c0)], flush=True)
    lat = []
    def produce(secs, rate=500):
        pr = Producer({"bootstrap.servers": f"127.0.0.1:{base}", "acks": "all", "linger.ms": 0})
        end = time.monotonic() + secs; n = 0
        while time.monotonic() < end:
            t = time.monotonic()
            pr.produce("t0", partition=0, value=b"x" * 100, on_delivery=lambda e, m, t=t: lat.append(time.monotonic() - t)); pr.poll(0); n += 1
            time.sleep(1 / rate)
        pr.flush(30); return n
    window("idle", 20)
    window("500/s to one partition", 20, produce)
    lat.sort()
    print(f"acks=all delivery: p50 {1000*lat[len(lat)//2]:.2f} ms, p99 {1000*lat[int(len(lat)*0.99)]:.2f} ms, max {1000*lat[-1]:.1f} ms", flush=True)
finally:
    os.killpg(p.pid, signal.SIGTERM); p.wait(60)
