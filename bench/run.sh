#!/usr/bin/env bash
# make bench: one run that measures kitshop against the physical limit and the tools
# people would otherwise use, and writes bench/results/<date>.json and .md.
#   1. GET /v1/products/{sku} under wrk (same connections and duration each):
#      one inventory instance directly, through the gateway, through nginx (plain
#      reverse proxy with keepalive to the same instance), through Caddy (the same,
#      with an access log as the gateway writes one), through Go's bare
#      httputil.ReverseProxy (gateway/bench/goproxy: the floor of a net/http proxy);
#      then the same five at a fixed RATE with cmd/loadgen -url, for the latency
#      each hop adds.
#   2. Checkout through the gateway (cmd/loadgen, POST /v1/orders with items) at 1 and
#      32 concurrent users, next to pgbench running the same statements straight on
#      PostgreSQL (bench/checkout.sql), the ceiling.
#   3. RSS of every process idle and at its highest under load; start-to-passing time
#      of one more instance of every service.
#   4. A crowd on stacks that have just started (bench/burst.sh: RUNS fresh stacks as
#      `make up` starts them, 60 shoppers putting an item in the cart and checking out
#      at once) and the goodput curve of the shop's mix from 0.5× to 4× its saturation
#      point on another fresh stack (bench/goodput.sh, plotted to
#      bench/results/<date>-goodput.png).
#   5. Checkout at 1 and 32 users with the calls between services over HTTP JSON and
#      over gRPC, each on a fresh stack (bench/transport.sh).
#   6. The go test -bench of every service's hot path (reserve, charge, checkout, token
#      verify, login, gateway proxy, outbox to email), saved for benchstat as
#      bench/results/<date>.gobench.txt.
# The stack is `kitshop up -detach` with one instance per service (so the gateway and
# nginx reach the same inventory instance), a private Consul agent, databases of its
# own (dropped at the end) and the gateway's rate limits raised through the environment.
# Plain HTTP between the services (KITSHOP_TLS=off): nginx and wrk reach the inventory
# instance without a Connect certificate, so all three paths are compared like for like.
# Needs: wrk, nginx, gnuplot, pgbench (Debian: apt-get install -y wrk nginx postgresql; pgbench ships with the server package, postgresql-15 on Debian 12),
# psql, python3, curl, go, PostgreSQL on 127.0.0.1:5432 and RabbitMQ (make deps).
# Knobs: DURATION (10s), CONNS (50), RATE (500 req/s), CHECKOUT_DURATION (15s), INSTANCES (1), GOBENCH=0
# (skip the go test -bench part), GOBENCHTIME (2s), GOBENCHCOUNT (1).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/nginx.sh
. bench/caddy.sh
. bench/lib.sh
root=$(pwd)
duration=${DURATION:-10s}
conns=${CONNS:-50}
rate=${RATE:-500}
checkout_duration=${CHECKOUT_DURATION:-15s}
case $checkout_duration in # pgbench takes whole seconds
  *[!0-9]*s|s|*[!s]) echo "bench: CHECKOUT_DURATION must be whole seconds, e.g. 15s (got $checkout_duration)" >&2; exit 2 ;;
esac
instances=${INSTANCES:-1}
pg=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
for cmd in wrk nginx pgbench psql python3 curl go; do
  command -v "$cmd" >/dev/null || { echo "bench: $cmd is missing (apt-get install -y wrk nginx postgresql; pgbench ships with the server package, postgresql-15 on Debian 12)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/kitshop-bench.XXXXXX)
prefix=bench_$(date +%s)_$$
state=$work/state
log() { echo "[$(date +%H:%M:%S)] bench: $*" >&2; }
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [ -f "$work/caddy.pid" ] && kill "$(cat "$work/caddy.pid")" 2>/dev/null || true
  [ -n "${goproxy_pid:-}" ] && kill "$goproxy_pid" 2>/dev/null || true
  [ -n "${extra_pid:-}" ] && kill "$extra_pid" 2>/dev/null || true
  [ -n "${sampler_pid:-}" ] && kill "$sampler_pid" 2>/dev/null || true
  [ -f "$state/stack.json" ] && "$work/bin/kitshop" down -state "$state" >/dev/null 2>&1 || true
  drop_databases "$pg" "$prefix"
  rm -rf "$work"
}
trap cleanup EXIT


log "building into $work/bin"
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/kitshop ./cmd/loadgen ./gateway/bench/goproxy
caddy_bin >/dev/null # built before anything is measured: minutes, the first time

consul_port=$(free_consul_ports)
# Raised, not switched off (docs/architecture.md, Conventions): the gateway reads these as its flags' fallbacks.
export KITSHOP_TLS=off KITSHOP_RATE_ANON=1e9 KITSHOP_RATE_ANON_BURST=1000000000 KITSHOP_RATE_USER=1e9 KITSHOP_RATE_USER_BURST=1000000000
log "starting the stack (Consul on 127.0.0.1:$consul_port, databases ${prefix}_*)"
"$work/bin/kitshop" up -detach -state "$state" -consul-addr "127.0.0.1:$consul_port" \
  -gateway-addr 127.0.0.1:0 -db-prefix "$prefix" -instances "$instances" -postgres "$pg" >"$work/up.log" 2>&1 \
  || { cat "$work/up.log" >&2; exit 1; }
stack=$state/stack.json
gateway=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gateway_url"])' "$stack")
consul=http://127.0.0.1:$consul_port
inventory=$(curl -fsS "$consul/v1/health/service/inventory?passing=1" | python3 -c 'import json,sys; e=json.load(sys.stdin)[0]["Service"]; print("http://%s:%d" % (e["Address"], e["Port"]))')
sku=$(curl -fsS "$gateway/v1/products?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["products"][0]["sku"])')
path=/v1/products/$sku
log "gateway $gateway, inventory $inventory, GET $path"

# RSS of every process of the stack: idle now, then the highest seen while loading.
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
procs=$(stack_procs "$stack")
sleep 2
for np in $procs; do echo "${np%=*} $(rss "${np#*=}")"; done >"$work/rss-idle"
(
  while :; do
    for np in $procs; do echo "${np%=*} $(rss "${np#*=}")"; done
    sleep 0.5
  done
) >"$work/rss-samples" &
sampler_pid=$!

# CPU time (user + system, clock ticks) each process has used, PostgreSQL's included
# (the postmaster's own and its children's, ended or running): the difference around
# a phase divided by its requests is what a request costs each process, a figure the
# other load on a shared machine does not skew as it skews req/s.
postmaster=$(pgrep -o -x postgres || true)

nginx_port=$(free_port)
inv_hostport=${inventory#http://}
start_nginx "$work" "$nginx_port" "$inv_hostport"
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$nginx_port$path" 2>/dev/null && break; sleep 0.1; done
caddy_port=$(free_port)
start_caddy "$work" "$caddy_port" "$inv_hostport"
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$caddy_port$path" 2>/dev/null && break; sleep 0.1; done
goproxy_port=$(free_port)
"$work/bin/goproxy" "127.0.0.1:$goproxy_port" "$inv_hostport" 2>"$work/goproxy.log" &
goproxy_pid=$!
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:$goproxy_port$path" 2>/dev/null && break; sleep 0.1; done

# Every process of the run, for bench/lib.sh's cpu_snapshot: listed once, not while a
# phase loads.
cpu_procs=$procs
[ -n "$postmaster" ] && cpu_procs+=" postgres=+$postmaster"
[ -f "$work/nginx.pid" ] && cpu_procs+=" nginx=+$(cat "$work/nginx.pid")"
cpu_procs+=" goproxy=$goproxy_pid"
[ -f "$work/caddy.pid" ] && cpu_procs+=" caddy=$(cat "$work/caddy.pid")"

wrk_run() { # name url
  curl -fsS -o /dev/null "$2"
  log "wrk -t2 -c$conns -d$duration $1"
  # shellcheck disable=SC2086 # one NAME=PID word each
  cpu_snapshot "$work/cpu-wrk-$1.before" $cpu_procs
  wrk -t2 -c"$conns" -d"$duration" --latency "$2" >"$work/wrk-$1.txt"
  # shellcheck disable=SC2086
  cpu_snapshot "$work/cpu-wrk-$1.after" $cpu_procs
}
wrk_run direct "$inventory$path"
wrk_run gateway "$gateway$path"
wrk_run nginx "http://127.0.0.1:$nginx_port$path"
wrk_run caddy "http://127.0.0.1:$caddy_port$path"
wrk_run goproxy "http://127.0.0.1:$goproxy_port$path"

# Latency at a fixed rate every path sustains (an open workload, so a slow answer does
# not hold back the next request): what a hop adds to each request, not queueing.
rate_run() { # name url
  log "loadgen -url at $rate req/s, $duration: $1"
  "$work/bin/loadgen" -url "$2" -rate "$rate" -concurrency 64 -duration "$duration" -json "$work/rate-$1.json" \
    >/dev/null 2>"$work/rate-$1.log" || { cat "$work/rate-$1.log" >&2; exit 1; }
}
rate_run direct "$inventory$path"
rate_run gateway "$gateway$path"
rate_run nginx "http://127.0.0.1:$nginx_port$path"
rate_run caddy "http://127.0.0.1:$caddy_port$path"
rate_run goproxy "http://127.0.0.1:$goproxy_port$path"

for c in 1 32; do
  log "checkout through the gateway, $c users, $checkout_duration"
  # shellcheck disable=SC2086 # one NAME=PID word each
  checkout_load "$c" "$checkout_duration" "$work/checkout-$c" "$work/cpu-checkout-$c" $cpu_procs
done
kill "$sampler_pid"; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=

log "pgbench ceiling: bench/checkout.sql on ${prefix}_ceiling"
ceiling=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$pg" "${prefix}_ceiling")
psql "$pg" -qc "CREATE DATABASE ${prefix}_ceiling" >/dev/null
for f in inventory/migrations/*.sql order/migrations/*.sql payment/migrations/*.sql pkg/outbox/migrations/*.sql; do
  psql "$ceiling" -q -v ON_ERROR_STOP=1 -f "$f" >/dev/null
done
psql "$ceiling" -qc "INSERT INTO products SELECT 'pg-' || i, 'Bench kit', '', 500, 'EUR', 100000000, 0, now(), now() FROM generate_series(0, 15) i" >/dev/null
for c in 1 32; do
  mkdir -p "$work/pgbench-$c"
  (cd "$work/pgbench-$c" && pgbench -n -c "$c" -j "$(( c < 2 ? 1 : 2 ))" -T "${checkout_duration%s}" -l \
    -M prepared -f "$root/bench/checkout.sql" "$ceiling" >"$work/pgbench-$c.txt" 2>&1) || { cat "$work/pgbench-$c.txt" >&2; exit 1; }
done

log "start-to-passing time of one more instance of every service"
# The new instance runs with the environment of the stack's own instance of the same
# service (read from /proc), on a free port, and counts once Consul reports it passing.
: >"$work/startup"
for np in $(stack_procs "$stack"); do
  name=${np%=*}; pid=${np#*=}
  case $name in *-1|gateway) ;; *) continue ;; esac
  svc=${name%-1}
  bin=$state/bin/$svc
  before=$(curl -fsS "$consul/v1/health/service/$svc?passing=1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  mapfile -d "" envv <"/proc/$pid/environ"
  envv=("${envv[@]/#KITSHOP_HTTP_ADDR=*/KITSHOP_HTTP_ADDR=127.0.0.1:0}")
  start=$(date +%s.%N)
  env -i "${envv[@]}" "$bin" >"$work/extra-$svc.log" 2>&1 &
  extra_pid=$!
  took=
  for _ in $(seq 1 600); do
    now=$(curl -fsS "$consul/v1/health/service/$svc?passing=1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    if [ "$now" -gt "$before" ]; then took=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$(date +%s.%N)"); break; fi
    sleep 0.05
  done
  kill -TERM "$extra_pid" 2>/dev/null || true
  wait "$extra_pid" 2>/dev/null || true
  extra_pid=
  echo "$svc ${took:-timeout}" >>"$work/startup"
  # Until its deregistration is seen, the next service's count is unaffected anyway.
done

"$work/bin/kitshop" down -state "$state" >/dev/null 2>&1 || true
[ -f "$work/caddy.pid" ] && kill "$(cat "$work/caddy.pid")" 2>/dev/null || true
date_tag=$(date -u +%Y-%m-%d)
mkdir -p bench/results

log "a crowd on stacks that have just started (bench/burst.sh, ${BURST_RUNS:-3} runs)"
RUNS=${BURST_RUNS:-3} OUT=$work/burst bench/burst.sh >"$work/burst.txt"
log "the goodput curve (bench/goodput.sh)"
bench/goodput.sh "$work/goodput"
[ -f "$work/goodput/goodput.png" ] && cp "$work/goodput/goodput.png" "bench/results/$date_tag-goodput.png"
log "the calls between services over HTTP and over gRPC (bench/transport.sh)"
DURATION=$checkout_duration bench/transport.sh "$work/transport" >"$work/transport.txt"
if [ "${GOBENCH:-1}" != 0 ]; then
log "go test -bench of the hot paths (bench/results/$date_tag.gobench.txt)"
go test -run '^$' -bench . -benchmem -benchtime "${GOBENCHTIME:-2s}" -count "${GOBENCHCOUNT:-1}" \
  ./inventory/ ./payment/ ./order/ ./user/ ./pkg/auth/ ./gateway/ ./notification/ >"bench/results/$date_tag.gobench.txt"
fi
python3 bench/report.py "$work" "$date_tag" "$duration" "$conns" "$checkout_duration" "$instances" "$rate" \
  "bench/results/$date_tag.json" "bench/results/$date_tag.md"
cat "bench/results/$date_tag.md"
