#!/usr/bin/env bash
# tls_receive.sh: receive throughput of sluiced over STARTTLS beside plaintext, and new
# sessions per second with and without TLS (a TLS handshake each), driven by blaster.
# Usage: bench/tls_receive.sh   (MESSAGES, SESSIONS, RUNS from the environment)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_RELEASE:-$root/build-release}
messages=${MESSAGES:-20000} sessions=${SESSIONS:-50} runs=${RUNS:-3}
blaster=$build/tools/blaster/blaster
work=$(mktemp -d /tmp/sluice-tlsbench-XXXXXX)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/sluice.toml" <<TOML
[server]
# The benchmark runs as whoever starts it (root on a CI box).
allow_root = true
hostname = "bench.sluice.test"
queue_dir = "$work/var/queue"
log_dir = "$work/var/log"
pickup_dir = ""
[[accepted_domain]]
name = "sluice.test"
type = "external_relay"
[[receive_connector]]
name = "Bench"
type = "internet"
bindings = ["127.0.0.1:$port"]
max_connections_per_ip = 1000
tls = { certificate = "auto", key = "auto", starttls = "offered" }
TOML
"$build/src/main/sluiced" --config "$work/sluice.toml" >"$work/sluiced.log" 2>&1 &
pid=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

# The settings are run round-robin, RUNS rounds, so a noisy neighbour or a slow disk
# phase hits all of them alike; each line reports the median of its runs.
labels=("plaintext, many messages per session" "STARTTLS, many messages per session"
        "plaintext, one message per session" "STARTTLS, one message (handshake) per session")
counts=("$messages" "$messages" $((messages / 5)) $((messages / 10)))
options=("" "--starttls" "--one-per-connection" "--one-per-connection --starttls")
declare -A rates
for round in $(seq "$runs"); do
  for i in 0 1 2 3; do
    # shellcheck disable=SC2086
    r=$("$blaster" send --target "127.0.0.1:$port" --sessions "$sessions" --messages "${counts[$i]}" --size 2048 \
        --domain sluice.test --no-progress --json ${options[$i]} |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f" % d["msg_per_s"] if d["failed"]==0 else "failed")')
    rates[$i]="${rates[$i]:-} $r"
  done
done
printf '%-46s %10s   %s\n' "load (2 KB messages, $sessions sessions)" "median/s" runs
for i in 0 1 2 3; do
  median=$(printf '%s\n' ${rates[$i]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-46s %10s  %s\n' "${labels[$i]}" "$median" "${rates[$i]}"
done
