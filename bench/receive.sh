#!/usr/bin/env bash
# receive.sh: durable receive throughput of sluiced, driven by Postfix's smtp-source.
# Usage: bench/receive.sh [SESSIONS...]   (default: 20 100)
# Every 250 it counts was sent after the LMDB commit holding the message was fsynced.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_RELEASE:-$root/build-release}
messages=${MESSAGES:-20000}
size=${SIZE:-2048}
sessions=("$@")
[ ${#sessions[@]} -eq 0 ] && sessions=(20 100)
command -v smtp-source >/dev/null || { echo "receive.sh: smtp-source missing (Debian package postfix)" >&2; exit 1; }

work=$(mktemp -d /tmp/sluice-bench-XXXXXX)
trap 'pkill -f "sluiced --config $work" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cp "$root/etc/recipients.txt" "$work/"
cat > "$work/sluice.toml" <<TOML
[server]
# The benchmark runs as whoever starts it (root on a CI box).
allow_root = true
hostname = "bench.sluice.test"
workers = "auto"
queue_dir = "$work/var/queue"
log_dir = "$work/var/log"
pickup_dir = ""
[[accepted_domain]]
name = "sluice.test"
type = "authoritative"
recipients = "recipients.txt"
[[receive_connector]]
name = "Bench"
type = "internet"
bindings = ["127.0.0.1:$port"]
max_connections_per_ip = 1000
TOML

# fdatasync latency of the queue's disk bounds what lock-step clients can reach.
python3 - "$work" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync.probe")
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"\0" * 65536, 0); os.fsync(fd)
t = time.perf_counter()
for i in range(200):
    os.pwrite(fd, b"x" * 4096, (i % 16) * 4096); os.fdatasync(fd)
print("fdatasync latency: %.2f ms" % ((time.perf_counter() - t) / 200 * 1000))
os.close(fd); os.unlink(path)
PY

runs=${RUNS:-3}
printf '%-10s %-10s %-10s %s\n' sessions messages median "msg/s of each run (every run: all messages queued?)"
for s in "${sessions[@]}"; do
  rates=()
  for r in $(seq "$runs"); do
    rm -rf "$work/var"
    "$build/src/main/sluiced" --config "$work/sluice.toml" >"$work/sluiced.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
    start=$(date +%s.%N)
    smtp-source -d -s "$s" -m "$messages" -l "$size" -f bench@example.org -t alice@sluice.test "127.0.0.1:$port"
    end=$(date +%s.%N)
    kill "$pid"; wait "$pid" || true
    queued=$("$build/tools/sluicectl/sluicectl" queue list --queue-dir "$work/var/queue" --json |
             python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["messages"])' 2>/dev/null || echo "?")
    rate=$(python3 -c "import sys; print('%.0f' % ($messages / (float(sys.argv[2]) - float(sys.argv[1]))))" "$start" "$end")
    [ "$queued" = "$messages" ] || rate="$rate(queued:$queued!)"
    rates+=("$rate")
  done
  median=$(printf '%s\n' "${rates[@]}" | sed 's/(.*//' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-10s %-10s %-10s %s\n' "$s" "$messages" "$median" "${rates[*]}"
done
