#!/usr/bin/env bash
# The whole stack of docker-compose.yml on a machine that cannot pull images (CI, an
# air-gapped host, the development machine): make compose-up / compose-down.
#
#   deploy/compose.sh up [docker-compose up options, e.g. --scale order=3]
#   deploy/compose.sh down [-v]      (-v also removes the volumes: data, tokens, keys)
#   deploy/compose.sh build          every image, nothing started (also for deploy/swarm)
#   deploy/compose.sh compose ARGS   docker-compose with this script's project and files
#   deploy/compose.sh scale SERVICE N        N containers of SERVICE, each passing in Consul
#   deploy/compose.sh roll SERVICE [-build]  replace SERVICE's containers one at a time
#
# up starts the Docker engine if it is not running (installing Debian's docker.io and
# docker-compose when they are missing), builds the stand-in images (deploy/standin)
# and kitshop's own, starts everything but Grafana (whose image cannot be built here),
# and returns when every container is healthy and the seed step has filled the shop.
#
# With COMPOSE_PROFILES=logs, the stack includes the central log store (VictoriaLogs)
# and deploy/logs/compose.yml, which sends every container's output to it.
#
# scale and roll change a running stack without a failed request: docker-compose 1.29
# (Debian's) cannot roll a service by itself. `up --scale` starts every new replica at
# once, and after a build `up` recreates every replica of the service at once, so
# nothing answers in between. These add one container at a time, wait until docker says
# it is healthy and Consul that it passes, and only then stop an old one the graceful
# way (SIGTERM: it deregisters, drains and exits, within the service's stop_grace_period).
#
# KITSHOP_COMPOSE_PROJECT names the compose project (default kitshop). The passwords come
# from .env beside docker-compose.yml, or KITSHOP_COMPOSE_ENV_FILE: when the file does
# not exist and the project has no volumes yet, up writes one with random passwords.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
project=${KITSHOP_COMPOSE_PROJECT:-kitshop}
env_file=${KITSHOP_COMPOSE_ENV_FILE:-$root/.env}
state=$root/.kitshop/compose-$project

log() { printf '[compose %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { echo "deploy/compose.sh: $*" >&2; exit 1; }

apt_install() { # package...
  [ "$(id -u)" = 0 ] || die "Debian packages $* are missing; install them (as root: apt-get install $*)"
  log "installing Debian packages $*"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    die "apt-get install $* failed"
}

# engine makes sure docker and docker-compose are installed and the engine answers.
engine() {
  local missing=()
  command -v docker >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  docker info >/dev/null 2>&1 && return
  [ "$(id -u)" = 0 ] || die "the Docker engine does not answer, and starting it needs root"
  command -v dockerd >/dev/null || apt_install docker.io
  mkdir -p "$root/.kitshop"
  log "starting the Docker engine (log $root/.kitshop/dockerd.log)"
  setsid nohup dockerd >"$root/.kitshop/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  tail -n 20 "$root/.kitshop/dockerd.log" >&2
  die "the Docker engine did not start within 30 s"
}

# logs_on: the "logs" profile is among COMPOSE_PROFILES.
logs_on() { [[ ",${COMPOSE_PROFILES:-}," == *,logs,* ]]; }

compose() {
  local args=(-p "$project" -f "$root/docker-compose.yml" -f "$root/deploy/standin/compose.yml")
  if logs_on; then args+=(-f "$root/deploy/logs/compose.yml"); fi
  if [ -e "$env_file" ]; then args+=(--env-file "$env_file"); fi
  docker-compose "${args[@]}" "$@"
}

# images selects the stand-ins and the bases of kitshop's Dockerfile.
images() {
  set -a
  # shellcheck source=standin/images.env
  . "$root/deploy/standin/images.env"
  KITSHOP_GO_IMAGE=kitshop-standin/golang:$(go env GOVERSION | sed 's/^go//')
  set +a
}

# passwords writes the env file with random passwords, unless it exists or the project
# has volumes already (PostgreSQL and RabbitMQ took their passwords when those were made).
passwords() {
  [ -e "$env_file" ] && return
  if docker volume ls -q --filter "label=com.docker.compose.project=$project" | grep -q .; then
    log "no $env_file and the project has volumes: keeping the passwords they were made with (compose's defaults)"
    return
  fi
  (
    umask 077
    cat >"$env_file" <<EOF
# Made by deploy/compose.sh for the compose project "$project": its passwords. PostgreSQL
# and RabbitMQ take theirs when their volumes are first made (compose-down -v to start afresh).
POSTGRES_PASSWORD=$(random_hex)
RABBITMQ_PASSWORD=$(random_hex)
KITSHOP_ADMIN_PASSWORD=$(random_hex)
GRAFANA_ADMIN_PASSWORD=$(random_hex)
EOF
  )
  log "wrote random passwords to $env_file"
}

random_hex() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }

setting() { # name default → the value compose uses: the environment's, the env file's, or the default
  local v=${!1:-}
  if [ -z "$v" ] && [ -e "$env_file" ]; then v=$(sed -n "s/^$1=//p" "$env_file" | tail -n 1); fi
  echo "${v:-$2}"
}

# logged name command...: runs command with its whole output in $state/<name>.log,
# showing its progress lines with the time; on failure, the end of the log.
logged() {
  local name=$1
  shift
  mkdir -p "$state"
  local out=$state/$name.log
  if ! "$@" 2>&1 | tee "$out" | while IFS= read -r line; do
    case $line in
      "Removing intermediate"*) ;;
      Building* | Step* | Successfully* | Creating* | Starting* | Recreating* | Stopping* | Removing*) log "${line:0:110}" ;;
    esac
  done; then
    tail -n 30 "$out" >&2
    die "$name failed; its output is in $out"
  fi
}

# build makes every image: the stand-ins, then kitshop's.
build() {
  engine
  command -v go >/dev/null || die "go is not on PATH (kitshop's images build with this machine's Go)"
  log "building the stand-in images (deploy/standin/build.sh; minutes the first time)"
  "$root/deploy/standin/build.sh"
  images
  log "building kitshop's images (one compile for all of them)"
  # The file cannot be read without an admin password, which no image holds: a build on
  # its own (for deploy/swarm, say) has no .env yet and gets a placeholder.
  KITSHOP_ADMIN_PASSWORD=${KITSHOP_ADMIN_PASSWORD:-not-used-by-a-build} logged build compose build
}

# free_ports fails, naming the variable to set, when a port the stack publishes is
# taken by something else than this project.
free_ports() {
  local spec svc target var default port
  local specs=(gateway:8080:KITSHOP_GATEWAY_PORT consul:8500:KITSHOP_CONSUL_PORT zipkin:9411:KITSHOP_ZIPKIN_PORT
    zipkin:16686:KITSHOP_TRACES_PORT rabbitmq:15672:KITSHOP_RABBITMQ_UI_PORT prometheus:9090:KITSHOP_PROMETHEUS_PORT)
  if logs_on; then specs+=(victorialogs:9428:KITSHOP_LOGS_PORT victorialogs:5514:KITSHOP_SYSLOG_PORT); fi
  for spec in "${specs[@]}"; do
    IFS=: read -r svc target var <<<"$spec"
    default=$target
    port=$(setting "$var" "$default")
    [ -n "$(compose port "$svc" "$target" 2>/dev/null)" ] && continue
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is taken (the $svc service's); choose another with $var=<port> in $(basename "$env_file") or the environment"
    fi
  done
}

up() {
  local started
  started=$(date +%s)
  engine
  passwords # before build: docker-compose.yml needs the admin password to be read at all
  build
  free_ports
  log "starting the stack and waiting for every service to be healthy"
  # Grafana is left out: its image cannot be built here (`docker compose up grafana`
  # where it can be pulled).
  local services=(seed prometheus zipkin)
  if logs_on; then services+=(victorialogs); fi
  logged up compose up -d --no-build "$@" "${services[@]}"
  local seed
  seed=$(compose ps -q seed | head -n 1)
  [ -n "$seed" ] || die "no seed container"
  if [ "$(docker wait "$seed")" != 0 ]; then
    docker logs "$seed" >&2
    die "seeding the shop failed"
  fi
  docker logs "$seed" 2>&1 | tail -n 1
  wait_healthy
  mkdir -p "$state"
  docker cp "$(compose ps -q bootstrap | head -n 1)":/var/lib/kitshop/tls/ca.pem "$state/ca.pem"
  log "the stack is up after $(($(date +%s) - started)) s"
  summary
}

# wait_healthy waits until no running container of the project is starting or unhealthy.
wait_healthy() {
  local deadline=$((SECONDS + 180)) bad
  while :; do
    bad=$(docker ps --filter "label=com.docker.compose.project=$project" --format '{{.Names}} {{.Status}}' |
      grep -E '\((health: starting|unhealthy)\)' || true)
    [ -z "$bad" ] && return
    if [ $SECONDS -ge $deadline ]; then
      local name
      for name in $(awk '{print $1}' <<<"$bad"); do
        # The last health check's output says what the container still waits for.
        echo "$name, its last health check: $(docker inspect --format '{{with .State.Health}}{{range .Log}}{{.ExitCode}} {{printf "%.200s" .Output}}{{"\n"}}{{end}}{{end}}' "$name" 2>/dev/null | grep . | tail -n 1)" >&2
      done
      die "containers not healthy after 3 minutes: $bad"
    fi
    sleep 2
  done
}

published() { # service port → host:port
  compose port "$1" "$2" 2>/dev/null | tail -n 1 | sed 's/^0\.0\.0\.0:/localhost:/'
}

summary() {
  local gw
  gw=$(published gateway 8080)
  cat <<EOF

  kitshop is up in Docker (compose project $project)
    storefront  https://$gw/   (trust $state/ca.pem; plain http:// is redirected there)
    API         https://$gw/v1/products   (curl --cacert $state/ca.pem)
    Consul UI   http://$(published consul 8500)/ui/
    traces      http://$(published zipkin 16686)/   (Jaeger, fed Zipkin spans)
    RabbitMQ    http://$(published rabbitmq 15672)/   (kitshop / RABBITMQ_PASSWORD in $(basename "$env_file"))
    Prometheus  http://$(published prometheus 9090)/targets
$(if logs_on; then echo "    logs        http://$(published victorialogs 9428)/select/vmui/   (VictoriaLogs; query: \"<X-Trace-Id>\" | unpack_json)"; fi)
    admin       $(setting KITSHOP_ADMIN_EMAIL admin@kitshop.local) / $(setting KITSHOP_ADMIN_PASSWORD "")
    demo user   demo@kitshop.local / demo-password
    containers  $(docker ps -q --filter "label=com.docker.compose.project=$project" | wc -l) running: deploy/compose.sh compose ps
    stop        make compose-down   (keeps the volumes; make compose-down ARGS=-v removes them)

EOF
}

down() {
  local volumes=()
  case ${1:-} in
    -v | --volumes) volumes=(--volumes) ;;
    "") ;;
    *) die "down takes -v or nothing, not $1" ;;
  esac
  engine
  images
  # With the logs profile, whatever the stack was started with: a service of an inactive
  # profile is neither removed nor an orphan.
  COMPOSE_PROFILES=logs logged down compose down --remove-orphans "${volumes[@]}"
  local left
  left=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
  [ -z "$left" ] || die "containers of project $project are left: $left"
  log "project $project: no container left${volumes:+, volumes removed}"
}

# containers service → its running containers' IDs, oldest first.
containers() {
  local ids
  ids=$(docker ps -q --no-trunc --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" --filter "label=com.docker.compose.oneoff=False")
  [ -z "$ids" ] && return
  # shellcheck disable=SC2086
  docker inspect --format '{{.Created}} {{.Id}}' $ids | sort | awk '{print $2}'
}

lines() { grep -c . || true; }

address() { # container → its address on the project's network, the one it registers in Consul
  docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | awk '{print $1}'
}

# consul_addresses service [passing] → the addresses Consul lists for service (every
# registration, or the passing ones), read without a token as anyone may.
consul_addresses() {
  local consul
  consul=$(published consul 8500)
  [ -n "$consul" ] || die "the project's Consul publishes no port"
  curl -fsS "http://$consul/v1/health/service/$1${2:+?passing=1}" | jq -r '.[].Service.Address'
}

# scalable fails unless service is one of the stack's that may run several times: a
# service publishing a host port (the gateway) cannot have two containers.
scalable() {
  local svc=$1 ids
  ids=$(containers "$svc")
  [ -n "$ids" ] || die "service $svc has no running container in project $project (make compose-up first)"
  if [ "$(docker inspect --format '{{len .HostConfig.PortBindings}}' "$(head -n 1 <<<"$ids")")" != 0 ]; then
    die "$svc publishes a host port: a second container could not take it"
  fi
}

# add_one service: one more container of service (the image its tag names now; the
# others are not recreated), returned when it is healthy and passes in Consul.
add_one() {
  local svc=$1 before after new addr n started=$SECONDS health
  before=$(containers "$svc")
  n=$(($(lines <<<"$before") + 1))
  logged "scale-$svc" compose up -d --no-deps --no-recreate --no-build --scale "$svc=$n" "$svc"
  after=$(containers "$svc")
  new=$(grep -vxF -f <(echo "$before") <<<"$after" || true)
  [ "$(lines <<<"$new")" = 1 ] || die "scaling $svc to $n made containers '$new', want one new"
  addr=$(address "$new")
  while :; do
    health=$(docker inspect --format '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$new")
    if [ "$health" = "running healthy" ] && consul_addresses "$svc" passing | grep -qxF "$addr"; then break; fi
    if [ "${health%% *}" != running ] || [ $((SECONDS - started)) -ge 180 ]; then
      docker logs --tail 20 "$new" >&2
      die "the new $svc container ${new:0:12} ($addr) is $health, not both healthy and passing in Consul, after $((SECONDS - started)) s"
    fi
    sleep 1
  done
  log "$svc: ${new:0:12} ($addr) is healthy and passes in Consul after $((SECONDS - started)) s; $n running"
}

# retire container service: stops it the graceful way and removes it, and returns once
# Consul no longer lists it.
retire() {
  local id=$1 svc=$2 addr grace deadline
  addr=$(address "$id")
  # docker stop waits for the container's StopTimeout, which compose sets from the
  # service's stop_grace_period, before it kills.
  grace=$(docker inspect --format '{{.Config.StopTimeout}}' "$id")
  log "$svc: stopping ${id:0:12} ($addr; SIGTERM, up to $grace s to drain)"
  docker stop "$id" >/dev/null
  docker rm "$id" >/dev/null
  deadline=$((SECONDS + 60))
  while grep -qxF "$addr" <<<"$(consul_addresses "$svc")"; do
    [ $SECONDS -lt $deadline ] || die "$svc at $addr is still registered in Consul 60 s after it stopped"
    sleep 1
  done
  log "$svc: ${id:0:12} stopped, removed, gone from Consul"
}

# scale service n: starts containers one at a time (two cold ones at once could take
# every try of a call), or stops the newest first, until n run and pass.
scale() {
  [ $# = 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || die "usage: deploy/compose.sh scale SERVICE N (N ≥ 1)"
  local svc=$1 n=$2 ids
  engine
  images
  scalable "$svc"
  ids=$(containers "$svc")
  for _ in $(seq "$(lines <<<"$ids")" $((n - 1))); do add_one "$svc"; done
  for id in $(containers "$svc" | tail -n +$((n + 1)) | tac); do retire "$id" "$svc"; done
  [ "$(consul_addresses "$svc" passing | lines)" = "$n" ] || die "$svc: Consul does not list $n passing instances"
  log "$svc: $n containers, each healthy and passing in Consul"
}

# roll service [-build]: replaces every container of service, oldest first, each by a
# new one that passes before the old one stops; with -build, the service's image is
# built first (a failed build stops nothing).
roll() {
  local svc=${1:-} build=${2:-} old image id stale
  [ -n "$svc" ] && [ $# -le 2 ] && { [ -z "$build" ] || [ "$build" = -build ]; } ||
    die "usage: deploy/compose.sh roll SERVICE [-build]"
  engine
  images
  scalable "$svc"
  if [ -n "$build" ]; then
    log "building the image of $svc"
    logged "build-$svc" compose build "$svc"
  fi
  old=$(containers "$svc")
  for id in $old; do
    add_one "$svc"
    retire "$id" "$svc"
  done
  image=$(docker image inspect --format '{{.Id}}' "$(docker inspect --format '{{.Config.Image}}' "$(containers "$svc" | head -n 1)")")
  stale=$(for id in $(containers "$svc"); do [ "$(docker inspect --format '{{.Image}}' "$id")" = "$image" ] || echo "$id"; done)
  [ -z "$stale" ] || die "$svc: containers $stale do not run the current image $image"
  log "$svc: $(lines <<<"$old") containers replaced, all new, on image ${image:7:12}"
}

case ${1:-} in
  up) shift; up "$@" ;;
  build) build ;;
  down) shift; down "$@" ;;
  compose) shift; images; compose "$@" ;;
  scale) shift; scale "$@" ;;
  roll) shift; roll "$@" ;;
  *) die "usage: deploy/compose.sh up [options] | down [-v] | build | compose ARGS | scale SERVICE N | roll SERVICE [-build]" ;;
esac
