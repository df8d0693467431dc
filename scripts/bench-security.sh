#!/usr/bin/env bash
# The cost of security, side by side in one run (redis-benchmark, SET and GET, CLIENTS clients, -P 1):
#   1. TLS: Synap's TLS RESP port against redis-server --tls-port, and both plain ports, in alternating
#      rounds (ratios Synap / Redis for each mode).
#   2. AUTH and ACL checks: Synap with no password against Synap with a password and a user whose rules
#      are checked on every command (`~key:* +@all -@dangerous`), in alternating rounds.
# Each figure is the median of ROUNDS rounds.
#
#   scripts/bench-security.sh
#   ROUNDS=3 REQUESTS=200000 CLIENTS=50 scripts/bench-security.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-all}   # all, tls or acl
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}

for tool in redis-server redis-cli redis-benchmark openssl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
cargo build --release -q -p synap-server
SYNAP=target/release/synap-server

. scripts/common.sh

# A CA and a certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$work/key.pem" -out "$work/req.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$work/san.ext"
openssl x509 -req -in "$work/req.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/san.ext" -out "$work/cert.pem" 2>/dev/null

rport=$(free_port); rtls=$(free_port)
redis-server --port "$rport" --tls-port "$rtls" --tls-cert-file "$work/cert.pem" --tls-key-file "$work/key.pem" \
  --tls-ca-cert-file "$work/ca.pem" --tls-auth-clients no --save '' --appendonly no --dir "$work" \
  >"$work/redis.out" 2>&1 & pids+=($!)
wait_port "$rport"

sport=$(free_port); stls=$(free_port)
printf 'tls:\n  cert: %s\n  key: %s\n  ca: %s\n  auth_clients: "no"\n  resp_addr: "127.0.0.1:%s"\n  http: false\n' \
  "$work/cert.pem" "$work/key.pem" "$work/ca.pem" "$stls" >"$work/synap.yaml"
"$SYNAP" --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$sport" --data-dir "$work/synap" --persistence false \
  --log-level warn --config "$work/synap.yaml" >"$work/synap.out" 2>&1 & pids+=($!)
wait_port "$sport"

aport=$(free_port)
printf 'auth:\n  requirepass: bench-admin-pass\n' >"$work/auth.yaml"
"$SYNAP" --http-addr 127.0.0.1:0 --resp-addr "127.0.0.1:$aport" --data-dir "$work/auth" --persistence false \
  --log-level warn --config "$work/auth.yaml" >"$work/auth.out" 2>&1 & pids+=($!)
for _ in $(seq 1 600); do redis-cli -p "$aport" -a bench-admin-pass --no-auth-warning ping >/dev/null 2>&1 && break; sleep 0.05; done
redis-cli -p "$aport" -a bench-admin-pass --no-auth-warning acl setuser bench on '>bench-pass' '~key:*' '+@all' '-@dangerous' >/dev/null

# rps of one redis-benchmark run: $1 = test (set|get), the rest = connection options.
rps() {
  local t=$1; shift
  redis-benchmark "$@" -t "$t" -n "$REQUESTS" -c "$CLIENTS" -P 1 -q 2>/dev/null | tr '\r' '\n' |
    sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1
}
median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
ratio() { python3 -c 'import sys; print(f"{float(sys.argv[1])/float(sys.argv[2]):.2f}")' "$1" "$2"; }

tls_opts=(--tls --cacert "$work/ca.pem")
declare -A runs
for r in $(seq 1 "$ROUNDS"); do
  for t in set get; do
    # Alternate which server goes first.
    if [ $((r % 2)) = 1 ]; then order="synap redis"; else order="redis synap"; fi
    [ "$ONLY" = acl ] && order=""
    for who in $order; do
      if [ "$who" = synap ]; then p=$sport; pt=$stls; else p=$rport; pt=$rtls; fi
      runs[$who-plain-$t]+=" $(rps "$t" -h 127.0.0.1 -p "$p")"
      runs[$who-tls-$t]+=" $(rps "$t" -h 127.0.0.1 -p "$pt" "${tls_opts[@]}")"
    done
    if [ $((r % 2)) = 1 ]; then order="open acl"; else order="acl open"; fi
    [ "$ONLY" = tls ] && order=""
    for who in $order; do
      if [ "$who" = open ]; then
        runs[open-$t]+=" $(rps "$t" -h 127.0.0.1 -p "$sport")"
      else
        runs[acl-$t]+=" $(rps "$t" -h 127.0.0.1 -p "$aport" --user bench -a bench-pass)"
      fi
    done
  done
done

if [ "$ONLY" != acl ]; then
  echo "== TLS: redis-benchmark -c $CLIENTS -P 1, median of $ROUNDS rounds (requests/s)"
  printf '%-6s %-6s %12s %12s %7s\n' test mode synap redis ratio
  for t in set get; do
    for m in plain tls; do
      s=$(median ${runs[synap-$m-$t]}); r=$(median ${runs[redis-$m-$t]})
      printf '%-6s %-6s %12.0f %12.0f %7s\n' "$t" "$m" "$s" "$r" "$(ratio "$s" "$r")"
    done
  done
fi
[ "$ONLY" = tls ] && exit 0
echo "== AUTH and ACL checks: Synap with a checked user vs Synap open (requests/s)"
printf '%-6s %12s %12s %7s\n' test acl open ratio
for t in set get; do
  a=$(median ${runs[acl-$t]}); o=$(median ${runs[open-$t]})
  printf '%-6s %12.0f %12.0f %7s\n' "$t" "$a" "$o" "$(ratio "$a" "$o")"
done
echo "rounds:"
for k in "${!runs[@]}"; do echo "  $k:${runs[$k]}"; done | sort
