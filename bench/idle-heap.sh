#!/usr/bin/env bash
# What an idle tunnel costs the gateway, and what it is made of: for each mode (ws, wss, h2), a fresh gateway (the
# published Release build, run.sh's config), a warm-up as in run.sh, then a HeapStat snapshot and VmRSS without
# tunnels, IDLE_CONNS idle tunnels opened with LoadGen, and the same two readings with them. Prints managed bytes and
# RSS per tunnel (with minus without, / tunnels) and the types that grew, per tunnel. Written to compare two builds
# with one procedure (e.g. before/after a change to how the tunnel holds the request), so keep it stable.
#
#   bench/idle-heap.sh                                   # 3,000 tunnels, ws then wss then h2 (about 5 minutes)
#   IDLE_CONNS=6000 IDLE_MODES="ws" bench/idle-heap.sh
#   IDLE_GATEWAY_ENV=Gateway__LeanUpgrades=false bench/idle-heap.sh   # an A/B of one setting
#
# Loopback only; every process it starts is stopped by PID; every wait is bounded. Raw outputs (HeapStat tables,
# LoadGen lines, logs) go to IDLE_OUT (default bench/results/<time>-idle-heap/, not committed).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

: "${IDLE_CONNS:=3000}"          # tunnels per mode
: "${IDLE_MODES:=ws wss h2}"     # ws and wss: HTTP/1.1 upgrades (the lean path); h2: RFC 8441 extended CONNECT
: "${IDLE_PATH:=/ka/echo}"       # /ka: keepalive every 5 s with backend pings, as run.sh's idle-ka; /noka: off
: "${IDLE_SETTLE:=15}"           # seconds between the last tunnel up and the readings (run.sh's hold is 20 s)
: "${IDLE_HOLD:=75}"             # LoadGen's hold: must outlast the settle and the HeapStat walk
: "${IDLE_CONCURRENCY:=1000}"    # connects in flight during the burst (run.sh's full-mode default)
: "${IDLE_WARMUP_CONNS:=300}"    # as run.sh: a few hundred connections through a fresh gateway first
: "${IDLE_H2_STREAMS:=100}"      # h2: streams per connection (the gateway's MaxStreamsPerConnection)
: "${IDLE_TOP:=40}"              # rows of each table
: "${IDLE_GATEWAY_ENV:=}"        # extra environment for the gateway process alone
# Types listed by name whatever their rank: the request's context and YARP's part in a tunnel.
: "${IDLE_FOCUS:=HttpContext|LeanExchange|RelayTunnel|HttpRequestMessage|HttpResponseMessage|HttpRequestHeaders|HttpResponseHeaders|Http1Connection|Http2Stream|Feature|Yarp[.]|Forwarder}"
: "${IDLE_PORT_BASE:=18400}"     # +0 echo, +1 ws, +2 wss, +3 admin (apart from run.sh's 18000-18007)
: "${IDLE_SOURCES:=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
: "${IDLE_OUT:=$BENCH_DIR/results/$STAMP-idle-heap}"

BACKEND_PORT=$IDLE_PORT_BASE; GATEWAY_WS=$((IDLE_PORT_BASE + 1)); GATEWAY_WSS=$((IDLE_PORT_BASE + 2)); GATEWAY_ADMIN=$((IDLE_PORT_BASE + 3))

BENCH_LOG_TAG=idle-heap
# log, die, the PIDS stopped on exit, stop_pid, wait_port, wait_ready, build_tools, require_free_ports, and run.sh's
# certificate, echo server and gateway (bench_certificate, bench_start_echo, bench_gateway_config, bench_start_gateway)
source "$BENCH_DIR/common.sh"
for tool in curl openssl ss awk; do command -v $tool >/dev/null 2>&1 || die "$tool is required"; done
(( 2 * IDLE_CONNS + 500 <= $(ulimit -n) )) || log "warning: the gateway needs 2 descriptors per tunnel"
require_free_ports "$IDLE_PORT_BASE" "$((IDLE_PORT_BASE + 3))" IDLE_PORT_BASE

WORK="$(mktemp -d /tmp/gateway-idleheap.XXXXXX)"
mkdir -p "$WORK/keys" "$IDLE_OUT"
log "work dir $WORK, outputs $IDLE_OUT"
build_tools
dotnet build "$BENCH_DIR/HeapStat/HeapStat.csproj" -c Release -nologo -v quiet -o "$WORK/heapstat" >>"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log" >&2; die "HeapStat build failed"; }
HEAPSTAT=(dotnet "$WORK/heapstat/HeapStat.dll")

# run.sh's certificate, echo server and gateway config, on this script's ports.
bench_certificate ec
bench_start_echo
bench_gateway_config 00:00:05 "$IDLE_H2_STREAMS"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Tunnels up = established backend legs (the echo server's side): one per tunnel in every mode.
backend_legs() { ss -Htn state established "( sport = :$BACKEND_PORT )" | wc -l; }

# A HeapStat table as "count bytes name" lines (the numeric columns before the name: 3, or 5 with --per).
table_of() {
  awk '
    /^Unit: / && !/no type name/ { k = 5 }
    /^Top [0-9]+ types/ { intable = 1; if (!k) k = 3; getline; next }
    intable && (/^$/ || /^Sizes of /) { intable = 0 }
    intable {
      line = $0; sub(/^ +/, "", line)
      count = $1; bytes = $2; gsub(/,/, "", count); gsub(/,/, "", bytes)
      for (i = 0; i < k; i++) sub(/^[^ ]+ +/, "", line)
      print count "\t" bytes "\t" line
    }' "$1"
}
heap_bytes() { awk '/^Heap: / { v = $4; gsub(/,/, "", v); print v }' "$1"; }

# Every type whose count or bytes moved between two snapshots: "+count +bytes count/tunnel bytes/tunnel name", by bytes.
diff_tables() { # before.txt with.txt tunnels
  awk -F '\t' -v n="$3" '
    FNR == NR { c0[$3] = $1; b0[$3] = $2; next }
    { seen[$3] = 1; dc = $1 - c0[$3]; db = $2 - b0[$3]
      if (dc != 0 || db != 0) printf "%d\t%d\t%.2f\t%.1f\t%s\n", dc, db, dc / n, db / n, $3 }
    END { for (t in c0) if (!(t in seen)) printf "%d\t%d\t%.2f\t%.1f\t%s\n", -c0[t], -b0[t], -c0[t] / n, -b0[t] / n, t }
  ' <(table_of "$1") <(table_of "$2") | sort -t $'\t' -k2,2nr
}
print_rows() { # diff.tsv rows from stdin
  awk -F '\t' 'BEGIN { printf "%10s %12s %10s %12s  %s\n", "+count", "+bytes", "count/tun", "bytes/tun", "type" }
               { printf "%10d %12d %10s %12s  %s\n", $1, $2, $3, $4, $5 }'
}
# Sums per tunnel over the types a name pattern picks (awk regex), from a diff.tsv.
group_sum() { # diff.tsv label regex [exclude-regex]
  awk -F '\t' -v label="$2" -v re="$3" -v ex="${4:-^$}" '$5 ~ re && $5 !~ ex { b += $4; c += $3; k++ }
    END { printf "  %-58s %10.1f bytes/tun  %6.2f objects/tun  (%d types)\n", label, b, c, k }' "$1"
}

run_mode() { # ws | wss | h2
  local mode=$1 url scenario per extra=() out="$IDLE_OUT/$1"
  case "$mode" in
    ws)  url="ws://127.0.0.1:$GATEWAY_WS$IDLE_PATH";   scenario=(idle);   per=SocketConnection ;;
    wss) url="wss://127.0.0.1:$GATEWAY_WSS$IDLE_PATH"; scenario=(idle);   per=SocketConnection; extra=(--ca "$WORK/cert.pem") ;;
    h2)  url="wss://127.0.0.1:$GATEWAY_WSS$IDLE_PATH"; scenario=(idle-h2 --streams-per-conn "$IDLE_H2_STREAMS"); per=Http2Stream
         extra=(--ca "$WORK/cert.pem") ;;
    *) die "unknown mode '$mode' (ws, wss, h2)" ;;
  esac
  mkdir -p "$out"
  log "$mode: fresh gateway"
  bench_start_gateway "$IDLE_GATEWAY_ENV"
  timeout --kill-after=5 60 "${LOADGEN[@]}" "${scenario[@]}" "${extra[@]}" --url "$url" --conns "$IDLE_WARMUP_CONNS" --duration 1 \
    --concurrency 100 --sources "$IDLE_SOURCES" --label warmup --target gateway >"$out/warmup.log" 2>&1 || log "warning: warm-up failed"
  sleep 2
  local legs0; legs0=$(backend_legs)

  # Without tunnels: the heap (HeapStat's full GC), then RSS just before the burst.
  local rss_pre_heap; rss_pre_heap=$(rss_kb "$GATEWAY_PID")
  timeout 90 "${HEAPSTAT[@]}" --pid "$GATEWAY_PID" --top 100000 >"$out/heap-before.txt" 2>"$out/heap-before.err" \
    || die "$mode: HeapStat before failed (see $out/heap-before.err)"
  sleep 1
  local rss0; rss0=$(rss_kb "$GATEWAY_PID")

  log "$mode: opening $IDLE_CONNS tunnels ($url), backend legs before: $legs0"
  timeout --kill-after=10 $((IDLE_HOLD + 180)) "${LOADGEN[@]}" "${scenario[@]}" "${extra[@]}" --url "$url" --conns "$IDLE_CONNS" \
    --duration "$IDLE_HOLD" --concurrency "$IDLE_CONCURRENCY" --sources "$IDLE_SOURCES" --pids "$GATEWAY_PID" \
    --label "idle-heap-$mode" --target gateway --max-seconds $((IDLE_HOLD + 150)) >"$out/loadgen.log" 2>&1 &
  local lg=$!; PIDS+=("$lg")
  local started=$SECONDS legs
  while :; do
    legs=$(backend_legs)
    (( legs >= legs0 + IDLE_CONNS )) && break
    kill -0 "$lg" 2>/dev/null || { cat "$out/loadgen.log" >&2; die "$mode: LoadGen ended before every tunnel was up ($legs legs)"; }
    if (( SECONDS - started > 90 )); then log "warning: $mode: only $((legs - legs0)) of $IDLE_CONNS tunnels up after 90 s"; break; fi
    sleep 0.5
  done
  local tunnels=$((legs - legs0)) up_s=$((SECONDS - started))
  log "$mode: $tunnels tunnels up in ${up_s} s; settling ${IDLE_SETTLE} s"
  sleep "$IDLE_SETTLE"

  # With tunnels: RSS first (no forced GC yet, as run.sh reads it), then the heap.
  local rss1; rss1=$(rss_kb "$GATEWAY_PID")
  timeout 90 "${HEAPSTAT[@]}" --pid "$GATEWAY_PID" --top 100000 --per "$per" >"$out/heap-with.txt" 2>"$out/heap-with.err" \
    || die "$mode: HeapStat with tunnels failed (see $out/heap-with.err)"
  local rss1_after_gc; rss1_after_gc=$(rss_kb "$GATEWAY_PID")
  local legs_after; legs_after=$(backend_legs)
  kill -0 "$lg" 2>/dev/null || log "warning: $mode: LoadGen's hold ended before the snapshot (raise IDLE_HOLD)"
  (( legs_after - legs0 >= tunnels )) || log "warning: $mode: tunnels fell from $tunnels to $((legs_after - legs0)) during the readings"

  local h0 h1; h0=$(heap_bytes "$out/heap-before.txt"); h1=$(heap_bytes "$out/heap-with.txt")
  diff_tables "$out/heap-before.txt" "$out/heap-with.txt" "$tunnels" >"$out/diff.tsv"
  {
    echo "== $mode: $tunnels idle tunnels ($url), gateway src at $(git -C "$ROOT" log -1 --format=%h -- src)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes')${IDLE_GATEWAY_ENV:+, env $IDLE_GATEWAY_ENV}, up in ${up_s} s, read ${IDLE_SETTLE} s later"
    awk -v h0="$h0" -v h1="$h1" -v n="$tunnels" 'BEGIN {
      printf "managed heap: %d -> %d bytes: %.1f bytes per tunnel (whole heap / tunnels: %.1f)\n", h0, h1, (h1 - h0) / n, h1 / n }'
    awk -v r0="$rss0" -v r1="$rss1" -v r2="$rss1_after_gc" -v rp="$rss_pre_heap" -v n="$tunnels" 'BEGIN {
      printf "RSS: %.1f -> %.1f MB: %.2f KB per tunnel (after HeapStat'"'"'s GC: %.1f MB, %.2f KB per tunnel; before the first GC: %.1f MB)\n",
        r0 / 1024, r1 / 1024, (r1 - r0) / n, r2 / 1024, (r2 - r0) / n, rp / 1024 }'
    echo "types that grew, per tunnel (top $IDLE_TOP by bytes):"
    awk -v top="$IDLE_TOP" 'NR <= top' "$out/diff.tsv" | print_rows
    echo "named types (IDLE_FOCUS), at least 0.3 objects per tunnel more:"
    awk -F '\t' -v re="$IDLE_FOCUS" '$5 ~ re && $3 >= 0.3' "$out/diff.tsv" | print_rows
    echo "groups (over every type that moved; they overlap):"
    group_sum "$out/diff.tsv" "async state machines (StateMachineBox)" 'StateMachineBox'
    group_sum "$out/diff.tsv" "YARP's own types and its methods' state machines" '^Yarp[.]|[,[]Yarp[.][^],]*[+]<'
    group_sum "$out/diff.tsv" "the gateway's own types and state machines" '^Gateway[.]|[,[]Gateway[.][^],]*[+]<'
    group_sum "$out/diff.tsv" "names containing Microsoft.AspNetCore.Server.Kestrel" 'Microsoft[.]AspNetCore[.]Server[.]Kestrel'
    group_sum "$out/diff.tsv" "HttpContext, features, headers (Microsoft.AspNetCore.Http)" '^Microsoft[.]AspNetCore[.]Http[.]'
    group_sum "$out/diff.tsv" "everything (= managed heap per tunnel)" '.'
    # Byte[] is mostly pooled buffers (Kestrel's 4 KB blocks) whose count moves from run to run by hundreds of
    # bytes per tunnel; without it the total repeats within a few bytes, so compare builds on this line too.
    group_sum "$out/diff.tsv" "everything but System.Byte[]" '.' '^System[.]Byte[[][]]$'
    echo "HeapStat with tunnels (--per $per), top $IDLE_TOP:"
    awk -v top="$IDLE_TOP" '/^Top [0-9]+ types/ { intable = 1; rows = -1; next }
      intable && (/^$/ || /^Sizes of /) { intable = 0 }
      !intable { print; next } rows++ < top { print }' "$out/heap-with.txt" | grep -v '^$'
    echo
  } | tee "$out/summary.txt"

  wait "$lg" || log "warning: $mode: LoadGen exited with $?"
  forget_pid "$lg"
  # LoadGen's own line: every tunnel alive after the hold and echoing (its kb_per_conn is read after HeapStat's GC).
  { echo "LoadGen:"; grep -v '^{' "$out/loadgen.log" | tail -n 3; echo; } | tee -a "$out/summary.txt" || true
  stop_pid "$GATEWAY_PID"
  sleep 3
}

for mode in $IDLE_MODES; do run_mode "$mode"; done
cp "$WORK/gateway.log" "$IDLE_OUT/" 2>/dev/null || true
log "done: $IDLE_OUT/*/summary.txt (logs in $WORK)"
