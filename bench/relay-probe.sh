#!/usr/bin/env bash
# What the socket layer costs a message: bench/RelayProbe, a bare byte relay (no WebSocket or HTTP work), in two designs,
# under the seeds' load (LoadGen rate: RELAY_PROBE_CONNS clients × RELAY_PROBE_RATE (1) msg/s of 64 bytes, through the relay to the echo
# server), alternating fresh processes, medians: "sockets" waits as the gateway's relay does (zero-byte receive, then a
# read without waiting; sends without waiting), "epoll" on a readiness loop of its own (one recv and one send per
# message and direction). The gap is what a relay of the gateway's own on epoll could save; the gateway's own CPU on
# the same load (bench/run.sh seeds) says how much of its cost is the socket layer's.
#
#   bench/relay-probe.sh                     # 3 rounds, about 5 minutes
#   RELAY_PROBE_ROUNDS=1 RELAY_PROBE_CONNS=2000 bench/relay-probe.sh
#
# Loopback only (ports RELAY_PROBE_PORT_BASE..+1); every process it starts is stopped by PID; every load is bounded.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
: "${RELAY_PROBE_ROUNDS:=3}"
: "${RELAY_PROBE_CONNS:=9000}"
: "${RELAY_PROBE_RATE:=1}"        # messages per second per client
: "${RELAY_PROBE_DURATION:=20}"
: "${RELAY_PROBE_MODES:=sockets epoll}"   # also touch: sockets, each message touching RELAY_PROBE_TOUCH cold lines per direction
: "${RELAY_PROBE_TOUCH:=8}"
: "${RELAY_PROBE_STRIDE:=64}"     # bytes between the lines touched: 64 adjacent, 4160 one per page
: "${RELAY_PROBE_PORT_BASE:=18760}"  # +0 echo, +1 the relay
: "${RELAY_PROBE_SOURCES:=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9}"
BACKEND_PORT=$RELAY_PROBE_PORT_BASE; PROBE_PORT=$((RELAY_PROBE_PORT_BASE + 1))

BENCH_LOG_TAG=relay-probe
source "$BENCH_DIR/common.sh"
require_free_ports "$RELAY_PROBE_PORT_BASE" "$((RELAY_PROBE_PORT_BASE + 1))" RELAY_PROBE_PORT_BASE
WORK="$(mktemp -d /tmp/gateway-relay-probe.XXXXXX)"
log "work dir $WORK"
build_tools
dotnet build "$BENCH_DIR/RelayProbe/RelayProbe.csproj" -c Release -nologo -v quiet -o "$WORK/relayprobe" >>"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log" >&2; die "RelayProbe build failed"; }
bench_start_echo

declare -A results
for round in $(seq 1 "$RELAY_PROBE_ROUNDS"); do
  for mode in $RELAY_PROBE_MODES; do
    extra=(); probe_mode=$mode
    if [ "$mode" = touch ]; then probe_mode=sockets; extra=(--touch "$RELAY_PROBE_TOUCH" --touch-stride "$RELAY_PROBE_STRIDE"); fi
    dotnet "$WORK/relayprobe/RelayProbe.dll" --mode "$probe_mode" "${extra[@]}" --port "$PROBE_PORT" --backend-port "$BACKEND_PORT" >>"$WORK/relayprobe-$mode.log" 2>&1 &
    probe=$!; PIDS+=("$probe")
    wait_port "$PROBE_PORT" "$probe" relayprobe
    line=$(timeout --kill-after=5 $((RELAY_PROBE_DURATION + 120)) "${LOADGEN[@]}" rate --url "ws://127.0.0.1:$PROBE_PORT/echo" \
      --conns "$RELAY_PROBE_CONNS" --rate "$RELAY_PROBE_RATE" --size 64 --duration "$RELAY_PROBE_DURATION" --warmup 3 \
      --sources "$RELAY_PROBE_SOURCES" --pids "$probe" --label "probe-$mode" --target "$mode" | tail -1)
    stop_pid "$probe"
    rate_figures "$line"
    printf 'round %d %-7s: %s msgs/s, p50 %s ms, p99 %s ms, relay CPU %s %% of a core\n' "$round" "$mode" "$got" "$p50" "$p99" "$cpu"
    results[$mode-cpu]+="$cpu "; results[$mode-p99]+="$p99 "; results[$mode-p50]+="$p50 "
    sleep 3
  done
done

echo "medians of $RELAY_PROBE_ROUNDS ($RELAY_PROBE_CONNS clients × $RELAY_PROBE_RATE msg/s):"
for mode in $RELAY_PROBE_MODES; do
  printf '  %-7s relay CPU %s %%, p50 %s ms, p99 %s ms\n' "$mode" "$(echo "${results[$mode-cpu]}" | median)" \
    "$(echo "${results[$mode-p50]}" | median)" "$(echo "${results[$mode-p99]}" | median)"
done
