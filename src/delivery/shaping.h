// shaping.h: per-destination limits shared by every loop (connection slots, GCRA rates) and failure streaks.
// Untrusted input: none (limits from the validated configuration, times from the loop's clock).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::delivery {

// The generic cell rate algorithm: a token bucket kept as one number, the theoretical
// arrival time of the next event. `rate` events per second with a burst of `burst`
// events; rate 0 means unlimited. Times are milliseconds on any monotonic clock. Safe
// to share between threads: loops delivering to one site take from one bucket with a
// compare-and-swap, so no lock is held on the delivery path.
class rate_limiter {
 public:
  rate_limiter() = default;
  explicit rate_limiter(double rate, double burst = 1.0) { configure(rate, burst); }
  void configure(double rate, double burst = 1.0);
  // Milliseconds until one more event conforms; 0 = now.
  int64_t wait_ms(int64_t now_ms) const;
  // Takes one event at now_ms if it conforms now; false (nothing taken) otherwise.
  bool try_take(int64_t now_ms);
  bool unlimited() const { return interval_us_.load(std::memory_order_relaxed) == 0; }

 private:
  std::atomic<int64_t> interval_us_{0};   // 1 / rate
  std::atomic<int64_t> tolerance_us_{0};  // (burst - 1) intervals
  std::atomic<int64_t> tat_us_{0};        // theoretical arrival time of the next conforming event
};

// A counted limit shared by every loop: connections open to a site, or to anywhere.
class slots {
 public:
  // Takes a slot if fewer than `limit` are taken.
  bool try_take(uint32_t limit) {
    uint32_t v = taken_.load(std::memory_order_relaxed);
    while (v < limit)
      if (taken_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) return true;
    return false;
  }
  void give_back() { taken_.fetch_sub(1, std::memory_order_acq_rel); }
  uint32_t taken() const { return taken_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> taken_{0};
};

// What every loop delivering to one site shares: its connection count and its rate
// buckets, so the site's limits hold for the daemon, not per loop, whichever loops own
// the site's next hops.
struct shared_site {
  slots connections;
  rate_limiter connect_rate, message_rate;
};

// The daemon's sites by key, and its total of outbound connections. Owned by main and
// outliving every worker. find() takes a mutex, once per site per loop (the loop keeps
// the pointer); nothing else locks.
class site_registry {
 public:
  std::shared_ptr<shared_site> find(const std::string& key);
  slots& connections() { return all_connections_; }
  // Which site each next hop rolls up into (hop key -> site key), for the per-site queue
  // metrics: set by the loop that owns the hop when it binds it, dropped when it forgets it.
  void bind_hop(const std::string& hop_key, const std::string& site_key);
  void unbind_hop(const std::string& hop_key);
  std::unordered_map<std::string, std::string> hop_sites();

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<shared_site>> sites_;
  std::unordered_map<std::string, std::string> hop_sites_;
  slots all_connections_;
};

// RFC 5321 4.5.4.1 asks a client to remember unreachable destinations rather than retry
// them message by message: `threshold` connection failures in a row suspend the
// destination for `period_ms`; one connection that reaches a usable session clears it.
// Per loop: each loop learns of a dead site from its own connections.
class failure_streak {
 public:
  void configure(uint32_t threshold, int64_t period_ms) {
    threshold_ = threshold;
    period_ms_ = period_ms;
  }
  // True when this failure starts a suspension: the threshold's failure in a row, or the
  // first one after a suspension has ended (until a success clears the streak).
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

// Metrics: what one attempt did, counted once per message for each kind of outcome it had,
// under its send connector ("local" for mailboxes) and site (the site key without its
// connector prefix, or the next hop when it has no site).
struct outcome_counts {
  bool delivered = false, deferred = false, failed = false, bounced = false, expired = false;
};
void count_outcome(std::string_view connector, std::string_view site, const outcome_counts& c);

}  // namespace sluice::delivery
