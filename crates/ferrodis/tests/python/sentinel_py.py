"""redis-py's Sentinel client against ferrodis sentinels: master_for() keeps writing across a
failover (SENTINEL FAILOVER), slave_for() reads, discover_master() names the new master.
Usage: sentinel_py.py SENTINEL_PORT [SENTINEL_PORT ...]; prints 'sentinel-py ok' at the end."""
import sys, time
import redis
from redis.sentinel import Sentinel

ports = [int(p) for p in sys.argv[1:]]
sentinel = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=1.0)
old = sentinel.discover_master("m")
assert len(sentinel.discover_slaves("m")) >= 1, sentinel.discover_slaves("m")
master = sentinel.master_for("m", socket_timeout=1.0)
replica = sentinel.slave_for("m", socket_timeout=1.0)
master.set("py:before", "1")

raw = redis.Redis(host="127.0.0.1", port=ports[0], socket_timeout=2.0)
assert raw.execute_command("SENTINEL", "FAILOVER", "m") in (b"OK", "OK", True)

acked, errors, n, last_ok = 0, 0, 0, -1
deadline = time.time() + 60
while time.time() < deadline:
    try:
        master.set("py:%d" % n, n)
        acked += 1
        last_ok = n
    except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
        errors += 1
        time.sleep(0.05)
    n += 1
    new = sentinel.discover_master("m")
    # Done once a write acknowledged through master_for() is on the new master (the old master,
    # alive in a manual failover, takes writes until it is converted to a replica, as in Redis).
    if new != old and last_ok == n - 1 and redis.Redis(host=new[0], port=new[1]).get("py:%d" % last_ok) is not None:
        break
    time.sleep(0.005)
new = sentinel.discover_master("m")
assert new != old, "no failover within 60 s: %s" % (new,)
# The client's writes after the failover land on the new master.
direct = redis.Redis(host=new[0], port=new[1])
assert direct.get("py:%d" % last_ok) is not None
assert direct.get("py:before") == b"1"
# Reads from a replica of the new master.
deadline = time.time() + 30
while time.time() < deadline:
    try:
        if replica.get("py:before") == b"1":
            break
    except (redis.ConnectionError, redis.TimeoutError):
        pass
    time.sleep(0.1)
else:
    raise AssertionError("slave_for() never read py:before")
print("acked %d, errors during the switch %d" % (acked, errors))
print("sentinel-py ok")
