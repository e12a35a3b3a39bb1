# Shell helpers shared by bench/run.sh, bench/idle-heap.sh, bench/seeds-scale.sh and bench/soak.sh: logging, the processes a
# run started (stopped by PID on exit, never by name), waiting for a listener, installing nginx and HAProxy, and run.sh's
# certificate, echo server and gateway (config and start), which idle-heap.sh measures the same way. Sourced, not run.
# The caller sets BENCH_LOG_TAG (the prefix of log lines) and WORK (where the processes' logs are) before use.

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "${BENCH_LOG_TAG:-bench}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- processes we start, stopped by PID on exit ----
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # pid: TERM, wait up to 5 s, KILL; then forget it (so a reused PID is never signalled later)
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

forget_pid() { # pid: no longer ours to stop (it exited and was waited for), so a reused PID is never signalled
  local kept=() p
  for p in "${PIDS[@]}"; do [[ $p != "$1" ]] && kept+=("$p"); done
  PIDS=("${kept[@]}")
}

wait_port() { # port pid name: until something listens on 127.0.0.1:port (15 s at most), or the process exits
  for _ in $(seq 1 150); do
    ss -Hltn "sport = :$1" | grep -q . && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited (see $WORK/$3.log)"
    sleep 0.1
  done
  die "$3 did not listen on $1 within 15 s (see $WORK/$3.log)"
}

wait_ready() { # admin_port pid name: until the gateway's /readyz says 200 (after its warm-up; 60 s at most), as a load balancer would
  local started=$SECONDS
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ]; do
    kill -0 "$2" 2>/dev/null || die "$3 exited (see $WORK/$3.log)"
    [ $((SECONDS - started)) -lt 60 ] || die "$3 not ready within 60 s (see $WORK/$3.log)"
    sleep 0.2
  done
}

# ---- nginx and HAProxy from Debian packages ----
ensure_proxies() {
  if ! command -v nginx >/dev/null 2>&1 || ! command -v haproxy >/dev/null 2>&1; then
    log "installing nginx and haproxy from Debian packages"
    # Keep the packages' own services from starting (they would listen on port 80): policy-rc.d says no.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy \
      || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx haproxy
    [[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
  fi
  if ! command -v curl >/dev/null 2>&1; then # the gateway's /readyz is polled before each run
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl
  fi
}

# ---- before a run ----
require_free_ports() { # first last variable: nothing may listen on 127.0.0.1:first..last (the variable that moves them)
  local port
  for port in $(seq "$1" "$2"); do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use (set $3)"; fi
  done
}

build_tools() { # into $WORK: LoadGen, EchoServer and the gateway (Release); sets LOADGEN
  log "building (Release)"
  dotnet build "$BENCH_DIR/LoadGen/LoadGen.csproj" -c Release -nologo -v quiet -o "$WORK/loadgen" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; die "LoadGen build failed"; }
  dotnet build "$BENCH_DIR/EchoServer/EchoServer.csproj" -c Release -nologo -v quiet -o "$WORK/echoserver" >>"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; die "EchoServer build failed"; }
  dotnet publish "$ROOT/src/Gateway/Gateway.csproj" -c Release -nologo -v quiet -o "$WORK/gateway" >>"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; die "Gateway publish failed"; }
  LOADGEN=(dotnet "$WORK/loadgen/LoadGen.dll")
}

json_field() { grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2; } # name: a number field of LoadGen's JSON line on stdin
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; } # of the numbers on stdin

bench_publish_revisions() { # rev_a rev_b: the gateway of each revision published to $WORK/gateway-a and -b (a detached worktree, removed after)
  local side rev
  for side in a b; do
    rev=$1; [[ $side == b ]] && rev=$2
    git -C "$ROOT" worktree add --detach --force "$WORK/src-$side" "$rev" >/dev/null 2>&1 || die "cannot check out $rev"
    dotnet publish "$WORK/src-$side/src/Gateway/Gateway.csproj" -c Release -nologo -v quiet -o "$WORK/gateway-$side" >>"$WORK/build.log" 2>&1 \
      || { git -C "$ROOT" worktree remove --force "$WORK/src-$side"; die "publish of $rev failed (see $WORK/build.log)"; }
    git -C "$ROOT" worktree remove --force "$WORK/src-$side"
    log "$side = $rev ($(git -C "$ROOT" rev-parse --short "$rev"))"
  done
}

rate_figures() { # LoadGen rate's JSON line: sets cpu (the target's, % of a core), p50, p99 (ms) and got (msgs/s)
  cpu=$(echo "$1" | json_field target_cpu_pct); p50=$(echo "$1" | json_field p50_ms); p99=$(echo "$1" | json_field p99_ms)
  got=$(echo "$1" | json_field achieved_per_s)
}

# For the build-against-build scripts (connect-ab.sh, relay-ab.sh): ports port_base..+3 (echo, ws, wss, admin), a work
# dir, the tools, each revision's gateway ($WORK/gateway-a and -b), and run.sh's certificate, echo server and config.
bench_ab_prepare() { # name port_base port_variable rev_a rev_b
  BACKEND_PORT=$2; GATEWAY_WS=$(($2 + 1)); GATEWAY_WSS=$(($2 + 2)); GATEWAY_ADMIN=$(($2 + 3))
  require_free_ports "$2" "$(($2 + 3))" "$3"
  WORK="$(mktemp -d "/tmp/gateway-$1.XXXXXX")"
  mkdir -p "$WORK/keys"
  log "work dir $WORK"
  # LoadGen and the echo server from this checkout; each gateway from its revision.
  build_tools
  bench_publish_revisions "$4" "$5"
  bench_certificate ec
  bench_start_echo
  bench_gateway_config 00:00:05 100
}

# ---- run.sh's certificate, echo server and gateway (idle-heap.sh uses the same, on its own ports) ----
# The caller sets BACKEND_PORT, GATEWAY_WS, GATEWAY_WSS and GATEWAY_ADMIN; build_tools has filled $WORK.

bench_certificate() { # ec|rsa: a self-signed pair for localhost and 127.0.0.1 in $WORK/cert.pem and $WORK/key.pem
  local keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  [[ ${1:-ec} == rsa ]] && keyopt=(-newkey rsa:2048)
  openssl req -x509 "${keyopt[@]}" -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
}

bench_start_echo() { # the echo backend on BACKEND_PORT; sets ECHO_PID
  dotnet "$WORK/echoserver/EchoServer.dll" --port "$BACKEND_PORT" >>"$WORK/echoserver.log" 2>&1 &
  ECHO_PID=$!; PIDS+=("$ECHO_PID")
  wait_port "$BACKEND_PORT" "$ECHO_PID" echoserver
}

# keepalive_interval h2_streams [ka_extra]: $WORK/gateway.json. Keepalive (with backend pings) on /ka, off on /noka, both
# to the echo server; ka_extra is appended to the keepalive policy (run.sh's rate limits: ', "RateLimits": {...}').
# The access log is off, as run.sh's nginx runs with `access_log off` (HAProxy logs nothing without a log target): at
# a connection's close the line was about half of what the gateway allocated (session 11). For its cost, start the
# gateway with "Gateway__AccessLog__Enabled=true" as extra environment.
bench_gateway_config() {
  cat > "$WORK/gateway.json" <<EOF
{
  "Logging": { "LogLevel": { "Default": "Warning", "Microsoft.Hosting.Lifetime": "Information", "Gateway": "Information" } },
  "Gateway": {
    "Listeners": {
      "ws":  { "Address": "127.0.0.1", "Port": $GATEWAY_WS },
      "wss": { "Address": "127.0.0.1", "Port": $GATEWAY_WSS, "Tls": true }
    },
    "Tls": { "Certificates": [ { "Path": "$WORK/cert.pem", "KeyPath": "$WORK/key.pem" } ] },
    "Admin": { "Address": "127.0.0.1", "Port": $GATEWAY_ADMIN },
    "DataProtection": { "KeyDirectory": "$WORK/keys" },
    "Drain": { "Delay": "00:00:00", "Period": "00:00:00" },
    "AccessLog": { "Enabled": false },
    "WebSocketPolicies": {
      "keepalive":   { "KeepAlive": { "Interval": "$1", "Timeout": "00:00:15", "Backend": true }${3:-} },
      "nokeepalive": { "KeepAlive": { "Interval": "00:00:00" } }
    }
  },
  "Kestrel": { "Limits": { "Http2": { "MaxStreamsPerConnection": $2 } } },
  "ReverseProxy": {
    "Routes": {
      "ka":   { "ClusterId": "echo", "Match": { "Path": "/ka/{**rest}" },   "Metadata": { "WebSocketPolicy": "keepalive" } },
      "noka": { "ClusterId": "echo", "Match": { "Path": "/noka/{**rest}" }, "Metadata": { "WebSocketPolicy": "nokeepalive" } }
    },
    "Clusters": {
      "echo": {
        "SessionAffinity": { "Enabled": false },
        "HttpRequest": { "ActivityTimeout": "01:00:00" },
        "Destinations": { "echo": { "Address": "http://127.0.0.1:$BACKEND_PORT/" } }
      }
    }
  }
}
EOF
}

gateway_log_outside_config_dir() { # $WORK/gateway.log as a link to a file beside $WORK, made once
  # The gateway watches its config file's directory (and below) for changes: a log written there wakes that watch with
  # every line (an lstat and a few allocations each, session 11), which no deployment pays (its log goes to stdout, its
  # config sits in a quiet directory). The log stays readable at $WORK/gateway.log.
  [[ -e "$WORK/gateway.log" || -L "$WORK/gateway.log" ]] && return
  mkdir -p "$WORK.logs" && ln -s "$WORK.logs/gateway.log" "$WORK/gateway.log"
}

bench_start_gateway() { # [extra_env]: the published gateway on $WORK/gateway.json, ready as a load balancer would wait; sets GATEWAY_PID
  # extra_env ("NAME=value ...") is split on spaces on purpose: extra environment for the gateway alone, for A/B runs.
  # Ready means /readyz says 200, after the startup warm-up (about 12 s here).
  gateway_log_outside_config_dir
  (cd "$WORK" && exec env ${1:-} dotnet "$WORK/gateway/Gateway.dll" --config "$WORK/gateway.json") >>"$WORK/gateway.log" 2>&1 &
  GATEWAY_PID=$!; PIDS+=("$GATEWAY_PID")
  wait_port "${GATEWAY_WSS:-$GATEWAY_WS}" "$GATEWAY_PID" gateway # a script without a wss listener waits for its ws one
  wait_ready "$GATEWAY_ADMIN" "$GATEWAY_PID" gateway
  sleep 1
}
