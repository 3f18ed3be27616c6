# Sourced by bench/run.sh: Caddy as the other Go reverse proxy the gateway is compared
# with, a plain reverse_proxy with an access log (the gateway writes one too).

# caddy_bin prints the path of a Caddy binary, building the pinned version from its Go
# module the first time (about 3 minutes on two cores) into the kitshop cache.
caddy_bin() {
  local version=v2.11.9
  local cache=${KITSHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kitshop}
  local dir=$cache/caddy-$version
  if [ ! -x "$dir/caddy" ]; then
    echo "[$(date +%H:%M:%S)] bench: building Caddy $version from its Go module (minutes, once)" >&2
    mkdir -p "$dir"
    GOFLAGS=-mod=mod GOBIN=$dir go install "github.com/caddyserver/caddy/v2/cmd/caddy@$version" >&2
  fi
  echo "$dir/caddy"
}

# start_caddy WORKDIR LISTEN_PORT UPSTREAM_HOSTPORT writes WORKDIR/Caddyfile and starts
# Caddy in the background (its pid in WORKDIR/caddy.pid, access log in WORKDIR).
start_caddy() {
  local work=$1 port=$2 upstream=$3 bin
  bin=$(caddy_bin)
  cat >"$work/Caddyfile" <<CONF
{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:$port {
	log {
		output file $work/caddy-access.log
	}
	reverse_proxy $upstream
}
CONF
  XDG_DATA_HOME=$work/caddy-data XDG_CONFIG_HOME=$work/caddy-config \
    "$bin" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
  echo $! >"$work/caddy.pid"
}
