#!/usr/bin/env bash
# A three-node failover cluster against a single node, in the same run: write throughput and latency at 50
# clients with `replication.min_replicas_to_ack: 1` on the cluster's primary (each write waits for every
# in-sync replica) and on a lone node (no replicas, no cluster), both persistent with periodic fsync.
# `synap-bench kv` alternates the two in ROUNDS rounds.
#
#   scripts/bench-cluster.sh
#   DURATION=10 ROUNDS=3 CLIENTS=50 scripts/bench-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-50}

for tool in redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-tools)" >&2; exit 1; }
done
cargo build --release -q -p synap-server -p synap-bench
SYNAP=target/release/synap-server
BENCH=target/release/synap-bench

. scripts/common.sh

start_node() { # $1 = node id, $2 = RESP port, $3 = cluster port
  local cfg="$work/node-$1.yaml"
  printf 'replication:\n  min_replicas_to_ack: 1\ncluster:\n  enabled: true\n  node_id: %s\n  addr: "127.0.0.1:%s"\n  bootstrap: %s\n' \
    "$1" "$3" "$([ "$1" = 1 ] && echo true || echo false)" >"$cfg"
  "$SYNAP" --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$2" --data-dir "$work/node-$1" --log-level warn \
    --fsync periodic --config "$cfg" >"$work/node-$1.out" 2>&1 & pids+=($!)
  wait_port "$2"
}
cluster_field() { redis-cli -p "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"; }

ports=(); cports=()
for id in 1 2 3; do
  p=$(free_port); c=$(free_port); ports+=("$p"); cports+=("$c"); start_node "$id" "$p" "$c"
done
for _ in $(seq 1 200); do [ "$(cluster_field "${ports[0]}" cluster_writable)" = 1 ] && break; sleep 0.05; done
redis-cli -p "${ports[0]}" cluster addnode 2 "127.0.0.1:${cports[1]}" >/dev/null
redis-cli -p "${ports[0]}" cluster addnode 3 "127.0.0.1:${cports[2]}" >/dev/null
for _ in $(seq 1 400); do [ "$(cluster_field "${ports[0]}" cluster_isr)" = "1,2,3" ] && break; sleep 0.05; done
[ "$(cluster_field "${ports[0]}" cluster_isr)" = "1,2,3" ] || { echo "the cluster did not come in sync" >&2; exit 1; }

single=$(free_port)
"$SYNAP" --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$single" --data-dir "$work/single" --log-level warn \
  --fsync periodic >"$work/single.out" 2>&1 & pids+=($!)
wait_port "$single"

echo "== SET at $CLIENTS clients: three-node cluster (min_replicas_to_ack 1, ISR 1,2,3) vs a single node"
"$BENCH" --port "${ports[0]}" --target synap --compare "127.0.0.1:$single" --compare-target synap --rounds "$ROUNDS" \
  kv --read-ratio 0 --connections "$CLIENTS" --duration "$DURATION"
