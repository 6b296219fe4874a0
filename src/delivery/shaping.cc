// shaping.cc: GCRA rate limits and failure streaks for delivery destinations.
#include "delivery/shaping.h"

#include <algorithm>

namespace sluice::delivery {

void rate_limiter::configure(double rate, double burst) {
  if (rate <= 0) {
    interval_us_ = tolerance_us_ = 0;
    return;
  }
  interval_us_ = std::max<int64_t>(1, static_cast<int64_t>(1e6 / rate));
  tolerance_us_ = static_cast<int64_t>(std::max(0.0, burst - 1.0) * static_cast<double>(interval_us_));
}

int64_t rate_limiter::wait_ms(int64_t now_ms) const {
  if (interval_us_ == 0) return 0;
  const int64_t now_us = now_ms * 1000;
  const int64_t early_us = tat_us_ - tolerance_us_ - now_us;
  return early_us <= 0 ? 0 : (early_us + 999) / 1000;
}

void rate_limiter::take(int64_t now_ms) {
  if (interval_us_ == 0) return;
  tat_us_ = std::max(tat_us_, now_ms * 1000) + interval_us_;
}

bool failure_streak::failed(int64_t now_ms) {
  ++in_row_;
  if (threshold_ == 0 || in_row_ < threshold_ || suspended(now_ms)) return false;
  suspended_until_ms_ = now_ms + period_ms_;
  in_row_ = 0;
  return true;
}

}  // namespace sluice::delivery
