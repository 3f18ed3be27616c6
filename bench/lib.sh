# Sourced by the bench scripts: free ports, and a fresh stack of one's own.

# free_consul_ports prints the first of four free consecutive ports in 20000–32000
# (a private Consul agent takes its HTTP port and the three after it).
free_consul_ports() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 31996)
    socks = []
    try:
        for p in range(base, base + 4):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# json_field FILE KEY prints one top-level field of a JSON file.
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# drop_databases PGURL PREFIX drops the databases a bench stack made.
drop_databases() {
  local db
  for db in $(psql "$1" -Atc "SELECT datname FROM pg_database WHERE datname LIKE '${2}\_%'" 2>/dev/null); do
    psql "$1" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}

# stop_stack stops the fresh stack of the caller's $state (with $work/bin/kitshop) and
# drops the databases of its $prefix (on $pg), then forgets both.
stop_stack() {
  [ -n "$state" ] && [ -f "$state/stack.json" ] && "$work/bin/kitshop" down -state "$state" >/dev/null 2>&1 || true
  [ -n "$prefix" ] && drop_databases "$pg" "$prefix"
  state= prefix=
}

# ticks PID prints the user + system CPU clock ticks the process has used; 0 once it is gone.
ticks() { { cut -d' ' -f14,15 "/proc/$1/stat" 2>/dev/null || true; } | awk '{t = $1 + $2} END {print t + 0}'; }

# postgres_ticks PID prints the CPU ticks of the postmaster PID and its backends, ended
# (its children's times) or running.
postgres_ticks() {
  local t child
  t=$(cut -d' ' -f14-17 "/proc/$1/stat" | awk '{print $1 + $2 + $3 + $4}')
  for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do t=$(( t + $(ticks "$child") )); done
  echo "$t"
}
