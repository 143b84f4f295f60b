"""redis-py's RedisCluster against a ferrodis cluster.
  cluster_py.py write PORT            sets 500 keys over every slot range and reads them back
  cluster_py.py read PORT             reads them again (after a reshard: the client follows MOVED)
  cluster_py.py failover PORT TAG PID writes TAG-ed keys, SIGKILLs PID (the master of TAG's slot)
                                      and keeps writing through the same client until writes
                                      succeed on the promoted replica; every acknowledged key
                                      must then be readable
Prints 'cluster-py ok' at the end."""
import os, signal, sys, time
import redis
from redis.cluster import RedisCluster

mode, port = sys.argv[1], int(sys.argv[2])
rc = RedisCluster(host="127.0.0.1", port=port, socket_timeout=2.0, cluster_error_retry_attempts=1)
if mode == "write":
    for i in range(500):
        rc.set("py:%d" % i, i)
    pipe = rc.pipeline()
    for i in range(500):
        pipe.get("py:%d" % i)
    got = pipe.execute()
    assert got == [str(i).encode() for i in range(500)], got[:5]
if mode in ("write", "read"):
    for i in range(500):
        assert rc.get("py:%d" % i) == str(i).encode(), i
    assert len(rc.get_primaries()) == 3, rc.get_primaries()
if mode == "failover":
    tag, pid = sys.argv[3], int(sys.argv[4])
    acked = []
    for n in range(50):
        rc.set("%s:%d" % (tag, n), n)
        acked.append(n)
    os.kill(pid, signal.SIGKILL)
    n, after, deadline = 50, 0, time.time() + 60
    while after < 20 and time.time() < deadline:
        try:
            rc.set("%s:%d" % (tag, n), n)
            acked.append(n)
            after += 1
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ClusterDownError,
                redis.exceptions.ClusterError, redis.exceptions.ResponseError):
            time.sleep(0.1)
        n += 1
    assert after >= 20, "no writes after the failover within 60 s"
    for k in acked:
        assert rc.get("%s:%d" % (tag, k)) == str(k).encode(), k
print("cluster-py ok")
