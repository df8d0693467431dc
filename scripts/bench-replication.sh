#!/usr/bin/env bash
# The seeds' replication scenario side by side: a Synap primary with REPLICAS replicas and a redis-server
# primary with as many `--replicaof` replicas, on free loopback ports, persistent (Synap: periodic fsync;
# Redis: appendfsync everysec). `synap-bench replication` runs on both in alternating rounds: writes at RATE
# on the primary, reads on the replicas, replication lag in ms (probe) and in offsets (INFO).
# Then, flat out (no rate): write throughput on a primary with replicas against a primary alone, and the cost
# of `replication.min_replicas_to_ack: 1` at 50 clients (Synap, kv writes).
#
#   scripts/bench-replication.sh
#   REPLICAS=3 RATE=20000 DURATION=10 ROUNDS=3 scripts/bench-replication.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REPLICAS=${REPLICAS:-3}
RATE=${RATE:-20000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}

for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p synap-server -p synap-bench
SYNAP=target/release/synap-server
BENCH=target/release/synap-bench

. scripts/common.sh
wait_linked() { for _ in $(seq 1 600); do redis-cli -p "$1" info replication | grep -q 'master_link_status:up' && return 0; sleep 0.05; done; echo "replica on $1 did not link" >&2; exit 1; }

start_synap() { # $1 = port, $2 = config file (optional)
  local args=(--http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$1" --data-dir "$work/synap-$1" --log-level warn --fsync periodic)
  [ -n "${2:-}" ] && args+=(--config "$2")
  "$SYNAP" "${args[@]}" >"$work/synap-$1.out" 2>&1 & pids+=($!); wait_port "$1"
}
start_redis() { # $1 = port, $2 = primary port (optional)
  local args=(--port "$1" --bind 127.0.0.1 --save "" --dir "$work" --appendonly yes --appendfsync everysec
    --appendfilename "r-$1.aof" --daemonize no --logfile "$work/redis-$1.log")
  [ -n "${2:-}" ] && args+=(--replicaof 127.0.0.1 "$2")
  redis-server "${args[@]}" & pids+=($!); wait_port "$1"
}

sp=$(free_port); start_synap "$sp"
rp=$(free_port); start_redis "$rp"
s_reps=(); r_reps=()
for _ in $(seq 1 "$REPLICAS"); do
  p=$(free_port); start_synap "$p"; redis-cli -p "$p" replicaof 127.0.0.1 "$sp" >/dev/null; wait_linked "$p"; s_reps+=("127.0.0.1:$p")
  p=$(free_port); start_redis "$p" "$rp"; wait_linked "$p"; r_reps+=("127.0.0.1:$p")
done
join() { local IFS=,; echo "$*"; }

echo "== fixed rate $RATE writes/s, $REPLICAS replicas, $ROUNDS alternating rounds of ${DURATION}s"
"$BENCH" --port "$sp" --compare "127.0.0.1:$rp" --rounds "$ROUNDS" replication \
  --replicas "$(join "${s_reps[@]}")" --compare-replicas "$(join "${r_reps[@]}")" --rate "$RATE" --duration "$DURATION"

echo "== flat out, 50 writers, no readers: primaries with $REPLICAS replicas, then primaries alone"
alone_s=$(free_port); start_synap "$alone_s"
alone_r=$(free_port); start_redis "$alone_r"
"$BENCH" --port "$sp" --compare "127.0.0.1:$rp" --rounds "$ROUNDS" replication --replicas "$(join "${s_reps[@]}")" \
  --compare-replicas "$(join "${r_reps[@]}")" --duration "$DURATION" --writers 50 --readers-per-replica 0
"$BENCH" --port "$alone_s" --compare "127.0.0.1:$alone_r" --rounds "$ROUNDS" replication --duration "$DURATION" --writers 50

echo "== min_replicas_to_ack: 1 against asynchronous replication, 50 clients, SET only (Synap)"
cfg="$work/sync.yaml"; printf 'replication:\n  min_replicas_to_ack: 1\n' >"$cfg"
syn=$(free_port); start_synap "$syn" "$cfg"
syn_rep=$(free_port); start_synap "$syn_rep"; redis-cli -p "$syn_rep" replicaof 127.0.0.1 "$syn" >/dev/null; wait_linked "$syn_rep"
asy=$(free_port); start_synap "$asy"
asy_rep=$(free_port); start_synap "$asy_rep"; redis-cli -p "$asy_rep" replicaof 127.0.0.1 "$asy" >/dev/null; wait_linked "$asy_rep"
"$BENCH" --port "$syn" --target synap --compare "127.0.0.1:$asy" --compare-target synap --rounds "$ROUNDS" \
  kv --read-ratio 0 --connections 50 --duration "$DURATION"
