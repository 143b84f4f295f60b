"""redis-py's RedisCluster against a ferrodis cluster: 'write' sets 500 keys spread over every
slot range and reads them back; 'read' (after a reshard) reads them again through the client's
slot cache, which must follow MOVED. Usage: cluster_py.py write|read PORT; prints 'cluster-py ok'."""
import sys
from redis.cluster import RedisCluster

mode, port = sys.argv[1], int(sys.argv[2])
rc = RedisCluster(host="127.0.0.1", port=port, socket_timeout=2.0)
if mode == "write":
    for i in range(500):
        rc.set("py:%d" % i, i)
    pipe = rc.pipeline()
    for i in range(500):
        pipe.get("py:%d" % i)
    got = pipe.execute()
    assert got == [str(i).encode() for i in range(500)], got[:5]
for i in range(500):
    assert rc.get("py:%d" % i) == str(i).encode(), i
assert len(rc.get_primaries()) == 3, rc.get_primaries()
print("cluster-py ok")
