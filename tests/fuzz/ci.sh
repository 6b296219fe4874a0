#!/usr/bin/env bash
# ci.sh: the short fuzz run of `make test`: builds every libFuzzer driver and runs each from its seeds for FUZZ_SECONDS.
# Untrusted input: none (the seeds are ours; the drivers' inputs are the fuzzer's own).
# Skipped, with a note, where clang++ or its libFuzzer runtime is missing (third_party/packages.txt
# installs clang-14 and libclang-rt-14-dev, so a machine set up by `make deps` has both).
# Usage: tests/fuzz/ci.sh   (FUZZ_SECONDS, default 10 per target, 13 targets two at a time: about two minutes on two idle cores)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cxx="${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++ || true)}"
if [ -z "$cxx" ]; then
  echo "fuzz: no clang++: short fuzz run skipped (apt-get install clang-14 libclang-rt-14-dev)"
  exit 0
fi
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
  >"$probe/probe.cc"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cc" -o "$probe/probe" 2>/dev/null; then
  echo "fuzz: $cxx cannot link libFuzzer: short fuzz run skipped (apt-get install libclang-rt-14-dev)"
  exit 0
fi
secs="${FUZZ_SECONDS:-10}"
start=$SECONDS
# Both cores build and run the drivers (the suite has not started yet): two drivers at a time.
# A fixed seed: each CI run walks the same mutations from the seeds, so a red CI is a
# finding that reproduces, not a draw; `make fuzz` explores with fresh seeds.
if ! CXX_FUZZ="$cxx" FUZZ_BUILD_JOBS=2 FUZZ_RUN_JOBS=2 FUZZ_ARGS="${FUZZ_ARGS:--seed=1}" bash "$here/run.sh" "$secs"; then
  echo "fuzz: a driver did not build, or found a problem (see above and the log it names)"
  exit 1
fi
echo "fuzz: every target ran ${secs}s without a finding ($((SECONDS - start))s in all)"
