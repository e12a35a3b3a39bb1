#!/usr/bin/env bash
# Relay cost per message, build against build: two git revisions of the gateway, published side by side and run
# alternately on one machine, each round a fresh process of each, under the seeds' load (LoadGen rate: RELAY_AB_CONNS
# clients × 1 msg/s of 64 bytes through /ka to the echo server, keepalive on as in run.sh). Prints the gateway's CPU
# and the round trip's p50/p99 per round and build, then the medians. Written for changes to the relay's per-message
# path, whose effect (a few percent of the gateway's CPU) is below run.sh's run-to-run noise.
#
#   bench/relay-ab.sh 108b8ec HEAD            # 3 rounds, about 6 minutes
#   RELAY_AB_ROUNDS=5 RELAY_AB_CONNS=1000 RELAY_AB_RATE=10 bench/relay-ab.sh main my-branch   # run.sh's rate load
#   RELAY_AB_ENV_B=DOTNET_GCgen0size=0x4000000 bench/relay-ab.sh HEAD HEAD                       # a setting, one build
#
# Loopback only (ports RELAY_AB_PORT_BASE..+3); every process it starts is stopped by PID; every load is bounded.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
(( $# == 2 )) || { echo "usage: $0 REV_A REV_B" >&2; exit 2; }
REV_A=$1; REV_B=$2
: "${RELAY_AB_ROUNDS:=3}"
: "${RELAY_AB_CONNS:=9000}"       # the seeds' clients (2 descriptors each in the gateway)
: "${RELAY_AB_RATE:=1}"           # messages per second per client
: "${RELAY_AB_SIZE:=64}"
: "${RELAY_AB_PATH:=/ka/echo}"    # /ka: keepalive every 5 s with backend pings, as run.sh; /noka: keepalive off
: "${RELAY_AB_DURATION:=20}"      # seconds measured, after 3 of warm-up
: "${RELAY_AB_PORT_BASE:=18780}"  # +0 echo, +1 ws, +2 wss, +3 admin (apart from the other benches')
: "${RELAY_AB_SOURCES:=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9}"
: "${RELAY_AB_ENV_A:=}"           # extra environment for a's gateway ("NAME=value ..."): A/B a setting on one build
: "${RELAY_AB_ENV_B:=}"
BENCH_LOG_TAG=relay-ab
# log, die, the PIDS stopped on exit, stop_pid, json_field, median, rate_figures, and bench_ab_prepare (ports, work
# dir, tools, both revisions' gateways, run.sh's certificate, echo server and config), bench_start_gateway
source "$BENCH_DIR/common.sh"
bench_ab_prepare relay-ab "$RELAY_AB_PORT_BASE" RELAY_AB_PORT_BASE "$REV_A" "$REV_B"

declare -A results
for round in $(seq 1 "$RELAY_AB_ROUNDS"); do
  for side in a b; do
    rm -rf "$WORK/gateway"; cp -r "$WORK/gateway-$side" "$WORK/gateway"
    if [ "$side" = a ]; then bench_start_gateway "$RELAY_AB_ENV_A"; else bench_start_gateway "$RELAY_AB_ENV_B"; fi
    line=$(timeout --kill-after=5 $((RELAY_AB_DURATION + 120)) "${LOADGEN[@]}" rate --url "ws://127.0.0.1:$GATEWAY_WS$RELAY_AB_PATH" \
      --conns "$RELAY_AB_CONNS" --rate "$RELAY_AB_RATE" --size "$RELAY_AB_SIZE" --duration "$RELAY_AB_DURATION" --warmup 3 \
      --sources "$RELAY_AB_SOURCES" --pids "$GATEWAY_PID" --label "relay-$side" --target gateway | tail -1)
    stop_pid "$GATEWAY_PID"
    rate_figures "$line"
    printf 'round %d %s: %s msgs/s, p50 %s ms, p99 %s ms, gateway CPU %s %% of a core\n' "$round" "$side" "$got" "$p50" "$p99" "$cpu"
    results[$side-cpu]+="$cpu "; results[$side-p50]+="$p50 "; results[$side-p99]+="$p99 "
    sleep 3
  done
done

echo "medians of $RELAY_AB_ROUNDS ($RELAY_AB_CONNS clients × $RELAY_AB_RATE msg/s; a = $REV_A, b = $REV_B):"
for key in cpu p50 p99; do
  a=$(echo "${results[a-$key]}" | median); b=$(echo "${results[b-$key]}" | median)
  awk -v k="$key" -v a="$a" -v b="$b" 'BEGIN {
    name["cpu"] = "gateway CPU % of a core"; name["p50"] = "p50 ms"; name["p99"] = "p99 ms"
    printf "  %-24s a %-8s b %-8s b/a %.3f\n", name[k], a, b, (a > 0 ? b / a : 0) }'
done
