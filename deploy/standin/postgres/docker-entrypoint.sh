#!/usr/bin/env bash
# The entrypoint of kitshop-standin/postgres, written for the subset of the official
# image's behaviour kitshop relies on: on an empty PGDATA, initdb with POSTGRES_USER and
# POSTGRES_PASSWORD, create POSTGRES_DB, and run /docker-entrypoint-initdb.d/* against a
# server that listens on its socket only (so a TCP health check fails until the real
# server starts); then run the server. It runs as the postgres user.
set -euo pipefail

log() { printf '%s [standin-entrypoint] %s\n' "$(date -u +%FT%TZ)" "$*"; }

init_cluster() {
  local user=${POSTGRES_USER:-postgres}
  local db=${POSTGRES_DB:-$user}
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres: POSTGRES_PASSWORD is empty; set it (the server accepts password logins only)" >&2
    exit 1
  fi
  log "initialising a cluster in $PGDATA for user $user"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >/dev/null
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  local psql=(psql -v ON_ERROR_STOP=1 --username "$user" --no-password --no-psqlrc)
  if [ "$db" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$db" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  local f
  shopt -s nullglob
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh)
        log "running $f"
        if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) log "running $f"; "${psql[@]}" --dbname "$db" -f "$f" >/dev/null ;;
      *.sql.gz) log "running $f"; gzip -dc "$f" | "${psql[@]}" --dbname "$db" >/dev/null ;;
      *) log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "cluster ready"
}

if [ "${1:0:1}" = - ]; then
  set -- postgres "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  init_cluster
fi
exec "$@"
