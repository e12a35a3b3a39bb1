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
  dotnet "$backend" --urls "http://127.0.0.1:510$i" --Instance "chat-$i" --Logging:LogLevel:Default Warning \
    > ".demo/chat-$i.log" 2>&1 &
  pids+=("$!")
done

cat <<MSG

  Gateway demo: two chat backends (chat-1 on :5101, chat-2 on :5102) behind the gateway.
    open   https://localhost:8443/   (self-signed certificate: accept the browser's warning)
      or   http://localhost:8080/
    admin  http://127.0.0.1:9901/healthz  and  /readyz
  The welcome message names the backend that serves your room: every tab in one room gets the same one.
  Backend logs: .demo/chat-1.log .demo/chat-2.log.  Ctrl+C stops everything.

MSG
dotnet "$gateway" --config config/demo.json &
pids+=("$!")
wait "${pids[-1]}"
