"""Turns the raw outputs of one bench/run.sh run into bench/results/<date>.json and .md."""
import glob
import json
import os
import re
import subprocess
import sys

work, date, duration, conns, checkout_duration, instances, rate, out_json, out_md = sys.argv[1:10]


def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def cpu(phase):
    """CPU µs each process used in a phase, from the snapshots before and after it."""
    def load(f):
        out = {}
        for line in open(os.path.join(work, f)):
            k, v = line.split()
            out[k] = int(v)
        return out
    a, b = load(f"cpu-{phase}.before"), load(f"cpu-{phase}.after")
    hz = a.pop("hz")
    b.pop("hz")
    return {k: (b[k] - a[k]) / hz * 1e6 for k in a if k in b}


def wrk(name):
    text = open(os.path.join(work, f"wrk-{name}.txt")).read()
    if "Latency Distribution" not in text:
        sys.exit(f"bench: unexpected wrk output for {name}:\n{text}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    n = int(re.search(r"(\d+) requests in", text).group(1))
    used = cpu(f"wrk-{name}")
    worker = {"direct": "inventory-1", "gateway": "gateway", "nginx": "nginx", "caddy": "caddy", "goproxy": "goproxy"}[name]
    return {
        "requests": n,
        "cpu_us_per_req": used.get(worker, 0) / max(n, 1),
        "cpu_us_per_req_inventory": used.get("inventory-1", 0) / max(n, 1),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)),
        "p99_ms": ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sock.group(1).strip() if sock else "",
    }


def at_rate(name):
    r = json.load(open(os.path.join(work, f"rate-{name}.json")))
    a = r["all"]
    return {"rate": r["rate"], "requests": r["requests"], "errors": r["errors"], "skipped": r.get("skipped", 0),
            "p50_ms": a["p50_ms"], "p90_ms": a["p90_ms"], "p99_ms": a["p99_ms"], "max_ms": a["max_ms"]}


def pct(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(q * len(values) + 0.5) - 1))]


def pgbench(c):
    text = open(os.path.join(work, f"pgbench-{c}.txt")).read()
    tps = float(re.search(r"tps = ([\d.]+)", text).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", text)
    lat = []
    for f in glob.glob(os.path.join(work, f"pgbench-{c}", "pgbench_log.*")):
        for line in open(f):
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                lat.append(int(parts[2]) / 1000)
    return {"clients": c, "tps": tps, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
            "failed": int(failed.group(1)) if failed else 0}


def checkout(c):
    r = json.load(open(os.path.join(work, f"checkout-{c}.json")))
    route = next((x for x in r["routes"] if x["route"] == "POST /v1/orders"), r["all"])
    ok = route["count"] - sum(route["errors"].values())
    used = cpu(f"checkout-{c}")
    per = {k: v / max(ok, 1) / 1000 for k, v in used.items() if k not in ("nginx", "caddy", "goproxy")}
    return {"users": c, "checkouts_per_s": ok / r["duration_s"], "requests": route["count"],
            "cpu_ms_per_checkout": per, "cpu_ms_per_checkout_total": sum(per.values()),
            "errors": route["errors"], "p50_ms": route["p50_ms"], "p99_ms": route["p99_ms"], "max_ms": route["max_ms"]}


def rss():
    idle = {}
    for line in open(os.path.join(work, "rss-idle")):
        name, kb = line.split()
        idle[name] = int(kb)
    loaded = {}
    for line in open(os.path.join(work, "rss-samples")):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            loaded[parts[0]] = max(loaded.get(parts[0], 0), int(parts[1]))
    return {n: {"idle_mib": idle[n] / 1024, "loaded_mib": loaded.get(n, 0) / 1024} for n in idle}


def startup():
    out = {}
    for line in open(os.path.join(work, "startup")):
        svc, took = line.split()
        out[svc] = None if took == "timeout" else float(took)
    return out


def bursts():
    """Each run of bench/burst.sh: the crowd's answers, and the next shopper's."""
    runs = []
    for f in sorted(glob.glob(os.path.join(work, "burst", "burst-*.json"))):
        n = re.search(r"burst-(\d+)\.json$", f).group(1)
        r = json.load(open(f))
        after = os.path.join(work, "burst", f"after-{n}.json")
        nxt = json.load(open(after)) if os.path.exists(after) else None
        bad = lambda errs: sum(v for k, v in errs.items() if k.startswith("5") or k == "transport")
        runs.append({"requests": r["requests"], "errors": r["all"]["errors"], "5xx": bad(r["all"]["errors"]),
                     "p50_ms": r["all"]["p50_ms"], "p99_ms": r["all"]["p99_ms"], "max_ms": r["all"]["max_ms"],
                     "next_shopper_5xx": None if nxt is None else bad(nxt["all"]["errors"])})
    return runs


def goodput():
    c = json.load(open(os.path.join(work, "goodput", "curve.json")))
    sat = c["saturation"]
    peak = max([sat["goodput_rps"]] + [st["goodput_rps"] for st in c["steps"]])
    steps = [{"multiple": st["multiple"], "offered_actions_per_s": st["rate"], "goodput_rps": st["goodput_rps"],
              "admitted_p50_ms": st["admitted"]["p50_ms"], "admitted_p99_ms": st["admitted"]["p99_ms"],
              "errors": st["all"]["errors"], "skipped": st.get("skipped", 0)} for st in c["steps"]]
    return {"saturation": {"users": sat["concurrency"], "actions_per_s": sat["actions_per_s"],
                           "goodput_rps": sat["goodput_rps"], "admitted_p50_ms": sat["admitted"]["p50_ms"],
                           "admitted_p99_ms": sat["admitted"]["p99_ms"], "errors": sat["all"]["errors"]},
            "peak_goodput_rps": peak, "steps": steps}


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return ""


paths = ("direct", "gateway", "nginx", "caddy", "goproxy")
proxy = {n: wrk(n) for n in paths}
g, ng, d, gp, cd = proxy["gateway"], proxy["nginx"], proxy["direct"], proxy["goproxy"], proxy["caddy"]
fixed = {n: at_rate(n) for n in paths}
checkouts = {c: checkout(c) for c in (1, 32)}
ceilings = {c: pgbench(c) for c in (1, 32)}
result = {
    "date": date,
    "commit": sh("git", "rev-parse", "--short", "HEAD"),
    "dirty": bool(sh("git", "status", "--porcelain", "--", ".", ":!bench/results")),
    "machine": {"cpus": os.cpu_count(), "kernel": sh("uname", "-r"), "go": sh("go", "env", "GOVERSION"),
                "nginx": sh("nginx", "-v") or sh("sh", "-c", "nginx -v 2>&1"), "wrk": sh("sh", "-c", "wrk -v 2>&1 | head -1"),
                "pgbench": sh("pgbench", "--version")},
    "settings": {"wrk": f"-t2 -c{conns} -d{duration}", "rate": float(rate), "checkout_duration": checkout_duration,
                 "instances": int(instances)},
    "proxy": proxy,
    "proxy_at_rate": fixed,
    "proxy_ratios": {
        "gateway_nginx_rps": g["rps"] / ng["rps"],
        "gateway_direct_rps": g["rps"] / d["rps"],
        "nginx_direct_rps": ng["rps"] / d["rps"],
        "gateway_added_p99_ms": g["p99_ms"] - d["p99_ms"],
        "nginx_added_p99_ms": ng["p99_ms"] - d["p99_ms"],
        "gateway_nginx_cpu_per_req": g["cpu_us_per_req"] / max(ng["cpu_us_per_req"], 1e-9),
        "gateway_caddy_rps": g["rps"] / cd["rps"],
        "caddy_nginx_rps": cd["rps"] / ng["rps"],
        "gateway_caddy_cpu_per_req": g["cpu_us_per_req"] / max(cd["cpu_us_per_req"], 1e-9),
        "gateway_goproxy_rps": g["rps"] / gp["rps"],
        "goproxy_nginx_rps": gp["rps"] / ng["rps"],
        "gateway_goproxy_cpu_per_req": g["cpu_us_per_req"] / max(gp["cpu_us_per_req"], 1e-9),
        "gateway_added_p50_ms_at_rate": fixed["gateway"]["p50_ms"] - fixed["direct"]["p50_ms"],
        "gateway_added_p99_ms_at_rate": fixed["gateway"]["p99_ms"] - fixed["direct"]["p99_ms"],
        "nginx_added_p50_ms_at_rate": fixed["nginx"]["p50_ms"] - fixed["direct"]["p50_ms"],
        "nginx_added_p99_ms_at_rate": fixed["nginx"]["p99_ms"] - fixed["direct"]["p99_ms"],
        "caddy_added_p99_ms_at_rate": fixed["caddy"]["p99_ms"] - fixed["direct"]["p99_ms"],
    },
    "checkout": {str(c): checkouts[c] for c in checkouts},
    "pgbench": {str(c): ceilings[c] for c in ceilings},
    "checkout_ratios": {str(c): checkouts[c]["checkouts_per_s"] / ceilings[c]["tps"] for c in checkouts},
    "rss": rss(),
    "start_to_passing_s": startup(),
    "burst": bursts(),
    "goodput": goodput(),
    "transport": json.load(open(os.path.join(work, "transport", "transport.json"))),
    "targets": {},
}
r = result["proxy_ratios"]
result["targets"] = {
    "gateway >= 0.9x nginx rps": r["gateway_nginx_rps"] >= 0.9,
    f"gateway added p99 <= 1 ms at {float(rate):.0f} req/s": r["gateway_added_p99_ms_at_rate"] <= 1.0,
    "gateway added p99 <= 1 ms under wrk's saturating load": r["gateway_added_p99_ms"] <= 1.0,
    "checkout at 32 users >= 30% of pgbench": result["checkout_ratios"]["32"] >= 0.3,
    "gateway ahead of Caddy (rps), with all of its middleware": r["gateway_caddy_rps"] >= 1.0,
    "no 5xx in a crowd on a stack that has just started": all(b["5xx"] == 0 for b in result["burst"]),
}
gp4 = max(result["goodput"]["steps"], key=lambda st: st["multiple"])
result["targets"].update({
    f"goodput at {gp4['multiple']:g}x saturation >= 90% of peak": gp4["goodput_rps"] >= 0.9 * result["goodput"]["peak_goodput_rps"],
    f"admitted p99 at {gp4['multiple']:g}x saturation < 1 s": gp4["admitted_p99_ms"] < 1000,
    "no 504 at any step of the curve": all("504" not in st["errors"] for st in result["goodput"]["steps"]),
})
json.dump(result, open(out_json, "w"), indent=2)
open(out_json, "a").write("\n")

L = []
L.append(f"# kitshop bench, {date} (commit {result['commit']}{', dirty tree' if result['dirty'] else ''})\n")
n_inst = int(instances)
if n_inst == 1:
    L.append(f"{result['machine']['cpus']} CPUs, {result['machine']['go']}, one instance per service, PostgreSQL stores, access logs on.\n")
else:
    L.append(f"{result['machine']['cpus']} CPUs, {result['machine']['go']}, {n_inst} instances per service, PostgreSQL stores, access logs on. "
             "The gateway balances over every inventory instance while direct, nginx and the bare Go proxy reach one: "
             "the product rows do not compare like for like.\n")
L.append(f"## GET /v1/products/{{sku}} — wrk {result['settings']['wrk']}\n")
L.append("| path | req/s | p50 ms | p99 ms | non-2xx | CPU µs/req of the serving process |")
L.append("|---|---:|---:|---:|---:|---:|")
for n, who in (("direct", "inventory"), ("gateway", "gateway"), ("nginx", "nginx, all workers"),
               ("caddy", "Caddy, access log on"), ("goproxy", "bare httputil.ReverseProxy")):
    x = proxy[n]
    L.append(f"| {n} | {x['rps']:.0f} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['non_2xx']} | {x['cpu_us_per_req']:.1f} ({who}) |")
L.append("")
L.append(f"CPU per request, gateway/nginx: **{r['gateway_nginx_cpu_per_req']:.1f}×**, gateway/bare Go reverse proxy: "
         f"**{r['gateway_goproxy_cpu_per_req']:.2f}×** (req/s on a shared machine moves with whatever else runs; CPU time "
         "per request much less so).\n")
L.append(f"gateway/Caddy rps **{r['gateway_caddy_rps']:.2f}** (target ≥ 1: ahead of Caddy with every middleware on), "
         f"CPU per request gateway/Caddy {r['gateway_caddy_cpu_per_req']:.2f}×; Caddy/nginx rps {r['caddy_nginx_rps']:.2f}.\n")
L.append(f"Bare Go reverse proxy (goproxy: net/http server and Transport, nothing else)/nginx rps "
         f"**{r['goproxy_nginx_rps']:.2f}**, gateway/goproxy rps **{r['gateway_goproxy_rps']:.2f}**.\n")
L.append(f"gateway/nginx rps **{r['gateway_nginx_rps']:.2f}** (target ≥ 0.90); gateway/direct {r['gateway_direct_rps']:.2f}; "
         f"nginx/direct {r['nginx_direct_rps']:.2f}. Added p99 over direct at this saturating load: gateway "
         f"**{r['gateway_added_p99_ms']:+.2f} ms**, nginx {r['nginx_added_p99_ms']:+.2f} ms.\n")
L.append(f"## GET /v1/products/{{sku}} at a fixed {float(rate):.0f} req/s — loadgen -url, open workload, {duration}\n")
L.append("| path | requests | errors | p50 ms | p90 ms | p99 ms | max ms | added p50 ms | added p99 ms |")
L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in paths:
    x = fixed[n]
    added = "" if n == "direct" else f"{x['p50_ms'] - fixed['direct']['p50_ms']:+.2f} | {x['p99_ms'] - fixed['direct']['p99_ms']:+.2f}"
    L.append(f"| {n} | {x['requests']} | {x['errors'] + x['skipped']} | {x['p50_ms']:.2f} | {x['p90_ms']:.2f} | {x['p99_ms']:.2f} | "
             f"{x['max_ms']:.2f} | {added or ' | '} |")
L.append("")
L.append("Under wrk every path runs at its limit, so its p99 is mostly queueing; at a fixed rate below every "
         "limit the difference to direct is what the hop itself adds.\n")
L.append(f"## Checkout — loadgen through the gateway vs pgbench on the same statements ({checkout_duration})\n")
L.append("| users | checkouts/s | p50 ms | p99 ms | errors | pgbench tps | pgbench p50 ms | pgbench p99 ms | ratio |")
L.append("|---:|---:|---:|---:|---|---:|---:|---:|---:|")
for c in (1, 32):
    x, y = checkouts[c], ceilings[c]
    errs = " ".join(f"{k}×{v}" for k, v in sorted(x["errors"].items())) or "-"
    L.append(f"| {c} | {x['checkouts_per_s']:.1f} | {x['p50_ms']:.1f} | {x['p99_ms']:.1f} | {errs} | {y['tps']:.1f} | "
             f"{y['p50_ms']:.1f} | {y['p99_ms']:.1f} | **{result['checkout_ratios'][str(c)]:.2f}** |")
L.append("\n(target at 32 users: ratio ≥ 0.30)\n")
L.append("CPU ms per successful checkout, by process (counted once the users are registered):\n")
names = list(checkouts[32]["cpu_ms_per_checkout"])
L.append("| users | " + " | ".join(names) + " | total |")
L.append("|---:|" + "---:|" * (len(names) + 1))
for c in (1, 32):
    per = checkouts[c]["cpu_ms_per_checkout"]
    L.append(f"| {c} | " + " | ".join(f"{per.get(k, 0):.2f}" for k in names) + f" | {checkouts[c]['cpu_ms_per_checkout_total']:.2f} |")
L.append("")
L.append("## A crowd on a stack that has just started (bench/burst.sh)\n")
L.append("Each run: a fresh stack as `make up` starts it (its own Consul agent and CA, its own databases, mTLS, two "
         "instances of every service), then 60 shoppers at once, each putting an item in the cart and checking out; "
         "then one more shopper.\n")
L.append("| run | requests | 5xx | p50 ms | p99 ms | max ms | errors | next shopper 5xx |")
L.append("|---:|---:|---:|---:|---:|---:|---|---:|")
for i, b in enumerate(result["burst"], 1):
    errs = " ".join(f"{k}×{v}" for k, v in sorted(b["errors"].items())) or "-"
    L.append(f"| {i} | {b['requests']} | {b['5xx']} | {b['p50_ms']:.0f} | {b['p99_ms']:.0f} | {b['max_ms']:.0f} | {errs} | "
             f"{'' if b['next_shopper_5xx'] is None else b['next_shopper_5xx']} |")
L.append("")
gpr = result["goodput"]
sat = gpr["saturation"]
L.append("## Goodput past saturation (bench/goodput.sh)\n")
L.append(f"A fresh stack as `make up` starts it; loadgen -curve, the shop's mix. Saturation point: {sat['users']} users in a "
         f"closed loop, {sat['actions_per_s']:.0f} actions/s, goodput {sat['goodput_rps']:.0f} answers/s, admitted p50 "
         f"{sat['admitted_p50_ms']:.0f} ms, p99 {sat['admitted_p99_ms']:.0f} ms. Peak goodput {gpr['peak_goodput_rps']:.0f}/s.\n")
L.append(f"![goodput]({date}-goodput.png)\n")
L.append("| offered | actions/s | goodput 2xx/s | of peak | admitted p50 ms | admitted p99 ms | errors | skipped |")
L.append("|---:|---:|---:|---:|---:|---:|---|---:|")
for st in gpr["steps"]:
    errs = " ".join(f"{k}×{v}" for k, v in sorted(st["errors"].items())) or "-"
    L.append(f"| {st['multiple']:g}× | {st['offered_actions_per_s']:.0f} | {st['goodput_rps']:.0f} | "
             f"{st['goodput_rps'] / max(gpr['peak_goodput_rps'], 1e-9):.2f} | {st['admitted_p50_ms']:.0f} | "
             f"{st['admitted_p99_ms']:.0f} | {errs} | {st['skipped']} |")
L.append("")
tr = result["transport"]
L.append("## The calls between services: HTTP JSON vs gRPC (bench/transport.sh)\n")
L.append(f"Checkouts through the gateway (loadgen -mix checkout=1), each transport on a fresh stack of its own with mTLS "
         f"on, one instance per service, KITSHOP_INTERNAL_TRANSPORT set. CPU is every process of the stack and "
         f"PostgreSQL, per successful checkout. One run each: the machine's noise between two stacks is of the order "
         f"of the differences.\n")
L.append("| users | transport | checkouts/s | p50 ms | p99 ms | errors | CPU ms/checkout | of which services (not PostgreSQL) |")
L.append("|---:|---|---:|---:|---:|---|---:|---:|")
for c in ("1", "32"):
    for t in ("http", "grpc"):
        x = tr[t][c]
        errs = " ".join(f"{k}×{v}" for k, v in sorted(x["errors"].items())) or "-"
        own = x["cpu_ms_per_checkout"] - x["cpu_ms_per_checkout_by_service"].get("postgres", 0)
        L.append(f"| {c} | {t} | {x['checkouts_per_s']:.1f} | {x['p50_ms']:.1f} | {x['p99_ms']:.0f} | {errs} | "
                 f"{x['cpu_ms_per_checkout']:.2f} | {own:.2f} |")
for c in ("1", "32"):
    h, g = tr["http"][c], tr["grpc"][c]
    L.append(f"\n{c} user(s), gRPC/HTTP: checkouts/s **{g['checkouts_per_s'] / max(h['checkouts_per_s'], 1e-9):.2f}×**, "
             f"p99 {g['p99_ms'] / max(h['p99_ms'], 1e-9):.2f}×, CPU per checkout {g['cpu_ms_per_checkout'] / max(h['cpu_ms_per_checkout'], 1e-9):.2f}×.")
L.append("")
L.append("## Processes — RSS and start-to-passing\n")
L.append("| process | idle RSS MiB | loaded RSS MiB | start → passing in Consul s |")
L.append("|---|---:|---:|---:|")
st = result["start_to_passing_s"]
for n, v in result["rss"].items():
    svc = "gateway" if n == "gateway" else n.rsplit("-", 1)[0]
    t = st.get(svc) if n in ("gateway",) or n.endswith("-1") else None
    L.append(f"| {n} | {v['idle_mib']:.1f} | {v['loaded_mib']:.1f} | {'' if t is None else f'{t:.2f}'} |")
L.append("")
L.append("## Targets\n")
for k, v in result["targets"].items():
    L.append(f"- {k}: {'met' if v else '**not met**'}")
L.append(f"\nHot paths: `go test -bench` output in {date}.gobench.txt (compare runs with benchstat).")
open(out_md, "w").write("\n".join(L) + "\n")
