// limiter.h: per-source AUTH failure limiting (brute-force damping), one per connector for the whole daemon.
// Untrusted input: the remote address (chosen by the client) used as the key.
#pragma once
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::auth {

// After `max_failures` failed AUTH attempts from one source within `window`, that
// source is refused for `cooldown`: the session answers further AUTH commands with
//   454 4.7.0 Too many authentication failures, try again later
// (or closes with 421 4.7.0). A success clears the source's failures.
//
// Thread-safe: one limiter per connector serves every worker loop (see limiter_registry),
// so an attacker whose connections land on N loops still gets max_failures tries, not
// N times that. A mutex, not lock-free tricks: it is taken a few times per AUTH command
// (already a threadpool password hash), never per byte, and each critical section is a
// hash lookup plus a short vector scan.
// Memory is bounded by `max_sources`; when full, expired entries are pruned, then the
// least recently active unblocked source is forgotten.
class failure_limiter {
 public:
  using clock = std::chrono::steady_clock;
  using clock_fn = std::function<clock::time_point()>;

  struct settings {
    int max_failures = 5;
    std::chrono::seconds window{300};
    std::chrono::seconds cooldown{900};
    size_t max_sources = 65536;
  };

  explicit failure_limiter(settings s, clock_fn now = &clock::now);

  // Check before running AUTH: true when the source must be refused now.
  bool blocked(std::string_view source);
  // Seconds until the source may try again (0 when not blocked).
  std::chrono::seconds retry_after(std::string_view source);
  // Record the outcome of one AUTH attempt.
  void record_failure(std::string_view source);
  void record_success(std::string_view source);

  size_t tracked() const;
  // A reload may change max_failures; what each source has counted so far is kept.
  void set_max_failures(int max_failures);

  // The key for an address: IPv4 as given, IPv6 reduced to its /64, since one
  // subscriber usually holds a whole /64 and could otherwise rotate addresses freely.
  // Input that is not an address literal is returned unchanged.
  static std::string source_key(std::string_view address);

 private:
  struct entry {
    std::vector<clock::time_point> failures;  // within the window, oldest first
    clock::time_point blocked_until{};
    clock::time_point last_seen{};
  };
  void prune(clock::time_point now);
  void drop_old(entry& e, clock::time_point now) const;

  mutable std::mutex mutex_;  // guards settings_ and sources_
  settings settings_;
  clock_fn now_;
  std::unordered_map<std::string, entry> sources_;
};

// The daemon's limiters by receive connector name (main owns one and hands it to every
// worker). A reload that keeps a connector's name keeps its limiter, so a blocked source
// stays blocked. Limiters are kept for every name configured since start: bounded by
// what the administrator writes, and forgetting them would reopen the budget.
class limiter_registry {
 public:
  // Any thread; the limiter is shared and lives as long as the registry.
  std::shared_ptr<failure_limiter> for_connector(const std::string& connector, int max_failures);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<failure_limiter>> by_name_;
};

}  // namespace sluice::auth
