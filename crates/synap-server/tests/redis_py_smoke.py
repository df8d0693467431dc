"""A smoke run of every data family through redis-py 8 with its default settings (RESP3), as a Python
application would use Synap. Started by redis_py.rs with the server's RESP port; exits non-zero on the
first failed check."""

import sys
import time

import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
r.flushall()

# The protocol redis-py negotiated.
proto = r.execute_command("HELLO")["proto"]
assert proto == 3, f"redis-py 8 speaks RESP3 by default, got {proto}"

# Strings and expiry.
assert r.set("s", "hello", ex=100)
assert r.get("s") == "hello"
assert 0 < r.ttl("s") <= 100
assert r.incrbyfloat("f", 0.1) == 0.1
assert r.incrbyfloat("f", 0.2) == 0.3
assert r.setrange("s", 6, "world") == 11
assert r.getrange("s", 6, -1) == "world"
assert r.getex("s", persist=True) == "hello\x00world"
assert r.ttl("s") == -1
assert r.lcs("s", "s") == "hello\x00world"
assert r.copy("s", "s2") and r.get("s2") == "hello\x00world"
assert r.touch("s", "s2", "nope") == 2

# Bitmaps.
assert r.setbit("b", 7, 1) == 0
assert r.getbit("b", 7) == 1
assert r.bitcount("b") == 1
assert r.bitpos("b", 1) == 7
assert r.bitop("NOT", "nb", "b") == 1

# Hashes.
assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
assert r.hgetall("h") == {"a": "1", "b": "2"}
assert r.hincrby("h", "a", 5) == 6
assert r.hincrbyfloat("h", "c", 1.5) == 1.5
assert sorted(r.hkeys("h")) == ["a", "b", "c"]
assert len(r.hrandfield("h", 2, withvalues=True)) == 4

# Lists, with a blocking pop that times out and one that finds data.
assert r.rpush("l", "a", "b", "c") == 3
assert r.lrange("l", 0, -1) == ["a", "b", "c"]
assert r.lmpop(1, "l", direction="LEFT", count=2) == ["l", ["a", "b"]]
assert r.blpop(["empty"], timeout=0.1) is None
assert list(r.blpop(["l"], timeout=1)) == ["l", "c"]
assert r.lpos("l", "x") is None

# Sets.
assert r.sadd("set", "a", "b", "c") == 3
assert r.smembers("set") == {"a", "b", "c"}
assert r.sinter("set", "set") == {"a", "b", "c"}
assert r.sintercard(1, ["set"]) == 3

# Sorted sets: pairs in RESP3 are what redis-py parses into tuples.
assert r.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
assert r.zrange("z", 0, -1, withscores=True) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
assert r.zrevrange("z", 0, 0, withscores=True) == [("c", 3.0)]
assert r.zrangebyscore("z", 2, "+inf", withscores=True) == [("b", 2.0), ("c", 3.0)]
assert r.zpopmin("z") == [("a", 1.0)]
assert r.zscore("z", "b") == 2.0
assert r.zincrby("z", 0.5, "b") == 2.5
assert r.zunion(["z", "z"], withscores=True) == [("b", 5.0), ("c", 6.0)]
popped = r.zmpop(1, ["z"], min=True)
assert popped[0] == "z" and popped[1][0][0] == "b" and float(popped[1][0][1]) == 2.5, popped
assert r.zrandmember("z") == "c"
assert r.bzpopmin(["empty"], timeout=0.1) is None

# Streams and consumer groups.
first = r.xadd("x", {"f": "v"})
r.xadd("x", {"f": "w"})
assert r.xlen("x") == 2
assert [fields for _, fields in r.xrange("x")] == [{"f": "v"}, {"f": "w"}]
r.xgroup_create("x", "g", id="0")
got = r.xreadgroup("g", "c", {"x": ">"}, count=1)
assert got == {"x": [[(first, {"f": "v"})]]} or got == [["x", [(first, {"f": "v"})]]], got
assert r.xack("x", "g", first) == 1
assert r.xpending("x", "g")["pending"] == 0
assert r.xinfo_groups("x")[0]["name"] == "g"
assert r.type("x") == "stream"

# Keys.
assert r.exists("s", "h", "l", "set", "z", "x") == 5
assert r.expire("h", 100) and r.persist("h")
assert sorted(r.keys("s*")) == ["s", "s2", "set"]
assert r.rename("s2", "s3")
assert r.dbsize() == len(r.keys("*"))

# Transactions.
with r.pipeline(transaction=True) as p:
    p.set("t", 1).incr("t").get("t")
    assert p.execute() == [True, 2, "2"]

# Scripting: registered scripts (EVALSHA, falling back to EVAL) and redis-py's Lock, which releases
# and extends through Lua scripts.
incr_by = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
assert incr_by(keys=["sc"], args=[5]) == 5
assert incr_by(keys=["sc"], args=[2]) == 7
assert r.eval("return {KEYS[1], ARGV[1]}", 1, "k", "v") == ["k", "v"]
lock = r.lock("resource", timeout=5)
assert lock.acquire(blocking=False)
assert not r.lock("resource", timeout=5).acquire(blocking=False)
assert lock.extend(5)
lock.release()
assert r.get("resource") is None

# Functions.
r.function_flush()
assert r.function_load("#!lua name=smoke\nredis.register_function('add', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)") == "smoke"
assert r.fcall("add", 1, "fn", 4) == 4
assert r.function_list(library="smoke")[0][:2] == ["library_name", "smoke"]
r.function_delete("smoke")

# HyperLogLog, bit fields, SORT, geo.
assert r.pfadd("hll", "a", "b", "c") == 1
assert r.pfcount("hll") == 3
assert r.bitfield("bf").incrby("u8", "#0", 200).incrby("u8", "#0", 100).execute() == [200, 44]
r.rpush("nums", 3, 1, 2)
assert r.sort("nums") == ["1", "2", "3"]
assert r.sort("nums", desc=True, start=0, num=1) == ["3"]
assert r.geoadd("geo", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"]) == 2
assert r.geodist("geo", "Palermo", "Catania", unit="km") == 166.2742
assert r.geosearch("geo", longitude=15, latitude=37, radius=200, unit="km", sort="ASC") == ["Catania", "Palermo"]
pos = r.geopos("geo", "Palermo")[0]
assert abs(pos[0] - 13.361389) < 1e-5 and abs(pos[1] - 38.115556) < 1e-5, pos

# Pub/sub.
ps = r.pubsub()
ps.subscribe("news")
deadline = time.time() + 5
while ps.get_message(timeout=0.1) is None and time.time() < deadline:
    pass
assert r.publish("news", "hi") == 1
msg = None
while msg is None and time.time() < deadline:
    msg = ps.get_message(timeout=0.1)
assert msg and msg["data"] == "hi", msg
ps.close()

r.flushall()
print("redis-py smoke: ok")
