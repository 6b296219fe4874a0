// retry.h: when a temporarily failed delivery is tried again, and when a message has been queued too long.
// Untrusted input: none (policy values come from validated config; times from the caller's clock).
#pragma once
#include <cstdint>

namespace sluice::retry {

struct policy {
  int64_t first_ms = 5 * 60'000;         // delay after the first failure
  int64_t max_ms = 60 * 60'000;          // cap on the delay
  int64_t expire_ms = 5LL * 86'400'000;  // message lifetime from received_at
  double jitter = 0.2;                   // +-20% spread so a backlog does not retry in lock-step
};

// The shortest delay ever returned: a zero or negative policy must not make a hop spin.
inline constexpr int64_t min_delay_ms = 1000;

// attempts = failures so far (0 counts as 1). Exponential doubling from first_ms, capped
// at max_ms, then spread by up to +-jitter (clamped to [0, 1]) using `random` (any 64-bit
// value: the caller's rng), never below min_delay_ms. The same inputs give the same delay.
int64_t delay_ms(const policy& p, uint32_t attempts, uint64_t random) noexcept;

// True once the message has been queued for expire_ms or longer.
bool expired(const policy& p, int64_t received_at_ms, int64_t now_ms) noexcept;

// The message's expiry time, received_at + expire_ms (saturating).
int64_t expires_at_ms(const policy& p, int64_t received_at_ms) noexcept;

// When to try next: now + delay, but not later than the expiry time, so the last attempt
// happens at expiry (after which the remaining recipients fail 4.4.7). Never earlier than
// now: an already expired message is due at once, for its final attempt.
int64_t next_attempt_ms(const policy& p, uint32_t attempts, int64_t received_at_ms, int64_t now_ms,
                        uint64_t random) noexcept;

}  // namespace sluice::retry
