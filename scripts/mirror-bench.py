#!/usr/bin/env python3
"""`brook mirror` beside `brook mirror --preserve-offsets` (docs/benchmarks.md): two release
brokers on free loopback ports (data under /tmp/mirbench), 1M x 100 B records in 4 partitions
written to the source by `brook perf produce`, then each mode given on the command line
(`records`, `preserve`) mirrors them to a fresh target: wall time until the target holds them
all, the mirror's CPU and the target broker's CPU per record. Every process is stopped at the
end, pass or fail. Needs a release build (`swift build -c release --product brook`) and
confluent-kafka (for the watermarks).

    scripts/mirror-bench.py records preserve records preserve
"""
import os, subprocess, sys, time, socket, signal, shutil
from confluent_kafka import Consumer, TopicPartition
B = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "release", "brook")
def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def broker(name):
    port = free(); d = f"/tmp/mirbench/{name}"; shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
    p = subprocess.Popen([B, "serve", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={d}",
                          "--override", "http.listeners=", "--override", "num.partitions=4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try: socket.create_connection(("127.0.0.1", port), 0.2).close(); break
        except OSError: time.sleep(0.1)
    return p, f"127.0.0.1:{port}"
def total(bootstrap, topic, parts=4):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, q), timeout=5, cached=False)[1] for q in range(parts))
    except Exception:
        return 0
    finally:
        c.close()
procs = []
try:
    src, sa = broker("src"); procs.append(src)
    N = 1_000_000
    subprocess.run([B, "perf", "produce", "--bootstrap-server", sa, "--topic", "mb", "--num-records", str(N), "--record-size", "100", "--acks", "1"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    want = total(sa, "mb")
    print("source records", want)
    for mode in sys.argv[1:]:
        tgt, ta = broker("tgt-" + mode); procs.append(tgt)
        extra = ["--preserve-offsets"] if mode == "preserve" else []
        t0 = time.monotonic(); tc0 = cpu(tgt.pid)
        m = subprocess.Popen([B, "mirror", "--source", sa, "--target", ta, "--topics", "mb", "--name", mode] + extra,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(m)
        while total(ta, "mb") < want:
            assert time.monotonic() - t0 < 300, "too slow"
            time.sleep(0.2)
        el = time.monotonic() - t0
        mc = cpu(m.pid); tc = cpu(tgt.pid) - tc0
        print(f"{mode}: {want} records in {el:.2f} s = {want/el/1000:.0f}k rec/s; mirror CPU {mc:.2f} s ({mc/want*1e6:.2f} us/record); target broker CPU {tc:.2f} s ({tc/want*1e6:.2f} us/record)")
        m.send_signal(signal.SIGTERM); m.wait(30)
        tgt.send_signal(signal.SIGTERM); tgt.wait(60)
finally:
    for p in procs:
        if p.poll() is None: p.kill()
