#!/usr/bin/env bash
# Builds Jaeger's all-in-one from its Go module, pinned, and caches the binary outside
# the repository (as consul/install.sh does for Consul). It is the stack's Zipkin-
# compatible collector where openzipkin/zipkin cannot be pulled. Prints the path of the
# binary on its last line; reuses the cached binary when present.
set -euo pipefail

version=${JAEGER_VERSION:-v1.76.0}
cache=${KITSHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kitshop}
bin="$cache/jaeger-$version/jaeger-all-in-one"

if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "jaeger/install.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

log() { printf '[jaeger %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "downloading github.com/jaegertracing/jaeger@$version from the module proxy"
src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/jaegertracing/jaeger@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "jaeger/install.sh: download failed" >&2; exit 1; }
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"

log "building cmd/all-in-one (about 4 minutes on 2 cores)"
( while sleep 30; do log "still building…"; done ) &
ticker=$!
# A build cache of its own, removed with the work folder: the binary is what is kept,
# and Jaeger's thousand packages need not sit in the user's Go build cache.
if ! GOCACHE="$work/gocache" GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/jaeger-all-in-one" ./cmd/all-in-one; then
  kill "$ticker" 2>/dev/null
  echo "jaeger/install.sh: build failed" >&2
  exit 1
fi
kill "$ticker" 2>/dev/null || true
mkdir -p "$(dirname "$bin")"
mv "$work/jaeger-all-in-one" "$bin"
log "built $bin"
echo "$bin"
