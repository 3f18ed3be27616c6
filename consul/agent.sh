#!/usr/bin/env bash
# Makes sure a Consul dev agent answers on 127.0.0.1:8500: reuses one already running,
# otherwise builds the agent if needed (install.sh) and starts it in the background,
# logging to $KITSHOP_CACHE/consul-agent.log. Waits until it has a leader.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
addr=${KITSHOP_CONSUL_ADDR:-127.0.0.1:8500}
cache=${KITSHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kitshop}

leader() { curl -fsS --max-time 2 "http://$addr/v1/status/leader" 2>/dev/null | grep -q ':'; }

if leader; then
  echo "consul: agent already running at $addr"
  exit 0
fi
bin=$("$here/install.sh" | tail -n 1)
mkdir -p "$cache"
log="$cache/consul-agent.log"
echo "consul: starting dev agent at $addr (log $log)"
nohup "$bin" agent -dev -config-file "$here/dev.hcl" >"$log" 2>&1 &
echo $! >"$cache/consul-agent.pid"
for _ in $(seq 1 100); do
  if leader; then
    echo "consul: agent ready; UI at http://$addr/ui"
    exit 0
  fi
  sleep 0.2
done
echo "consul: agent did not get a leader within 20 s; see $log" >&2
exit 1
