#!/usr/bin/env bash
# run.sh: builds the sanitizer build directories (build-asan, build-tsan) and runs the chosen tests in them; the last step of `make test`.
# Untrusted input: none (it runs our own tests; the sanitizers' reports are only shown).
# Usage: tests/sanitize/run.sh [asan|tsan|all]   (default all)
#   SANITIZE_JOBS  parallel compiles and Criterion jobs (default 2)
#   ASAN_BUILD, TSAN_BUILD  the build directories (default build-asan, build-tsan at the top)
# What runs under which sanitizer, and why: tests/sanitize/README.md. Exits non-zero if a
# build fails, a test fails, or any process of a run (a test, or the sluiced, sluicectl and
# blaster it started) wrote a sanitizer report, even one the test itself did not notice.
set -uo pipefail
# Everything runs inside main (and exits on its line) so that editing this file during a run cannot derail it.
main() {
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
what="${1:-all}"
jobs="${SANITIZE_JOBS:-2}"
case "$what" in asan|tsan|all) ;; *) echo "usage: $0 [asan|tsan|all]" >&2; exit 2 ;; esac
status=0
summaries=()
if [ "$what" != tsan ]; then run_asan || status=1; fi
if [ "$what" != asan ]; then run_tsan || status=1; fi
for s in "${summaries[@]}"; do echo "$s"; done
exit $status
}

# The integration suites that do not run under ASan (see README.md for the choice): mostly
# configuration, reload, admin and peer-interop suites whose daemon paths the chosen ones share.
asan_skipped_suites=(
  integration_admin integration_connector_verbs integration_drain integration_examples
  integration_logauth integration_metrics integration_privileges integration_reload
  integration_reload_ctl integration_systemd integration_tls_client delivery_peer
  reload_delivery sluicectl queue_actions message_actions
  crash_battery store_full fault_destination fault_dns integration_abuse
)
# Tests that measure the process rather than check behaviour, whose bounds do not hold under
# ASan: resident memory (ASan's shadow and quarantine), rates and timings (instrumented code).
asan_skipped_tests=(
  integration_budget/\* integration_receive/client_that_never_reads_replies_cannot_grow_memory
  integration_hostile/stalled_readers_cannot_exhaust_descriptors
  blaster_integration/open_loop_rate_is_held blaster_sink_faults/fail_for_ms_defers_mail_then_recovers
)

# setup DIR OPTION...: configures DIR once (a second run reuses it and rebuilds what changed).
setup() {
  local dir="$1"
  shift
  [ -f "$dir/build.ninja" ] && return 0
  local log
  log=$(mktemp)
  meson setup "$dir" "$@" >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; return 1; }
  rm -f "$log"
}

elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# reports DIR: prints every sanitizer report in DIR (one file per process that wrote one);
# true when there is none.
reports() {
  local dir="$1" n=0 f
  for f in "$dir"/*; do
    [ -s "$f" ] || continue
    n=$((n + 1))
    echo "=== sanitizer report: ${f##*/}" >&2
    head -n 80 "$f" >&2
  done
  report_count=$n
  [ "$n" -eq 0 ]
}

run_asan() {
  local dir="${ASAN_BUILD:-$root/build-asan}" t0=$SECONDS
  # -O0 with line tables only (-g1): an -O1 build with full debug information compiles two to
  # three times slower under ASan+UBSan, and the tests wait on sockets, not on the CPU.
  # b_lundef=false: the sanitizer runtimes resolve some symbols only at load time.
  setup "$dir" -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=0 -Ddebug=false \
        -Dcpp_args=-g1 || { summaries+=("sanitize asan: FAILED (meson setup)"); return 1; }
  # The one test binary and every program the tests start (harness.cc and peers.cc find them
  # in the test binary's own build directory, so these are the ASan builds too).
  if ! ninja -C "$dir" -j "$jobs" tests/sluice-tests src/main/sluiced tools/sluicectl/sluicectl \
       tools/blaster/blaster tests/integration/libdurability_shim.so; then
    summaries+=("sanitize asan: FAILED (build)")
    return 1
  fi
  local built=$((SECONDS - t0)) out="$dir/sanitizer-reports"
  rm -rf "$out" && mkdir -p "$out"
  local skip
  skip=$(IFS='|'; echo "${asan_skipped_suites[*]/%//*}|${asan_skipped_tests[*]}")
  # log_path: each process writes its report to a file of its own (the daemon's standard error
  # is a log file inside a test's temporary directory), which is read back below.
  # verify_asan_link_order=0: durability_test.cc preloads its shim in front of the runtime.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:verify_asan_link_order=0:log_path=$out/asan:log_exe_name=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$out/ubsan:log_exe_name=1"
  export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
  local log="$dir/sanitize-asan.log"
  echo "sanitize asan: running unit and chosen integration tests (log: $log)"
  "$dir/tests/sluice-tests" --jobs "$jobs" --filter "!(@($skip))" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
  local report_count=0
  reports "$out" || rc=1
  local synthesis
  synthesis=$(grep -a 'Synthesis:' "$log" | tail -1 | sed 's/.*Synthesis: //')
  summaries+=("sanitize asan+ubsan: $([ "$rc" -eq 0 ] && echo ok || echo FAILED): ${synthesis:-no synthesis}; $report_count sanitizer reports; build $(elapsed "$built"), run $(elapsed $((SECONDS - t0 - built)))")
  return "$rc"
}

run_tsan() {
  local dir="${TSAN_BUILD:-$root/build-tsan}" t0=$SECONDS
  # Criterion cannot run under TSan (tests/ring/ring_stress.h), so these are standalone drivers,
  # built only in a -Db_sanitize=thread directory.
  local drivers=(tests/ring/test-ring-tsan tests/store/test-store-tsan tests/categorize/test-categorize-tsan)
  setup "$dir" -Db_sanitize=thread -Db_lundef=false -Doptimization=1 -Ddebug=false -Dcpp_args=-g1 ||
    { summaries+=("sanitize tsan: FAILED (meson setup)"); return 1; }
  if ! ninja -C "$dir" -j "$jobs" "${drivers[@]}"; then
    summaries+=("sanitize tsan: FAILED (build)")
    return 1
  fi
  local built=$((SECONDS - t0)) out="$dir/sanitizer-reports" rc=0 passed=0 d
  rm -rf "$out" && mkdir -p "$out"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$here/tsan.supp:log_path=$out/tsan:log_exe_name=1"
  for d in "${drivers[@]}"; do
    echo "sanitize tsan: ${d##*/}"
    if "$dir/$d"; then passed=$((passed + 1)); else rc=1; echo "sanitize tsan: ${d##*/} FAILED" >&2; fi
  done
  unset TSAN_OPTIONS
  local report_count=0
  reports "$out" || rc=1
  summaries+=("sanitize tsan: $([ "$rc" -eq 0 ] && echo ok || echo FAILED): $passed of ${#drivers[@]} drivers passed; $report_count sanitizer reports; build $(elapsed "$built"), run $(elapsed $((SECONDS - t0 - built)))")
  return "$rc"
}

main "$@"
