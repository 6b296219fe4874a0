// mesh_stress.h: several producer threads feeding one consumer through a ring mesh, checked per pair.
// Shared by the Criterion tests and the ThreadSanitizer driver (Criterion cannot run under TSan).
#pragma once
#include <cstdint>
#include <thread>
#include <vector>

#include "ring/mesh.h"

namespace mesh_stress {

// `loops` threads each push `per_pair` numbered values to every loop (including itself)
// and pop what the others sent it, interleaving pushes and pops as worker loops do.
// Every value carries its sender and sequence number; returns how many arrived out of
// order or not at all (0 = no loss, no duplicate, no reorder within any pair).
inline uint64_t run(unsigned loops, uint64_t per_pair) {
  sluice::ring::ring_mesh<uint64_t, 256> mesh(loops);
  std::vector<uint64_t> bad(loops, 0);
  std::vector<std::thread> threads;
  for (unsigned self = 0; self < loops; ++self)
    threads.emplace_back([&, self] {
      std::vector<uint64_t> next_out(loops, 0), expect_in(loops, 0);
      uint64_t received = 0;
      const uint64_t want = per_pair * loops;
      uint64_t buf[64];
      while (received < want) {
        bool idle = true;
        for (unsigned to = 0; to < loops; ++to) {
          uint64_t batch[16];
          std::size_t n = 0;
          while (n < 16 && next_out[to] + n < per_pair) {
            batch[n] = (uint64_t{self} << 48) | (next_out[to] + n);
            ++n;
          }
          std::size_t pushed = n ? mesh.ring(self, to).push_batch(batch, n) : 0;
          next_out[to] += pushed;
          idle &= pushed == 0;
        }
        for (unsigned from = 0; from < loops; ++from) {
          std::size_t n = mesh.ring(from, self).pop_batch(buf, 64);
          idle &= n == 0;
          for (std::size_t i = 0; i < n; ++i) {
            const unsigned sender = static_cast<unsigned>(buf[i] >> 48);
            const uint64_t seq = buf[i] & ((uint64_t{1} << 48) - 1);
            if (sender != from || seq != expect_in[from]) ++bad[self];
            expect_in[from] = seq + 1;
            ++received;
          }
        }
        if (idle) std::this_thread::yield();
      }
      // Keep pushing what is left for the others (they may still be waiting on us).
      for (bool more = true; more;) {
        more = false;
        for (unsigned to = 0; to < loops; ++to)
          while (next_out[to] < per_pair) {
            uint64_t v = (uint64_t{self} << 48) | next_out[to];
            if (!mesh.ring(self, to).push(v)) {
              more = true;
              break;
            }
            ++next_out[to];
          }
        if (more) std::this_thread::yield();
      }
    });
  for (auto& t : threads) t.join();
  uint64_t total = 0;
  for (uint64_t b : bad) total += b;
  for (unsigned from = 0; from < loops; ++from)
    for (unsigned to = 0; to < loops; ++to) {
      uint64_t extra;
      if (mesh.ring(from, to).pop(extra)) ++total;
    }
  return total;
}

}  // namespace mesh_stress
