// limiter_test.cc: per-source AUTH failure limiting under a fake clock.
#include <criterion/criterion.h>

#include <string>

#include "auth/limiter.h"

using sluice::auth::failure_limiter;
using namespace std::chrono_literals;

namespace {

struct fake_clock {
  failure_limiter::clock::time_point t{std::chrono::hours(1000)};
  failure_limiter::clock_fn fn() { return [this] { return t; }; }
};

failure_limiter::settings three_in_a_minute() {
  failure_limiter::settings s;
  s.max_failures = 3;
  s.window = 60s;
  s.cooldown = 600s;
  return s;
}

}  // namespace

Test(auth_limiter, blocks_after_n_failures_within_the_window) {
  fake_clock clk;
  failure_limiter lim(three_in_a_minute(), clk.fn());
  cr_assert(!lim.blocked("192.0.2.1"));
  lim.record_failure("192.0.2.1");
  clk.t += 10s;
  lim.record_failure("192.0.2.1");
  cr_assert(!lim.blocked("192.0.2.1"));
  clk.t += 10s;
  lim.record_failure("192.0.2.1");
  cr_assert(lim.blocked("192.0.2.1"));
  cr_assert(!lim.blocked("192.0.2.2"), "other sources are unaffected");
  cr_assert_eq(lim.retry_after("192.0.2.1").count(), 600);
  clk.t += 599s;
  cr_assert(lim.blocked("192.0.2.1"));
  cr_assert_eq(lim.retry_after("192.0.2.1").count(), 1);
  clk.t += 1s;
  cr_assert(!lim.blocked("192.0.2.1"));
  cr_assert_eq(lim.retry_after("192.0.2.1").count(), 0);
  // The slate is clean after the cool-down: one more failure does not re-block.
  lim.record_failure("192.0.2.1");
  cr_assert(!lim.blocked("192.0.2.1"));
}

Test(auth_limiter, failures_outside_the_window_do_not_count) {
  fake_clock clk;
  failure_limiter lim(three_in_a_minute(), clk.fn());
  for (int i = 0; i < 10; ++i) {
    lim.record_failure("198.51.100.7");
    clk.t += 31s;  // at most two failures in any 60 s
    cr_assert(!lim.blocked("198.51.100.7"), "blocked at failure %d", i);
  }
}

Test(auth_limiter, success_clears_failures_but_not_a_block) {
  fake_clock clk;
  failure_limiter lim(three_in_a_minute(), clk.fn());
  lim.record_failure("a");
  lim.record_failure("a");
  lim.record_success("a");
  lim.record_failure("a");
  lim.record_failure("a");
  cr_assert(!lim.blocked("a"));
  lim.record_failure("a");
  cr_assert(lim.blocked("a"));
  lim.record_success("a");
  cr_assert(lim.blocked("a"));
  // Failures while blocked do not extend the cool-down.
  clk.t += 300s;
  lim.record_failure("a");
  clk.t += 300s;
  cr_assert(!lim.blocked("a"));
}

Test(auth_limiter, memory_is_bounded_and_blocked_sources_are_kept) {
  fake_clock clk;
  auto s = three_in_a_minute();
  s.max_sources = 4;
  failure_limiter lim(s, clk.fn());
  for (int i = 0; i < 3; ++i) lim.record_failure("attacker");
  cr_assert(lim.blocked("attacker"));
  for (int i = 0; i < 100; ++i) {
    clk.t += 1s;
    lim.record_failure("10.0.0." + std::to_string(i));
    cr_assert_leq(lim.tracked(), 4u);
  }
  cr_assert(lim.blocked("attacker"));
}

Test(auth_limiter, source_key_groups_ipv6_by_64) {
  std::string a = failure_limiter::source_key("2001:db8:1:2:aaaa::1");
  std::string b = failure_limiter::source_key("[2001:db8:1:2:ffff::2]");
  std::string c = failure_limiter::source_key("2001:db8:1:3::1");
  cr_assert_str_eq(a.c_str(), "2001:db8:1:2::/64");
  cr_assert_str_eq(b.c_str(), a.c_str());
  cr_assert_str_neq(c.c_str(), a.c_str());
  std::string v4 = failure_limiter::source_key("192.0.2.9");
  cr_assert_str_eq(v4.c_str(), "192.0.2.9");
  std::string mapped = failure_limiter::source_key("::ffff:192.0.2.9");
  cr_assert_str_eq(mapped.c_str(), "192.0.2.9");
  std::string other = failure_limiter::source_key("not-an-address");
  cr_assert_str_eq(other.c_str(), "not-an-address");
}
