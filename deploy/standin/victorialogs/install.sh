#!/usr/bin/env bash
# Builds VictoriaLogs (Apache-2.0) from its Go module, pinned, and caches the binary
# outside the repository (scripts/gobuild.sh, as for Consul). It is the log store of
# docker-compose.yml's "logs" profile where victoriametrics/victoria-logs cannot be
# pulled. Prints the path of the binary on its last line; reuses the cached binary.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../../scripts/gobuild.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/gobuild.sh"
gobuild_init victorialogs

version=${VICTORIALOGS_VERSION:-v1.52.2}
bin="$cache/victoria-logs-$version/victoria-logs"
gobuild_reuse "$bin" "$bin" -version && exit 0

gobuild_start
# A build cache of its own, removed with the work folder: the binary is what is kept.
gobuild_run "building github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$version (about a minute)" \
  env GOCACHE="$work/gocache" GOBIN="$work/bin" GOFLAGS=-mod=mod CGO_ENABLED=0 \
  go install -trimpath -ldflags "-s -w" "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$version"
gobuild_keep "$work/bin/victoria-logs" "$bin"
echo "$bin"
