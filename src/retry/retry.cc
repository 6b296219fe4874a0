// retry.cc: exponential backoff with jitter, and message expiry.
// Untrusted input: none.
#include "retry/retry.h"

#include <algorithm>
#include <limits>

namespace sluice::retry {

namespace {

constexpr int64_t max_time = std::numeric_limits<int64_t>::max();

// Times are unix ms from config and clocks; saturate so a huge expire_ms cannot wrap
// into the past and expire everything at once.
int64_t add_saturating(int64_t a, int64_t b) noexcept {
  if (b > 0 && a > max_time - b) return max_time;
  if (b < 0 && a < std::numeric_limits<int64_t>::min() - b) return std::numeric_limits<int64_t>::min();
  return a + b;
}

}  // namespace

int64_t delay_ms(const policy& p, uint32_t attempts, uint64_t random) noexcept {
  const int64_t cap = std::max(p.max_ms, min_delay_ms);
  int64_t base = std::clamp(p.first_ms, min_delay_ms, cap);
  // Doubling stops at the cap, so the loop runs at most ~63 times and never overflows.
  for (uint32_t i = 1; i < attempts && base < cap; ++i) base = base > cap / 2 ? cap : base * 2;
  const double spread = std::clamp(p.jitter, 0.0, 1.0);
  // The top 53 bits give a uniform double in [0, 1); the factor is in [1-spread, 1+spread).
  const double unit = static_cast<double>(random >> 11) * 0x1.0p-53;
  const double factor = 1.0 - spread + 2.0 * spread * unit;
  const double jittered = static_cast<double>(base) * factor;
  if (jittered >= static_cast<double>(max_time)) return max_time;
  return std::max(static_cast<int64_t>(jittered), min_delay_ms);
}

int64_t expires_at_ms(const policy& p, int64_t received_at_ms) noexcept {
  return add_saturating(received_at_ms, p.expire_ms);
}

bool expired(const policy& p, int64_t received_at_ms, int64_t now_ms) noexcept {
  return now_ms >= expires_at_ms(p, received_at_ms);
}

int64_t next_attempt_ms(const policy& p, uint32_t attempts, int64_t received_at_ms, int64_t now_ms,
                        uint64_t random) noexcept {
  const int64_t expiry = expires_at_ms(p, received_at_ms);
  if (now_ms >= expiry) return now_ms;
  return std::min(add_saturating(now_ms, delay_ms(p, attempts, random)), expiry);
}

}  // namespace sluice::retry
