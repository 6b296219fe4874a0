#!/usr/bin/env bash
# run.sh: builds the libFuzzer drivers with clang++ (ASan+UBSan) into build-fuzz/ and runs each.
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]   (default 60 s each, every target)
# Independent of the meson build: it compiles the few src/ files each driver needs, so the
# normal gcc build and `make test` never depend on clang.
set -euo pipefail
# Everything runs inside main (and exits on its line) so that editing this file during a long run cannot derail it.
main() {
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-60}"
shift || true
out="${FUZZ_BUILD:-$root/build-fuzz}"
cxx="${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++)}"
mkdir -p "$out"

flags=(-std=c++20 -gline-tables-only -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I"$root/src" -I"$here")
# toml++ is built from its headers with its assertions aborting (toml_impl.cc) rather than linked:
# the packaged library has them compiled out, and a broken one is undefined behaviour there.
toml=(-DTOML_HEADER_ONLY=0 '-DTOML_ASSERT(expr)=((expr) ? static_cast<void>(0) : __builtin_abort())')

s=$root/src
declare -A srcs=(
  [smtp_server]="$s/smtp/server.cc $s/smtp/address.cc $s/smtp/params.cc $s/smtp/base64.cc $s/smtp/reply.cc $s/smtp/dot_stuff.cc $s/base/clock.cc"
  [smtp_client]="$s/smtp/client.cc $s/smtp/base64.cc $s/smtp/reply.cc $s/smtp/dot_stuff.cc $s/smtp/data_segments.cc"
  [smtp_syntax]="$s/smtp/address.cc $s/smtp/params.cc $s/smtp/base64.cc $s/smtp/reply.cc"
  [config]="$s/config/*.cc $out/toml_impl.o"   # a glob: the loader reads each section in its own file
  [config_edit]="$s/config/edit.cc $s/config/edit_scan.cc $s/config/load_guard.cc $out/toml_impl.o"
  [pickup]="$s/smtpd/pickup_message.cc $s/smtp/header.cc"
  [admin]="$s/admin/protocol.cc"
  [admin_commands]="$s/admin/protocol.cc $s/admin/commands.cc $s/admin/queue_commands.cc $s/admin/metrics_commands.cc $s/base/queue_id.cc $s/config/*.cc $s/route/table.cc $s/route/explain.cc $s/route/group.cc $s/generation/route_config.cc $s/metrics/registry.cc $s/metrics/exposition.cc $s/metrics/daemon.cc $out/toml_impl.o"
  [record]="$s/store/record.cc"
  [rules]="$s/rules/rules.cc $s/smtp/header.cc"
  [dns_answer]="$s/dns/answer.cc $s/dns/message.cc $s/dns/mx.cc $s/dns/cache.cc $s/metrics/registry.cc $s/metrics/daemon.cc"
  [dsn]="$s/dsn/dsn.cc $s/dsn/text.cc $s/smtp/header.cc $s/smtp/address.cc $s/smtp/params.cc $s/smtp/base64.cc"
  [maildir]="$s/delivery/maildir.cc"
)
# What a driver links besides its sources (c-ares parses the DNS answers, as in the resolver).
declare -A libs=([dns_answer]="-lcares" [dsn]="-lfmt")
# How long an input may be: the SMTP server needs room for a DATA body over its 64K limit.
declare -A maxlen=([smtp_server]=200000 [smtp_client]=65536 [smtp_syntax]=4096 [config]=16384 [config_edit]=16384
                   [pickup]=131072 [admin]=8192 [admin_commands]=8192 [record]=8192 [rules]=16384
                   [dns_answer]=4096 [dsn]=131072 [maildir]=4096)
# Largest single allocation: the server holds at most a 64K message plus a read, and its
# driver feeds pieces of at most 2 MB, so anything near 32 MB is input held without bound.
declare -A malloc_mb=([smtp_server]=32)

targets=("$@")
all=(smtp_server smtp_client smtp_syntax config config_edit pickup admin admin_commands record rules dns_answer dsn maildir)
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

# toml++'s parser is compiled once for the drivers that link it (it is the slowest unit to build).
toml_obj="$out/toml_impl.o"
if [[ " ${targets[*]} " =~ \ (config|config_edit|admin_commands)\  ]] &&
   { [ ! -f "$toml_obj" ] || [ "$here/toml_impl.cc" -nt "$toml_obj" ] || [ "$0" -nt "$toml_obj" ]; }; then
  echo "== build toml_impl.o"
  "$cxx" "${flags[@]}" "${toml[@]}" -c "$here/toml_impl.cc" -o "$toml_obj"
fi

# FUZZ_BUILD_JOBS compiles at once (default 1: a fuzzing session leaves the other core free).
jobs="${FUZZ_BUILD_JOBS:-1}"
# Each src/ file is compiled once into obj/ and linked into every driver that names it (the
# SMTP and configuration files serve several). Every object gets the toml++ definitions: only
# src/config includes toml++, and each driver linking it links toml_impl.o too. An object or a
# driver is rebuilt when its source, or any header under src/ or here, is newer.
headers_newer_than() { [ -n "$(find "$s" "$here" -name '*.h' -newer "$1" | head -1)" ]; }
stale() { [ ! -e "$2" ] || [ "$1" -nt "$2" ] || [ "$0" -nt "$2" ] || headers_newer_than "$2"; }
object_of() { local rel=${1#"$s"/}; echo "$out/obj/${rel//\//_}.o"; }
mkdir -p "$out/obj"
declare -A wanted=()
for t in "${targets[@]}"; do
  # shellcheck disable=SC2086
  for f in ${srcs[$t]}; do [[ $f == *.cc ]] && wanted[$f]=1; done
done
compile_object() { echo "== compile ${1#"$s"/}"; "$cxx" "${flags[@]}" "${toml[@]}" -c "$1" -o "$(object_of "$1")"; }
running=0
pending() {  # waits for one compile when JOBS are running; fails if it did
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || failed=1; running=$((running - 1)); fi
}
failed=0
for f in "${!wanted[@]}"; do
  stale "$f" "$(object_of "$f")" || continue
  compile_object "$f" &
  pending
done
while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
[ "$failed" -eq 0 ] || { echo "fuzz: an object did not compile" >&2; return 1; }
for t in "${targets[@]}"; do
  local bin="$out/${t}_fuzz" objs=() f
  # shellcheck disable=SC2086
  for f in ${srcs[$t]}; do if [[ $f == *.cc ]]; then objs+=("$(object_of "$f")"); else objs+=("$f"); fi; done
  if stale "$here/${t}_fuzz.cc" "$bin" || [ -n "$(find "${objs[@]}" -newer "$bin" 2>/dev/null | head -1)" ]; then
    echo "== build $t"
    # shellcheck disable=SC2086
    "$cxx" "${flags[@]}" "${toml[@]}" "$here/${t}_fuzz.cc" "${objs[@]}" -o "$bin" ${libs[$t]:-} &
    pending
  fi
done
while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
[ "$failed" -eq 0 ] || { echo "fuzz: a driver did not build" >&2; return 1; }

# ASan's default 256 MB quarantine alone would approach -rss_limit_mb over a long run;
# a smaller one keeps the limit a test of the code's memory, not the sanitizer's.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=32}"
# FUZZ_RUN_JOBS drivers run at once (each is one process on one core); each writes its own log,
# and the logs are summarised in target order once they are all done.
run_jobs="${FUZZ_RUN_JOBS:-1}"
running=0
for t in "${targets[@]}"; do
  local work="$out/corpus/$t"   # grows as the fuzzer finds inputs; the seeds stay untouched
  mkdir -p "$work" "$out/artifacts/$t"
  echo "== run $t for ${secs}s"
  "$out/${t}_fuzz" "$work" "$here/corpus/$t" -max_total_time="$secs" -max_len="${maxlen[$t]}" \
    -rss_limit_mb=512 -malloc_limit_mb="${malloc_mb[$t]:-512}" -timeout=5 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" ${FUZZ_ARGS:-} \
    >"$out/$t.log" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge "$run_jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
for t in "${targets[@]}"; do
  echo "== $t"
  grep -E '^#[0-9]+.*(DONE|pulse)|ERROR|SUMMARY|stat::|Test unit written' "$out/$t.log" || true
  grep -q 'ERROR\|Test unit written' "$out/$t.log" && { echo "!! $t found a problem: see $out/$t.log"; fails=1; }
done
return "${fails:-0}"
}
# exit on the same line: bash reads no further, so an edit of this file during a run is harmless.
main "$@"; exit $?
