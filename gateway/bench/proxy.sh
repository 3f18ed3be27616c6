#!/usr/bin/env bash
# Measures what the gateway costs: wrk (50 connections, 10 s each, one after another)
# against GET /v1/products/{sku} of one inventory instance, reached
#   1. directly,
#   2. through the gateway (found through Consul, full chain: rate limit, request ID,
#      span, access log, round robin, retry, hystrix, metrics),
#   3. through nginx as a plain reverse proxy with keepalive to the same instance,
#   4. through Go's bare httputil.ReverseProxy (gateway/bench/goproxy), the floor of
#      any net/http proxy on this machine.
# CPU µs/req is the CPU time of the process doing a path's work (inventory for direct,
# the proxy for the others) per request: what a proxy costs, whatever else runs.
# Everything runs on 127.0.0.1 with a private Consul dev agent, memory stores and logs
# written to files. Needs wrk and nginx (Debian packages) and the Consul binary
# (consul/install.sh). Usage: gateway/bench/proxy.sh [duration] [connections]
# PROFILE=<dir> also saves the gateway's CPU profile of its wrk run as <dir>/gateway.cpu
# (and the binary as <dir>/gateway, for go tool pprof).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/nginx.sh
duration=${1:-10s}
conns=${2:-50}
for cmd in wrk nginx go curl python3; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install -y wrk nginx)" >&2; exit 1; }
done
consul_bin=$(consul/install.sh | tail -n 1)
work=$(mktemp -d /tmp/kitshop-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "bench: $1 did not come up" >&2; exit 1; }

echo "bench: building into $work"
go build -o "$work/" ./inventory/cmd/inventory ./user/cmd/user ./gateway/cmd/gateway ./gateway/bench/goproxy

c_http=$(free_port); c_server=$(free_port); c_lan=$(free_port); c_wan=$(free_port)
"$consul_bin" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -node bench -log-level warn \
  -http-port "$c_http" -server-port "$c_server" -serf-lan-port "$c_lan" -serf-wan-port "$c_wan" \
  -dns-port -1 -grpc-port -1 -hcl 'ports { grpc_tls = -1 }' >"$work/consul.log" 2>&1 &
pids+=($!)
export KITSHOP_CONSUL_ADDR=127.0.0.1:$c_http
# Plain HTTP everywhere, so that wrk and nginx reach the inventory instance as the gateway does.
export KITSHOP_TLS=off
for _ in $(seq 1 100); do curl -fsS "http://$KITSHOP_CONSUL_ADDR/v1/status/leader" 2>/dev/null | grep -q : && break; sleep 0.2; done

user_port=$(free_port); inv_port=$(free_port); gw_port=$(free_port); nginx_port=$(free_port); go_port=$(free_port); pprof_port=$(free_port)
"$work/user" -http-addr "127.0.0.1:$user_port" -key-file "$work/keys.json" \
  -admin-email admin@bench.test -admin-password bench-admin-password 2>"$work/user.log" &
pids+=($!)
"$work/inventory" -http-addr "127.0.0.1:$inv_port" 2>"$work/inventory.log" &
pids+=($!)
inv_pid=$!
# Limits raised for the load (they cannot be switched off). Breakers and idle
# connections: at most $conns calls are in flight, so the defaults (500) leave 10×
# headroom; hystrix's own default of 10 would reject most of this load.
"$work/gateway" -http-addr "127.0.0.1:$gw_port" -rate-anon 1e9 -rate-anon-burst 1000000000 \
  -breaker-max-concurrent 500 ${PROFILE:+-pprof-addr 127.0.0.1:$pprof_port} ${GATEWAY_FLAGS:-} 2>"$work/gateway.log" &
pids+=($!)
gw_pid=$!
wait_http "http://127.0.0.1:$user_port/health"
wait_http "http://127.0.0.1:$inv_port/health"
wait_http "http://127.0.0.1:$gw_port/health"

token=$(curl -fsS -H 'Content-Type: application/json' "http://127.0.0.1:$user_port/v1/auth/login" \
  -d '{"email":"admin@bench.test","password":"bench-admin-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
for _ in $(seq 1 50); do
  curl -fs -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$inv_port/v1/products" \
    -d '{"sku":"bench-1","name":"Bench kit","description":"for wrk","price":{"amount":1999,"currency":"EUR"},"stock":1000}' && break
  sleep 0.5 # inventory fetches the user service's keys, found through Consul, at most every 10 s
done
path=/v1/products/bench-1
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$gw_port$path" 2>/dev/null && break; sleep 0.1; done

start_nginx "$work" "$nginx_port" "127.0.0.1:$inv_port"
wait_http "http://127.0.0.1:$nginx_port$path"
"$work/goproxy" "127.0.0.1:$go_port" "127.0.0.1:$inv_port" 2>"$work/goproxy.log" &
pids+=($!)
go_pid=$!
nginx_pids="$(cat "$work/nginx.pid") $(cat /proc/"$(cat "$work/nginx.pid")"/task/*/children)"

# CPU time (user + system, clock ticks) the processes that do a path's work used: the
# proxy's cost per request, which the other processes on a shared machine do not skew.
cpu_ticks() { for p in "$@"; do cut -d' ' -f14,15 "/proc/$p/stat"; done | awk '{t += $1 + $2} END {print t}'; }
declare -A cpu_of=([direct]="$inv_pid" [gateway]="$gw_pid" [nginx]="$nginx_pids" [goproxy]="$go_pid")
wait_http "http://127.0.0.1:$go_port$path"

run() { # name url
  curl -fsS -o /dev/null "$2"
  if [ -n "${PROFILE:-}" ] && [ "$1" = gateway ]; then
    mkdir -p "$PROFILE" && cp "$work/gateway" "$PROFILE/gateway"
    secs=$(( ${duration%s} > 2 ? ${duration%s} - 2 : 1 ))
    curl -fsS -o "$PROFILE/gateway.cpu" "http://127.0.0.1:$pprof_port/debug/pprof/profile?seconds=$secs" &
    prof=$!
  fi
  # shellcheck disable=SC2086
  before=$(cpu_ticks ${cpu_of[$1]})
  wrk -t2 -c"$conns" -d"$duration" --latency "$2" >"$work/$1.wrk"
  # shellcheck disable=SC2086
  echo "cpu_ticks $(( $(cpu_ticks ${cpu_of[$1]}) - before )) $(getconf CLK_TCK)" >>"$work/$1.wrk"
  [ -n "${prof:-}" ] && { wait "$prof"; prof=; }
  python3 - "$1" "$work/$1.wrk" <<'PY'
import re, sys
name, text = sys.argv[1], open(sys.argv[2]).read()
if "Latency Distribution" not in text:
    sys.exit(f"bench: unexpected wrk output for {name}:\n{text}")
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
n = int(re.search(r"(\d+) requests in", text).group(1))
ticks, hz = map(int, re.search(r"cpu_ticks (\d+) (\d+)", text).groups())
cpu_us = ticks / hz * 1e6 / max(n, 1)
print(f"{name} {rps:.0f} {p50:.3f} {p99:.3f} {bad.group(1) if bad else 0} {errors.group(1).replace(' ', '') if errors else '-'} {cpu_us:.1f}")
PY
}
echo "bench: wrk -t2 -c$conns -d$duration, GET $path"
{
  run direct "http://127.0.0.1:$inv_port$path"
  run gateway "http://127.0.0.1:$gw_port$path"
  run nginx "http://127.0.0.1:$nginx_port$path"
  run goproxy "http://127.0.0.1:$go_port$path"
} | tee "$work/results"
python3 - "$work/results" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, bad, errs, cpu = line.split()
    r[name] = dict(rps=float(rps), p50=float(p50), p99=float(p99), bad=int(bad), errs=errs, cpu=float(cpu))
print()
print(f"{'path':8} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'CPU µs/req':>11}  socket errors")
for n in ("direct", "gateway", "nginx", "goproxy"):
    x = r[n]
    print(f"{n:8} {x['rps']:9.0f} {x['p50']:8.3f} {x['p99']:8.3f} {x['bad']:8d} {x['cpu']:11.1f}  {x['errs']}")
g, ng, d = r["gateway"], r["nginx"], r["direct"]
print()
print(f"gateway/nginx rps: {g['rps']/ng['rps']:.2f} (target >= 0.90)")
print(f"gateway/direct rps: {g['rps']/d['rps']:.2f}; nginx/direct rps: {ng['rps']/d['rps']:.2f}")
print(f"p99 added over direct: gateway {g['p99']-d['p99']:+.3f} ms, nginx {ng['p99']-d['p99']:+.3f} ms (target: gateway <= 1 ms)")
print(f"p99 gateway minus nginx: {g['p99']-ng['p99']:+.3f} ms")
gp = r["goproxy"]
print(f"bare Go reverse proxy/nginx rps: {gp['rps']/ng['rps']:.2f}; gateway/bare Go reverse proxy: {g['rps']/gp['rps']:.2f}")
PY
