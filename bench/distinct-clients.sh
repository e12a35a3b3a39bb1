#!/usr/bin/env bash
# Issue 24: per-client state must stay bounded under a flood of distinct clients. DISTINCT_CLIENTS (100,000) short
# WebSocket clients, each from its own loopback source address (127.1.0.1 upwards), go through the gateway (the
# published Release build) to an EchoServer, DISTINCT_CONCURRENCY at once; each sends DISTINCT_MESSAGES small messages,
# checks the echoes and closes cleanly. The route's policy limits per client (RateLimits:PerClient, which lives in the
# shared-bucket table, Limits:MaxConnectionsPerClient and HandshakesPerMinutePerClient, which live in partitioned
# limiters) and per connection, so every client leaves per-client state behind. Every DISTINCT_MARK_EVERY clients
# LoadGen pauses with none open and the script samples the gateway: RSS, the GC heap (after a full GC), the number of
# shared buckets and partition limiters alive (HeapStat), descriptors; once more after DISTINCT_IDLE s without clients,
# when every idle entry should have expired. Flat memory: the samples at 20k and at 100k clients about the same.
#
#   bench/distinct-clients.sh                   # 100,000 clients
#   DISTINCT_QUICK=1 bench/distinct-clients.sh  # 5,000 clients, a sample every 1,000
#   DISTINCT_RATE=0 bench/distinct-clients.sh   # unpaced: as fast as DISTINCT_CONCURRENCY slots free up
#
# Exit code: 0 when every client was served, 1 when some were not, 2+ when it could not run.
# Every variable is in bench/README.md ("Distinct clients").
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

if [[ "${DISTINCT_QUICK:-0}" == 1 ]]; then
  MODE=quick
  : "${DISTINCT_CLIENTS:=5000}" "${DISTINCT_MARK_EVERY:=1000}" "${DISTINCT_RATE:=250}"
else
  MODE=full
  : "${DISTINCT_CLIENTS:=100000}" "${DISTINCT_MARK_EVERY:=10000}" "${DISTINCT_RATE:=500}"
fi
: "${DISTINCT_CONCURRENCY:=200}"          # clients in flight at once
# DISTINCT_RATE: clients started per second (0: unpaced). Paced, the run lasts longer than an entry outlives its client,
# so the tables reach their steady size; unpaced, 100,000 clients take well under a minute and only the idle sample
# shows the expiry.
: "${DISTINCT_MESSAGES:=3}"               # messages per client, each echoed before the next
: "${DISTINCT_SIZE:=32}"                  # bytes per message (at least 8)
: "${DISTINCT_FIRST_SOURCE:=127.1.0.1}"   # first client's source address; .0 and .255 of each /24 are skipped
: "${DISTINCT_IDLE:=75}"                  # seconds without clients before the last sample (entries expire within 60 s)
: "${DISTINCT_MAX_SECONDS:=1500}"         # LoadGen's hard stop
: "${DISTINCT_CLIENT_RATE:=0.1}" "${DISTINCT_CLIENT_BURST:=5}"   # RateLimits:PerClient:Messages (per s, burst)
: "${DISTINCT_CONN_RATE:=10}" "${DISTINCT_CONN_BURST:=10}"       # RateLimits:PerConnection:Messages
: "${DISTINCT_MAX_CONNS_PER_CLIENT:=2}"   # Limits:MaxConnectionsPerClient
: "${DISTINCT_HANDSHAKES_PER_MINUTE:=10}" # Limits:HandshakesPerMinutePerClient
: "${DISTINCT_HEAPSTAT:=1}"               # 1: count the gateway's shared buckets and limiters with HeapStat at each sample
: "${DISTINCT_PORT_BASE:=18500}"          # +0 ws, +1 admin, +10 echo backend
: "${DISTINCT_GATEWAY_ENV:=}"             # extra environment for the gateway process
: "${BENCH_RESULTS_DIR:=$BENCH_DIR/results}"

GATEWAY_WS=$DISTINCT_PORT_BASE; GATEWAY_ADMIN=$((DISTINCT_PORT_BASE + 1)); ECHO_PORT=$((DISTINCT_PORT_BASE + 10))

BENCH_LOG_TAG=distinct
# log, die, the PIDS stopped on exit, stop_pid, forget_pid, wait_port, wait_ready, require_free_ports, build_tools
source "$BENCH_DIR/common.sh"
for tool in curl jq; do command -v $tool >/dev/null 2>&1 || die "$tool is required"; done
require_free_ports "$DISTINCT_PORT_BASE" "$ECHO_PORT" DISTINCT_PORT_BASE

WORK="$(mktemp -d /tmp/gateway-distinct.XXXXXX)"
mkdir -p "$WORK/keys" "$BENCH_RESULTS_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$BENCH_RESULTS_DIR/$STAMP-distinct-$MODE.jsonl"
TABLE="$BENCH_RESULTS_DIR/$STAMP-distinct-$MODE.md"
log "mode $MODE: $DISTINCT_CLIENTS clients from $DISTINCT_FIRST_SOURCE, $DISTINCT_RATE/s (0: unpaced), $DISTINCT_CONCURRENCY at once, a sample every $DISTINCT_MARK_EVERY; work dir $WORK"

build_tools
if [[ $DISTINCT_HEAPSTAT == 1 ]]; then
  dotnet build "$BENCH_DIR/HeapStat/HeapStat.csproj" -c Release -nologo -v quiet -o "$WORK/heapstat" >>"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; die "HeapStat build failed"; }
fi

dotnet "$WORK/echoserver/EchoServer.dll" --port "$ECHO_PORT" >>"$WORK/echo.log" 2>&1 &
ECHO_PID=$!; PIDS+=("$ECHO_PID")
wait_port "$ECHO_PORT" "$ECHO_PID" echo

# The gateway's own categories at Warning: 100,000 tunnels would otherwise log 100,000 lines.
cat > "$WORK/gateway.json" <<EOF
{
  "Logging": { "LogLevel": { "Default": "Warning", "Microsoft.Hosting.Lifetime": "Information", "Gateway": "Warning", "Gateway.AccessLog": "Warning", "Yarp": "Error" } },
  "Gateway": {
    "Listeners": { "ws": { "Address": "127.0.0.1", "Port": $GATEWAY_WS } },
    "Admin": { "Address": "127.0.0.1", "Port": $GATEWAY_ADMIN },
    "DataProtection": { "KeyDirectory": "$WORK/keys" },
    "WebSocketPolicies": {
      "distinct": {
        "Limits": { "MaxConnectionsPerClient": $DISTINCT_MAX_CONNS_PER_CLIENT, "HandshakesPerMinutePerClient": $DISTINCT_HANDSHAKES_PER_MINUTE },
        "RateLimits": {
          "PerConnection": { "Messages": { "PerSecond": $DISTINCT_CONN_RATE, "Burst": $DISTINCT_CONN_BURST } },
          "PerClient": {
            "Messages": { "PerSecond": $DISTINCT_CLIENT_RATE, "Burst": $DISTINCT_CLIENT_BURST },
            "Bytes": { "PerSecond": 4096, "Burst": 8192 }
          },
          "Action": "Close"
        }
      }
    }
  },
  "ReverseProxy": {
    "Routes": {
      "distinct": { "ClusterId": "echo", "Match": { "Path": "/distinct/{**rest}" }, "Metadata": { "WebSocketPolicy": "distinct" } }
    },
    "Clusters": {
      "echo": { "Destinations": { "e0": { "Address": "http://127.0.0.1:$ECHO_PORT/" } } }
    }
  }
}
EOF

bench_start_gateway "$DISTINCT_GATEWAY_ENV"
log "gateway ready (pid $GATEWAY_PID)"

# ---- sampling ----
# HeapStat first: it makes the gateway run a full blocking GC, so the GC heap read from /metrics right after is what
# survives, not what the last gen0 happened to leave.
SAMPLES="$WORK/samples.tsv"
heap_count() { # heapstat.txt type: objects of exactly that type (0 when absent)
  awk -v t="$2" '/^Top [0-9]+ types/ { on = 1; next } on && $NF == t { c = $1; gsub(/,/, "", c); print c; f = 1; exit } END { if (!f) print 0 }' "$1"
}
sample() { # label clients_done
  local rss fds metrics heap committed gcs tunnels buckets tokens concurrency hs_heap="?" out="$WORK/heap-$1.txt"
  buckets="?"; tokens="?"; concurrency="?"
  if [[ $DISTINCT_HEAPSTAT == 1 ]]; then
    if timeout 120 dotnet "$WORK/heapstat/HeapStat.dll" --pid "$GATEWAY_PID" --top 100000 >"$out" 2>"$out.err"; then
      buckets=$(heap_count "$out" Gateway.Relay.SharedBucket)
      tokens=$(heap_count "$out" System.Threading.RateLimiting.TokenBucketRateLimiter)
      concurrency=$(heap_count "$out" System.Threading.RateLimiting.ConcurrencyLimiter)
      hs_heap=$(awk '/^Heap: / { v = $4; gsub(/,/, "", v); printf "%.1f", v / 1048576 }' "$out")
    else
      log "warning: HeapStat failed at $1 (see $out.err)"
    fi
  fi
  rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$GATEWAY_PID/status" 2>/dev/null || echo "?")
  fds=$(ls "/proc/$GATEWAY_PID/fd" 2>/dev/null | wc -l || true)
  metrics=$(curl -s --max-time 10 "http://127.0.0.1:$GATEWAY_ADMIN/metrics" || true)
  heap=$(awk '/^dotnet_gc_last_collection_heap_size_bytes/ { s += $NF; n++ } END { if (n) printf "%.1f", s / 1048576; else print "?" }' <<<"$metrics")
  committed=$(awk '/^dotnet_gc_last_collection_memory_committed_size_bytes/ { printf "%.1f", $NF / 1048576; f = 1 } END { if (!f) print "?" }' <<<"$metrics")
  gcs=$(awk '/^dotnet_gc_collections_total/ { g[$1] = $NF } END {
    printf "%s/%s/%s", g["dotnet_gc_collections_total{gc_heap_generation=\"gen0\"}"] + 0, g["dotnet_gc_collections_total{gc_heap_generation=\"gen1\"}"] + 0, g["dotnet_gc_collections_total{gc_heap_generation=\"gen2\"}"] + 0 }' <<<"$metrics")
  tunnels=$(curl -s --max-time 10 "http://127.0.0.1:$GATEWAY_ADMIN/connections?limit=1" | jq -r '.total // "?"' 2>/dev/null || echo "?")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$((SECONDS - T0))" "$tunnels" "$rss" "$heap" "$committed" \
    "$hs_heap" "$buckets" "$tokens" "$concurrency" "$fds" "$gcs" >> "$SAMPLES"
  log "sample $1: $2 clients done, RSS $rss MB, GC heap $heap MB (committed $committed MB), shared buckets $buckets, limiters token/concurrency $tokens/$concurrency, fds $fds, tunnels $tunnels"
}
T0=$SECONDS
sample before 0

# ---- the clients: LoadGen pauses at each mark until the sample is taken ----
LG_OUT="$WORK/loadgen.out"
MARK="$WORK/mark"; MARK_GO="$WORK/mark-go"
timeout "$((DISTINCT_MAX_SECONDS + 120))" dotnet "$WORK/loadgen/LoadGen.dll" distinct \
  --url "ws://127.0.0.1:$GATEWAY_WS/distinct/echo" --clients "$DISTINCT_CLIENTS" --concurrency "$DISTINCT_CONCURRENCY" --rate "$DISTINCT_RATE" \
  --messages "$DISTINCT_MESSAGES" --size "$DISTINCT_SIZE" --first-source "$DISTINCT_FIRST_SOURCE" \
  --mark-every "$DISTINCT_MARK_EVERY" --mark-file "$MARK" --mark-go-file "$MARK_GO" --md-out "$WORK/loadgen.md" \
  --max-seconds "$DISTINCT_MAX_SECONDS" --pids "$GATEWAY_PID" --label distinct --target gateway --out "$RESULTS" \
  >"$LG_OUT" 2>"$WORK/loadgen.err" &
LG_PID=$!; PIDS+=("$LG_PID")
LAST_MARK=""
while kill -0 "$LG_PID" 2>/dev/null; do
  if [[ -f $MARK ]] && done_now=$(cat "$MARK") && [[ $done_now != "$LAST_MARK" ]]; then
    sample "$done_now" "$done_now"
    LAST_MARK=$done_now
    touch "$MARK_GO"
  fi
  sleep 0.2
done
wait "$LG_PID" 2>/dev/null || log "warning: LoadGen exited with an error (see $WORK/loadgen.err)"
forget_pid "$LG_PID"
cat "$WORK/loadgen.err" >&2
RESULT=$(grep '^{' "$LG_OUT" | tail -1 || true)
[[ -n $RESULT ]] || { cat "$LG_OUT" >&2; die "LoadGen wrote no result"; }
DONE=$(jq -r .done <<<"$RESULT")

log "idle for $DISTINCT_IDLE s, so the entries of the last clients expire"
sleep "$DISTINCT_IDLE"
sample idle "$DONE"

# ---- the tables ----
row() { awk -F'\t' -v l="$1" '$1 == l' "$SAMPLES"; }
# The second mark (20,000 of 100,000: the pools have grown once; the first with fewer than 3 marks) against the last
# mark, and the idle sample.
EARLY=$(awk -F'\t' '$1 != "before" && $1 != "idle" { m[++n] = $1 } END { print (n >= 3 ? m[2] : m[1]) }' "$SAMPLES")
LATE=$(awk -F'\t' '$1 != "idle" { l = $1 } END { print l }' "$SAMPLES")
change() { # column: late minus early
  awk -v a="$(row "$EARLY" | cut -f"$1")" -v b="$(row "$LATE" | cut -f"$1")" \
    'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "?"; else if (a ~ /\./ || b ~ /\./) printf "%+.1f", b - a; else printf "%+d", b - a }'
}
{
  echo "# Distinct clients, $MODE mode, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); .NET $(dotnet --version)"
  echo "- gateway: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes in src/'), Release${DISTINCT_GATEWAY_ENV:+, environment: $DISTINCT_GATEWAY_ENV}"
  echo "- $DISTINCT_CLIENTS clients from $(jq -r .first_source <<<"$RESULT") to $(jq -r .last_source <<<"$RESULT"), $DISTINCT_CONCURRENCY at once, started at $DISTINCT_RATE/s (0: unpaced), $DISTINCT_MESSAGES x $DISTINCT_SIZE B each; policy: PerClient messages $DISTINCT_CLIENT_RATE/s burst $DISTINCT_CLIENT_BURST and bytes 4096/s burst 8192, PerConnection messages $DISTINCT_CONN_RATE/s burst $DISTINCT_CONN_BURST, MaxConnectionsPerClient $DISTINCT_MAX_CONNS_PER_CLIENT, HandshakesPerMinutePerClient $DISTINCT_HANDSHAKES_PER_MINUTE"
  echo
  echo "## Clients"
  echo
  cat "$WORK/loadgen.md"
  echo
  echo "## The gateway at each mark (no client open) and after $DISTINCT_IDLE s idle"
  echo
  echo "| sample | clients done | s into the run | tunnels open | RSS MB | GC heap MB | GC committed MB | HeapStat heap MB | shared buckets | token-bucket limiters | concurrency limiters | open fds | GCs gen0/1/2 |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }' "$SAMPLES"
  echo
  echo "| | at $EARLY | at $LATE | change | idle |"
  echo "| --- | --- | --- | --- | --- |"
  echo "| RSS MB | $(row "$EARLY" | cut -f5) | $(row "$LATE" | cut -f5) | $(change 5) | $(row idle | cut -f5) |"
  echo "| GC heap MB$([[ $DISTINCT_HEAPSTAT == 1 ]] && echo ' (after a full GC)') | $(row "$EARLY" | cut -f6) | $(row "$LATE" | cut -f6) | $(change 6) | $(row idle | cut -f6) |"
  echo "| GC committed MB | $(row "$EARLY" | cut -f7) | $(row "$LATE" | cut -f7) | $(change 7) | $(row idle | cut -f7) |"
  echo "| shared buckets | $(row "$EARLY" | cut -f9) | $(row "$LATE" | cut -f9) | $(change 9) | $(row idle | cut -f9) |"
  echo "| token-bucket / concurrency limiters | $(row "$EARLY" | cut -f10) / $(row "$EARLY" | cut -f11) | $(row "$LATE" | cut -f10) / $(row "$LATE" | cut -f11) | | $(row idle | cut -f10) / $(row idle | cut -f11) |"
} > "$TABLE"
echo >&2
cat "$TABLE"
log "results: $RESULTS and $TABLE; logs in $WORK"
grep -hE "warn:|fail:|crit:" "$WORK/gateway.log" 2>/dev/null | cut -d' ' -f2- | cut -c1-160 | sort | uniq -c | sort -rn | head -8 >&2 || true
failed=$(jq -r .failed <<<"$RESULT")
if (( failed > 0 || DONE < DISTINCT_CLIENTS )); then log "FAILED: $failed of $DONE clients not served ($DISTINCT_CLIENTS asked)"; exit 1; fi
exit 0
