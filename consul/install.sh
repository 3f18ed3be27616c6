#!/usr/bin/env bash
# Builds the Consul agent from its Go module, pinned, and caches the binary outside the
# repository. Consul is not packaged for this machine; newer tags do not resolve here.
# Prints the path of the binary on its last line. Reuses the cached binary when present.
set -euo pipefail

version=${CONSUL_VERSION:-v1.14.11}
cache=${KITSHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kitshop}
bin="$cache/consul-$version"

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "consul/install.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

log() { printf '[consul %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "downloading github.com/hashicorp/consul@$version from the module proxy"
dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/consul@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "consul/install.sh: download failed" >&2; exit 1; }

log "copying the module to a writable folder"
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
# The module's replace lines point at sibling folders that a module download lacks.
go mod edit -dropreplace=github.com/hashicorp/consul/api \
  -dropreplace=github.com/hashicorp/consul/sdk \
  -dropreplace=github.com/hashicorp/consul/proto-public

log "building (about 3 minutes on 2 cores)"
( while sleep 30; do log "still building…"; done ) &
ticker=$!
if ! GOFLAGS=-mod=mod go build -trimpath -o "$work/consul" . ; then
  kill "$ticker" 2>/dev/null
  echo "consul/install.sh: build failed" >&2
  exit 1
fi
kill "$ticker" 2>/dev/null || true
mv "$work/consul" "$bin"
log "built $("$bin" version | head -1)"
echo "$bin"
