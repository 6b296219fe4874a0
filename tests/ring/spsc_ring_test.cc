// spsc_ring_test.cc: the SPSC ring loses and reorders nothing under concurrency; full/empty edges.
#include <criterion/criterion.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ring_stress.h"
#include "ring/spsc_ring.h"

using sluice::ring::spsc_ring;

Test(ring, empty_ring_pops_nothing) {
  auto ring = std::make_unique<spsc_ring<int, 8>>();
  int out = -1;
  cr_assert_not(ring->pop(out));
  cr_assert_eq(out, -1);
  int batch[4];
  cr_assert_eq(ring->pop_batch(batch, 4), 0u);
  cr_assert(ring->empty_approx());
}

Test(ring, full_ring_rejects_push_until_pop) {
  auto ring = std::make_unique<spsc_ring<int, 8>>();
  for (int i = 0; i < 8; ++i) cr_assert(ring->push(i), "push %d must fit", i);
  cr_assert_not(ring->push(99));
  cr_assert_eq(ring->size_approx(), 8u);
  int out = -1;
  cr_assert(ring->pop(out));
  cr_assert_eq(out, 0);
  cr_assert(ring->push(8));
  cr_assert_not(ring->push(100));
  for (int i = 1; i <= 8; ++i) {
    cr_assert(ring->pop(out));
    cr_assert_eq(out, i);
  }
  cr_assert_not(ring->pop(out));
}

Test(ring, batch_push_takes_only_what_fits) {
  auto ring = std::make_unique<spsc_ring<int, 4>>();
  int items[6] = {10, 11, 12, 13, 14, 15};
  cr_assert_eq(ring->push_batch(items, 6), 4u);
  cr_assert_eq(ring->push_batch(items + 4, 2), 0u);
  int out[8] = {};
  cr_assert_eq(ring->pop_batch(out, 3), 3u);
  cr_assert_eq(out[0], 10);
  cr_assert_eq(out[2], 12);
  cr_assert_eq(ring->push_batch(items + 4, 2), 2u);
  cr_assert_eq(ring->pop_batch(out, 8), 3u);
  cr_assert_eq(out[0], 13);
  cr_assert_eq(out[1], 14);
  cr_assert_eq(out[2], 15);
  cr_assert_eq(ring->pop_batch(out, 8), 0u);
}

Test(ring, wraps_around_many_times) {
  auto ring = std::make_unique<spsc_ring<uint32_t, 4>>();
  uint32_t expect = 0;
  for (uint32_t i = 0; i < 10000; ++i) {
    cr_assert(ring->push(i));
    if (i % 3 == 2) {
      uint32_t out;
      while (ring->pop(out)) cr_assert_eq(out, expect++);
    }
  }
  uint32_t out;
  while (ring->pop(out)) cr_assert_eq(out, expect++);
  cr_assert_eq(expect, 10000u);
}

Test(ring, moves_owning_elements) {
  auto ring = std::make_unique<spsc_ring<std::unique_ptr<std::string>, 2>>();
  cr_assert(ring->push(std::make_unique<std::string>("a")));
  auto b = std::make_unique<std::string>("b");
  cr_assert(ring->push(std::move(b)));
  auto c = std::make_unique<std::string>("c");
  cr_assert_not(ring->push(std::move(c)));
  cr_assert(c != nullptr, "a rejected element stays with the caller");
  std::unique_ptr<std::string> out;
  cr_assert(ring->pop(out));
  cr_assert(*out == "a");
  cr_assert(ring->pop(out));
  cr_assert(*out == "b");
}

namespace {

void run_concurrent(uint64_t total, bool batched) {
  uint64_t mismatches = ring_stress::run(total, batched);
  cr_assert_eq(mismatches, 0u, "items lost, duplicated or reordered");
}

constexpr uint64_t concurrent_items = 5000000;

}  // namespace

Test(ring, concurrent_single_items_in_order, .timeout = 120) {
  run_concurrent(concurrent_items, false);
}

Test(ring, concurrent_batches_in_order, .timeout = 120) {
  run_concurrent(concurrent_items, true);
}
