#!/usr/bin/env bash
# relay.sh: end-to-end relay benchmark: blaster send -> sluiced -> blaster sink (and, with --compare, Postfix).
# Reports the receive rate (250s per second at the relay), the end-to-end delivered rate
# (messages reaching the sink per second; shown as "none" while sluiced has no delivery
# engine), time-to-250 latency percentiles, and loss/duplication from blaster verify.
# Writes results.csv, series-<system>.csv (one line per second) and relay.png
# (throughput and p99 latency over time) into the output directory.
#
# Usage: bench/relay.sh [--messages N | --duration T] [--sustained [T]] [--warmup T]
#                       [--size BYTES|MIN-MAX] [--rcpts K] [--sessions S] [--rate R]
#                       [--compare] [--out DIR]
#   --sustained [T]  run for T (default 5m) with a 30 s warm-up dropped from the figures
#   --compare        run the identical load through a private Postfix on loopback too
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib/common.sh"
. "$here/lib/postfix.sh"
. "$here/lib/chart.sh"

messages=20000 duration="" warmup=0 size=2048 rcpts=1 sessions=20 rate=0 compare=0
out=/tmp/sluice-relay-$(date +%Y%m%d-%H%M%S)
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) messages=$2; duration=""; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --sustained)
      duration=5m; warmup=30s
      if [ $# -gt 1 ] && [[ $2 != --* ]]; then duration=$2; shift; fi
      shift ;;
    --warmup) warmup=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rcpts) rcpts=$2; shift 2 ;;
    --sessions) sessions=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --compare) compare=1; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "relay.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

blaster=$(find_blaster)
sluiced=$(find_sluiced)
[ -x "$blaster" ] || { echo "relay.sh: build blaster first" >&2; exit 1; }
[ -x "$sluiced" ] || { echo "relay.sh: build sluiced first" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d /tmp/sluice-relay-work-XXXXXX)
chmod 755 "$work"  # the postfix user must reach its data directory
cleanup() {
  stop_started
  postfix_stop "$work/postfix"
  rm -rf "$work"
}
trap cleanup EXIT

load=(--sessions "$sessions" --size "$size" --rcpts "$rcpts" --rate "$rate" --warmup "$warmup"
      --to "user{n}.{r}@{domain}" --domain bench.test --interval 1s --no-progress --json)
if [ -n "$duration" ]; then load+=(--duration "$duration"); else load+=(--messages "$messages"); fi

csv=$out/results.csv
[ -f "$csv" ] || echo "system,size,rcpts,sessions,rate,accepted,refused,failed,receive_msg_per_s,delivered,delivered_msg_per_s,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,lost,duplicated,corrupted" > "$csv"

start_sluiced() {  # PORT SINK_PORT
  local dir=$work/sluice
  mkdir -p "$dir"
  cat > "$dir/sluice.toml" <<TOML
[server]
hostname = "bench.sluice.test"
workers = "auto"
queue_dir = "$dir/var/queue"
log_dir = "$dir/var/log"
pickup_dir = ""
[[accepted_domain]]
name = "sluice.test"
type = "authoritative"
[[receive_connector]]
name = "Bench"
type = "enterprise"
bindings = ["127.0.0.1:$1"]
remote_ranges = ["127.0.0.0/8"]
permissions = { anonymous = true, relay = true }
max_connections_per_ip = 10000
max_connections = 10000
protocol_log = false
[[send_connector]]
name = "Sink"
address_spaces = [{ domain = "*", cost = 1 }]
routing = "smarthost"
smart_hosts = ["127.0.0.1:$2"]
tls = "none"
TOML
  (cd "$dir" && exec "$sluiced" --config "$dir/sluice.toml") > "$dir/sluiced.log" 2>&1 &
  BENCH_PIDS+=($!)
  wait_port "$1" || { tail -5 "$dir/sluiced.log" >&2; return 1; }
}

# lines FILE: records the sink has written so far.
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }

run_one() {  # SYSTEM
  local sys=$1 port sink_port d=$work/$1
  mkdir -p "$d"
  port=$(free_port); sink_port=$(free_port)
  "$blaster" sink --listen "127.0.0.1:$sink_port" --record "$d/received.log" --json > "$d/sink.json" 2> "$d/sink.err" &
  local sink_pid=$!
  BENCH_PIDS+=($sink_pid)
  wait_port "$sink_port"
  if [ "$sys" = sluice ]; then start_sluiced "$port" "$sink_port"; else postfix_start "$work/postfix" "$port" "$sink_port"; fi

  echo "== $sys: blaster send -> $sys (127.0.0.1:$port) -> blaster sink (127.0.0.1:$sink_port)" >&2
  local t0 t_last n prev=0 idle=0
  t0=$(date +%s.%N)
  "$blaster" send --target "127.0.0.1:$port" "${load[@]}" --record "$d/sent.log" --series "$out/series-$sys.csv" \
    > "$d/send.json" || true
  local accepted; accepted=$(json_get "$d/send.json" accepted)
  # Drain: wait until the sink has everything that was acknowledged, or nothing more
  # arrives for 10 s (no delivery engine yet, or a stuck queue).
  t_last=$t0
  while :; do
    n=$(lines "$d/received.log")
    if [ "$n" -gt "$prev" ]; then prev=$n; idle=0; t_last=$(date +%s.%N); else idle=$((idle + 1)); fi
    [ "$n" -ge "$accepted" ] && break
    [ "$idle" -ge 40 ] && break
    sleep 0.25
  done
  if [ "$sys" = sluice ]; then stop_started; else postfix_stop "$work/postfix"; kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  BENCH_PIDS=()
  "$blaster" verify --sent "$d/sent.log" --received "$d/received.log" --json > "$d/verify.json" || true

  local delivered; delivered=$(lines "$d/received.log")
  local del_rate; del_rate=$(python3 -c "import sys; n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print('%.1f' % (n/(b-a)) if n and b>a else 0)" "$delivered" "$t0" "$t_last")
  local g="json_get $d/send.json"
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$sys" "$size" "$rcpts" "$sessions" "$rate" \
    "$accepted" "$($g refused)" "$($g failed)" "$($g msg_per_s)" "$delivered" "$del_rate" \
    "$($g p50)" "$($g p90)" "$($g p99)" "$($g p999)" "$($g max)" \
    "$(json_get "$d/verify.json" lost)" "$(json_get "$d/verify.json" duplicated)" "$(json_get "$d/verify.json" corrupted)" >> "$csv"
  local del_text="$delivered ($del_rate msg/s end to end)"
  [ "$delivered" -eq 0 ] && del_text="none (no delivery from $sys yet: receive rate only)"
  echo "$sys: accepted $accepted, receive $($g msg_per_s) msg/s, time to 250 p50 $($g p50) p90 $($g p90) p99 $($g p99) p99.9 $($g p999) max $($g max) ms"
  echo "$sys: delivered $del_text; lost $(json_get "$d/verify.json" lost), duplicated $(json_get "$d/verify.json" duplicated), corrupted $(json_get "$d/verify.json" corrupted)"
  eval "rate_$sys=\$($g msg_per_s); delivered_rate_$sys=$del_rate"
}

echo "sluiced: $sluiced"
if [ -n "$duration" ]; then amount="duration=$duration warmup=$warmup"; else amount="messages=$messages"; fi
echo "relay benchmark: size=$size rcpts=$rcpts sessions=$sessions rate=$rate $amount cores=$(nproc)"
run_one sluice
if [ "$compare" = 1 ]; then
  run_one postfix
  del_ratio=$(ratio "$delivered_rate_sluice" "$delivered_rate_postfix")
  [ "$delivered_rate_sluice" = 0 ] && del_ratio="n/a (sluiced delivered nothing)"
  echo "ratio sluice/postfix: receive $(ratio "$rate_sluice" "$rate_postfix"), delivered $del_ratio"
fi

draw_relay_chart "$out" "size $size, $rcpts rcpt, $sessions sessions${duration:+, warm-up $warmup dropped from the figures}"
echo "results: $csv; chart: $out/relay.png"
