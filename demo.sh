#!/usr/bin/env bash
# The gateway in front of two sample chat backends, on non-privileged ports, for a non-root user.
#   ./demo.sh          then open https://localhost:8443/ (or http://localhost:8080/)
# Ctrl+C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")"

dotnet build Gateway.sln -c Release --nologo -v quiet -clp:NoSummary
backend=src/ChatBackend/bin/Release/net10.0/ChatBackend.dll
gateway=src/Gateway/bin/Release/net10.0/Gateway.dll
mkdir -p .demo

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for i in 1 2; do
  # DemoToken: the backends hand out tokens signed with the demo-only secret the gateway's demo policy verifies.
  dotnet "$backend" --urls "http://127.0.0.1:510$i" --Instance "chat-$i" --Logging:LogLevel:Default Warning \
    --DemoToken:KeyFile config/demo-jwt.key --DemoToken:Issuer chat-demo --DemoToken:Audience chat \
    > ".demo/chat-$i.log" 2>&1 &
  pids+=("$!")
done

cat <<MSG

  Gateway demo: two chat backends (chat-1 on :5101, chat-2 on :5102) behind the gateway.
    open   https://localhost:8443/   (self-signed certificate: accept the browser's warning)
      or   http://localhost:8080/
    admin  http://127.0.0.1:9901/healthz  and  /readyz
  The welcome message names the backend that serves your room: every tab in one room gets the same one.
  Type a name before Connect: the page gets a demo token for it (GET /demo-token), the gateway checks it and
  passes the name to the backend (X-User-Id), and the welcome line shows it. No name: an anonymous connection.
  "Send a burst" sends 30 messages at once: past 10 the gateway closes the tunnel with 1008 "rate limit exceeded".
  config/demo-jwt.key is a demo-only secret published in this repository: never use it anywhere else.
  Backend logs: .demo/chat-1.log .demo/chat-2.log.  Ctrl+C stops everything.

MSG
dotnet "$gateway" --config config/demo.json &
pids+=("$!")
wait "${pids[-1]}"
