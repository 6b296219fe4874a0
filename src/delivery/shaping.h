// shaping.h: per-destination rate limits (GCRA) and the suspension of destinations that keep failing.
// Untrusted input: none (limits from the validated configuration, times from the loop's clock).
#pragma once
#include <cstdint>

namespace sluice::delivery {

// The generic cell rate algorithm: a token bucket kept as one number, the theoretical
// arrival time of the next event. `rate` events per second with a burst of `burst`
// events; rate 0 means unlimited. Times are milliseconds on any monotonic clock.
class rate_limiter {
 public:
  rate_limiter() = default;
  rate_limiter(double rate, double burst = 1.0) { configure(rate, burst); }
  void configure(double rate, double burst = 1.0);
  // Milliseconds until one more event conforms; 0 = now.
  int64_t wait_ms(int64_t now_ms) const;
  // Records one event at now_ms (call only when wait_ms() is 0).
  void take(int64_t now_ms);
  bool unlimited() const { return interval_us_ == 0; }

 private:
  int64_t interval_us_ = 0;   // 1 / rate
  int64_t tolerance_us_ = 0;  // (burst - 1) intervals
  int64_t tat_us_ = 0;        // theoretical arrival time of the next conforming event
};

// RFC 5321 4.5.4.1 asks a client to remember unreachable destinations rather than retry
// them message by message: `threshold` connection failures in a row suspend the
// destination for `period_ms`; one connection that reaches a usable session clears it.
class failure_streak {
 public:
  void configure(uint32_t threshold, int64_t period_ms) {
    threshold_ = threshold;
    period_ms_ = period_ms;
  }
  // True when this failure starts a suspension.
  bool failed(int64_t now_ms);
  void succeeded() { in_row_ = 0; }
  bool suspended(int64_t now_ms) const { return now_ms < suspended_until_ms_; }
  int64_t suspended_until_ms() const { return suspended_until_ms_; }
  uint32_t in_row() const { return in_row_; }

 private:
  uint32_t threshold_ = 5;
  int64_t period_ms_ = 300'000;
  uint32_t in_row_ = 0;
  int64_t suspended_until_ms_ = 0;
};

}  // namespace sluice::delivery
