// spsc_ring_tsan.cc: runs the ring's concurrent scenarios under ThreadSanitizer (no Criterion).
// A data race makes TSan report and exit non-zero; a lost or reordered item fails here.
#include <cstdio>

#include "ring_stress.h"

int main() {
  int failures = 0;
  for (bool batched : {false, true}) {
    uint64_t bad = ring_stress::run(300000, batched);
    std::printf("spsc_ring %s: %s\n", batched ? "batched" : "single", bad == 0 ? "ok" : "FAILED");
    if (bad != 0) ++failures;
  }
  return failures == 0 ? 0 : 1;
}
