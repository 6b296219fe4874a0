// queue_id_test.cc: queue ids are unique, ordered, and round-trip through text and keys.
#include <criterion/criterion.h>

#include <cstring>
#include <string>

#include "base/queue_id.h"

using sluice::base::queue_id;
using sluice::base::queue_id_generator;

Test(queue_id, strictly_increasing_within_a_worker) {
  queue_id_generator gen(3);
  queue_id prev = gen.next();
  for (int i = 0; i < 100000; ++i) {
    queue_id next = gen.next();
    cr_assert(next > prev, "ids must increase");
    cr_assert_eq(next.value & 0xff, 3u);
    prev = next;
  }
}

Test(queue_id, distinct_across_workers) {
  queue_id_generator a(1), b(2);
  for (int i = 0; i < 1000; ++i) cr_assert_neq(a.next().value, b.next().value);
}

Test(queue_id, text_round_trip) {
  queue_id id{0x0123456789ABCDEFull};
  std::string text = id.text();
  cr_assert_str_eq(text.c_str(), "0123456789ABCDEF");
  auto parsed = queue_id::parse("0123456789abcdef");
  cr_assert(parsed.has_value());
  cr_assert_eq(parsed->value, id.value);
  cr_assert(!queue_id::parse("0123").has_value());
  cr_assert(!queue_id::parse("0123456789ABCDEG").has_value());
}

Test(queue_id, key_order_is_numeric_order) {
  queue_id small{0x00000000000000FFull}, big{0x0100000000000000ull};
  auto ks = small.key(), kb = big.key();
  cr_assert(std::memcmp(ks.data(), kb.data(), 8) < 0);
  cr_assert_eq(queue_id::from_key(kb.data()).value, big.value);
}

// Criterion runs each test in a process of its own, so the floor set here stays here.
Test(queue_id, generators_made_after_a_floor_issue_above_it_whatever_the_clock_says) {
  queue_id_generator now(1);
  const queue_id present = now.next();
  // An id issued "an hour from now": the clock has since stepped back by an hour.
  const queue_id future{((present.value >> 8) + 3600ull * 1000 * 1000) << 8 | 7};
  queue_id_generator::set_floor(future);
  for (unsigned issuer : {0u, 7u, sluice::base::issuer::pickup}) {
    queue_id_generator gen(issuer);
    queue_id first = gen.next();
    cr_assert(first > future, "issuer %u issued %s, not above the floor %s", issuer, first.text().c_str(),
              future.text().c_str());
  }
}

Test(queue_id, pickup_issuer_is_no_worker_loop) {
  cr_assert_geq(sluice::base::issuer::pickup, sluice::base::issuer::max_loops,
                "the pickup must not share a receive loop's issuer byte");
  cr_assert_leq(sluice::base::issuer::pickup, 0xffu);
}
