# common.sh: helpers shared by the end-to-end benchmark scripts (sourced, not run).
# Untrusted input: none (JSON comes from our own tools).

# The blaster binary: $BLASTER, else build-release's, else the newest
# build*/tools/blaster/blaster that is not a sanitizer build (those run several times slower).
find_blaster() {
  if [ -n "${BLASTER:-}" ]; then echo "$BLASTER"; return; fi
  local root; root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [ -x "$root/build-release/tools/blaster/blaster" ]; then echo "$root/build-release/tools/blaster/blaster"; return; fi
  ls -t "$root"/build*/tools/blaster/blaster 2>/dev/null | grep -v -e asan -e san/ -e tsan -e ubsan | head -1
}

# sluiced: $SLUICED, else a release build (build-release, as `make bench` makes it),
# else the newest build*/src/main/sluiced.
find_sluiced() {
  if [ -n "${SLUICED:-}" ]; then echo "$SLUICED"; return; fi
  local root; root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [ -x "$root/build-release/src/main/sluiced" ]; then echo "$root/build-release/src/main/sluiced"; return; fi
  ls -t "$root"/build*/src/main/sluiced 2>/dev/null | grep -v -e asan -e san/ -e tsan -e ubsan | head -1
}

# A TCP port nothing listens on now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {  # PORT [TRIES of 0.05 s] [HOST, default 127.0.0.1]
  local i host=${3:-127.0.0.1}
  for i in $(seq "${2:-200}"); do
    if (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on port $1${3:+ of $3}" >&2
  return 1
}

# json_get FILE KEY: a number or string value by key (first match, nested keys allowed).
json_get() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def find(o, k):
    if isinstance(o, dict):
        if k in o: return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None: return r
    return None
with open(sys.argv[1]) as f:
    for line in f:
        line = line.strip()
        if line.startswith('{'):
            v = find(json.loads(line), sys.argv[2])
            print('' if v is None else v)
            break
PY
}

# json_sum KEY FILE...: the sum of KEY over the JSON summaries (a missing file or key counts 0).
json_sum() {
  local key=$1 total=0 f v
  shift
  for f in "$@"; do
    [ -s "$f" ] || continue
    v=$(json_get "$f" "$key")
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

ratio() { python3 -c "import sys; a,b=float(sys.argv[1] or 0),float(sys.argv[2] or 0); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }

# Processes started by a script are stopped by it, by pid, on exit: the last started
# first, so a relay stops before the sinks and the DNS server it depends on.
BENCH_PIDS=()
stop_started() {
  local p i
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
    p=${BENCH_PIDS[i]}
    [ -n "$p" ] || continue
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  BENCH_PIDS=()
}
