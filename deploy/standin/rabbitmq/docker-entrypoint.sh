#!/usr/bin/env bash
# The entrypoint of kitshop-standin/rabbitmq: writes rabbitmq.conf from the variables
# the official image takes (the default account applies only when the data directory is
# new, as there), then runs the command. It runs as the rabbitmq user.
set -euo pipefail

conf=/etc/rabbitmq/rabbitmq.conf
{
  echo "listeners.tcp.default = 5672"
  echo "management.tcp.port = 15672"
  if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then echo "default_user = $RABBITMQ_DEFAULT_USER"; fi
  if [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then echo "default_pass = $RABBITMQ_DEFAULT_PASS"; fi
  if [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ]; then echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"; fi
} >"$conf"
exec "$@"
