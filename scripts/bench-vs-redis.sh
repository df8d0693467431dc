#!/usr/bin/env bash
# Side-by-side benchmark: the same redis-benchmark commands against redis-server and synap-server, run in
# alternation on free loopback ports, printed as a table of Synap/Redis throughput ratios and p99s.
#
#   scripts/bench-vs-redis.sh                 # full matrix (memory only, then periodic fsync vs appendfsync everysec)
#   REQUESTS=50000 TESTS=set,get scripts/bench-vs-redis.sh
#   TESTS=lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_600 scripts/bench-vs-redis.sh
#   SYNAP_BIN=/path/to/older/synap-server scripts/bench-vs-redis.sh
#
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools) and a release build of
# synap-server (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-set,get,incr,mset,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_600}
PIPELINES=${PIPELINES:-"1 16"}
MODES=${MODES:-"memory persistent"}
ROUNDS=${ROUNDS:-1}

for tool in redis-server redis-benchmark python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
# SYNAP_BIN: another synap-server binary (for example an earlier build, to compare before and after).
if [ -n "${SYNAP_BIN:-}" ]; then SYNAP=$SYNAP_BIN; else cargo build --release -q -p synap-server; SYNAP=target/release/synap-server; fi

. scripts/common.sh


start_redis() { # $1 = mode
  local port; port=$(free_port)
  local args=(--port "$port" --bind 127.0.0.1 --save "" --dir "$work" --daemonize no --logfile "$work/redis.log")
  if [ "$1" = persistent ]; then args+=(--appendonly yes --appendfsync everysec --appendfilename "bench-$port.aof"); else args+=(--appendonly no); fi
  redis-server "${args[@]}" & pids+=($!); REDIS_PID=$!; REDIS_PORT=$port; wait_port "$port"
}
start_synap() { # $1 = mode
  local port; port=$(free_port)
  local dir="$work/synap-$port"
  local args=(--http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$port" --data-dir "$dir" --log-level warn)
  if [ "$1" = persistent ]; then args+=(--persistence true --fsync periodic); else args+=(--persistence false); fi
  "$SYNAP" "${args[@]}" >"$work/synap.out" 2>&1 & pids+=($!); SYNAP_PID=$!; SYNAP_PORT=$port; wait_port "$port"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# run_bench PORT PIPELINE RANDOM -> lines "TEST,rps,p99"
run_bench() {
  local extra=()
  [ "$3" != 0 ] && extra+=(-r "$3")
  redis-benchmark -h 127.0.0.1 -p "$1" -c "$CLIENTS" -n "$REQUESTS" -t "$TESTS" -P "$2" "${extra[@]}" --csv 2>/dev/null \
    | tail -n +2 | tr -d '"' | awk -F, '{print $1 "," $2 "," $7}'
}

printf '%-11s %-15s %-3s %-7s %12s %12s %7s %9s %9s\n' mode test P random synap_rps redis_rps ratio synap_p99 redis_p99
for mode in $MODES; do
  for p in $PIPELINES; do
    for r in 0 100000; do
      for round in $(seq 1 "$ROUNDS"); do
        # Alternate the order between runs so that neither server always goes first.
        if [ $(( (p + r + round) % 2 )) = 0 ]; then order="redis synap"; else order="synap redis"; fi
        for who in $order; do
          if [ "$who" = redis ]; then start_redis "$mode"; run_bench "$REDIS_PORT" "$p" "$r" > "$work/redis.csv"; stop "$REDIS_PID"
          else start_synap "$mode"; run_bench "$SYNAP_PORT" "$p" "$r" > "$work/synap.csv"; stop "$SYNAP_PID"; fi
        done
        join -t, <(sort "$work/synap.csv") <(sort "$work/redis.csv") | while IFS=, read -r test s_rps s_p99 r_rps r_p99; do
          ratio=$(python3 -c "print(f'{$s_rps/$r_rps:.2f}')")
          printf '%-11s %-15s %-3s %-7s %12s %12s %7s %9s %9s\n' "$mode" "$test" "$p" "$r" "$s_rps" "$r_rps" "$ratio" "$s_p99" "$r_p99"
        done
      done
    done
  done
done
