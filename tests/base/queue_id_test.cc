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
