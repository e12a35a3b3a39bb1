#!/usr/bin/env bash
# The soak of issue 22: SOAK_CONNS tunnels (9,000) at 1 msg/s for SOAK_DURATION (an hour) through the gateway (the
# published Release build) to SOAK_BACKENDS echo backends in one cluster, while backends are killed (SIGKILL) and
# restarted, the certificate is rotated in place, the config file is edited (reload) and a destination is drained
# through the admin API. LoadGen's `soak` mode checks every echo and counts every loss; this script samples the
# gateway's RSS and descriptors and prints the tables. Not in CI.
#
#   bench/soak.sh                 # 9,000 tunnels, one hour (on a quiet machine)
#   SOAK_QUICK=1 bench/soak.sh    # 600 tunnels, 3 minutes, an event every 20-40 s
#
# Exit code: 0 when nothing was lost without a Close and no echo was wrong, 1 otherwise, 2+ when it could not run.
# Every variable is in bench/README.md ("The soak").
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

if [[ "${SOAK_QUICK:-0}" == 1 ]]; then
  MODE=quick
  : "${SOAK_CONNS:=600}" "${SOAK_DURATION:=180}" "${SOAK_SAMPLE_EVERY:=30}" "${SOAK_QUIET:=25}"
  : "${SOAK_KILL_FIRST:=20}"   "${SOAK_KILL_EVERY:=40}"   "${SOAK_KILL_DOWN:=3}"
  : "${SOAK_DRAIN_FIRST:=30}"  "${SOAK_DRAIN_EVERY:=60}"  "${SOAK_DRAIN_PERIOD:=10}"
  : "${SOAK_ROTATE_FIRST:=45}" "${SOAK_ROTATE_EVERY:=60}"
  : "${SOAK_RELOAD_FIRST:=70}" "${SOAK_RELOAD_EVERY:=60}"
else
  MODE=full
  : "${SOAK_CONNS:=9000}" "${SOAK_DURATION:=3600}" "${SOAK_SAMPLE_EVERY:=60}" "${SOAK_QUIET:=60}"
  : "${SOAK_KILL_FIRST:=300}"  "${SOAK_KILL_EVERY:=300}"  "${SOAK_KILL_DOWN:=5}"
  : "${SOAK_DRAIN_FIRST:=750}" "${SOAK_DRAIN_EVERY:=900}" "${SOAK_DRAIN_PERIOD:=30}"
  : "${SOAK_ROTATE_FIRST:=150}" "${SOAK_ROTATE_EVERY:=900}"
  : "${SOAK_RELOAD_FIRST:=450}" "${SOAK_RELOAD_EVERY:=900}"
fi
: "${SOAK_RATE:=1}"              # messages per second per tunnel (the seeds')
: "${SOAK_SIZE:=64}"             # bytes per message (at least 24: number, tunnel and connection ids, send stamp)
: "${SOAK_WSS_SHARE:=0.5}"       # share of the tunnels on wss (the rest on ws)
: "${SOAK_BACKENDS:=2}"          # echo processes, one destination each
: "${SOAK_ECHO_TIMEOUT:=30}"     # an echo missing this long on an open tunnel counts as lost without a Close
: "${SOAK_BACKOFF_MIN:=1}" "${SOAK_BACKOFF_MAX:=15}"   # reconnect delay: random in [0, min x 2^failures], capped at max
: "${SOAK_CONNECT_CONCURRENCY:=500}"
: "${SOAK_KEEPALIVE:=00:00:10}"  # the route's keepalive interval (a reload toggles it by 2 s)
: "${SOAK_SOURCES:=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9}"
: "${SOAK_PORT_BASE:=18300}"     # +0 ws, +1 wss, +2 admin, +10.. echo backends
: "${SOAK_GATEWAY_ENV:=}"        # extra environment for the gateway process
: "${SOAK_ADMIN_TOKEN:=}"        # the admin API's bearer token; empty: a random one for this run
: "${BENCH_RESULTS_DIR:=$BENCH_DIR/results}"
# Every event and sample runs on its own schedule: first at FIRST s into the run, then every EVERY s (0: never),
# none in the last SOAK_QUIET s, so the reconnects settle before the end's counts.

GATEWAY_WS=$SOAK_PORT_BASE; GATEWAY_WSS=$((SOAK_PORT_BASE + 1)); GATEWAY_ADMIN=$((SOAK_PORT_BASE + 2))
ECHO_BASE=$((SOAK_PORT_BASE + 10))

BENCH_LOG_TAG=soak
# log, die, the PIDS stopped on exit, stop_pid, wait_port, wait_ready, build_tools
source "$BENCH_DIR/common.sh"
for tool in curl openssl jq; do command -v $tool >/dev/null 2>&1 || die "$tool is required"; done
(( SOAK_BACKENDS >= 2 )) || die "SOAK_BACKENDS must be at least 2 (a killed backend's clients reconnect to another)"
NOFILE=$(ulimit -n)
(( 2 * SOAK_CONNS + 500 <= NOFILE )) || log "warning: the gateway needs 2 descriptors per tunnel: $SOAK_CONNS tunnels need more than $NOFILE"
require_free_ports "$SOAK_PORT_BASE" "$((ECHO_BASE + SOAK_BACKENDS - 1))" SOAK_PORT_BASE

WORK="$(mktemp -d /tmp/gateway-soak.XXXXXX)"
mkdir -p "$WORK/keys" "$WORK/certs" "$BENCH_RESULTS_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$BENCH_RESULTS_DIR/$STAMP-soak-$MODE.jsonl"
TABLE="$BENCH_RESULTS_DIR/$STAMP-soak-$MODE.md"
log "mode $MODE: $SOAK_CONNS tunnels ($SOAK_WSS_SHARE wss) x $SOAK_RATE msg/s for $SOAK_DURATION s, $SOAK_BACKENDS backends; work dir $WORK"

build_tools

# ---- certificates: a CA the clients trust, and a leaf for the gateway that a rotation replaces in place ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=soak-ca \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$WORK/leaf.ext"
LEAF_SERIAL=""
make_leaf() { # generation: a new key and certificate, written beside the served pair, then renamed over it
  local g=$1 dir=$WORK/certs
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost (soak $g)" \
    -keyout "$dir/new.key" -out "$dir/new.csr" 2>/dev/null
  openssl x509 -req -in "$dir/new.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -days 2 -extfile "$WORK/leaf.ext" \
    -set_serial "$((1000 + g))" -out "$dir/new.pem" 2>/dev/null
  LEAF_SERIAL=$(openssl x509 -in "$dir/new.pem" -noout -serial | cut -d= -f2)
  # A renewal as a client writes it: the certificate, then its key (the gateway keeps the old pair until both match).
  mv -f "$dir/new.pem" "$dir/server.pem"
  mv -f "$dir/new.key" "$dir/server.key"
}
make_leaf 0
served_serial() {
  openssl s_client -connect "127.0.0.1:$GATEWAY_WSS" -servername localhost </dev/null 2>/dev/null \
    | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}

# ---- echo backends ----
ECHO_PIDS=()
start_echo() { # index
  local i=$1
  dotnet "$WORK/echoserver/EchoServer.dll" --port "$((ECHO_BASE + i))" >>"$WORK/echo$i.log" 2>&1 &
  ECHO_PIDS[i]=$!; PIDS+=("${ECHO_PIDS[i]}")
  wait_port "$((ECHO_BASE + i))" "${ECHO_PIDS[i]}" "echo$i"
}
kill_echo() { # index: SIGKILL, as a crash; forget the PID
  local i=$1 pid=${ECHO_PIDS[$1]}
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
  ECHO_PIDS[i]=""
}
for i in $(seq 0 $((SOAK_BACKENDS - 1))); do start_echo "$i"; done

# ---- the gateway's config: rewritten whole and renamed over the file for each reload ----
# The admin token comes from the environment variable the config names, so the drain works whether the admin API
# requires a token or not.
export SOAK_ADMIN_TOKEN="${SOAK_ADMIN_TOKEN:-$(openssl rand -hex 16)}"
AUTH=(-H "Authorization: Bearer $SOAK_ADMIN_TOKEN")
RELOADS=0
write_config() { # keepalive_interval reload_routes
  local destinations="" routes="" i
  for i in $(seq 0 $((SOAK_BACKENDS - 1))); do
    destinations+="${destinations:+, }\"e$i\": { \"Address\": \"http://127.0.0.1:$((ECHO_BASE + i))/\" }"
  done
  for i in $(seq 1 "$2"); do
    routes+=", \"reload$i\": { \"ClusterId\": \"echo\", \"Match\": { \"Path\": \"/reload$i/{**rest}\" }, \"Metadata\": { \"WebSocketPolicy\": \"soak\" } }"
  done
  cat > "$WORK/gateway.json.new" <<EOF
{
  "Logging": { "LogLevel": { "Default": "Warning", "Microsoft.Hosting.Lifetime": "Information", "Gateway": "Information", "Gateway.AccessLog": "Warning", "Yarp": "Error" } },
  "Gateway": {
    "Listeners": {
      "ws":  { "Address": "127.0.0.1", "Port": $GATEWAY_WS },
      "wss": { "Address": "127.0.0.1", "Port": $GATEWAY_WSS, "Tls": true }
    },
    "Tls": { "Certificates": [ { "Path": "$WORK/certs/server.pem", "KeyPath": "$WORK/certs/server.key" } ] },
    "Admin": { "Address": "127.0.0.1", "Port": $GATEWAY_ADMIN, "TokenEnvironmentVariable": "SOAK_ADMIN_TOKEN" },
    "DataProtection": { "KeyDirectory": "$WORK/keys" },
    "Drain": { "Delay": "00:00:00", "Period": "00:00:02" },
    "WebSocketPolicies": {
      "soak": { "KeepAlive": { "Interval": "$1", "Timeout": "00:00:15", "Backend": true } }
    }
  },
  "ReverseProxy": {
    "Routes": {
      "soak": { "ClusterId": "echo", "Match": { "Path": "/soak/{**rest}" }, "Metadata": { "WebSocketPolicy": "soak" } }$routes
    },
    "Clusters": {
      "echo": {
        "LoadBalancingPolicy": "LeastRequests",
        "SessionAffinity": { "Enabled": false },
        "HttpRequest": { "ActivityTimeout": "01:00:00" },
        "Destinations": { $destinations }
      }
    }
  }
}
EOF
  mv -f "$WORK/gateway.json.new" "$WORK/gateway.json"
}
write_config "$SOAK_KEEPALIVE" 0
KEEPALIVE_ALT=$(date -u -d "1970-01-01 $SOAK_KEEPALIVE UTC + 2 seconds" +%H:%M:%S)

bench_start_gateway "$SOAK_GATEWAY_ENV"
log "gateway ready (pid $GATEWAY_PID), serving certificate serial $(served_serial)"

# ---- sampling: RSS and descriptors of the gateway, open tunnels from the admin API ----
SAMPLES="$WORK/samples.tsv"
tunnels_open() { # [destination]
  curl -s --max-time 10 "${AUTH[@]}" "http://127.0.0.1:$GATEWAY_ADMIN/connections?limit=1${1:+&destination=$1}" | jq -r '.total // "?"' 2>/dev/null || echo "?"
}
sample() { # label: RSS and descriptors from /proc; the managed heap and GC counts from the runtime's meter on /metrics
  local rss fds metrics heap committed gcs
  rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$GATEWAY_PID/status" 2>/dev/null || echo "?")
  fds=$(ls "/proc/$GATEWAY_PID/fd" 2>/dev/null | wc -l || true)
  metrics=$(curl -s --max-time 10 "http://127.0.0.1:$GATEWAY_ADMIN/metrics" || true)
  heap=$(awk '/^dotnet_gc_last_collection_heap_size_bytes/ { s += $NF; n++ } END { if (n) printf "%.1f", s / 1048576; else print "?" }' <<<"$metrics")
  committed=$(awk '/^dotnet_gc_last_collection_memory_committed_size_bytes/ { printf "%.1f", $NF / 1048576; f = 1 } END { if (!f) print "?" }' <<<"$metrics")
  gcs=$(awk '/^dotnet_gc_collections_total/ { g[$1] = $NF } END {
    printf "%s/%s/%s", g["dotnet_gc_collections_total{gc_heap_generation=\"gen0\"}"] + 0, g["dotnet_gc_collections_total{gc_heap_generation=\"gen1\"}"] + 0, g["dotnet_gc_collections_total{gc_heap_generation=\"gen2\"}"] + 0 }' <<<"$metrics")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$((SECONDS - T0))" "$(tunnels_open)" "$rss" "$fds" "$heap" "$committed" "$gcs" >> "$SAMPLES"
  log "sample $1: tunnels $(tail -1 "$SAMPLES" | cut -f3), gateway RSS $rss MB, fds $fds, GC heap $heap MB (committed $committed MB), GCs gen0/1/2 $gcs"
}
busiest() { # -> "index tunnels" of the destination with the most open tunnels
  local i best=0 most=-1 on
  for i in $(seq 0 $((SOAK_BACKENDS - 1))); do
    on=$(tunnels_open "e$i")
    if [[ $on =~ ^[0-9]+$ ]] && (( on > most )); then most=$on; best=$i; fi
  done
  echo "$best $most"
}
T0=$SECONDS
sample before

# ---- the load ----
LG_OUT="$WORK/loadgen.out"
OPEN_SECONDS=$((60 + SOAK_CONNS / 50))
timeout --kill-after=10 $((SOAK_DURATION + OPEN_SECONDS + 400)) "${LOADGEN[@]}" soak \
  --url "ws://127.0.0.1:$GATEWAY_WS/soak/echo" --wss-url "wss://127.0.0.1:$GATEWAY_WSS/soak/echo" --ca "$WORK/ca.pem" \
  --wss-share "$SOAK_WSS_SHARE" --conns "$SOAK_CONNS" --rate "$SOAK_RATE" --size "$SOAK_SIZE" --duration "$SOAK_DURATION" \
  --report-every "$SOAK_SAMPLE_EVERY" --echo-timeout "$SOAK_ECHO_TIMEOUT" --backoff-min "$SOAK_BACKOFF_MIN" --backoff-max "$SOAK_BACKOFF_MAX" \
  --connect-concurrency "$SOAK_CONNECT_CONCURRENCY" --sources "$SOAK_SOURCES" --pids "$GATEWAY_PID" \
  --ready-file "$WORK/ready" --end-file "$WORK/end" --end-go-file "$WORK/end-go" --md-out "$WORK/loadgen.md" \
  --max-seconds $((SOAK_DURATION + OPEN_SECONDS + 300)) --label soak --target gateway --out "$RESULTS" >"$LG_OUT" 2>"$WORK/loadgen.err" &
LG_PID=$!; PIDS+=("$LG_PID")
shown=0
show_loadgen() { # new per-minute lines of LoadGen
  local total; total=$(grep -c '^soak t=' "$LG_OUT" || true)
  if (( total > shown )); then grep '^soak t=' "$LG_OUT" | tail -n $((total - shown)) >&2; shown=$total; fi
}
started=$SECONDS
until [[ -f "$WORK/ready" ]]; do
  kill -0 "$LG_PID" 2>/dev/null || { cat "$WORK/loadgen.err" >&2; die "LoadGen exited before its tunnels were open"; }
  (( SECONDS - started < OPEN_SECONDS )) || die "tunnels not open within $OPEN_SECONDS s"
  sleep 0.5
done
cat "$WORK/loadgen.err" >&2
T0=$SECONDS
sample start

# ---- the events ----
EVENTS="$WORK/events.tsv" # kind, time, outcome (ok/failed), detail
event() { printf '%s\t%s\t%s\t%s\n' "$1" "$((SECONDS - T0))" "$2" "$3" >> "$EVENTS"; log "$1 at $((SECONDS - T0)) s: $2: $3"; }
due() { # name of a NEXT_* variable, its period: true when that event is due now (never in the quiet tail), and
       # moves it to its next time; an event that had to wait (a busy loop, a restart pending) runs late, once
  local t=$((SECONDS - T0)) next=${!1}
  (( next >= 0 && t >= next && t < SOAK_DURATION - SOAK_QUIET )) || return 1
  if (( $2 > 0 )); then printf -v "$1" '%d' $((next + $2 * ((t - next) / $2 + 1))); else printf -v "$1" '%d' -1; fi
}
first_at() { (( $2 > 0 || $1 >= 0 )) && echo "$1" || echo -1; } # first every
NEXT_KILL=$(first_at "$SOAK_KILL_FIRST" "$SOAK_KILL_EVERY"); NEXT_DRAIN=$(first_at "$SOAK_DRAIN_FIRST" "$SOAK_DRAIN_EVERY")
NEXT_ROTATE=$(first_at "$SOAK_ROTATE_FIRST" "$SOAK_ROTATE_EVERY"); NEXT_RELOAD=$(first_at "$SOAK_RELOAD_FIRST" "$SOAK_RELOAD_EVERY")
KILLS=0 ROTATIONS=0 DRAINS=0
RESTART_AT=-1 RESTART_INDEX=0 UNDRAIN_AT=-1 DRAINED=""
do_kill() { # the backend with the most tunnels, so every kill hits live traffic
  local i on
  read -r i on <<<"$(busiest)"
  KILLS=$((KILLS + 1))
  local pid=${ECHO_PIDS[i]}
  kill_echo "$i"
  event kill ok "echo e$i (pid $pid) SIGKILL with $on tunnels on it; restart in $SOAK_KILL_DOWN s"
  RESTART_AT=$((SECONDS + SOAK_KILL_DOWN)); RESTART_INDEX=$i
}
do_rotate() {
  ROTATIONS=$((ROTATIONS + 1))
  make_leaf "$ROTATIONS"
  local want=$LEAF_SERIAL waited=0 got=""
  while (( waited < 20 )); do
    got=$(served_serial)
    [[ $got == "$want" ]] && break
    sleep 1; waited=$((waited + 1))
  done
  if [[ $got == "$want" ]]; then event rotate ok "new certificate (serial $want) served to new handshakes after ${waited} s"
  else event rotate failed "still serving serial '$got' 20 s after writing $want"; fi
}
probe_route() { # path -> HTTP status of a WebSocket handshake (101 once the route exists)
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "http://127.0.0.1:$GATEWAY_WS$1" || true
}
do_reload() {
  RELOADS=$((RELOADS + 1))
  local path="/reload$RELOADS/echo" before after waited=0 interval=$SOAK_KEEPALIVE
  (( RELOADS % 2 == 1 )) && interval=$KEEPALIVE_ALT
  before=$(probe_route "$path")
  write_config "$interval" "$RELOADS"
  while (( waited < 20 )); do
    after=$(probe_route "$path")
    [[ $after == 101 ]] && break
    sleep 1; waited=$((waited + 1))
  done
  if [[ $before != 101 && $after == 101 ]]; then event reload ok "keepalive interval $interval and route $path: handshake $before before, 101 after ${waited} s"
  else event reload failed "route $path: $before before, $after 20 s after the edit"; fi
}
do_drain() { # the destination with the most tunnels
  DRAINS=$((DRAINS + 1))
  local i on period seconds=$SOAK_DRAIN_PERIOD status body
  read -r i on <<<"$(busiest)"
  period=$(date -u -d "@$seconds" +%H:%M:%S)
  body=$(curl -s --max-time 10 -w '\n%{http_code}' -X POST "${AUTH[@]}" "http://127.0.0.1:$GATEWAY_ADMIN/clusters/echo/destinations/e$i/drain?period=$period")
  status=$(tail -1 <<<"$body")
  if [[ $status == 202 ]]; then
    event drain ok "POST drain e$i period $period: 202, tunnelsAtStart $(head -n -1 <<<"$body" | jq -r .tunnelsAtStart)"
    DRAINED=e$i; UNDRAIN_AT=$((SECONDS + seconds + 5))
  else
    event drain failed "POST drain e$i: HTTP $status $(head -n -1 <<<"$body" | tr -d '\n' | cut -c1-200)"
  fi
}
do_undrain() {
  local left status
  left=$(tunnels_open "$DRAINED")
  status=$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' -X DELETE "${AUTH[@]}" "http://127.0.0.1:$GATEWAY_ADMIN/clusters/echo/destinations/$DRAINED/drain")
  if [[ $status == 200 && $left == 0 ]]; then event undrain ok "DELETE drain $DRAINED: 200 ($left tunnels left on it)"
  else event undrain failed "DELETE drain $DRAINED: HTTP $status, $left tunnels still on it"; fi
  UNDRAIN_AT=-1; DRAINED=""
}

log "running for $SOAK_DURATION s: kill every $SOAK_KILL_EVERY s from $SOAK_KILL_FIRST, drain every $SOAK_DRAIN_EVERY s from $SOAK_DRAIN_FIRST, rotation every $SOAK_ROTATE_EVERY s from $SOAK_ROTATE_FIRST, reload every $SOAK_RELOAD_EVERY s from $SOAK_RELOAD_FIRST"
last_tick=-1 NEXT_SAMPLE=$SOAK_SAMPLE_EVERY
while (( SECONDS - T0 < SOAK_DURATION )) && kill -0 "$LG_PID" 2>/dev/null; do
  if (( SECONDS - T0 != last_tick )); then
    last_tick=$((SECONDS - T0))
    # The sample first: one due in the same second as an event sees the state before it.
    if (( SECONDS - T0 >= NEXT_SAMPLE )); then sample "+$((SECONDS - T0))s"; NEXT_SAMPLE=$((NEXT_SAMPLE + SOAK_SAMPLE_EVERY)); fi
    if (( RESTART_AT >= 0 && SECONDS >= RESTART_AT )); then
      start_echo "$RESTART_INDEX"; event restart ok "echo e$RESTART_INDEX back (pid ${ECHO_PIDS[RESTART_INDEX]})"; RESTART_AT=-1
    fi
    if (( UNDRAIN_AT >= 0 && SECONDS >= UNDRAIN_AT )); then do_undrain; fi
    # A kill waits for a drain under way to end, and a drain for a killed backend to be back: with two backends,
    # both at once leave none, and every handshake meanwhile is a 503.
    if (( RESTART_AT < 0 )) && [[ -z $DRAINED ]] && due NEXT_KILL "$SOAK_KILL_EVERY"; then do_kill; fi
    if (( RESTART_AT < 0 )) && [[ -z $DRAINED ]] && due NEXT_DRAIN "$SOAK_DRAIN_EVERY"; then do_drain; fi
    if due NEXT_ROTATE "$SOAK_ROTATE_EVERY"; then do_rotate; fi
    if due NEXT_RELOAD "$SOAK_RELOAD_EVERY"; then do_reload; fi
    show_loadgen
  fi
  sleep 0.2
done
(( RESTART_AT >= 0 )) && { start_echo "$RESTART_INDEX"; event restart ok "echo e$RESTART_INDEX back (pid ${ECHO_PIDS[RESTART_INDEX]})"; }
[[ -n $DRAINED ]] && do_undrain

# ---- the end: LoadGen stops sending, drains, and holds its tunnels open until the last sample ----
started=$SECONDS
until [[ -f "$WORK/end" ]] || ! kill -0 "$LG_PID" 2>/dev/null || (( SECONDS - started > 60 )); do sleep 0.2; done
sample end
touch "$WORK/end-go"
for _ in $(seq 1 600); do kill -0 "$LG_PID" 2>/dev/null || break; sleep 0.1; done
wait "$LG_PID" 2>/dev/null || log "warning: LoadGen exited with an error (see $WORK/loadgen.err)"
forget_pid "$LG_PID"
show_loadgen
sleep 5
sample after

# ---- the tables ----
RESULT=$(grep '^{' "$LG_OUT" | tail -1)
[[ -n $RESULT ]] || { cat "$WORK/loadgen.err" >&2; die "LoadGen wrote no result"; }
row() { awk -F'\t' -v l="$1" '$1 == l' "$SAMPLES"; }
{
  echo "# Soak, $MODE mode, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); .NET $(dotnet --version)"
  echo "- gateway: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/'), Release, keepalive $SOAK_KEEPALIVE (both sides)${SOAK_GATEWAY_ENV:+, environment: $SOAK_GATEWAY_ENV}"
  echo "- $SOAK_CONNS tunnels ($(jq -r .wss_conns <<<"$RESULT") wss) x $SOAK_RATE msg/s x $SOAK_SIZE B for $SOAK_DURATION s, $SOAK_BACKENDS echo backends; kills $KILLS, drains $DRAINS, rotations $ROTATIONS, reloads $RELOADS"
  echo
  echo "## Messages"
  echo
  cat "$WORK/loadgen.md"
  echo
  echo "## The gateway's memory and descriptors"
  echo
  echo "| sample | s into the run | tunnels open | RSS MB | open fds | GC heap MB | GC committed MB | GCs gen0/1/2 |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$SAMPLES"
  echo
  start_rss=$(row start | cut -f4); end_rss=$(row end | cut -f4); start_fds=$(row start | cut -f5); end_fds=$(row end | cut -f5)
  echo "| | start | end | change |"
  echo "| --- | --- | --- | --- |"
  echo "| RSS MB | $start_rss | $end_rss | $(awk -v a="$start_rss" -v b="$end_rss" 'BEGIN { p = 0; if (a + 0 > 0) p = 100 * (b - a) / a; printf "%+.1f (%+.1f %%)", b - a, p }') |"
  echo "| open fds | $start_fds | $end_fds | $(awk -v a="$start_fds" -v b="$end_fds" 'BEGIN { printf "%+d", b - a }') |"
  echo "| GC heap MB (after the last GC) | $(row start | cut -f6) | $(row end | cut -f6) | |"
  echo "| tunnels open | $(row start | cut -f3) | $(row end | cut -f3) | |"
  echo
  echo "## Events"
  echo
  echo "| event | s into the run | outcome | detail |"
  echo "| --- | --- | --- | --- |"
  [[ -f $EVENTS ]] && awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$EVENTS"
} > "$TABLE"
echo >&2
cat "$TABLE"
log "results: $RESULTS and $TABLE; logs in $WORK"
# The gateway's warnings and errors, grouped (a killed backend's refused connects are expected while it is down).
grep -hE "warn:|fail:|crit:" "$WORK/gateway.log" 2>/dev/null | cut -d' ' -f2- | cut -c1-160 | sort | uniq -c | sort -rn | head -8 >&2 || true
lost=$(jq -r '.lost_no_close + .bad_echoes' <<<"$RESULT")
failed_events=$(awk -F'\t' '$3 != "ok"' "$EVENTS" 2>/dev/null | wc -l)
if (( lost > 0 )); then log "FAILED: $lost messages lost without a Close or echoed wrong"; exit 1; fi
(( failed_events == 0 )) || log "warning: $failed_events events did not go as expected (see the Events table)"
exit 0
