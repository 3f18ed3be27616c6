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

# checkout_load USERS DURATION REPORT CPU NAME=PID... runs cmd/loadgen's checkouts
# (-mix checkout=1) through the caller's $stack (with $work/bin/loadgen) at USERS for
# DURATION: its report in REPORT.json and REPORT.txt, its log in REPORT.log, and
# cpu_snapshot of the processes in CPU.before and CPU.after, from the moment the users
# exist (their registration hashes passwords) to the end.
checkout_load() {
  local users=$1 duration=$2 report=$3 cpu=$4 lg
  shift 4
  rm -f "$report.log" # the line waited for must be this run's
  "$work/bin/loadgen" -stack "$stack" -concurrency "$users" -duration "$duration" -mix checkout=1 \
    -json "$report.json" >"$report.txt" 2>"$report.log" &
  lg=$!
  until grep -q "loading for" "$report.log" 2>/dev/null || ! kill -0 "$lg" 2>/dev/null; do sleep 0.05; done
  cpu_snapshot "$cpu.before" "$@"
  wait "$lg" || { cat "$report.log" >&2; exit 1; }
  cpu_snapshot "$cpu.after" "$@"
}

# stack_procs STACK_JSON prints NAME=PID of each kitshop process of a stack (its Consul
# agent left out).
stack_procs() { python3 -c 'import json,sys; print(" ".join("%s=%d" % (p["name"], p["pid"]) for p in json.load(open(sys.argv[1]))["procs"] if p["service"] != "consul"))' "$1"; }

# cpu_snapshot FILE NAME=PID... writes one "NAME ticks" line per process (user + system
# CPU clock ticks; 0 once it is gone) and "hz N". NAME=+PID counts the process's
# children too, ended ones (its children's times) and running ones: PostgreSQL's
# backends, nginx's workers. Shell builtins only: a snapshot that forks per process
# (or starts an interpreter) takes seconds on two loaded cores, and then shows a load
# half over before it has begun.
cpu_snapshot() {
  local file=$1 spec name pid t task kid kids
  shift
  {
    for spec in "$@"; do
      name=${spec%%=*} pid=${spec#*=}
      if [ "${pid#+}" != "$pid" ]; then
        pid=${pid#+}
        proc_ticks "$pid" 4
        t=$ticks
        for task in /proc/"$pid"/task/*/children; do
          [ -r "$task" ] || continue
          kids=()
          read -r -a kids <"$task" || true
          for kid in "${kids[@]}"; do
            proc_ticks "$kid" 2
            t=$(( t + ticks ))
          done
        done
      else
        proc_ticks "$pid" 2
        t=$ticks
      fi
      echo "$name $t"
    done
    echo "hz $clock_hz"
  } >"$file"
}
clock_hz=$(getconf CLK_TCK)

# proc_ticks PID N sets ticks to the sum of the first N CPU time fields of PID's stat
# (utime, stime, cutime, cstime); 0 once it is gone. A variable, not output: a command
# substitution would fork.
proc_ticks() {
  local line f
  ticks=0
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 0
  # shellcheck disable=SC2206 # numbers only after the command name, which may hold spaces
  f=(${line##*) })
  # the fields after the name start at the state (field 3): utime is field 14
  if [ "$2" = 4 ]; then
    ticks=$(( f[11] + f[12] + f[13] + f[14] ))
  else
    ticks=$(( f[11] + f[12] ))
  fi
}

