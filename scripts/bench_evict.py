#!/usr/bin/env python3
"""Cache hit ratio under eviction, redis-server against ferrodis in one run.
A cache-aside workload: every request GETs a key and SETs it on a miss. 80% of requests go to a
hot set of HOT keys (uniform), 20% to a cold scan that never repeats a key. With maxmemory well
below what the scan writes, a good LRU/LFU keeps the hot set. Prints one table row per server
and policy. Usage: bench_evict.py [--candidate BIN] [--requests N] [--hot N] [--maxmemory BYTES]"""
import argparse, os, random, socket, subprocess, tempfile, time
import redis

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def run(binary, policy, args):
    port = free_port()
    d = tempfile.mkdtemp()
    p = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", d,
                          "--maxmemory", str(args.maxmemory), "--maxmemory-policy", policy],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping(); break
            except redis.ConnectionError:
                time.sleep(0.05)
        rng = random.Random(42)
        value = b"x" * args.value
        cold = 0
        hits = gets = 0
        warm = args.requests // 5
        for start in range(0, args.requests, 200):
            keys = []
            for _ in range(200):
                if rng.random() < 0.8:
                    keys.append("hot:%d" % rng.randrange(args.hot))
                else:
                    keys.append("cold:%d" % cold); cold += 1
            got = r.mget(keys)
            miss = [k for k, v in zip(keys, got) if v is None]
            if miss:
                pipe = r.pipeline(transaction=False)
                for k in miss:
                    pipe.set(k, value)
                pipe.execute()
            if start >= warm:
                gets += len(keys); hits += len(keys) - len(miss)
        info = r.info()
        return hits / gets, info["used_memory"], info["evicted_keys"]
    finally:
        p.kill(); p.wait()

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--candidate", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "ferrodis"))
ap.add_argument("--requests", type=int, default=300000)
ap.add_argument("--hot", type=int, default=20000)
ap.add_argument("--value", type=int, default=200)
ap.add_argument("--maxmemory", type=int, default=16 * 1024 * 1024)
a = ap.parse_args()
print("| policy | server | hit ratio | used_memory | evicted_keys |")
print("|---|---|---|---|---|")
for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-random"]:
    for name, b in [("redis", "redis-server"), ("ferrodis", a.candidate)]:
        h, u, e = run(b, policy, a)
        print("| %s | %s | %.3f | %d | %d |" % (policy, name, h, u, e), flush=True)
