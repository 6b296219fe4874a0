// shaping_test.cc: the GCRA rate limiter and the failure streak that suspends a destination.
#include <criterion/criterion.h>

#include <atomic>
#include <thread>
#include <vector>

#include "delivery/shaping.h"

using sluice::delivery::failure_streak;
using sluice::delivery::rate_limiter;
using sluice::delivery::site_registry;
using sluice::delivery::slots;

Test(rate_limiter, zero_rate_is_unlimited) {
  rate_limiter r(0);
  cr_assert(r.unlimited());
  for (int i = 0; i < 1000; ++i) cr_assert(r.try_take(5));
}

Test(rate_limiter, spaces_events_at_the_rate) {
  rate_limiter r(10);  // one per 100 ms
  cr_assert(r.try_take(1000));
  cr_assert_eq(r.wait_ms(1000), 100);
  cr_assert_not(r.try_take(1000));
  cr_assert_eq(r.wait_ms(1050), 50);
  cr_assert(r.try_take(1100));
  cr_assert_eq(r.wait_ms(1150), 50);
}

Test(rate_limiter, a_burst_allows_that_many_at_once_then_the_rate) {
  rate_limiter r(2, 3);  // 500 ms apart, three at once
  int allowed = 0;
  while (allowed < 10 && r.try_take(0)) ++allowed;
  cr_assert_eq(allowed, 3);
  cr_assert_eq(r.wait_ms(0), 500);
  // Over ten seconds, the long-run rate holds: 3 + 2 per second.
  int later = 0;
  for (int64_t t = 0; t <= 10'000; t += 10)
    if (r.try_take(t)) ++later;
  cr_assert_eq(later, 20);
}

Test(rate_limiter, idle_time_does_not_bank_more_than_the_burst) {
  rate_limiter r(1, 2);
  cr_assert(r.try_take(0));
  int allowed = 0;
  while (allowed < 10 && r.try_take(60'000)) ++allowed;
  cr_assert_eq(allowed, 2);
}

Test(failure_streak, suspends_after_the_threshold_in_a_row) {
  failure_streak s;
  s.configure(3, 1000);
  cr_assert_not(s.failed(0));
  cr_assert_not(s.failed(10));
  cr_assert(s.failed(20));
  cr_assert(s.suspended(500));
  cr_assert_eq(s.suspended_until_ms(), 1020);
  cr_assert_not(s.suspended(1020));
}

Test(failure_streak, a_success_clears_the_streak) {
  failure_streak s;
  s.configure(2, 1000);
  cr_assert_not(s.failed(0));
  s.succeeded();
  cr_assert_not(s.failed(1));
  cr_assert(s.failed(2));
}

Test(failure_streak, one_failure_after_a_suspension_suspends_again) {
  failure_streak s;
  s.configure(3, 1000);
  s.failed(0);
  s.failed(10);
  cr_assert(s.failed(20));
  cr_assert_not(s.failed(30), "during the suspension nothing starts another");
  cr_assert_eq(s.suspended_until_ms(), 1020);
  cr_assert(s.failed(1500), "the probe after it failed: suspended again at once");
  cr_assert_eq(s.suspended_until_ms(), 2500);
  s.succeeded();
  cr_assert_not(s.failed(3000));
  cr_assert_not(s.failed(3010));
  cr_assert(s.failed(3020), "after a success the whole threshold again");
}

Test(failure_streak, threshold_zero_never_suspends) {
  failure_streak s;
  s.configure(0, 1000);
  for (int i = 0; i < 100; ++i) cr_assert_not(s.failed(i));
  cr_assert_not(s.suspended(50));
}

Test(slots, hold_a_limit_across_threads) {
  slots s;
  std::atomic<int> got{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (s.try_take(10)) ++got;
    });
  for (auto& t : threads) t.join();
  cr_assert_eq(got.load(), 10);
  cr_assert_eq(s.taken(), 10u);
  s.give_back();
  cr_assert(s.try_take(10));
  cr_assert_not(s.try_take(10));
}

Test(rate_limiter, one_bucket_shared_by_threads_admits_the_burst_once) {
  rate_limiter r(1, 50);  // fifty at once, then one a second
  std::atomic<int> got{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i)
        if (r.try_take(0)) ++got;
    });
  for (auto& t : threads) t.join();
  cr_assert_eq(got.load(), 50);
}

Test(site_registry, one_entry_per_key) {
  site_registry reg;
  auto a = reg.find("Internet|mx:a.example");
  auto b = reg.find("Internet|mx:a.example");
  auto c = reg.find("Internet|mx:b.example");
  cr_assert_eq(a.get(), b.get());
  cr_assert_neq(a.get(), c.get());
}
