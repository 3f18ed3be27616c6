#!/usr/bin/env bash
# A crowd on a stack that has just started: for each of RUNS runs, a fresh stack
# (`kitshop up -detach`, its own Consul agent and so its own Connect CA, its own
# databases, mTLS on, two instances of every service, the gateway's rate limits
# raised), then at once USERS shoppers each put an item in the cart and check out
# (cmd/loadgen -burst -mix buycart=1), then one more shopper reads the cart (a breaker
# the burst opened would answer it 503). Prints one line per run and writes each
# run's loadgen report to OUT/burst-<n>.json; the stack's logs are kept in
# OUT/logs-<n>/ when KEEP_LOGS=1.
# Knobs: RUNS (3), USERS (60), TLS (on), INSTANCES (2), OUT (a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${RUNS:-3}
users=${USERS:-60}
tls=${TLS:-on}
instances=${INSTANCES:-2}
pg=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
work=$(mktemp -d /tmp/kitshop-burst.XXXXXX)
out=${OUT:-$work/out}
mkdir -p "$out"
log() { echo "[$(date +%H:%M:%S)] burst: $*" >&2; }
state= prefix=
trap 'stop_stack; rm -rf "$work/bin" "$work/state"*' EXIT

go build -o "$work/bin/" ./cmd/kitshop ./cmd/loadgen
# Raised, not switched off: every virtual user comes from 127.0.0.1.
export KITSHOP_RATE_ANON=1e9 KITSHOP_RATE_ANON_BURST=1000000000 KITSHOP_RATE_USER=1e9 KITSHOP_RATE_USER_BURST=1000000000

for n in $(seq 1 "$runs"); do
  state=$work/state-$n
  prefix=burst_$(date +%s)_$$_$n
  consul_port=$(free_consul_ports)
  "$work/bin/kitshop" up -detach -state "$state" -consul-addr "127.0.0.1:$consul_port" -tls "$tls" \
    -gateway-addr 127.0.0.1:0 -db-prefix "$prefix" -instances "$instances" -postgres "$pg" >"$work/up-$n.log" 2>&1 \
    || { cat "$work/up-$n.log" >&2; exit 1; }
  stack=$state/stack.json
  "$work/bin/loadgen" -stack "$stack" -burst -concurrency "$users" -mix buycart=1 -products 4 \
    -json "$out/burst-$n.json" >"$out/burst-$n.txt" 2>"$work/loadgen-$n.log" || { cat "$work/loadgen-$n.log" >&2; exit 1; }
  # One more shopper right after: does checkout still work for the next person?
  "$work/bin/loadgen" -stack "$stack" -burst -concurrency 1 -mix cart=1 -products 0 \
    -json "$out/after-$n.json" >/dev/null 2>&1 || true
  python3 - "$n" "$out/burst-$n.json" "$out/after-$n.json" <<'PY'
import json, sys
def summary(path):
    try:
        r = json.load(open(path))
    except (OSError, ValueError):
        return None, "no report"
    errs = r["all"]["errors"]
    bad = sum(k for c, k in errs.items() if c.startswith("5") or c == "transport")
    return r, f"{r['requests']} requests, {bad} 5xx/transport" + (f" {errs}" if errs else "")
r, burst = summary(sys.argv[2])
_, after = summary(sys.argv[3])
a = r["all"]
print(f"run {sys.argv[1]}: {burst}; p50 {a['p50_ms']:.0f} ms, p99 {a['p99_ms']:.0f} ms, max {a['max_ms']:.0f} ms | the next shopper: {after}")
PY
  if [ "${KEEP_LOGS:-0}" = 1 ]; then cp -r "$state/logs" "$out/logs-$n"; fi
  stop_stack
done
log "reports in $out"
