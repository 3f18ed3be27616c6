# Sourced by bench/run.sh and gateway/bench/proxy.sh: nginx as the plain reverse proxy
# the gateway is compared with, keepalive to the one upstream.

# start_nginx WORKDIR LISTEN_PORT UPSTREAM_HOSTPORT writes WORKDIR/nginx.conf and starts
# nginx in the background (its pid in WORKDIR/nginx.pid, logs in WORKDIR).
start_nginx() {
  local work=$1 port=$2 upstream=$3
  cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log $work/nginx-access.log;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  fastcgi_temp_path $work/nginx-fastcgi;
  uwsgi_temp_path $work/nginx-uwsgi;
  scgi_temp_path $work/nginx-scgi;
  upstream inventory {
    server $upstream;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://inventory;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
CONF
  nginx -c "$work/nginx.conf" -p "$work"
}
