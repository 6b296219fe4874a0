// retry_test.cc: backoff doubling, cap, jitter bounds and the expiry clamp of the retry policy.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <cstdint>
#include <limits>
#include <set>

#include "retry/retry.h"

using namespace sluice;

namespace {

retry::policy no_jitter() {
  retry::policy p;
  p.jitter = 0;
  return p;
}

// splitmix64: a spread of 64-bit values without depending on std's engines.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

Test(retry, delay_doubles_from_first_ms) {
  const retry::policy p = no_jitter();
  cr_assert_eq(retry::delay_ms(p, 1, 12345), 5 * 60'000);
  cr_assert_eq(retry::delay_ms(p, 2, 12345), 10 * 60'000);
  cr_assert_eq(retry::delay_ms(p, 3, 12345), 20 * 60'000);
  cr_assert_eq(retry::delay_ms(p, 4, 12345), 40 * 60'000);
  cr_assert_eq(retry::delay_ms(p, 0, 12345), 5 * 60'000, "no failures yet counts as the first");
}

Test(retry, delay_is_capped_at_max_ms) {
  const retry::policy p = no_jitter();
  cr_assert_eq(retry::delay_ms(p, 5, 0), 60 * 60'000, "80 min capped to 60");
  cr_assert_eq(retry::delay_ms(p, 64, 0), 60 * 60'000, "no overflow past 63 doublings");
  cr_assert_eq(retry::delay_ms(p, UINT32_MAX, 0), 60 * 60'000);
  retry::policy odd = no_jitter();
  odd.first_ms = 7000;
  odd.max_ms = 50'000;
  cr_assert_eq(retry::delay_ms(odd, 3, 0), 28'000);
  cr_assert_eq(retry::delay_ms(odd, 4, 0), 50'000, "56 s capped to 50 s, not a power of two");
}

Test(retry, delay_never_below_one_second) {
  retry::policy p = no_jitter();
  p.first_ms = 0;
  p.max_ms = 0;
  cr_assert_eq(retry::delay_ms(p, 1, 0), retry::min_delay_ms);
  cr_assert_eq(retry::delay_ms(p, 10, 0), retry::min_delay_ms);
  p.first_ms = 1000;
  p.max_ms = 1000;
  p.jitter = 0.5;
  for (uint64_t i = 0; i < 1000; ++i) cr_assert_geq(retry::delay_ms(p, 1, mix(i)), retry::min_delay_ms);
}

Test(retry, jitter_stays_within_bounds_and_spreads) {
  const retry::policy p;  // 20% jitter
  for (uint32_t attempts : {1u, 3u, 9u}) {
    const int64_t base = retry::delay_ms(no_jitter(), attempts, 0);
    int64_t lo = std::numeric_limits<int64_t>::max(), hi = 0;
    std::set<int64_t> distinct;
    for (uint64_t i = 0; i < 20000; ++i) {
      const int64_t d = retry::delay_ms(p, attempts, mix(i));
      cr_assert_geq(d, base * 8 / 10, "attempt %u: %lld below -20%%", attempts, static_cast<long long>(d));
      cr_assert_leq(d, base * 12 / 10, "attempt %u: %lld above +20%%", attempts, static_cast<long long>(d));
      lo = std::min(lo, d);
      hi = std::max(hi, d);
      distinct.insert(d);
    }
    // The spread is used: values near both ends, and not a handful of buckets.
    cr_assert_lt(lo, base * 82 / 100);
    cr_assert_gt(hi, base * 118 / 100);
    cr_assert_gt(distinct.size(), 1000u);
  }
  // The extremes of the random range land on the bounds.
  const int64_t base = retry::delay_ms(no_jitter(), 1, 0);
  cr_assert_eq(retry::delay_ms(p, 1, 0), base * 8 / 10);
  cr_assert_leq(retry::delay_ms(p, 1, UINT64_MAX), base * 12 / 10);
  cr_assert_eq(retry::delay_ms(p, 1, 42), retry::delay_ms(p, 1, 42), "deterministic for one random");
}

Test(retry, expiry_from_received_at) {
  const retry::policy p;
  const int64_t received = 1'700'000'000'000;
  cr_assert_not(retry::expired(p, received, received));
  cr_assert_not(retry::expired(p, received, received + p.expire_ms - 1));
  cr_assert(retry::expired(p, received, received + p.expire_ms));
  retry::policy forever;
  forever.expire_ms = std::numeric_limits<int64_t>::max();
  cr_assert_not(retry::expired(forever, received, received + 100LL * 365 * 86'400'000),
                "a huge lifetime saturates instead of wrapping into the past");
}

Test(retry, next_attempt_is_now_plus_delay_clamped_to_expiry) {
  const retry::policy p = no_jitter();
  const int64_t received = 1'700'000'000'000;
  const int64_t now = received + 3'600'000;
  cr_assert_eq(retry::next_attempt_ms(p, 2, received, now, 0), now + 10 * 60'000);
  // Ten minutes before expiry a one-hour delay is cut to the expiry time: the last try.
  const int64_t expiry = received + p.expire_ms;
  cr_assert_eq(retry::next_attempt_ms(p, 20, received, expiry - 600'000, 0), expiry);
  cr_assert_eq(retry::next_attempt_ms(p, 20, received, expiry - 1, 0), expiry);
  // Past expiry: due at once (the caller fails the rest with 4.4.7).
  cr_assert_eq(retry::next_attempt_ms(p, 20, received, expiry + 5000, 0), expiry + 5000);
  // 55 minutes before expiry a jittered hour (48..72 min) is sometimes cut, sometimes not.
  const retry::policy jittered;
  const int64_t late = expiry - 55 * 60'000;
  int clamped = 0, before = 0;
  for (uint64_t i = 0; i < 2000; ++i) {
    const int64_t t = retry::next_attempt_ms(jittered, 20, received, late, mix(i));
    cr_assert_leq(t, expiry);
    cr_assert_geq(t, late + 48 * 60'000);
    (t == expiry ? clamped : before)++;
  }
  cr_assert_gt(clamped, 0);
  cr_assert_gt(before, 0);
}
