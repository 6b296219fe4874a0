// ring_stress.h: a producer thread and a consumer thread moving one numbered sequence through a ring.
// Shared by the Criterion tests and the ThreadSanitizer driver (Criterion cannot run under TSan:
// its inheritable arena mapping collides with TSan's shadow memory, Snaipe/Criterion#274).
#pragma once
#include <cstdint>
#include <memory>
#include <thread>

#include "ring/spsc_ring.h"

namespace ring_stress {

// Returns the number of items the consumer saw out of sequence (lost, duplicated or
// reordered) plus any item left behind; 0 means a perfect run.
inline uint64_t run(uint64_t total, bool batched) {
  auto ring = std::make_unique<sluice::ring::spsc_ring<uint64_t, 1024>>();
  std::thread producer([&] {
    uint64_t next = 0;
    uint64_t batch[37];
    while (next < total) {
      if (batched) {
        std::size_t n = 0;
        while (n < 37 && next + n < total) { batch[n] = next + n; ++n; }
        std::size_t pushed = ring->push_batch(batch, n);
        next += pushed;
        if (pushed == 0) std::this_thread::yield();
      } else if (ring->push(next)) {
        ++next;
      } else {
        std::this_thread::yield();
      }
    }
  });
  uint64_t expect = 0;
  uint64_t mismatches = 0;
  uint64_t buf[53];
  while (expect < total) {
    std::size_t n = batched ? ring->pop_batch(buf, 53) : (ring->pop(buf[0]) ? 1 : 0);
    if (n == 0) { std::this_thread::yield(); continue; }
    for (std::size_t i = 0; i < n; ++i) {
      if (buf[i] != expect) ++mismatches;
      ++expect;
    }
  }
  producer.join();
  uint64_t extra;
  if (ring->pop(extra)) ++mismatches;
  return mismatches;
}

}  // namespace ring_stress
