#!/usr/bin/env bash
# The calls between services over HTTP JSON and over gRPC, like for like: for each
# transport a fresh stack (`kitshop up -detach` with KITSHOP_INTERNAL_TRANSPORT set,
# mTLS on as by default, INSTANCES instances of every service, the gateway's rate
# limits raised), then checkouts through the gateway (cmd/loadgen -mix checkout=1,
# POST /v1/orders with items: order → inventory reserve/commit, order → payment
# charge) at 1 and 32 users for DURATION each. CPU time of every process of the stack
# and of PostgreSQL is read around each run. Writes OUT/transport.json:
#   {"http": {"1": {...}, "32": {...}}, "grpc": {...}} with, per run, checkouts/s,
#   p50/p99 ms, errors, and CPU ms per checkout (all processes, and per service).
# Usage: bench/transport.sh OUT. Knobs: DURATION (15s), INSTANCES (1), TLS (on), TRANSPORTS
# (the order of the runs: "http grpc").
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
out=${1:?usage: bench/transport.sh OUT}
duration=${DURATION:-15s}
instances=${INSTANCES:-1}
tls=${TLS:-on}
pg=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
mkdir -p "$out"
work=$(mktemp -d /tmp/kitshop-transport.XXXXXX)
log() { echo "[$(date +%H:%M:%S)] transport: $*" >&2; }
state= prefix=
trap 'stop_stack; rm -rf "$work"' EXIT
go build -o "$work/bin/" ./cmd/kitshop ./cmd/loadgen
export KITSHOP_RATE_ANON=1e9 KITSHOP_RATE_ANON_BURST=1000000000 KITSHOP_RATE_USER=1e9 KITSHOP_RATE_USER_BURST=1000000000

postmaster=$(pgrep -o -x postgres || true)

for transport in ${TRANSPORTS:-http grpc}; do
  state=$work/state-$transport
  prefix=transport_$(date +%s)_$$_$transport
  consul_port=$(free_consul_ports)
  log "$transport: starting a stack (Consul on 127.0.0.1:$consul_port, $instances instance(s) per service, -tls $tls)"
  KITSHOP_INTERNAL_TRANSPORT=$transport "$work/bin/kitshop" up -detach -state "$state" -consul-addr "127.0.0.1:$consul_port" -tls "$tls" \
    -gateway-addr 127.0.0.1:0 -db-prefix "$prefix" -instances "$instances" -postgres "$pg" >"$work/up-$transport.log" 2>&1 \
    || { cat "$work/up-$transport.log" >&2; exit 1; }
  stack=$state/stack.json
  # The stack's processes and PostgreSQL, for bench/lib.sh's cpu_snapshot.
  procs=$(stack_procs "$stack")
  [ -n "$postmaster" ] && procs+=" postgres=+$postmaster"
  for c in 1 32; do
    log "$transport: checkout through the gateway, $c users, $duration"
    # shellcheck disable=SC2086 # one NAME=PID word each
    checkout_load "$c" "$duration" "$out/$transport-$c" "$out/cpu-$transport-$c" $procs
  done
  stop_stack
done

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def cpu(name):
    def load(f):
        return {k: int(v) for k, v in (line.split() for line in open(os.path.join(out, f)))}
    a, b = load(f"cpu-{name}.before"), load(f"cpu-{name}.after")
    hz = a.pop("hz"); b.pop("hz")
    return {k: (b[k] - a[k]) / hz * 1000 for k in a if k in b}  # ms
result = {}
for transport in ("http", "grpc"):
    for c in ("1", "32"):
        r = json.load(open(os.path.join(out, f"{transport}-{c}.json")))
        route = next((x for x in r["routes"] if x["route"].startswith("POST /v1/orders")), r["all"])
        ok = route["count"] - sum(route.get("errors", {}).values())
        used = cpu(f"{transport}-{c}")
        per_service = {}
        for k, v in used.items():
            svc = k.rstrip("-0123456789")
            per_service[svc] = per_service.get(svc, 0) + v
        result.setdefault(transport, {})[c] = {
            "users": int(c), "checkouts": ok, "checkouts_per_s": ok / r["duration_s"],
            "p50_ms": route["p50_ms"], "p99_ms": route["p99_ms"], "errors": route.get("errors", {}),
            "cpu_ms_per_checkout": sum(used.values()) / max(ok, 1),
            "cpu_ms_per_checkout_by_service": {k: v / max(ok, 1) for k, v in sorted(per_service.items())},
        }
json.dump(result, open(os.path.join(out, "transport.json"), "w"), indent=2)
for c in ("1", "32"):
    h, g = result["http"][c], result["grpc"][c]
    print(f"{c:>2} users: http {h['checkouts_per_s']:.1f}/s p99 {h['p99_ms']:.0f} ms {h['cpu_ms_per_checkout']:.2f} ms CPU | "
          f"grpc {g['checkouts_per_s']:.1f}/s p99 {g['p99_ms']:.0f} ms {g['cpu_ms_per_checkout']:.2f} ms CPU | "
          f"grpc/http: {g['checkouts_per_s'] / max(h['checkouts_per_s'], 1e-9):.2f}x throughput, "
          f"{g['cpu_ms_per_checkout'] / max(h['cpu_ms_per_checkout'], 1e-9):.2f}x CPU")
PY
