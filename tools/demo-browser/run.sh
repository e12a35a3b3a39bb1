#!/usr/bin/env bash
# The chat demo in a real browser: starts the two chat backends and the gateway as ./demo.sh does (config/demo.json,
# the same backend arguments), but on loopback ports 18600-18604 instead of 8080/8443/9901/5101/5102, then drives
# the page in headless Chromium (check.mjs) over ws and wss. Prints PASS/FAIL per check; exits 1 if any failed.
#   tools/demo-browser/run.sh
# Needs Debian's chromium (apt-get install chromium) and node; installs puppeteer-core here (npm ci) if missing.
# Not part of .ci/run. Logs and screenshots: .demo/browser/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

base=${DEMO_BROWSER_PORT_BASE:-18600}
chromium=${CHROMIUM:-/usr/bin/chromium}
out=${DEMO_BROWSER_OUT:-$root/.demo/browser}
backend_ports=("$base" "$((base + 1))")
ws_port=$((base + 2)) wss_port=$((base + 3)) admin_port=$((base + 4))

log() { printf '%s demo-browser: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

[[ -x $chromium ]] || die "no Chromium at $chromium: apt-get install chromium (or set CHROMIUM)"
command -v node >/dev/null || die "node is missing: apt-get install nodejs npm"
command -v curl >/dev/null || die "curl is missing: apt-get install curl"
if [[ ! -d $here/node_modules/puppeteer-core ]]; then
  log "installing puppeteer-core (npm ci in tools/demo-browser)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
for port in "${backend_ports[@]}" "$ws_port" "$wss_port" "$admin_port"; do
  ! ss -Hltn "sport = :$port" | grep -q . || die "port $port is in use (set DEMO_BROWSER_PORT_BASE)"
done

log "building (Release, as demo.sh does)"
dotnet build Gateway.sln -c Release --nologo -v quiet -clp:NoSummary >&2
backend=src/ChatBackend/bin/Release/net10.0/ChatBackend.dll
gateway=src/Gateway/bin/Release/net10.0/Gateway.dll
mkdir -p "$out" && rm -f "$out"/chat-1.log "$out"/chat-2.log "$out"/gateway.log "$out"/*.png # only what a run writes

# Only the processes started here, stopped by PID.
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port pid name: something listens on the port within 30 s, or the process exited
  for _ in $(seq 1 300); do
    ss -Hltn "sport = :$1" | grep -q . && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited (see $out/$3.log)"
    sleep 0.1
  done
  die "$3 did not listen on $1 within 30 s (see $out/$3.log)"
}

for i in 1 2; do
  port=${backend_ports[$((i - 1))]}
  # demo.sh's backend arguments, on another port.
  dotnet "$backend" --urls "http://127.0.0.1:$port" --Instance "chat-$i" --Logging:LogLevel:Default Warning \
    --DemoToken:KeyFile config/demo-jwt.key --DemoToken:Issuer chat-demo --DemoToken:Audience chat \
    > "$out/chat-$i.log" 2>&1 &
  pids+=("$!")
done

# config/demo.json as shipped; the command line overrides only where it listens (loopback, these ports), where the
# backends are, and where the key ring goes.
dotnet "$gateway" --config config/demo.json \
  --Gateway:Listeners:ws:Address 127.0.0.1 --Gateway:Listeners:ws:Port "$ws_port" \
  --Gateway:Listeners:wss:Address 127.0.0.1 --Gateway:Listeners:wss:Port "$wss_port" \
  --Gateway:Admin:Port "$admin_port" \
  --Gateway:DataProtection:KeyDirectory "$out/keys" \
  --ReverseProxy:Clusters:chat:Destinations:chat-1:Address "http://127.0.0.1:${backend_ports[0]}/" \
  --ReverseProxy:Clusters:chat:Destinations:chat-2:Address "http://127.0.0.1:${backend_ports[1]}/" \
  > "$out/gateway.log" 2>&1 &
gateway_pid=$!
pids+=("$gateway_pid")

wait_port "${backend_ports[0]}" "${pids[0]}" chat-1
wait_port "${backend_ports[1]}" "${pids[1]}" chat-2
wait_port "$admin_port" "$gateway_pid" gateway
started=$SECONDS
until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/readyz") == 200 ]]; do
  kill -0 "$gateway_pid" 2>/dev/null || die "gateway exited (see $out/gateway.log)"
  (( SECONDS - started < 60 )) || die "gateway not ready within 60 s (see $out/gateway.log)"
  sleep 0.2
done
log "gateway ready: ws on :$ws_port, wss on :$wss_port; backends on :${backend_ports[0]} and :${backend_ports[1]}"

status=0
# The whole browser run is bounded too (each wait inside is).
CHROMIUM=$chromium DEMO_BROWSER_OUT=$out timeout -k 5 240 node "$here/check.mjs" \
  "http://127.0.0.1:$ws_port/" "https://127.0.0.1:$wss_port/" || status=$?
if (( status == 124 )); then echo "FAIL the browser run did not finish within 240 s"; fi

# What the gateway itself said about the tunnels (its access log) and anything that went wrong.
log "gateway access log and warnings ($out/gateway.log):"
grep -E 'Gateway.AccessLog|warn|fail|crit' "$out/gateway.log" | cut -c1-400 >&2 || true
exit $(( status == 0 ? 0 : 1 ))
