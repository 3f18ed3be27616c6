#!/usr/bin/env bash
# Builds Prometheus and promtool from their Go module, pinned, and caches the binaries
# outside the repository. Debian's prometheus package (2.42 on bookworm) is built
# without Consul service discovery ("field consul_sd_configs not found"), so it can
# neither check nor run deploy/prometheus/prometheus.yml. Only the Consul and file
# discovery plugins are compiled in (build tags remove_all_sd,enable_consul_sd), which
# keeps the build to a few minutes. The version matches the prom/prometheus image that
# docker-compose.yml and the Kubernetes demo overlay pin.
# Prints the folder holding prometheus and promtool on its last line. With --check it
# only prints it if they are built, and fails otherwise.
set -euo pipefail
check_only=false
[ "${1:-}" = "--check" ] && check_only=true

version=${PROMETHEUS_VERSION:-v3.16.0}
module_version=v0.3$(printf '%02d' "$(echo "${version#v3.}" | cut -d. -f1)").$(echo "$version" | cut -d. -f3)
cache=${KITSHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kitshop}
dir="$cache/prometheus-$version"

if [ -x "$dir/prometheus" ] && [ -x "$dir/promtool" ] && "$dir/promtool" --version >/dev/null 2>&1; then
  echo "$dir"
  exit 0
fi
if $check_only; then
  echo "deploy/prometheus/install.sh: Prometheus $version is not built in $dir; run deploy/prometheus/install.sh" >&2
  exit 1
fi

command -v go >/dev/null || { echo "deploy/prometheus/install.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

log() { printf '[prometheus %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "downloading github.com/prometheus/prometheus@$module_version from the module proxy"
src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/prometheus/prometheus@$module_version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "deploy/prometheus/install.sh: download failed" >&2; exit 1; }
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"

log "building prometheus and promtool (a few minutes on 2 cores)"
( while sleep 30; do log "still building…"; done ) &
ticker=$!
ldflags="-s -w -X github.com/prometheus/common/version.Version=${version#v}"
if ! GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -tags remove_all_sd,enable_consul_sd \
  -ldflags "$ldflags" -o "$work/out/" ./cmd/prometheus ./cmd/promtool; then
  kill "$ticker" 2>/dev/null
  echo "deploy/prometheus/install.sh: build failed" >&2
  exit 1
fi
kill "$ticker" 2>/dev/null || true
rm -rf "$dir"
mv "$work/out" "$dir"
log "built $("$dir/promtool" --version | head -1)"
echo "$dir"
