#!/usr/bin/env bash
# Builds, for a machine that cannot pull from an image registry, every image that
# docker-compose.yml would pull, under kitshop's own names (images.env lists them), and
# the two bases kitshop's Dockerfile builds on:
#
#   kitshop-standin/debian:bookworm      debootstrap --variant=minbase, docker import
#   kitshop-standin/golang:<go version>  the base + this machine's Go and CA bundle
#   kitshop-standin/static:nonroot       a distroless-like runtime base (no shell)
#   kitshop-standin/postgres, rabbitmq   Debian's packages on the base
#   kitshop-standin/consul, prometheus   built from their Go modules (consul/install.sh,
#                                        deploy/prometheus/install.sh)
#   kitshop-standin/jaeger               Jaeger's all-in-one (jaeger/install.sh), the
#                                        Zipkin-compatible collector
#   kitshop-standin/victoria-logs        VictoriaLogs (victorialogs/install.sh), the log
#                                        store of the "logs" profile: built only when
#                                        COMPOSE_PROFILES names it
#
# An image whose recipe (its folder here, its base, the binary it copies) has not
# changed since it was built is kept, so a second run takes seconds. Needs root for
# debootstrap and a running Docker engine (deploy/compose.sh starts one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
logs=${KITSHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kitshop}/standin-logs
mirror=${KITSHOP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# shellcheck source=images.env
. "$here/images.env"
go_image=kitshop-standin/golang:$(go env GOVERSION | sed 's/^go//')
export DOCKER_BUILDKIT=0 # the classic builder: its "Step n/m" lines are the progress shown

log() { printf '[standin %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "deploy/standin/build.sh: $*" >&2; exit 1; }

label=org.kitshop.standin.recipe

# built_recipe image → the recipe label of the image, empty when there is none.
built_recipe() { docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true; }

# build tag folder key [file[=name]...]: docker build of folder's Dockerfile on the
# base, with the files copied into the context (under name, if given); key names what
# else the image is made of. The array build_args adds --build-arg options.
build_args=()
build() {
  local tag=$1 dir=$2 key=$3
  shift 3
  local recipe
  recipe=$({
    (cd "$dir" && sha256sum ./*)
    echo "$key"
    docker image inspect -f '{{.Id}}' "$KITSHOP_STANDIN_BASE"
  } | sha256sum | cut -c1-16)
  if [ "$(built_recipe "$tag")" = "$recipe" ]; then
    log "$tag: up to date"
    return
  fi
  local ctx
  ctx=$(mktemp -d)
  cp -a "$dir"/. "$ctx"/
  local f
  for f in "$@"; do cp -a "${f%%=*}" "$ctx/$(basename "${f#*=}")"; done
  mkdir -p "$logs"
  local out="$logs/$(echo "$tag" | tr '/:' '__').log"
  log "$tag: building (log $out)"
  if ! docker build --build-arg BASE="$KITSHOP_STANDIN_BASE" "${build_args[@]}" --label "$label=$recipe" -t "$tag" "$ctx" 2>&1 |
    tee "$out" | while IFS= read -r line; do
      case $line in Step*) log "$tag: ${line:0:100}" ;; esac
    done; then
    rm -rf "$ctx"
    tail -n 20 "$out" >&2
    die "building $tag failed; see $out"
  fi
  rm -rf "$ctx"
  log "$tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}

# base: Debian bookworm, minbase, imported as an image. Its recipe is this function.
build_base() {
  local tag=$KITSHOP_STANDIN_BASE
  local recipe
  recipe=$(declare -f build_base | sha256sum | cut -c1-16)
  if [ "$(built_recipe "$tag")" = "$recipe" ]; then
    log "$tag: up to date"
    return
  fi
  command -v debootstrap >/dev/null || {
    log "installing Debian package debootstrap"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  } || die "debootstrap is missing and could not be installed (Debian package debootstrap)"
  local dir
  dir=$(mktemp -d)
  log "$tag: debootstrap --variant=minbase bookworm from $mirror (about 1.5 minutes)"
  if ! debootstrap --variant=minbase --include=ca-certificates bookworm "$dir" "$mirror" >"$logs/debootstrap.log" 2>&1; then
    rm -rf "$dir"
    tail -n 20 "$logs/debootstrap.log" >&2
    die "debootstrap failed; see $logs/debootstrap.log"
  fi
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
  # Images install what they need and nothing else; services are never started at
  # install time; documentation is not installed.
  echo 'APT::Install-Recommends "false"; APT::Install-Suggests "false";' >"$dir/etc/apt/apt.conf.d/90kitshop"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod +x "$dir/usr/sbin/policy-rc.d"
  printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
    >"$dir/etc/dpkg/dpkg.cfg.d/90kitshop"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import -c 'ENV LANG=C.UTF-8' -c "LABEL $label=$recipe" -c 'CMD ["bash"]' - "$tag" >/dev/null
  rm -rf "$dir"
  log "$tag: imported"
}

command -v go >/dev/null || die "go is not on PATH (the builder image and three stand-ins come from this machine's Go)"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (deploy/compose.sh starts it)"
mkdir -p "$logs"
started=$(date +%s)

build_base

gotree=$(go env GOROOT)
build_args=(--build-arg "GOPROXY=$(go env GOPROXY)" --build-arg "GOSUMDB=$(go env GOSUMDB)")
build "$go_image" "$here/golang" "$(go version) $(go env GOPROXY GOSUMDB) $(sha256sum /etc/ssl/certs/ca-certificates.crt)" \
  "$gotree" /etc/ssl/certs/ca-certificates.crt
build_args=()
build "$KITSHOP_RUNTIME_IMAGE" "$here/static" ""
build "$KITSHOP_POSTGRES_IMAGE" "$here/postgres" ""
build "$KITSHOP_RABBITMQ_IMAGE" "$here/rabbitmq" ""

consul=$("$root/consul/install.sh" | tail -n 1)
build "$KITSHOP_CONSUL_IMAGE" "$here/consul" "$(sha256sum <"$consul")" "$consul=consul"
prometheus=$("$root/deploy/prometheus/install.sh" | tail -n 1)
build "$KITSHOP_PROMETHEUS_IMAGE" "$here/prometheus" "$(cat "$prometheus/prometheus" | sha256sum)" \
  "$prometheus/prometheus" "$prometheus/promtool"
jaeger=$("$here/jaeger/install.sh" | tail -n 1)
build "$KITSHOP_ZIPKIN_IMAGE" "$here/jaeger" "$(sha256sum <"$jaeger")" "$jaeger"

if [[ ",${COMPOSE_PROFILES:-}," == *,logs,* ]]; then
  victorialogs=$("$here/victorialogs/install.sh" | tail -n 1)
  build "$KITSHOP_VICTORIALOGS_IMAGE" "$here/victorialogs" "$(sha256sum <"$victorialogs")" "$victorialogs"
fi

log "stand-in images ready after $(($(date +%s) - started)) s"
