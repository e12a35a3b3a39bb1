#!/usr/bin/env bash
# Connection cost, build against build: two git revisions of the gateway, published side by side and run alternately
# on one machine, each round a fresh process of each. Per round and build: a warm burst of CONNECT_AB_CONNS ws
# connects (LoadGen idle: connect, hold 1 s, one echo, close) with the gateway's CPU per connection over that whole
# life from /proc, then CONNECT_AB_TLS_S seconds of new wss connections (LoadGen tls-connect) with its CPU per
# connection. Prints one line per round and build, then the medians. Written for changes to the connect path, where
# connects/s is bound by the 2-core machine (load generator, backend and kernel) and CPU per connection is what moves.
#
#   bench/connect-ab.sh 2d119f7 HEAD            # 3 rounds, about 4 minutes
#   CONNECT_AB_ROUNDS=5 bench/connect-ab.sh main my-branch
#
# Loopback only (ports CONNECT_AB_PORT_BASE..+3); every process it starts is stopped by PID; every load is bounded.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
(( $# == 2 )) || { echo "usage: $0 REV_A REV_B" >&2; exit 2; }
REV_A=$1; REV_B=$2
: "${CONNECT_AB_ROUNDS:=3}"
: "${CONNECT_AB_CONNS:=9000}"       # connects per burst (2 descriptors each in the gateway)
: "${CONNECT_AB_CONCURRENCY:=1000}" # connects in flight (run.sh's idle scenarios)
: "${CONNECT_AB_TLS_S:=8}"          # seconds of new wss connections, 8 loops
: "${CONNECT_AB_PORT_BASE:=18740}"  # +0 echo, +1 ws, +2 wss, +3 admin (apart from run.sh's and idle-heap.sh's)
: "${CONNECT_AB_SOURCES:=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9}"
BENCH_LOG_TAG=connect-ab
# log, die, the PIDS stopped on exit, stop_pid, wait_ready, json_field, median, and bench_ab_prepare (ports, work dir,
# tools, both revisions' gateways, run.sh's certificate, echo server and config), bench_start_gateway
source "$BENCH_DIR/common.sh"
bench_ab_prepare connect-ab "$CONNECT_AB_PORT_BASE" CONNECT_AB_PORT_BASE "$REV_A" "$REV_B"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Managed bytes the gateway allocated since it started, from the runtime's meter on /metrics (each GC counts them).
allocated_bytes() { curl -s --max-time 10 "http://127.0.0.1:$GATEWAY_ADMIN/metrics" | awk '/^dotnet_gc_heap_total_allocated_bytes_total/ { printf "%d", $NF; f = 1 } END { if (!f) print 0 }'; }
ticks_per_s=$(getconf CLK_TCK)
declare -A results
for round in $(seq 1 "$CONNECT_AB_ROUNDS"); do
  for side in a b; do
    rm -rf "$WORK/gateway"; cp -r "$WORK/gateway-$side" "$WORK/gateway"
    bench_start_gateway
    # As run.sh's idle scenarios: a few thousand connections first, so the burst meets a warm process.
    timeout --kill-after=5 60 "${LOADGEN[@]}" idle --url "ws://127.0.0.1:$GATEWAY_WS/ka/echo" --conns 2000 --duration 1 --concurrency 500 \
      --sources "$CONNECT_AB_SOURCES" --label warmup --target gateway >/dev/null 2>&1 || log "warning: warm-up failed"
    sleep 2
    allocated_before=$(allocated_bytes)
    before=$(cpu_ticks "$GATEWAY_PID")
    burst=$(timeout --kill-after=5 120 "${LOADGEN[@]}" idle --url "ws://127.0.0.1:$GATEWAY_WS/ka/echo" --conns "$CONNECT_AB_CONNS" --duration 1 \
      --concurrency "$CONNECT_AB_CONCURRENCY" --sources "$CONNECT_AB_SOURCES" --label burst --target gateway | tail -1)
    after=$(cpu_ticks "$GATEWAY_PID")
    sleep 3
    allocated_after=$(allocated_bytes)
    tls=$(timeout --kill-after=5 $((CONNECT_AB_TLS_S + 60)) "${LOADGEN[@]}" tls-connect --url "wss://127.0.0.1:$GATEWAY_WSS/ka/echo" \
      --duration "$CONNECT_AB_TLS_S" --concurrency 8 --ca "$WORK/cert.pem" --pids "$GATEWAY_PID" --label tls --target gateway | tail -1)
    stop_pid "$GATEWAY_PID"
    failures=$(echo "$burst" | json_field conn_failures)
    ws_ms=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" -v n="$CONNECT_AB_CONNS" 'BEGIN { printf "%.4f", t * 1000 / hz / n }')
    connects=$(echo "$burst" | json_field connect_per_s)
    ws_kb=$(awk -v a="$allocated_before" -v b="$allocated_after" -v n="$CONNECT_AB_CONNS" 'BEGIN { printf "%.2f", (b - a) / 1024 / n }')
    tls_ms=$(echo "$tls" | json_field target_cpu_ms_per_conn)
    tls_rate=$(echo "$tls" | json_field conns_per_s)
    printf 'round %d %s: burst %s connects/s, %s ms CPU and %s KB allocated per ws connection (connect to close), %s failed; tls %s conns/s, %s ms CPU per wss connection\n' \
      "$round" "$side" "$connects" "$ws_ms" "$ws_kb" "${failures:-?}" "$tls_rate" "$tls_ms"
    results[$side-connects]+="$connects "; results[$side-ws]+="$ws_ms "; results[$side-kb]+="$ws_kb "; results[$side-tls]+="$tls_ms "; results[$side-tlsrate]+="$tls_rate "
    sleep 2
  done
done

echo "medians of $CONNECT_AB_ROUNDS (a = $REV_A, b = $REV_B):"
for key in connects ws kb tlsrate tls; do
  a=$(echo "${results[a-$key]}" | median); b=$(echo "${results[b-$key]}" | median)
  awk -v k="$key" -v a="$a" -v b="$b" 'BEGIN {
    name["connects"] = "burst connects/s"; name["ws"] = "ms CPU per ws connection"; name["kb"] = "KB allocated per ws conn"; name["tlsrate"] = "new wss conns/s"; name["tls"] = "ms CPU per wss connection"
    printf "  %-26s a %-10s b %-10s b/a %.2f\n", name[k], a, b, (a > 0 ? b / a : 0) }'
done
