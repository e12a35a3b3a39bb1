#!/usr/bin/env bash
# The seeds' benchmark at scale (issue 13): SCALE_LEVELS clients at one 64-byte message a second each, through
# ceil(clients / SCALE_PROXY_CONNS) processes of each proxy on one port (nginx workers, HAProxy processes, gateway
# processes with ReusePort), against the same multi-process echo backend; the clients come from several LoadGen
# processes and source addresses, started together and merged. Prints a table per level and writes a jsonl.
#
#   SCALE_LEVELS="1000 10000" bench/seeds-scale.sh
#
# Loopback only; every process it starts is stopped by PID at the end; every wait is bounded. See bench/README.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

: "${SCALE_LEVELS:=1000 10000 30000 50000 100000}"
: "${SCALE_TARGETS:=nginx haproxy gateway}"
: "${SCALE_RATE:=1}"              # messages per second per client
: "${SCALE_SIZE:=64}"             # message size, bytes
: "${SCALE_DURATION:=30}"         # measured window, seconds
: "${SCALE_WARMUP:=5}"            # sending before the window, seconds
: "${SCALE_DRAIN:=3}"             # echoes of messages sent in the window still count if they arrive this long after it
: "${SCALE_PROXY_CONNS:=9000}"    # clients per proxy process (2 descriptors each, 20,000 open files per process)
: "${SCALE_ECHO_CONNS:=15000}"    # connections per echo-backend process (1 descriptor each)
: "${SCALE_LOADGEN_CONNS:=9000}"  # clients per LoadGen process
: "${SCALE_CONNECT_CONCURRENCY:=200}"  # connects in flight per LoadGen process
: "${SCALE_OPEN_SECONDS:=}"       # bound on the connect phase; empty: 30 + clients / 500
: "${SCALE_SOURCES:=$(seq -s, -f '127.0.0.%g' 2 17)}"          # client source addresses (16)
: "${SCALE_BACKEND_SOURCES:=$(seq -s, -f '127.0.1.%g' 1 8)}"   # the proxies' backend legs (8)
: "${SCALE_PORT_BASE:=19000}"
: "${SCALE_PAUSE:=5}"
: "${SCALE_GATEWAY_ENV:=}"        # extra environment for the gateway processes
: "${SCALE_GATEWAY_KEEPALIVE:=1}"  # 1: the gateway's route pings both peers every 5 s (as run.sh's /ka); 0: keepalive off
: "${BENCH_RESULTS_DIR:=$BENCH_DIR/results}"

# Ports: the three proxies' public ports, then the gateways' admin ports, then the echo backends'.
NGINX_PORT=$SCALE_PORT_BASE; HAPROXY_PORT=$((SCALE_PORT_BASE + 1)); GATEWAY_PORT=$((SCALE_PORT_BASE + 2))
ADMIN_BASE=$((SCALE_PORT_BASE + 10)); ECHO_BASE=$((SCALE_PORT_BASE + 100))

BENCH_LOG_TAG=seeds-scale
# log, die, the PIDS stopped on exit, stop_pid, wait_port, ensure_proxies
source "$BENCH_DIR/common.sh"
ensure_proxies

ceil_div() { echo $(( ($1 + $2 - 1) / $2 )); }
NOFILE=$(ulimit -n)
MAX_LEVEL=0
for level in $SCALE_LEVELS; do (( level > MAX_LEVEL )) && MAX_LEVEL=$level; done
(( $(ceil_div "$MAX_LEVEL" "$SCALE_PROXY_CONNS") <= 90 )) || die "too many proxy processes for the admin port range"
(( $(ceil_div "$MAX_LEVEL" "$SCALE_ECHO_CONNS") <= 90 )) || die "too many echo processes for the port range"
(( 2 * SCALE_PROXY_CONNS + 200 <= NOFILE )) || log "warning: $SCALE_PROXY_CONNS proxied clients need $((2 * SCALE_PROXY_CONNS)) descriptors, the limit is $NOFILE"
require_free_ports "$SCALE_PORT_BASE" "$((SCALE_PORT_BASE + 190))" SCALE_PORT_BASE

WORK="$(mktemp -d /tmp/gateway-seeds-scale.XXXXXX)"
mkdir -p "$WORK/keys" "$BENCH_RESULTS_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$BENCH_RESULTS_DIR/$STAMP-seeds-scale.jsonl"
TABLE="$BENCH_RESULTS_DIR/$STAMP-seeds-scale.md"
log "levels $SCALE_LEVELS, targets $SCALE_TARGETS, work dir $WORK, results $RESULTS"

# ---- build ----
build_tools

# ---- /proc readings over a set of PIDs (comma-separated) ----
cpu_ticks() { # utime + stime of the processes, in clock ticks (USER_HZ)
  local total=0 pid
  for pid in ${1//,/ }; do
    [[ -r /proc/$pid/stat ]] || continue
    total=$(( total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}') ))
  done
  echo "$total"
}
rss_kb() { # VmRSS summed, KB
  local total=0 pid
  for pid in ${1//,/ }; do
    [[ -r /proc/$pid/status ]] || continue
    total=$(( total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status") ))
  done
  echo "$total"
}
join_pids() { local IFS=,; echo "$*"; }

# ---- the echo backend: ECHO_N processes on ports ECHO_BASE.., restarted per level ----
ECHO_PIDS=()
start_echo() { # count
  local i pid
  for i in $(seq 0 $(($1 - 1))); do
    dotnet "$WORK/echoserver/EchoServer.dll" --port $((ECHO_BASE + i)) --backlog 8192 >>"$WORK/echoserver.log" 2>&1 &
    pid=$!; PIDS+=("$pid"); ECHO_PIDS+=("$pid")
  done
  for i in $(seq 0 $(($1 - 1))); do wait_port $((ECHO_BASE + i)) "${ECHO_PIDS[$i]}" echoserver; done
}
stop_echo() {
  local pid
  for pid in "${ECHO_PIDS[@]}"; do stop_pid "$pid"; done
  ECHO_PIDS=()
}

# ---- nginx: N workers on one port (reuseport: one listen socket per worker, the kernel spreads the clients),
# least connections over the echo processes, backend legs from SCALE_BACKEND_SOURCES by a split over $connection ----
nginx_conf() { # workers echo_count
  local split="" sources i n
  IFS=, read -r -a sources <<<"$SCALE_BACKEND_SOURCES"
  n=${#sources[@]}
  for i in $(seq 0 $((n - 2))); do split+="    $(awk -v n="$n" 'BEGIN { printf "%.2f", int(10000 / n) / 100 }')% ${sources[$i]};"$'\n'; done
  split+="    * ${sources[$((n - 1))]};"
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx.conf" <<EOF
worker_processes $1;
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
  split_clients "\$connection" \$backend_source {
$split
  }
  upstream echo {
    least_conn;
$(for i in $(seq 0 $(($2 - 1))); do echo "    server 127.0.0.1:$((ECHO_BASE + i));"; done)
  }
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport backlog=$(cat /proc/sys/net/core/somaxconn);
    location / {
      proxy_pass http://echo;
      proxy_bind \$backend_source;
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
}

# ---- HAProxy: N single-threaded processes on one port (HAProxy binds with SO_REUSEPORT by default), each capped at
# maxconn = (open files - 200) / 2; one server line per (echo process, backend source), least connections ----
haproxy_conf() { # echo_count
  local sources i s
  IFS=, read -r -a sources <<<"$SCALE_BACKEND_SOURCES"
  cat > "$WORK/haproxy.cfg" <<EOF
global
  maxconn $(( (NOFILE - 200) / 2 ))
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout tunnel 1h
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend be
backend be
  balance leastconn
$(for i in $(seq 0 $(($1 - 1))); do for s in "${!sources[@]}"; do echo "  server e${i}s$s 127.0.0.1:$((ECHO_BASE + i)) source ${sources[$s]}"; done; done)
EOF
}

# ---- the gateway: N processes, ReusePort on one port, own admin port each (environment), relay on, the keepalive
# policy of run.sh's /ka route, least connections (YARP's LeastRequests) over the echo processes ----
gateway_conf() { # echo_count
  local sources_json destinations="" i
  sources_json=$(echo "$SCALE_BACKEND_SOURCES" | sed 's/[^,][^,]*/"&"/g')
  for i in $(seq 0 $(($1 - 1))); do
    destinations+="\"e$i\": { \"Address\": \"http://127.0.0.1:$((ECHO_BASE + i))/\" }"
    (( i < $1 - 1 )) && destinations+=", "
  done
  cat > "$WORK/gateway.json" <<EOF
{
  "Logging": { "LogLevel": { "Default": "Warning", "Microsoft.Hosting.Lifetime": "Information", "Gateway": "Information" } },
  "Gateway": {
    "ReusePort": true,
    "Listeners": { "ws": { "Address": "127.0.0.1", "Port": $GATEWAY_PORT } },
    "Admin": { "Address": "127.0.0.1", "Port": $ADMIN_BASE },
    "Upstream": { "SourceAddresses": [ $sources_json ] },
    "DataProtection": { "KeyDirectory": "$WORK/keys" },
    "Drain": { "Delay": "00:00:00", "Period": "00:00:00" },
    "AccessLog": { "Enabled": false },
    "WebSocketPolicies": {
      "keepalive": { "KeepAlive": { "Interval": "00:00:05", "Timeout": "00:00:15", "Backend": true } },
      "nokeepalive": { "KeepAlive": { "Interval": "00:00:00" } }
    }
  },
  "ReverseProxy": {
    "Routes": {
      "ka": { "ClusterId": "echo", "Match": { "Path": "/ka/{**rest}" }, "Metadata": { "WebSocketPolicy": "keepalive" } },
      "noka": { "ClusterId": "echo", "Match": { "Path": "/noka/{**rest}" }, "Metadata": { "WebSocketPolicy": "nokeepalive" } }
    },
    "Clusters": {
      "echo": {
        "SessionAffinity": { "Enabled": false },
        "HttpRequest": { "ActivityTimeout": "01:00:00" },
        "Destinations": { $destinations }
      }
    }
  }
}
EOF
}

# Starts the target with `procs` processes; sets TARGET_PIDS (what CPU and RSS are read from) and TARGET_MAIN (stopped).
TARGET_PIDS=""; TARGET_MAIN=()
start_target() { # target procs echo_count
  local target=$1 procs=$2 echoes=$3 i pid
  TARGET_MAIN=()
  case "$target" in
    nginx)
      nginx_conf "$procs" "$echoes"
      nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" -t >>"$WORK/nginx.log" 2>&1 \
        || { tail -5 "$WORK/nginx.log" >&2; die "nginx config test failed"; }
      nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" >>"$WORK/nginx.log" 2>&1 &
      pid=$!; PIDS+=("$pid"); TARGET_MAIN=("$pid")
      wait_port "$NGINX_PORT" "$pid" nginx
      # The workers, once all have started (the master's children).
      for _ in $(seq 1 50); do (( $(pgrep -P "$pid" | wc -l) >= procs )) && break; sleep 0.1; done
      TARGET_PIDS=$(join_pids "$pid" $(pgrep -P "$pid"))
      ;;
    haproxy)
      haproxy_conf "$echoes"
      haproxy -c -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 || { tail -5 "$WORK/haproxy.log" >&2; die "haproxy config check failed"; }
      for i in $(seq 1 "$procs"); do
        haproxy -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 &
        pid=$!; PIDS+=("$pid"); TARGET_MAIN+=("$pid")
      done
      for pid in "${TARGET_MAIN[@]}"; do wait_port "$HAPROXY_PORT" "$pid" haproxy; done
      # Each process has its own listen socket on the port: wait until all are there.
      for _ in $(seq 1 100); do (( $(ss -Hltn "sport = :$HAPROXY_PORT" | wc -l) >= procs )) && break; sleep 0.1; done
      TARGET_PIDS=$(join_pids "${TARGET_MAIN[@]}")
      ;;
    gateway)
      gateway_conf "$echoes"
      gateway_log_outside_config_dir
      for i in $(seq 0 $((procs - 1))); do
        (cd "$WORK" && exec env Gateway__Admin__Port=$((ADMIN_BASE + i)) $SCALE_GATEWAY_ENV \
          dotnet "$WORK/gateway/Gateway.dll" --config "$WORK/gateway.json") >>"$WORK/gateway.log" 2>&1 &
        pid=$!; PIDS+=("$pid"); TARGET_MAIN+=("$pid")
      done
      # As behind a load balancer: no traffic until every process's /readyz says ready (after its warm-up).
      local started=$SECONDS
      for i in $(seq 0 $((procs - 1))); do
        until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((ADMIN_BASE + i))/readyz")" = 200 ]; do
          kill -0 "${TARGET_MAIN[$i]}" 2>/dev/null || die "gateway $i exited (see $WORK/gateway.log)"
          # Their warm-ups share the 2 cores: allow more time the more processes start at once.
          (( SECONDS - started < 60 + 10 * procs )) || die "gateway $i not ready within $((60 + 10 * procs)) s (see $WORK/gateway.log)"
          sleep 0.2
        done
      done
      TARGET_PIDS=$(join_pids "${TARGET_MAIN[@]}")
      ;;
    *) die "unknown target $target (nginx, haproxy, gateway)" ;;
  esac
  sleep 1
}
stop_target() {
  local pid
  for pid in "${TARGET_MAIN[@]}"; do stop_pid "$pid"; done
  TARGET_MAIN=(); TARGET_PIDS=""
}
target_port() { case "$1" in nginx) echo "$NGINX_PORT" ;; haproxy) echo "$HAPROXY_PORT" ;; gateway) echo "$GATEWAY_PORT" ;; esac; }

# ---- one (level, target) run ----
run_level() { # level target procs echo_count
  local level=$1 target=$2 procs=$3 echoes=$4
  local loadgens open_seconds bound dir i share rest url lg_pids=() ready
  loadgens=$(ceil_div "$level" "$SCALE_LOADGEN_CONNS")
  open_seconds=${SCALE_OPEN_SECONDS:-$((30 + level / 500))}
  # LoadGen's own hard stop: connects, the wait for the others, the run, the drain, the closing.
  bound=$((open_seconds + 30 + ${SCALE_WARMUP%.*} + ${SCALE_DURATION%.*} + ${SCALE_DRAIN%.*} + 30))
  dir="$WORK/run-$level-$target"; mkdir -p "$dir"
  url="ws://127.0.0.1:$(target_port "$target")/ka/echo"
  [[ $target == gateway && $SCALE_GATEWAY_KEEPALIVE == 0 ]] && url="ws://127.0.0.1:$GATEWAY_PORT/noka/echo"

  start_target "$target" "$procs" "$echoes"
  local rss0; rss0=$(rss_kb "$TARGET_PIDS")
  log "$level clients, $target: $procs processes, $loadgens LoadGen processes, $echoes echo processes; $url (TIME_WAIT sockets now: $(ss -Htan state time-wait | wc -l))"

  # The clients split evenly over the LoadGen processes; each connects, says ready, and waits for the go file.
  rest=$level
  for i in $(seq 0 $((loadgens - 1))); do
    share=$(( rest / (loadgens - i) )); rest=$((rest - share))
    timeout --kill-after=10 $((bound + 20)) "${LOADGEN[@]}" rate --url "$url" --conns "$share" --rate "$SCALE_RATE" \
      --size "$SCALE_SIZE" --duration "$SCALE_DURATION" --warmup "$SCALE_WARMUP" --drain "$SCALE_DRAIN" \
      --sources "$SCALE_SOURCES" --connect-concurrency "$SCALE_CONNECT_CONCURRENCY" --open-seconds "$open_seconds" \
      --ready-file "$dir/ready.$i" --go-file "$dir/go" --hist-out "$dir/hist.$i" --out "$dir/part.$i.jsonl" \
      --pids "$TARGET_PIDS" --max-seconds "$bound" --label "seeds-$level" --target "$target" >"$dir/loadgen.$i.log" 2>&1 &
    lg_pids+=("$!"); PIDS+=("$!")
  done

  # Wait (bounded) until every LoadGen has its connections open, or has exited.
  local started=$SECONDS
  while :; do
    ready=0
    for i in $(seq 0 $((loadgens - 1))); do
      if [[ -e $dir/ready.$i ]] || ! kill -0 "${lg_pids[$i]}" 2>/dev/null; then ready=$((ready + 1)); fi
    done
    (( ready == loadgens )) && break
    if (( SECONDS - started > open_seconds + 20 )); then log "warning: not every LoadGen connected within $((open_seconds + 20)) s; starting anyway"; break; fi
    sleep 0.2
  done
  local connected=0
  for i in $(seq 0 $((loadgens - 1))); do [[ -e $dir/ready.$i ]] && connected=$((connected + $(cat "$dir/ready.$i"))); done
  local rss_connected; rss_connected=$(rss_kb "$TARGET_PIDS")
  log "  connected $connected of $level in $((SECONDS - started)) s; go"
  (( connected < level )) && log "  warning: $((level - connected)) of $level clients did not connect: $(grep -hE 'loadgen: .*(failed|not attempted)' "$dir"/loadgen.*.log 2>/dev/null | head -2 | tr '\n' ' ')"
  touch "$dir/go"

  # During the window: the echo backend's CPU, and the target's RSS in the middle of it.
  local echo_pids; echo_pids=$(join_pids "${ECHO_PIDS[@]}")
  sleep "$SCALE_WARMUP"
  local e0; e0=$(cpu_ticks "$echo_pids")
  local t0ns; t0ns=$(date +%s%N)
  sleep "$(awk -v d="$SCALE_DURATION" 'BEGIN { print d / 2 }')"
  local rss1; rss1=$(rss_kb "$TARGET_PIDS")
  # How the clients spread: descriptors per proxy process, backend legs per source address (from ss).
  local fds="" pid
  for pid in ${TARGET_PIDS//,/ }; do fds+="$(ls "/proc/$pid/fd" 2>/dev/null | wc -l) "; done
  log "  mid-window: open files per $target process: ${fds% }; backend legs by source: $(ss -Htn state established \
    "( dport >= :$ECHO_BASE and dport < :$((ECHO_BASE + echoes)) )" | awk '{ split($3, a, ":"); n[a[1]]++ } END { for (k in n) printf "%s=%d ", k, n[k] }')"
  sleep "$(awk -v d="$SCALE_DURATION" 'BEGIN { print d / 2 }')"
  local e1 t1ns; e1=$(cpu_ticks "$echo_pids"); t1ns=$(date +%s%N)
  local echo_cpu; echo_cpu=$(awk -v a="$e0" -v b="$e1" -v t0="$t0ns" -v t1="$t1ns" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.1f", 100 * (b - a) / hz / ((t1 - t0) / 1e9) }')

  for i in $(seq 0 $((loadgens - 1))); do
    wait "${lg_pids[$i]}" 2>/dev/null || log "  warning: LoadGen $i exited with $? (see $dir/loadgen.$i.log)"
    stop_pid "${lg_pids[$i]}"
  done
  local parts="" hists=""
  for i in $(seq 0 $((loadgens - 1))); do parts+="$dir/part.$i.jsonl,"; hists+="$dir/hist.$i,"; done
  local kb_per_conn=-1
  (( connected > 0 )) && kb_per_conn=$(awk -v a="$rss0" -v b="$rss1" -v n="$connected" 'BEGIN { printf "%.2f", (b - a) / n }')
  "${LOADGEN[@]}" merge --in "${parts%,}" --hists "${hists%,}" --requested "$level" --rate "$SCALE_RATE" \
    --duration "$SCALE_DURATION" --loadgens "$loadgens" --label "seeds-$level" --target "$target" --out "$RESULTS" \
    --set "processes=$procs,echo_processes=$echoes,echo_cpu_pct=$echo_cpu,rss_mb=$(awk -v k="$rss1" 'BEGIN { printf "%.1f", k / 1024 }'),rss_base_mb=$(awk -v k="$rss0" 'BEGIN { printf "%.1f", k / 1024 }'),rss_connected_mb=$(awk -v k="$rss_connected" 'BEGIN { printf "%.1f", k / 1024 }'),kb_per_conn=$kb_per_conn" \
    | grep -v '^{' >&2 || log "  warning: merge failed for $level $target"
  # Where the machine itself stops: say so (connect failures, a saturated load generator) instead of a bare figure.
  grep -h "connections failed" "$dir"/loadgen.*.log 2>/dev/null | sed 's/^/  /' >&2 || true
  for i in $(seq 0 $((loadgens - 1))); do
    local cpu; cpu=$(grep -ho '"lg_cpu_pct":[0-9.]*' "$dir/part.$i.jsonl" 2>/dev/null | cut -d: -f2 || true)
    [[ -n $cpu ]] && awk -v c="$cpu" 'BEGIN { exit !(c >= 90) }' && log "  warning: LoadGen $i used $cpu % of a core: the load generator limits this row"
  done

  stop_target
}

# ---- machine description ----
{
  echo "# Seeds at scale, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), open-file limit $NOFILE"
  echo "- .NET $(dotnet --version), $(nginx -v 2>&1 | cut -d: -f2 | xargs), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
  echo "- gateway: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/'), relay on, keepalive $([[ $SCALE_GATEWAY_KEEPALIVE == 0 ]] && echo off || echo 'every 5 s, both peers (nginx and HAProxy ping no one)')${SCALE_GATEWAY_ENV:+, environment: $SCALE_GATEWAY_ENV}"
  echo "- $SCALE_RATE msg/s × $SCALE_SIZE B per client, window $SCALE_DURATION s after $SCALE_WARMUP s, drain $SCALE_DRAIN s; processes per target = ceil(clients / $SCALE_PROXY_CONNS), LoadGen processes = ceil(clients / $SCALE_LOADGEN_CONNS), echo processes = ceil(clients / $SCALE_ECHO_CONNS)"
  echo "- delivered % = echoes received / (clients × rate × window); p50/p99/max from the LoadGen processes' merged histograms; proxy and loadgen CPU in % of one core (summed over processes); KB/conn = (proxy RSS mid-window − RSS before connecting) / connected clients, RSS summed over the proxy's processes"
  echo
} > "$TABLE"

for level in $SCALE_LEVELS; do
  procs=$(ceil_div "$level" "$SCALE_PROXY_CONNS")
  echoes=$(ceil_div "$level" "$SCALE_ECHO_CONNS")
  start_echo "$echoes"
  for target in $SCALE_TARGETS; do
    run_level "$level" "$target" "$procs" "$echoes"
    sleep "$SCALE_PAUSE"
  done
  stop_echo
done

"${LOADGEN[@]}" report --in "$RESULTS" --baseline nginx >> "$TABLE"
echo >&2
cat "$TABLE"
log "results: $RESULTS and $TABLE; logs in $WORK"
grep -hiE "warn|error|alert|emerg" "$WORK/nginx/error.log" "$WORK/haproxy.log" 2>/dev/null | sort | uniq -c | sort -rn | head -5 >&2 || true
grep -hE "warn|fail|error" "$WORK/gateway.log" 2>/dev/null | head -5 >&2 || true
