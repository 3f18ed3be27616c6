# Sourced, not run: what the install scripts that build a pinned tool from its Go
# module share (consul/install.sh, deploy/prometheus/install.sh,
# deploy/standin/jaeger/install.sh, deploy/standin/victorialogs/install.sh). Each
# script states what it builds and where the result is cached; this file reuses a
# cached build, checks for go, makes a work folder, downloads the module, runs the
# build and keeps its result, failing with a message that names the script.
#
# gobuild_init sets cache (KITSHOP_CACHE, by default ~/.cache/kitshop: outside the
# repository, so a clean clone keeps its builds); gobuild_start sets work, a folder in
# the cache removed when the script exits.

# gobuild_init tag: tag prefixes log lines; errors name the calling script by its path
# in the repository.
gobuild_init() {
  gobuild_tag=$1
  local root script
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  script=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)/$(basename "${BASH_SOURCE[1]}")
  gobuild_script=${script#"$root"/}
  cache=${KITSHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kitshop}
}

gobuild_log() { printf '[%s %s] %s\n' "$gobuild_tag" "$(date +%H:%M:%S)" "$*" >&2; }
gobuild_die() { echo "$gobuild_script: $*" >&2; exit 1; }

# gobuild_reuse path check...: prints path when check (a command, its output
# discarded) succeeds, i.e. a build is cached and runs.
gobuild_reuse() {
  local path=$1
  shift
  "$@" >/dev/null 2>&1 || return 1
  echo "$path"
}

# gobuild_start: before building, go on the PATH and a work folder in the cache. The
# module cache's files are read-only, hence the chmod before removing them.
gobuild_start() {
  command -v go >/dev/null || gobuild_die "go is not on PATH"
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
}

# gobuild_source module@version: downloads the module from the module proxy, copies it
# to $work/src, writable, and changes into it. The download runs in the work folder so
# that it never touches the go.mod of a module around the caller.
gobuild_source() {
  gobuild_log "downloading $1 from the module proxy"
  local json dir
  if ! json=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$1"); then
    # go reports a module it cannot fetch in the JSON, not on stderr.
    printf '%b\n' "$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")" >&2
    gobuild_die "downloading $1 failed"
  fi
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
  [ -n "$dir" ] || gobuild_die "downloading $1 failed: go mod download named no folder"
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  cd "$work/src" || gobuild_die "cannot enter $work/src"
}

# gobuild_run message command...: logs message, runs command (env VAR=... go build
# ...) with a line every 30 s to show it is alive, and fails if the command does. The
# ticker's sleep holds none of the script's outputs, so that a caller reading stdout to
# its end is not kept waiting by it.
gobuild_run() {
  gobuild_log "$1"
  shift
  (while sleep 30 >/dev/null 2>&1; do gobuild_log "still building…"; done) &
  local ticker=$! status=0
  "$@" || status=$?
  kill "$ticker" 2>/dev/null || true
  [ "$status" -eq 0 ] || gobuild_die "build failed"
}

# gobuild_keep from to: moves the build's result (a file or a folder) to its place in
# the cache, replacing what was there.
gobuild_keep() {
  mkdir -p "$(dirname "$2")"
  rm -rf "$2"
  mv "$1" "$2"
  gobuild_log "built $2"
}
