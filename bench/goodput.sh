#!/usr/bin/env bash
# The goodput curve: on a fresh stack as `make up` starts it (two instances of every
# service, mTLS, the gateway's rate limits raised), cmd/loadgen -curve finds the
# saturation point of the shop's mix (a closed loop of SATURATION_USERS users) and then
# offers fixed rates of MULTIPLES of it. Writes OUT/curve.json (loadgen's report) and,
# when gnuplot is there, OUT/goodput.png: goodput (2xx/s) and the admitted p50/p99 per
# step. Called by bench/run.sh; runs alone too: bench/goodput.sh /tmp/out
# Knobs: MULTIPLES (0.5,1,1.5,2,3,4), STEP (10s), SATURATION_USERS (64), USERS (800: the
# most actions in flight), TLS (on), INSTANCES (2).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
out=${1:?usage: bench/goodput.sh OUTDIR}
mkdir -p "$out"
multiples=${MULTIPLES:-0.5,1,1.5,2,3,4}
step=${STEP:-10s}
pg=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
work=$(mktemp -d /tmp/kitshop-goodput.XXXXXX)
prefix=goodput_$(date +%s)_$$
state=$work/state
log() { echo "[$(date +%H:%M:%S)] goodput: $*" >&2; }
cleanup() {
  [ -f "$state/stack.json" ] && "$work/bin/kitshop" down -state "$state" >/dev/null 2>&1 || true
  drop_databases "$pg" "$prefix"
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/bin/" ./cmd/kitshop ./cmd/loadgen
# Raised, not switched off: every virtual user comes from 127.0.0.1.
export KITSHOP_RATE_ANON=1e9 KITSHOP_RATE_ANON_BURST=1000000000 KITSHOP_RATE_USER=1e9 KITSHOP_RATE_USER_BURST=1000000000
consul_port=$(free_consul_ports)
log "starting a fresh stack (Consul on 127.0.0.1:$consul_port, databases ${prefix}_*)"
"$work/bin/kitshop" up -detach -state "$state" -consul-addr "127.0.0.1:$consul_port" -tls "${TLS:-on}" \
  -gateway-addr 127.0.0.1:0 -db-prefix "$prefix" -instances "${INSTANCES:-2}" -postgres "$pg" >"$work/up.log" 2>&1 \
  || { cat "$work/up.log" >&2; exit 1; }
log "loadgen -curve $multiples, $step a step"
"$work/bin/loadgen" -stack "$state/stack.json" -curve "$multiples" -concurrency "${SATURATION_USERS:-64}" \
  -users "${USERS:-800}" -duration "$step" -json "$out/curve.json" >"$out/curve.txt" 2>"$work/loadgen.log" \
  || { tail -20 "$work/loadgen.log" >&2; exit 1; }

if ! command -v gnuplot >/dev/null; then
  log "gnuplot is missing (Debian: gnuplot-nox): no plot"
  exit 0
fi
python3 - "$out/curve.json" >"$work/curve.dat" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
peak = c["saturation"]["goodput_rps"]
print(f"# multiple offered_actions_per_s goodput_rps admitted_p50_ms admitted_p99_ms peak={peak:.1f}")
for s in c["steps"]:
    print(s["multiple"], round(s["rate"], 1), round(s["goodput_rps"], 1), s["admitted"]["p50_ms"], s["admitted"]["p99_ms"])
PY
peak=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["saturation"]["goodput_rps"])' "$out/curve.json")
gnuplot <<PLOT
set terminal png size 900,520 font ",10"
set output "$out/goodput.png"
set title "kitshop: goodput and admitted latency as the offered load passes saturation (loadgen -curve, shop mix, fresh stack)"
set xlabel "offered load (multiple of the saturation point)"
set ylabel "goodput (2xx answers/s)"
set y2label "admitted latency (ms)"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set key outside bottom center horizontal
set grid
plot "$work/curve.dat" using 1:3 with linespoints lw 2 pt 7 title "goodput", \
     $peak with lines dt 2 lc rgb "gray" title "peak (saturation)", \
     $peak*0.9 with lines dt 3 lc rgb "gray" title "90% of peak", \
     "$work/curve.dat" using 1:4 axes x1y2 with linespoints pt 5 title "admitted p50", \
     "$work/curve.dat" using 1:5 axes x1y2 with linespoints pt 9 title "admitted p99"
PLOT
log "plot in $out/goodput.png"
