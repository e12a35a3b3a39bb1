#!/usr/bin/env bash
# The WebSocket benchmark of issue 6 in one command: direct / nginx / HAProxy / gateway, same echo backend, same
# load generator, alternating, BENCH_REPS repetitions each; prints a table of medians and ratios vs nginx.
#
#   bench/run.sh                 # full sizes (about 40-45 minutes)
#   BENCH_QUICK=1 bench/run.sh   # small sizes, 1 repetition (a couple of minutes)
#
# Everything listens on 127.0.0.1 (ports BENCH_PORT_BASE..+7, default 18000..18007); all traffic is loopback. The
# proxies run as separate processes with configs generated into a temp dir and are stopped by PID at the end.
# See bench/README.md for every variable.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

# ---- sizes (env overrides; QUICK picks small defaults) ----
QUICK="${BENCH_QUICK:-0}"
if [[ "$QUICK" == 1 ]]; then
  MODE=quick
  : "${BENCH_REPS:=1}"
  : "${BENCH_ECHO_CONNS:=50}"  "${BENCH_ECHO_INFLIGHT:=10}" "${BENCH_ECHO_SIZE:=64}" "${BENCH_ECHO_DURATION:=3}" "${BENCH_ECHO_WARMUP:=1}"
  : "${BENCH_RATE_CONNS:=200}" "${BENCH_RATE_RATE:=10}"     "${BENCH_RATE_SIZE:=128}" "${BENCH_RATE_DURATION:=3}" "${BENCH_RATE_WARMUP:=2}"
  : "${BENCH_IDLE_CONNS:=1000}" "${BENCH_IDLE_HOLD:=6}"      "${BENCH_IDLE_CONCURRENCY:=500}"
  : "${BENCH_SEEDS_CONNS:=1000}" "${BENCH_SEEDS_RATE:=1}"    "${BENCH_SEEDS_SIZE:=64}" "${BENCH_SEEDS_DURATION:=3}" "${BENCH_SEEDS_WARMUP:=2}"
  : "${BENCH_TLS_DURATION:=3}" "${BENCH_TLS_CONCURRENCY:=8}"
  : "${BENCH_PAUSE:=1}"
else
  MODE=full
  : "${BENCH_REPS:=3}"
  : "${BENCH_ECHO_CONNS:=100}"  "${BENCH_ECHO_INFLIGHT:=10}" "${BENCH_ECHO_SIZE:=64}" "${BENCH_ECHO_DURATION:=10}" "${BENCH_ECHO_WARMUP:=2}"
  : "${BENCH_RATE_CONNS:=1000}" "${BENCH_RATE_RATE:=10}"     "${BENCH_RATE_SIZE:=128}" "${BENCH_RATE_DURATION:=20}" "${BENCH_RATE_WARMUP:=3}"
  : "${BENCH_IDLE_CONNS:=9000}" "${BENCH_IDLE_HOLD:=20}"     "${BENCH_IDLE_CONCURRENCY:=1000}"
  : "${BENCH_SEEDS_CONNS:=9000}" "${BENCH_SEEDS_RATE:=1}"    "${BENCH_SEEDS_SIZE:=64}" "${BENCH_SEEDS_DURATION:=20}" "${BENCH_SEEDS_WARMUP:=3}"
  : "${BENCH_TLS_DURATION:=20}" "${BENCH_TLS_CONCURRENCY:=8}"
  : "${BENCH_PAUSE:=3}"
fi
: "${BENCH_SCENARIOS:=echo rate idle-ka idle-noka idle-wss idle-h2 seeds tls}"
: "${BENCH_TARGETS:=direct nginx haproxy gateway}"
: "${BENCH_PORT_BASE:=18000}"
: "${BENCH_SOURCES:=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9}"
: "${BENCH_CONNECT_CONCURRENCY:=500}"
: "${BENCH_IDLE_WARMUP_CONNS:=300}"
: "${BENCH_H2_STREAMS:=100}"  # idle-h2: streams per HTTP/2 connection (the servers' SETTINGS_MAX_CONCURRENT_STREAMS)
: "${BENCH_KEEPALIVE_INTERVAL:=00:00:05}"
: "${BENCH_NGINX_BACKLOG:=$(cat /proc/sys/net/core/somaxconn)}"  # nginx's default is 511; HAProxy's is maxconn (capped by somaxconn)
: "${BENCH_GATEWAY_ENV:=}"  # extra environment for the gateway process only
: "${BENCH_RATE_LIMITS:=0}"   # 1: rate limits on /ka (every scope, numbers never reached), to compare CPU per message with 0
: "${BENCH_CERT_KEY:=ec}"   # ec (P-256) or rsa (2048)
: "${BENCH_RESULTS_DIR:=$BENCH_DIR/results}"

BACKEND_PORT=$BENCH_PORT_BASE
NGINX_WS=$((BENCH_PORT_BASE + 1)); NGINX_WSS=$((BENCH_PORT_BASE + 2))
HAPROXY_WS=$((BENCH_PORT_BASE + 3)); HAPROXY_WSS=$((BENCH_PORT_BASE + 4))
GATEWAY_WS=$((BENCH_PORT_BASE + 5)); GATEWAY_WSS=$((BENCH_PORT_BASE + 6)); GATEWAY_ADMIN=$((BENCH_PORT_BASE + 7))

BENCH_LOG_TAG=bench
# log, die, the PIDS stopped on exit, stop_pid, wait_port, ensure_proxies, build_tools, and the certificate, echo server
# and gateway (bench_certificate, bench_start_echo, bench_gateway_config, bench_start_gateway)
source "$BENCH_DIR/common.sh"
ensure_proxies
command -v openssl >/dev/null 2>&1 || die "openssl is required"

# ---- limits ----
NOFILE=$(ulimit -n)
log "open-file limit: $NOFILE (load generator, proxies and backend each inherit it)"
if (( 2 * BENCH_IDLE_CONNS + 200 > NOFILE || 2 * BENCH_SEEDS_CONNS + 200 > NOFILE )); then
  log "warning: a proxy needs 2 descriptors per proxied connection: $BENCH_IDLE_CONNS/$BENCH_SEEDS_CONNS connections need more than $NOFILE"
fi
require_free_ports "$BENCH_PORT_BASE" "$((BENCH_PORT_BASE + 7))" BENCH_PORT_BASE

WORK="$(mktemp -d /tmp/gateway-bench.XXXXXX)"
mkdir -p "$WORK/nginx" "$WORK/keys" "$BENCH_RESULTS_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$BENCH_RESULTS_DIR/$STAMP-$MODE.jsonl"
TABLE="$BENCH_RESULTS_DIR/$STAMP-$MODE.md"
log "mode $MODE, work dir $WORK, results $RESULTS"

# ---- build ----
build_tools

# ---- certificate shared by all proxies ----
bench_certificate "$BENCH_CERT_KEY"
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/combined.pem"

# ---- echo backend ----
bench_start_echo

# ---- nginx: 2 workers, ws and wss, upgrade headers, long proxy timeouts ----
cat > "$WORK/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $((NOFILE - 200)); }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream echo { server 127.0.0.1:$BACKEND_PORT; }
  server {
    listen 127.0.0.1:$NGINX_WS backlog=$BENCH_NGINX_BACKLOG;
    listen 127.0.0.1:$NGINX_WSS ssl backlog=$BENCH_NGINX_BACKLOG;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header Host \$host;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_buffering off;
    }
  }
}
EOF
nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" -t >"$WORK/nginx.log" 2>&1 || { cat "$WORK/nginx.log" >&2; die "nginx config test failed"; }
start_nginx() {
  nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" >>"$WORK/nginx.log" 2>&1 &
  NGINX_PID=$!; PIDS+=("$NGINX_PID")
  wait_port "$NGINX_WS" "$NGINX_PID" nginx
  sleep 0.3
}
start_nginx
nginx_pids() { echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" | xargs | tr ' ' ','; }

# ---- HAProxy: ws and wss, timeout tunnel; maxconn so that 2 descriptors per connection fit the limit ----
# wss offers h2 for idle-h2: HAProxy (2.4+) takes RFC 8441 WebSockets on an h2 frontend and sends them to the backend as
# HTTP/1.1 upgrades. The other wss scenarios offer only http/1.1, so they negotiate it as before.
HA_MAXCONN=$(( (NOFILE - 200) / 2 ))
cat > "$WORK/haproxy.cfg" <<EOF
global
  maxconn $HA_MAXCONN
  nbthread 2
  ssl-default-bind-options ssl-min-ver TLSv1.2
  tune.ssl.default-dh-param 2048
  tune.h2.max-concurrent-streams $BENCH_H2_STREAMS
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout tunnel 1h
frontend fe
  bind 127.0.0.1:$HAPROXY_WS
  bind 127.0.0.1:$HAPROXY_WSS ssl crt $WORK/combined.pem alpn h2,http/1.1
  maxconn $HA_MAXCONN
  default_backend be
backend be
  server echo 127.0.0.1:$BACKEND_PORT
EOF
haproxy -c -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 || { cat "$WORK/haproxy.log" >&2; die "haproxy config check failed"; }
start_haproxy() {
  haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 &
  HAPROXY_PID=$!; PIDS+=("$HAPROXY_PID")
  wait_port "$HAPROXY_WS" "$HAPROXY_PID" haproxy
}
start_haproxy

# ---- the gateway: published Release build, keepalive policy on /ka, off on /noka, relay on (always) ----
RATE_LIMITS=""
if [[ "$BENCH_RATE_LIMITS" == 1 ]]; then
  # Configured, never reached: what asking the buckets costs per frame (per connection, client and route, both ways).
  BIG='{ "Messages": { "PerSecond": 100000000, "Burst": 100000000 }, "Bytes": { "PerSecond": 100000000000, "Burst": 100000000000 } }'
  RATE_LIMITS=", \"RateLimits\": { \"PerConnection\": $BIG, \"PerClient\": $BIG, \"PerRoute\": $BIG, \"BackendPerConnection\": $BIG, \"Action\": \"Close\" }"
fi
bench_gateway_config "$BENCH_KEEPALIVE_INTERVAL" "$BENCH_H2_STREAMS" "$RATE_LIMITS"
# BENCH_GATEWAY_ENV: extra environment for the gateway alone (e.g. "DOTNET_TieredPGO=0"), for A/B runs.
bench_start_gateway "$BENCH_GATEWAY_ENV"

# A process keeps the memory of earlier runs (allocator pools, the GC heap), so RSS deltas are only meaningful on a
# fresh process: before each idle run the target is restarted, then warmed with a few hundred connections.
restart_target() {
  case "$1" in
    direct)  stop_pid "$ECHO_PID";    bench_start_echo ;;
    nginx)   stop_pid "$NGINX_PID";   start_nginx ;;
    haproxy) stop_pid "$HAPROXY_PID"; start_haproxy ;;
    gateway) stop_pid "$GATEWAY_PID"; bench_start_gateway "$BENCH_GATEWAY_ENV" ;;
  esac
}

# ---- machine description ----
{
  echo "# Gateway benchmark, $MODE mode, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), open-file limit $NOFILE"
  echo "- .NET $(dotnet --version), $(nginx -v 2>&1 | cut -d: -f2 | xargs), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
  echo "- gateway: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/'), workstation GC, relay on, keepalive $BENCH_KEEPALIVE_INTERVAL on /ka (idle-noka: off)$([[ "$BENCH_RATE_LIMITS" == 1 ]] && echo ', rate limits on /ka (not reached)')${BENCH_GATEWAY_ENV:+, environment: $BENCH_GATEWAY_ENV}"
  echo "- reps $BENCH_REPS, targets alternate (order rotated each repetition); cert $BENCH_CERT_KEY; client source addresses $BENCH_SOURCES"
  echo
} > "$TABLE"

# ---- the scenarios ----
url_for() { # target tls path -> url
  local target=$1 tls=$2 path=$3 port
  case "$target:$tls" in
    direct:0)  port=$BACKEND_PORT ;;
    nginx:0)   port=$NGINX_WS ;;    nginx:1)   port=$NGINX_WSS ;;
    haproxy:0) port=$HAPROXY_WS ;;  haproxy:1) port=$HAPROXY_WSS ;;
    gateway:0) port=$GATEWAY_WS ;;  gateway:1) port=$GATEWAY_WSS ;;
    *) return 1 ;;
  esac
  if [[ $tls == 1 ]]; then echo "wss://127.0.0.1:$port$path"; else echo "ws://127.0.0.1:$port$path"; fi
}
pids_for() {
  case "$1" in
    direct) echo "$ECHO_PID" ;;
    nginx) nginx_pids ;;
    haproxy) echo "$HAPROXY_PID" ;;
    gateway) echo "$GATEWAY_PID" ;;
  esac
}

run_one() { # scenario target rep
  local scenario=$1 target=$2 rep=$3 path=/ka/echo tls=0 args bound
  case "$scenario" in
    echo|echo-wss)
           args=(echo --conns "$BENCH_ECHO_CONNS" --inflight "$BENCH_ECHO_INFLIGHT" --size "$BENCH_ECHO_SIZE" --duration "$BENCH_ECHO_DURATION" --warmup "$BENCH_ECHO_WARMUP")
           bound=$((BENCH_ECHO_DURATION + BENCH_ECHO_WARMUP)) ;;
    rate)  args=(rate --conns "$BENCH_RATE_CONNS" --rate "$BENCH_RATE_RATE" --size "$BENCH_RATE_SIZE" --duration "$BENCH_RATE_DURATION" --warmup "$BENCH_RATE_WARMUP")
           bound=$((BENCH_RATE_DURATION + BENCH_RATE_WARMUP)) ;;
    seeds|seeds-wss)
           args=(rate --conns "$BENCH_SEEDS_CONNS" --rate "$BENCH_SEEDS_RATE" --size "$BENCH_SEEDS_SIZE" --duration "$BENCH_SEEDS_DURATION" --warmup "$BENCH_SEEDS_WARMUP")
           bound=$((BENCH_SEEDS_DURATION + BENCH_SEEDS_WARMUP)) ;;
    idle-ka|idle-noka)
           [[ $scenario == idle-noka ]] && path=/noka/echo
           args=(idle --conns "$BENCH_IDLE_CONNS" --duration "$BENCH_IDLE_HOLD" --concurrency "$BENCH_IDLE_CONCURRENCY")
           bound=$((BENCH_IDLE_HOLD + 60)) ;;
    idle-wss)
           tls=1
           args=(idle --conns "$BENCH_IDLE_CONNS" --duration "$BENCH_IDLE_HOLD" --concurrency "$BENCH_IDLE_CONCURRENCY" --ca "$WORK/cert.pem")
           bound=$((BENCH_IDLE_HOLD + 60)) ;;
    idle-h2)
           tls=1
           # WebSockets over HTTP/2 (RFC 8441): BENCH_IDLE_CONNS tunnels as streams of BENCH_IDLE_CONNS/BENCH_H2_STREAMS connections
           args=(idle-h2 --conns "$BENCH_IDLE_CONNS" --streams-per-conn "$BENCH_H2_STREAMS" --duration "$BENCH_IDLE_HOLD" --concurrency "$BENCH_IDLE_CONCURRENCY" --ca "$WORK/cert.pem")
           bound=$((BENCH_IDLE_HOLD + 60)) ;;
    tls)   tls=1
           # --ca: the client trusts our certificate alone (a system-store chain build would double the client's cost)
           args=(tls-connect --duration "$BENCH_TLS_DURATION" --concurrency "$BENCH_TLS_CONCURRENCY" --ca "$WORK/cert.pem")
           bound=$BENCH_TLS_DURATION ;;
  esac
  # The wss variants of the data scenarios: the same load through each proxy's TLS (the client trusts our certificate alone).
  if [[ $scenario == *-wss && $scenario != idle-wss ]]; then
    tls=1
    args+=(--ca "$WORK/cert.pem")
  fi
  local url; url=$(url_for "$target" "$tls" "$path") || return 0
  if [[ $scenario == idle-* ]]; then
    restart_target "$target"
    local warm=(idle)
    [[ $scenario == idle-h2 ]] && warm=(idle-h2 --streams-per-conn "$BENCH_H2_STREAMS")
    [[ $tls == 1 ]] && warm+=(--ca "$WORK/cert.pem")
    timeout --kill-after=5 60 "${LOADGEN[@]}" "${warm[@]}" --url "$url" --conns "$BENCH_IDLE_WARMUP_CONNS" --duration 1 --concurrency 100 \
      --sources "$BENCH_SOURCES" --label warmup --target "$target" >/dev/null 2>&1 || log "warning: warm-up of $target failed"
    sleep 2
  fi
  log "$scenario $target rep $rep: $url (TIME_WAIT sockets now: $(ss -Htan state time-wait | wc -l))"
  timeout --kill-after=10 $((bound + 150)) "${LOADGEN[@]}" "${args[@]}" --url "$url" --label "$scenario" --target "$target" --rep "$rep" \
    --pids "$(pids_for "$target")" --sources "$BENCH_SOURCES" --connect-concurrency "$BENCH_CONNECT_CONCURRENCY" \
    --max-seconds $((bound + 120)) --out "$RESULTS" | grep -v '^{' || log "warning: $scenario $target rep $rep failed"
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "process $pid died during $scenario $target (logs in $WORK)"; done
}

read -r -a TARGETS <<<"$BENCH_TARGETS"
for scenario in $BENCH_SCENARIOS; do
  for rep in $(seq 1 "$BENCH_REPS"); do
    # Alternate: every repetition runs each target once, the order rotated so none always goes first.
    n=${#TARGETS[@]}
    for i in $(seq 0 $((n - 1))); do
      target=${TARGETS[$(( (i + rep - 1) % n ))]}
      # Keepalive off is a gateway setting: the other proxies have no WebSocket keepalive (their idle-ka row is the same thing).
      [[ $scenario == idle-noka && $target != gateway ]] && continue
      # The echo server has no TLS: no "direct" row for the wss scenarios. nginx has no RFC 8441 (bench/README.md).
      [[ $target == direct && $scenario =~ ^(tls|idle-h2)$|-wss$ ]] && continue
      [[ $scenario == idle-h2 && $target == nginx ]] && continue
      run_one "$scenario" "$target" "$rep"
      pause=$BENCH_PAUSE
      [[ $scenario == idle-* || $scenario == seeds ]] && pause=$((BENCH_PAUSE + 3))
      sleep "$pause"
    done
  done
done

"${LOADGEN[@]}" report --in "$RESULTS" --baseline nginx >> "$TABLE"
echo >&2
cat "$TABLE"
log "results: $RESULTS and $TABLE; logs in $WORK"
grep -hiE "warn|error|alert|emerg" "$WORK/nginx/error.log" "$WORK/haproxy.log" 2>/dev/null | sort | uniq -c | sort -rn | head -5 >&2 || true
grep -hE "warn|fail|error" "$WORK/gateway.log" 2>/dev/null | head -5 >&2 || true
