"""redis-py against a running server (port in argv[1]): the client APIs users touch for
transactions, WATCH retries, scripts (EVALSHA with the NOSCRIPT fallback), the Lock helper
(Lua inside), Pub/Sub, blocking pops, sorted sets, functions, and RESP3."""
import sys
import threading
import time

import redis

port = int(sys.argv[1])
r = redis.Redis(port=port, decode_responses=True)
r.flushall()

# A transaction through a pipeline.
with r.pipeline(transaction=True) as p:
    res = p.set("a", 1).incr("a").lpush("l", "x").execute()
assert res == [True, 2, 1], res


# The WATCH retry helper.
def bump(pipe):
    v = int(pipe.get("a"))
    pipe.multi()
    pipe.set("a", v + 1)


r.transaction(bump, "a")
assert r.get("a") == "3", r.get("a")

# Scripts: registered, run by EVALSHA, re-sent after SCRIPT FLUSH.
s = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
assert s(keys=["c"], args=[5]) == 5
r.script_flush()
assert s(keys=["c"], args=[5]) == 10

# The Lock helper (its release and extend are Lua scripts).
lock = r.lock("res", timeout=5)
assert lock.acquire(blocking=False)
assert not r.lock("res").acquire(blocking=False)
assert lock.extend(5)
lock.release()
assert r.get("res") is None

# Pub/Sub: a channel and a pattern.
ps = r.pubsub()
ps.subscribe("ch")
ps.psubscribe("c*")
got = []
deadline = time.time() + 10
while len([m for m in got if m["type"] in ("subscribe", "psubscribe")]) < 2 and time.time() < deadline:
    m = ps.get_message(timeout=1)
    if m:
        got.append(m)
assert r.publish("ch", "hello") == 2
while len([m for m in got if m["type"] in ("message", "pmessage")]) < 2 and time.time() < deadline:
    m = ps.get_message(timeout=1)
    if m:
        got.append(m)
kinds = sorted(m["type"] for m in got if m["type"] in ("message", "pmessage"))
assert kinds == ["message", "pmessage"], got
assert all(m["data"] == "hello" for m in got if m["type"] in ("message", "pmessage")), got
ps.close()

# A blocking pop served by another client.
threading.Timer(0.2, lambda: redis.Redis(port=port).rpush("q", "item")).start()
popped = r.blpop(["q"], timeout=10)
assert popped is not None and popped[1] == "item", popped

# Sorted sets with scores.
r.zadd("z", {"a": 1, "b": 2.5})
assert r.zrange("z", 0, -1, withscores=True) == [("a", 1.0), ("b", 2.5)]
assert r.zscore("z", "b") == 2.5

# Functions.
r.function_load("#!lua name=pylib\nredis.register_function('echo1', function(k, a) return a[1] end)", replace=True)
assert r.fcall("echo1", 0, "x") == "x"

# RESP3.
r3 = redis.Redis(port=port, protocol=3, decode_responses=True)
r3.hset("h", mapping={"f": "v"})
assert r3.hgetall("h") == {"f": "v"}
assert r3.zrange("z", 0, -1, withscores=True) == [["a", 1.0], ["b", 2.5]] or r3.zrange("z", 0, -1, withscores=True) == [("a", 1.0), ("b", 2.5)]
print("redis-py ok")
