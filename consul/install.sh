#!/usr/bin/env bash
# Builds the Consul agent from its Go module, pinned, and caches the binary outside the
# repository (scripts/gobuild.sh). Consul is not packaged for this machine; newer tags
# do not resolve here. Prints the path of the binary on its last line. Reuses the
# cached binary when present.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/gobuild.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/gobuild.sh"
gobuild_init consul

version=${CONSUL_VERSION:-v1.14.11}
bin="$cache/consul-$version"
gobuild_reuse "$bin" "$bin" version && exit 0

gobuild_start
gobuild_source "github.com/hashicorp/consul@$version"
# The module's replace lines point at sibling folders that a module download lacks.
go mod edit -dropreplace=github.com/hashicorp/consul/api \
  -dropreplace=github.com/hashicorp/consul/sdk \
  -dropreplace=github.com/hashicorp/consul/proto-public
gobuild_run "building (about 3 minutes on 2 cores)" \
  env GOFLAGS=-mod=mod go build -trimpath -o "$work/consul" .
gobuild_keep "$work/consul" "$bin"
echo "$bin"
