#!/usr/bin/env bash
# Builds Prometheus and promtool from their Go module, pinned, and caches the binaries
# outside the repository (scripts/gobuild.sh). Debian's prometheus package (2.42 on
# bookworm) is built without Consul service discovery ("field consul_sd_configs not
# found"), so it can neither check nor run deploy/prometheus/prometheus.yml. Only the
# Consul and file discovery plugins are compiled in (build tags
# remove_all_sd,enable_consul_sd), which keeps the build to a few minutes. The version
# matches the prom/prometheus image that docker-compose.yml and the Kubernetes demo
# overlay pin.
# Prints the folder holding prometheus and promtool on its last line. With --check it
# only prints it if they are built, and fails otherwise.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../scripts/gobuild.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/gobuild.sh"
gobuild_init prometheus
check_only=false
[ "${1:-}" = "--check" ] && check_only=true

version=${PROMETHEUS_VERSION:-v3.16.0}
# Prometheus 3.x.y is the Go module's v0.3xx.y.
module_version=v0.3$(printf '%02d' "$(echo "${version#v3.}" | cut -d. -f1)").$(echo "$version" | cut -d. -f3)
dir="$cache/prometheus-$version"
[ -x "$dir/prometheus" ] && gobuild_reuse "$dir" "$dir/promtool" --version && exit 0
$check_only && gobuild_die "Prometheus $version is not built in $dir; run deploy/prometheus/install.sh"

gobuild_start
gobuild_source "github.com/prometheus/prometheus@$module_version"
gobuild_run "building prometheus and promtool (a few minutes on 2 cores)" \
  env GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -tags remove_all_sd,enable_consul_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=${version#v}" \
  -o "$work/out/" ./cmd/prometheus ./cmd/promtool
gobuild_keep "$work/out" "$dir"
echo "$dir"
