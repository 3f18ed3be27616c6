#!/usr/bin/env bash
# Makes sure the components the tests and the demo use are up on this machine:
# PostgreSQL on 127.0.0.1:5432, RabbitMQ on 127.0.0.1:5672 and a Consul dev agent on
# 127.0.0.1:8500. Starts what is down (with the machine's own commands) and waits for it.
# With --require, a component that cannot be brought up is an error; with --bench, the
# tools make bench drives (wrk, nginx, gnuplot, pgbench) are installed too.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
require=false bench=false
for arg in "$@"; do
  case $arg in
    --require) require=true ;;
    --bench) bench=true ;;
    *) echo "deps: unknown argument $arg (want --require, --bench)" >&2; exit 2 ;;
  esac
done

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  for _ in $(seq 1 $(($3 * 5))); do
    port_open "$2" && return 0
    sleep 0.2
  done
  return 1
}

failed=()

if ! port_open 5432; then
  echo "deps: starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
  fi
  wait_port postgres 5432 30 || failed+=("PostgreSQL (127.0.0.1:5432)")
fi
port_open 5432 && echo "deps: PostgreSQL up"

# The test run starts a whole stack (ten instances with their own pools) beside test
# packages that each open databases of their own: the server's default of 100
# connections is too few. Raised once; the server restarts to take it.
if port_open 5432 && command -v psql >/dev/null; then
  max=$(psql -h 127.0.0.1 -U postgres -Atc 'SHOW max_connections' 2>/dev/null || echo 0)
  if [ "${max:-0}" -lt 300 ] 2>/dev/null; then
    echo "deps: raising PostgreSQL max_connections from $max to 500 (restarts the server)"
    psql -h 127.0.0.1 -U postgres -qc 'ALTER SYSTEM SET max_connections = 500' &&
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main restart &&
      wait_port postgres 5432 30 || failed+=("PostgreSQL with max_connections >= 300")
  fi
fi

if ! port_open 5672; then
  echo "deps: starting RabbitMQ"
  command -v rabbitmq-server >/dev/null && rabbitmq-server -detached || true
  wait_port rabbitmq 5672 60 || failed+=("RabbitMQ (127.0.0.1:5672)")
fi
port_open 5672 && echo "deps: RabbitMQ up"

"$here/../consul/agent.sh" || failed+=("Consul (127.0.0.1:8500)")

# Tools the tests drive: Debian packages installed when missing (kubectl ships with the
# machine image; Debian's kubernetes-client is too old for kustomize, so it is not used).
apt_updated=false
ensure_pkg() { # command package
  command -v "$1" >/dev/null && return 0
  echo "deps: installing Debian package $2"
  if ! $apt_updated; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 || true
  command -v "$1" >/dev/null
}
ensure_pkg docker-compose docker-compose || failed+=("docker-compose (Debian package docker-compose)")
ensure_pkg chromium chromium || failed+=("chromium (Debian package chromium)")
# make proto-check regenerates the gRPC code: protoc and the well-known types it imports.
ensure_pkg protoc protobuf-compiler || failed+=("protoc (Debian package protobuf-compiler)")
if [ ! -f /usr/include/google/protobuf/timestamp.proto ]; then
  echo "deps: installing Debian package libprotobuf-dev"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libprotobuf-dev >/dev/null 2>&1 || true
  [ -f /usr/include/google/protobuf/timestamp.proto ] || failed+=("protobuf's well-known types (Debian package libprotobuf-dev)")
fi
command -v kubectl >/dev/null || failed+=("kubectl")
if $bench; then
  ensure_pkg wrk wrk || failed+=("wrk (Debian package wrk)")
  ensure_pkg nginx nginx || failed+=("nginx (Debian package nginx)")
  ensure_pkg gnuplot gnuplot-nox || failed+=("gnuplot (Debian package gnuplot-nox)")
  # pgbench ships with the server package (postgresql-15 on Debian 12), not the client.
  ensure_pkg pgbench postgresql || failed+=("pgbench (Debian package postgresql)")
fi

# Prometheus with Consul discovery, built from its Go module (Debian's lacks it);
# minutes the first time, cached after.
"$here/../deploy/prometheus/install.sh" >/dev/null || failed+=("Prometheus (deploy/prometheus/install.sh)")

if [ ${#failed[@]} -gt 0 ]; then
  printf 'deps: not available: %s\n' "${failed[@]}" >&2
  $require && exit 1
fi
exit 0
