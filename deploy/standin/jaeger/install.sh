#!/usr/bin/env bash
# Builds Jaeger's all-in-one from its Go module, pinned, and caches the binary outside
# the repository (scripts/gobuild.sh, as for Consul). It is the stack's Zipkin-
# compatible collector where openzipkin/zipkin cannot be pulled. Prints the path of the
# binary on its last line; reuses the cached binary when present.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../../scripts/gobuild.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/gobuild.sh"
gobuild_init jaeger

version=${JAEGER_VERSION:-v1.76.0}
bin="$cache/jaeger-$version/jaeger-all-in-one"
gobuild_reuse "$bin" "$bin" version && exit 0

gobuild_start
gobuild_source "github.com/jaegertracing/jaeger@$version"
# A build cache of its own, removed with the work folder: the binary is what is kept,
# and Jaeger's thousand packages need not sit in the user's Go build cache.
gobuild_run "building cmd/all-in-one (about 4 minutes on 2 cores)" \
  env GOCACHE="$work/gocache" GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
  go build -trimpath -ldflags "-s -w" -o "$work/jaeger-all-in-one" ./cmd/all-in-one
gobuild_keep "$work/jaeger-all-in-one" "$bin"
echo "$bin"
