# Shared by the benchmark scripts (sourced): free loopback ports, a work directory and the servers started,
# removed and stopped on exit (CLEANUP_SIGNAL, TERM by default), and waiting for a RESP server to answer.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "-${CLEANUP_SIGNAL:-TERM}" "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 600); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "no server answered on $1" >&2; exit 1; }
