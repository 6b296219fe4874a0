#!/usr/bin/env bash
# run.sh: `make bench`: release build, microbenchmarks, then the receive benchmark.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_RELEASE:-$root/build-release}
[ -f "$build/build.ninja" ] || meson setup "$build" "$root" --buildtype=release >/dev/null
ninja -C "$build"
ninja -C "$build" bench/categorizer_bench bench/store_bench bench/tls_bench bench/rules_bench bench/content_bench
for b in categorizer_bench store_bench tls_bench; do
  [ -x "$build/bench/$b" ] || continue
  echo "== $b"
  "$build/bench/$b" --benchmark_min_time=0.2
done
echo "== receive (smtp-source -> sluiced, durable 250)"
BUILD_RELEASE=$build bash "$root/bench/receive.sh"
