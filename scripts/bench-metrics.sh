#!/usr/bin/env bash
# The cost of metrics: the same synap-server with command timing on (the default) and off
# (`metrics.command_timing: false`: commands counted, not timed), redis-benchmark GET and SET at -P 1 and
# -P 16, in alternating rounds. Prints each round's throughput and p99 and, per row, the median ratio
# on/off (1.00: no cost) over the rounds.
#
#   scripts/bench-metrics.sh
#   ROUNDS=7 REQUESTS=300000 scripts/bench-metrics.sh
#
# Needs redis-benchmark (Debian: redis-tools) and a release build of synap-server (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-set,get}
PIPELINES=${PIPELINES:-"1 16"}
ROUNDS=${ROUNDS:-5}
RANDOM_KEYS=${RANDOM_KEYS:-100000}

for tool in redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install redis-tools)" >&2; exit 1; }
done
if [ -n "${SYNAP_BIN:-}" ]; then SYNAP=$SYNAP_BIN; else cargo build --release -q -p synap-server; SYNAP=target/release/synap-server; fi

. scripts/common.sh

printf 'metrics:\n  command_timing: false\n' > "$work/untimed.yaml"
: > "$work/rows.csv"

start_synap() { # $1 = on|off
  local port; port=$(free_port)
  local args=(--http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$port" --data-dir "$work/synap-$port" --log-level warn --persistence false)
  [ "$1" = off ] && args+=(--config "$work/untimed.yaml")
  "$SYNAP" "${args[@]}" >"$work/synap.out" 2>&1 & pids+=($!); SYNAP_PID=$!; SYNAP_PORT=$port; wait_port "$port"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
run_bench() { # PORT PIPELINE -> lines "TEST,rps,p99"
  redis-benchmark -h 127.0.0.1 -p "$1" -c "$CLIENTS" -n "$REQUESTS" -t "$TESTS" -P "$2" -r "$RANDOM_KEYS" --csv 2>/dev/null \
    | tail -n +2 | tr -d '"' | awk -F, '{print $1 "," $2 "," $7}'
}

printf '%-6s %-3s %-5s %12s %12s %7s %8s %8s\n' test P round on_rps off_rps ratio on_p99 off_p99
for p in $PIPELINES; do
  for round in $(seq 1 "$ROUNDS"); do
    if [ $(( (p + round) % 2 )) = 0 ]; then order="on off"; else order="off on"; fi
    for who in $order; do
      start_synap "$who"; run_bench "$SYNAP_PORT" "$p" > "$work/$who.csv"; stop "$SYNAP_PID"
    done
    join -t, <(sort "$work/on.csv") <(sort "$work/off.csv") | while IFS=, read -r test on_rps on_p99 off_rps off_p99; do
      ratio=$(python3 -c "print(f'{$on_rps/$off_rps:.3f}')")
      printf '%-6s %-3s %-5s %12s %12s %7s %8s %8s\n' "$test" "$p" "$round" "$on_rps" "$off_rps" "$ratio" "$on_p99" "$off_p99"
      echo "$test,$p,$ratio" >> "$work/rows.csv"
    done
  done
done
echo
echo "median ratio on/off (timing cost = 1 - ratio):"
python3 - "$work/rows.csv" <<'PY'
import csv, statistics, sys
rows = {}
for test, p, ratio in csv.reader(open(sys.argv[1])):
    rows.setdefault((test, int(p)), []).append(float(ratio))
for (test, p), r in sorted(rows.items(), key=lambda x: (x[0][1], x[0][0])):
    print(f"  {test:<4} -P {p:<3} median {statistics.median(r):.3f}  rounds {' '.join(f'{x:.3f}' for x in r)}")
PY
