#!/usr/bin/env bash
# Memory per key, side by side: loads the same N keys (default 1M, 100-byte values, keys `key:%012d`) into
# redis-server and synap-server through `redis-cli --pipe`, then reports each server's own accounting
# (`used_memory`), Synap's allocator figure, and both processes' RSS growth.
#
#   KIND=hash scripts/memory-vs-redis.sh    # N members of one hash (field `f:%012d`, SIZE-byte values)
#   KIND=set  scripts/memory-vs-redis.sh    # N members of one set (`m:%012d`)
#   KIND=zset scripts/memory-vs-redis.sh    # N members of one sorted set (score = i)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
SIZE=${SIZE:-100}
KIND=${KIND:-string}
cargo build --release -q -p synap-server
. scripts/common.sh
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
info() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: -v k="$2" '$1==k {print $2}'; }

python3 - "$N" "$SIZE" "$KIND" > "$work/load.resp" <<'PY'
import sys
n, size, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
v = b"v" * size
out = sys.stdout.buffer
def cmd(*args):
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
for i in range(n):
    if kind == "string":
        cmd(b"SET", b"key:%012d" % i, v)
    elif kind == "hash":
        cmd(b"HSET", b"big", b"f:%012d" % i, v)
    elif kind == "set":
        cmd(b"SADD", b"big", b"m:%012d" % i)
    else:
        cmd(b"ZADD", b"big", b"%d" % i, b"m:%012d" % i)
PY

rp=$(free_port); redis-server --port "$rp" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --logfile "$work/r.log" & pids+=($!); rpid=$!; wait_port "$rp"
sp=$(free_port); target/release/synap-server --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$sp" --persistence false --log-level warn >/dev/null 2>&1 & pids+=($!); spid=$!; wait_port "$sp"
r0=$(info "$rp" used_memory); rr0=$(rss_kb "$rpid"); s0=$(info "$sp" used_memory); sa0=$(info "$sp" used_memory_allocator); sr0=$(rss_kb "$spid")
redis-cli -p "$rp" --pipe < "$work/load.resp" >/dev/null
redis-cli -p "$sp" --pipe < "$work/load.resp" >/dev/null
r1=$(info "$rp" used_memory); rr1=$(rss_kb "$rpid"); s1=$(info "$sp" used_memory); sa1=$(info "$sp" used_memory_allocator); sr1=$(rss_kb "$spid")
case $KIND in
  string) got=$(redis-cli -p "$sp" dbsize) ;;
  hash) got=$(redis-cli -p "$sp" hlen big) ;;
  set) got=$(redis-cli -p "$sp" scard big) ;;
  *) got=$(redis-cli -p "$sp" zcard big) ;;
esac
[ "$got" = "$N" ] || { echo "synap holds $got of $N items" >&2; exit 1; }
echo "kind=$KIND"
python3 - "$N" "$r0" "$r1" "$rr0" "$rr1" "$s0" "$s1" "$sa0" "$sa1" "$sr0" "$sr1" <<'PY'
import sys
n, r0, r1, rr0, rr1, s0, s1, sa0, sa1, sr0, sr1 = map(int, sys.argv[1:])
print(f"items={n}")
print(f"redis used_memory:           {(r1-r0)/n:7.1f} bytes/item")
print(f"redis RSS growth:            {(rr1-rr0)*1024/n:7.1f} bytes/item")
print(f"synap used_memory:           {(s1-s0)/n:7.1f} bytes/item")
print(f"synap allocator (jemalloc):  {(sa1-sa0)/n:7.1f} bytes/item")
print(f"synap RSS growth:            {(sr1-sr0)*1024/n:7.1f} bytes/item")
print(f"ratio synap/redis (allocator vs used_memory): {(sa1-sa0)/(r1-r0):.2f}")
print(f"ratio synap/redis (RSS growth):               {(sr1-sr0)/(rr1-rr0):.2f}")
PY
