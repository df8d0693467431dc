#!/usr/bin/env bash
# Write throughput under each fsync mode, side by side with Redis's AOF modes (same redis-benchmark SET
# with 50 clients), and recovery time for N keys from the WAL alone and from a snapshot.
#
#   scripts/bench-durability.sh            REQUESTS=100000 N=1000000 by default
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-100000}
N=${N:-1000000}
cargo build --release -q -p synap-server
SYNAP=target/release/synap-server
CLEANUP_SIGNAL=KILL
. scripts/common.sh
bench() { redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -t set -r 100000 --csv 2>/dev/null | tail -1 | tr -d '"' | awk -F, '{printf "%12s %9s\n", $2, $7}'; }

printf '%-28s %12s %9s\n' server rps p99_ms
for mode in memory never periodic always; do
  port=$(free_port); dir="$work/s-$mode"
  if [ "$mode" = memory ]; then extra=(--persistence false); else extra=(--fsync "$mode"); fi
  "$SYNAP" --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$port" --data-dir "$dir" --log-level warn "${extra[@]}" >/dev/null 2>&1 & pid=$!; pids+=($pid)
  wait_port "$port"; printf '%-28s ' "synap fsync=$mode"; bench "$port"; kill "$pid"; wait "$pid" 2>/dev/null || true
  port=$(free_port)
  case $mode in
    memory) r=(--appendonly no); name="redis no-aof";;
    never) r=(--appendonly yes --appendfsync no); name="redis appendfsync no";;
    periodic) r=(--appendonly yes --appendfsync everysec); name="redis appendfsync everysec";;
    always) r=(--appendonly yes --appendfsync always); name="redis appendfsync always";;
  esac
  redis-server --port "$port" --bind 127.0.0.1 --save "" --dir "$work" --appendfilename "r-$mode.aof" "${r[@]}" --daemonize no --logfile "$work/r.log" & pid=$!; pids+=($pid)
  wait_port "$port"; printf '%-28s ' "$name"; bench "$port"; kill "$pid"; wait "$pid" 2>/dev/null || true
done

# Recovery time for N keys.
python3 - "$N" > "$work/load.resp" <<'PY'
import sys
n = int(sys.argv[1]); v = b"v" * 100; out = sys.stdout.buffer
for i in range(n):
    k = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
PY
dir="$work/recovery"
start() { # prints the recovery log line's millis
  port=$(free_port); hport=$(free_port)
  "$SYNAP" --http-addr "127.0.0.1:$hport" --resp-addr "127.0.0.1:$port" --data-dir "$dir" --log-format json --log-level info >"$work/out" 2>&1 & pid=$!; pids+=($pid)
  wait_port "$port"
}
start; redis-cli -p "$port" --pipe < "$work/load.resp" >/dev/null; kill -9 "$pid"; wait "$pid" 2>/dev/null || true
t0=$(date +%s%N); start; t1=$(date +%s%N)
keys=$(redis-cli -p "$port" dbsize)
echo "recovery of $keys keys from the WAL only: $(grep -o '"millis":[0-9]*' "$work/out" | head -1 | cut -d: -f2) ms in recovery, $(( (t1-t0)/1000000 )) ms to ready"
curl -s -X POST "127.0.0.1:$hport/snapshot" >/dev/null; kill -9 "$pid"; wait "$pid" 2>/dev/null || true
t0=$(date +%s%N); start; t1=$(date +%s%N)
keys=$(redis-cli -p "$port" dbsize)
echo "recovery of $keys keys from a snapshot: $(grep -o '"millis":[0-9]*' "$work/out" | head -1 | cut -d: -f2) ms in recovery, $(( (t1-t0)/1000000 )) ms to ready"
kill "$pid"; wait "$pid" 2>/dev/null || true
