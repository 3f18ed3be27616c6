#!/usr/bin/env bash
# The entrypoint of kitshop-standin/consul, after the official image's: `agent ...` gets
# the data and config folders, and -bind/-client addresses from CONSUL_BIND_INTERFACE /
# CONSUL_CLIENT_INTERFACE; other Consul subcommands run as given. It runs as consul.
set -euo pipefail

address_of() { # interface → its first IPv4 address
  local addr
  addr=$(ip -o -4 addr list "$1" | awk '{print $4}' | cut -d/ -f1 | head -n 1)
  if [ -z "$addr" ]; then
    echo "consul: no IPv4 address on interface $1" >&2
    exit 1
  fi
  echo "$addr"
}

extra=()
if [ -n "${CONSUL_BIND_INTERFACE:-}" ]; then extra+=("-bind=$(address_of "$CONSUL_BIND_INTERFACE")"); fi
if [ -n "${CONSUL_CLIENT_INTERFACE:-}" ]; then extra+=("-client=$(address_of "$CONSUL_CLIENT_INTERFACE")"); fi
if [ -n "${CONSUL_LOCAL_CONFIG:-}" ]; then printf '%s\n' "$CONSUL_LOCAL_CONFIG" >/consul/config/local.json; fi

if [ "${1:0:1}" = - ]; then
  set -- consul "$@"
fi
case $1 in
  agent)
    shift
    set -- consul agent -data-dir=/consul/data -config-dir=/consul/config "${extra[@]}" "$@" ;;
  *)
    # Not a program: a Consul subcommand (members, acl, ...).
    if ! command -v "$1" >/dev/null; then set -- consul "$@"; fi ;;
esac
exec "$@"
