#!/usr/bin/env bash
# relay.sh: end-to-end relay benchmark: blaster send -> sluiced -> blaster sink (and, with --compare, Postfix).
# Untrusted input: none (it drives local daemons with generated mail and reads their logs).
#
# Reports the receive rate (250s per second at the relay), the delivered rate (messages
# the sinks accepted, from the start of the load to the relay's last delivery, warm-up
# included), time to 250 percentiles (blaster), time in queue percentiles (receive to
# delivery, from the relay's own log), loss/duplication from blaster verify, the sinks'
# sessions, and the messages sluiced still holds at the end.
# Writes results.csv, series-<run>.csv and delivered-<run>.csv (one line per second) and
# relay.png (accepted and delivered msg/s, p99 time to 250, over time) into the output directory.
#
# Usage: bench/relay.sh [--messages N | --duration T] [--sustained [T]] [--warmup T]
#                       [--size BYTES|MIN-MAX] [--rcpts K] [--sessions S] [--rate R]
#                       [--compare] [--rollup [--domains N] [--mx-sets K]]
#                       [--client blaster|smtp-source] [--out DIR]
#   --sustained [T]  run for T (default 5m) with a 30 s warm-up dropped from the figures
#   --compare        run the identical load through a private Postfix on loopback too
#   --rollup         instead of one smart host: DNS routing over a private dnsmasq, N
#                    domains (1000) whose MX hosts are K hosts (10), each a blaster sink
#                    on 127.0.0.(10+k); reports the connections the sinks saw
#   --client smtp-source  drive the load with Postfix's smtp-source -d (lock-step sessions,
#                    no pipelining) instead of blaster: no time to 250 and no
#                    per-message verify (lost = accepted - delivered); smart host only
#   KEEP_WORK=1 keeps the work directory (configs, logs, queues) for a post-mortem.
#   SINK_ARGS="--chunking" passes options to every blaster sink (CHUNKING: BDAT delivery).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib/common.sh"
. "$here/lib/postfix.sh"
. "$here/lib/dns.sh"
. "$here/lib/chart.sh"

messages=20000 duration="" warmup=0 size=2048 rcpts=1 sessions=20 rate=0 compare=0
rollup=0 domains=1000 mx_sets=10 client=blaster
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
    --rollup) rollup=1; shift ;;
    --domains) domains=$2; shift 2 ;;
    --mx-sets) mx_sets=$2; shift 2 ;;
    --client) client=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '4,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "relay.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# The Postfix comparison is the smart-host load; Postfix would need its resolver moved for DNS.
[ "$rollup" = 1 ] && [ "$compare" = 1 ] && { echo "relay.sh: --rollup runs sluiced only (no --compare)" >&2; exit 2; }
case $client in
  blaster) ;;
  smtp-source)
    command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
    command -v smtp-source >/dev/null || { echo "relay.sh: smtp-source missing (Debian package postfix)" >&2; exit 1; }
    [ "$rollup" = 0 ] && [ -z "$duration" ] || { echo "relay.sh: --client smtp-source takes --messages, no --rollup" >&2; exit 2; } ;;
  *) echo "relay.sh: --client blaster or smtp-source" >&2; exit 2 ;;
esac
[ "$mx_sets" -ge 1 ] && [ "$mx_sets" -le 200 ] || { echo "relay.sh: --mx-sets 1..200" >&2; exit 2; }

blaster=$(find_blaster)
sluiced=$(find_sluiced)
[ -x "$blaster" ] || { echo "relay.sh: build blaster first" >&2; exit 1; }
[ -x "$sluiced" ] || { echo "relay.sh: build sluiced first" >&2; exit 1; }
sluicectl=$(dirname "$sluiced")/../../tools/sluicectl/sluicectl
mkdir -p "$out"
work=$(mktemp -d /tmp/sluice-relay-work-XXXXXX)
chmod 755 "$work"  # the postfix user must reach its data directory
cleanup() {
  stop_started
  postfix_stop "$work/postfix"
  if [ -n "${KEEP_WORK:-}" ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

load=(--sessions "$sessions" --size "$size" --rcpts "$rcpts" --rate "$rate" --warmup "$warmup"
      --to "user{n}.{r}@{domain}" --interval 1s --no-progress --json)
if [ -n "$duration" ]; then load+=(--duration "$duration"); else load+=(--messages "$messages"); fi

csv=$out/results.csv
[ -f "$csv" ] || echo "run,size,rcpts,sessions,rate,accepted,refused,failed,receive_msg_per_s,delivered,delivered_msg_per_s,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,queue_p50_ms,queue_p90_ms,queue_p99_ms,queue_max_ms,sink_sessions,sink_peak_sessions,lost,duplicated,corrupted,queue_left" > "$csv"

# start_sluiced DIR PORT SEND_CONNECTOR_TOML [MORE_TOML]: every 250 after the commit that
# holds the message, every delivery outcome committed before the item leaves the queue
# (sluiced's only mode: there is no setting that trades durability for speed).
start_sluiced() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  cat > "$dir/sluice.toml" <<TOML
[server]
# The benchmark runs as whoever starts it (root on a CI box).
allow_root = true
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
bindings = ["127.0.0.1:$port"]
remote_ranges = ["127.0.0.0/8"]
permissions = { anonymous = true, relay = true }
max_connections_per_ip = 10000
max_connections = 10000
protocol_log = false
$3
${4:-}
TOML
  (cd "$dir" && exec "$sluiced" --config "$dir/sluice.toml") > "$dir/sluiced.log" 2>&1 &
  BENCH_PIDS+=($!)
  wait_port "$port" || { tail -5 "$dir/sluiced.log" >&2; return 1; }
}

smarthost_connector() {  # SINK_PORT
  cat <<TOML
[[send_connector]]
name = "Sink"
address_spaces = [{ domain = "*", cost = 1 }]
routing = "smarthost"
smart_hosts = ["127.0.0.1:$1"]
tls = "none"
TOML
}

dns_connector() {  # SINK_PORT DNS_PORT
  cat <<TOML
[[send_connector]]
name = "Internet"
address_spaces = [{ domain = "*", cost = 1 }]
routing = "dns"
port = $1
tls = "none"
[dns]
servers = ["127.0.0.1:$2"]
TOML
}

# smtp_source_send DIR PORT: the load through smtp-source -d; writes DIR/send.json with the
# keys blaster's summary has that smtp-source can give (whole-process wall clock).
smtp_source_send() {
  local d=$1 port=$2 s0 s1
  s0=$(date +%s.%N)
  local accepted=$messages
  # smtp-source stops at the first refusal or error, and says so; it counts nothing.
  smtp-source -d -s "$sessions" -m "$messages" -l "$size" -r "$rcpts" -f sender@blaster.test \
    -t user@bench.test "127.0.0.1:$port" > "$d/smtp-source.out" 2>&1 || { accepted=0; tail -3 "$d/smtp-source.out" >&2; }
  s1=$(date +%s.%N)
  python3 -c "import json,sys; n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(json.dumps({'accepted':n,'refused':'n/a','failed':'n/a','msg_per_s':round(n/(b-a),1),'p50':'n/a','p90':'n/a','p99':'n/a','p999':'n/a','max':'n/a'}))" \
    "$accepted" "$s0" "$s1" > "$d/send.json"
}

# delivered_lines DIR: records all the run's sinks have written so far.
delivered_lines() {
  local f n=0
  for f in "$1"/received-*.log; do [ -f "$f" ] && n=$((n + $(wc -l < "$f"))); done
  echo "$n"
}

run_one() {  # RUN: sluice | postfix | rollup
  local run=$1 d=$work/$1 port sink_port a
  mkdir -p "$d"
  port=$(free_port); sink_port=$(free_port)
  local sinks=(127.0.0.1) domain_list=bench.test k
  if [ "$run" = rollup ]; then
    sinks=()
    for ((k = 0; k < mx_sets; k++)); do sinks+=("127.0.0.$((10 + k))"); done
    domain_list=$(dns_domains "$domains")
  fi
  for a in "${sinks[@]}"; do
    "$blaster" sink ${SINK_ARGS:-} --listen "$a:$sink_port" --record "$d/received-$a.log" --json \
      > "$d/sink-$a.json" 2> "$d/sink-$a.err" &
    BENCH_PIDS+=($!)
  done
  for a in "${sinks[@]}"; do wait_port "$sink_port" 200 "$a"; done
  case $run in
    sluice) start_sluiced "$d" "$port" "$(smarthost_connector "$sink_port")" ;;
    rollup)
      local dns_port; dns_port=$(free_port)
      dns_start "$d/dns" "$dns_port" "$domains" "$mx_sets"
      start_sluiced "$d" "$port" "$(dns_connector "$sink_port" "$dns_port")" ;;
    postfix) postfix_start "$work/postfix" "$port" "$sink_port" ;;
  esac

  echo "== $run: blaster send -> $run (127.0.0.1:$port) -> ${#sinks[@]} blaster sink(s) (${sinks[0]}${sinks[1]:+..${sinks[-1]}}:$sink_port)" >&2
  local t0 t_last n prev=0 idle=0
  t0=$(date +%s.%N)
  if [ "$client" = blaster ]; then
    "$blaster" send --target "127.0.0.1:$port" "${load[@]}" --domain "$domain_list" --record "$d/sent.log" \
      --series "$out/series-$run.csv" > "$d/send.json" || true
  else
    smtp_source_send "$d" "$port"
  fi
  local accepted; accepted=$(json_get "$d/send.json" accepted)
  # Drain: wait until the sinks have everything that was acknowledged, or nothing more
  # arrives for 10 s (100 polls) (a stuck queue, or deliveries deferred to a later retry).
  t_last=$t0
  while :; do
    n=$(delivered_lines "$d")
    if [ "$n" -gt "$prev" ]; then prev=$n; idle=0; t_last=$(date +%s.%N); else idle=$((idle + 1)); fi
    [ "$n" -ge "${accepted:-0}" ] && break
    [ "$idle" -ge 100 ] && break
    sleep 0.1
  done
  [ "$run" = postfix ] && postfix_stop "$work/postfix"
  stop_started  # the relay first, then its sinks, which print their summaries on SIGTERM
  if [ "$client" = blaster ]; then
    "$blaster" verify --sent "$d/sent.log" --received "$d"/received-*.log --json > "$d/verify.json" || true
  else
    local got; got=$(delivered_lines "$d")
    echo "{\"lost\":$((accepted > got ? accepted - got : 0)),\"duplicated\":\"n/a\",\"corrupted\":\"n/a\"}" > "$d/verify.json"
  fi

  # What sluiced still holds once it has stopped: with everything delivered, nothing (an
  # item leaves the queue in the commit that records its outcome).
  local left=n/a
  if [ "$run" != postfix ] && [ -x "$sluicectl" ]; then
    "$sluicectl" --json --queue-dir "$d/var/queue" queue list > "$d/queue-left.json" 2>/dev/null &&
      left=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['messages'])" "$d/queue-left.json")
  fi
  # Time in queue, and the end of the delivered interval, from the relay's own log: the
  # sinks' records carry no time, and they reach their files only five times a second.
  local qlog=$d/var/log qsys=sluice
  [ "$run" = postfix ] && { qlog=$work/postfix/maillog; qsys=postfix; }
  python3 "$here/lib/queue_times.py" "$qsys" "$qlog" --since "$t0" --series "$out/delivered-$run.csv" \
    > "$d/queue.json" 2> "$d/queue.err" || echo '{}' > "$d/queue.json"
  local q="json_get $d/queue.json" t_end; t_end=$($q last_delivery)
  if [ -z "$t_end" ] || [ "$t_end" = 0 ]; then
    t_end=$t_last
  elif [ "$run" = postfix ]; then
    # Postfix's maillog stamps whole seconds: the last delivery was before the end of its
    # second, and before the poll that saw it at the sink.
    t_end=$(python3 -c "import sys; print(min(float(sys.argv[1]) + 1, float(sys.argv[2])))" "$t_end" "$t_last")
  fi
  local delivered; delivered=$(delivered_lines "$d")
  local del_rate; del_rate=$(python3 -c "import sys; n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print('%.1f' % (n/(b-a)) if n and b>a else 0)" "$delivered" "$t0" "$t_end")
  local qp50 qp90 qp99 qmax
  if [ -n "$($q delivered)" ] && [ "$($q delivered)" != 0 ]; then
    qp50=$($q p50_ms) qp90=$($q p90_ms) qp99=$($q p99_ms) qmax=$($q max_ms)
  else
    qp50=n/a qp90=n/a qp99=n/a qmax=n/a
  fi
  local sessions_total peak
  sessions_total=$(json_sum sessions_total "$d"/sink-*.json)
  peak=$(json_sum peak_sessions "$d"/sink-*.json)
  local g="json_get $d/send.json" v="json_get $d/verify.json"
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$run" "$size" "$rcpts" \
    "$sessions" "$rate" "$accepted" "$($g refused)" "$($g failed)" "$($g msg_per_s)" "$delivered" "$del_rate" \
    "$($g p50)" "$($g p90)" "$($g p99)" "$($g p999)" "$($g max)" "$qp50" "$qp90" "$qp99" "$qmax" \
    "$sessions_total" "$peak" "$($v lost)" "$($v duplicated)" "$($v corrupted)" "$left" >> "$csv"
  echo "$run: accepted $accepted, receive $($g msg_per_s) msg/s, time to 250 p50 $($g p50) p90 $($g p90) p99 $($g p99) p99.9 $($g p999) max $($g max) ms"
  echo "$run: delivered $delivered, $del_rate msg/s end to end; time in queue p50 $qp50 p90 $qp90 p99 $qp99 max $qmax ms;" \
       "deferred $($q deferred) failed $($q failed) (log events); lost $($v lost), duplicated $($v duplicated), corrupted $($v corrupted)"
  echo "$run: connections to the sinks: $sessions_total opened, peak $peak open at once (sum over ${#sinks[@]} sink(s)); messages left in the queue: $left"
  eval "rate_$run=\$($g msg_per_s); delivered_rate_$run=$del_rate"
}

echo "sluiced: $sluiced"
if [ -n "$duration" ]; then amount="duration=$duration warmup=$warmup"; else amount="messages=$messages"; fi
echo "relay benchmark: size=$size rcpts=$rcpts sessions=$sessions rate=$rate $amount cores=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$rollup" = 1 ]; then
  echo "rollup: $domains domains (d0.test..d$((domains - 1)).test) over $mx_sets MX hosts, DNS from a private dnsmasq"
  run_one rollup
  subtitle="rollup: $domains domains over $mx_sets MX hosts"
else
  run_one sluice
  subtitle="smart host"
fi
if [ "$compare" = 1 ]; then
  run_one postfix
  del_ratio=$(ratio "$delivered_rate_sluice" "$delivered_rate_postfix")
  [ "$delivered_rate_sluice" = 0 ] && del_ratio="n/a (sluiced delivered nothing)"
  echo "ratio sluice/postfix: receive $(ratio "$rate_sluice" "$rate_postfix"), delivered $del_ratio"
fi

draw_relay_chart "$out" "$subtitle, size $size, $rcpts rcpt, $sessions sessions${duration:+, warm-up $warmup dropped from the figures}"
echo "results: $csv; chart: $out/relay.png"
