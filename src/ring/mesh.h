// mesh.h: one SPSC ring per producer x consumer pair of worker loops, for cross-loop handoff.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "ring/spsc_ring.h"

namespace sluice::ring {

// n x n rings; ring(from, to) is pushed only by loop `from` and popped only by loop `to`,
// which is what makes each one single-producer/single-consumer and the whole handoff
// lock-free: no two threads ever push into, or pop from, the same ring. The diagonal
// (from == to) is used too, so a loop handing work to itself follows the same path and
// keeps the same order. The mesh must outlive every loop that uses it.
template <typename T, std::size_t Capacity>
class ring_mesh {
 public:
  using ring_type = spsc_ring<T, Capacity>;

  explicit ring_mesh(unsigned loops) : loops_(loops == 0 ? 1 : loops) {
    // One allocation per ring: each is cache-line aligned internally, and separate
    // allocations keep one pair's slots from sharing pages with another's hot indices.
    rings_.reserve(std::size_t{loops_} * loops_);
    for (std::size_t i = 0; i < std::size_t{loops_} * loops_; ++i)
      rings_.push_back(std::make_unique<ring_type>());
  }
  ring_mesh(const ring_mesh&) = delete;
  ring_mesh& operator=(const ring_mesh&) = delete;

  unsigned loops() const { return loops_; }
  ring_type& ring(unsigned from, unsigned to) { return *rings_[std::size_t{from} * loops_ + to]; }

 private:
  unsigned loops_;
  std::vector<std::unique_ptr<ring_type>> rings_;
};

}  // namespace sluice::ring
