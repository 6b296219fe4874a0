// spsc_ring_tsan.cc: runs the ring's and the ring mesh's concurrent scenarios under ThreadSanitizer (no Criterion).
// A data race makes TSan report and exit non-zero; a lost or reordered item fails here.
#include <cstdio>

#include "mesh_stress.h"
#include "ring_stress.h"

int main() {
  int failures = 0;
  for (bool batched : {false, true}) {
    uint64_t bad = ring_stress::run(300000, batched);
    std::printf("spsc_ring %s: %s\n", batched ? "batched" : "single", bad == 0 ? "ok" : "FAILED");
    if (bad != 0) ++failures;
  }
  // Three loops, each pushing to and popping from every other (and itself) at once:
  // the categorizer's id and item hand-off pattern.
  uint64_t bad = mesh_stress::run(3, 50000);
  std::printf("ring mesh 3x3: %s\n", bad == 0 ? "ok" : "FAILED");
  if (bad != 0) ++failures;
  return failures == 0 ? 0 : 1;
}
