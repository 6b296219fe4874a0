// in_flight_budget.h: the daemon-wide limit on message bytes held in memory during DATA/BDAT, shared by all worker loops.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sluice::smtpd {

// One per daemon, owned by main and outliving every worker loop. Any thread may take and
// give back bytes; it is an atomic counter, so taking costs no lock. The limit may change
// on reload: bytes already held stay held, new takes see the new limit.
class in_flight_budget {
 public:
  explicit in_flight_budget(uint64_t limit) : limit_(limit) {}
  in_flight_budget(const in_flight_budget&) = delete;
  in_flight_budget& operator=(const in_flight_budget&) = delete;

  // All or nothing: false leaves the counter as it was.
  bool try_take(uint64_t bytes) {
    const uint64_t before = used_.fetch_add(bytes, std::memory_order_relaxed);
    if (before + bytes <= limit_.load(std::memory_order_relaxed)) return true;
    used_.fetch_sub(bytes, std::memory_order_relaxed);
    return false;
  }
  void give_back(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }
  void set_limit(uint64_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  uint64_t in_use() const { return used_.load(std::memory_order_relaxed); }
  uint64_t limit() const { return limit_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> limit_;
};

// One session's share of the budget (loop thread only). Bytes are taken in granules so
// that the shared counter is touched once per 64 KiB, not once per line of DATA; the
// granule held but unused by each session counts against the budget, which errs on the
// safe side. The destructor gives everything back, so a session that ends in any way
// (QUIT, timeout, reset, destroyed with a refused message) cannot leak its share.
class budget_claim {
 public:
  static constexpr uint64_t granule = 64 * 1024;

  explicit budget_claim(in_flight_budget* budget) : budget_(budget) {}
  ~budget_claim() { release(); }
  budget_claim(const budget_claim&) = delete;
  budget_claim& operator=(const budget_claim&) = delete;

  // Accounts `bytes` more; false when the budget cannot cover them (nothing is taken).
  // Without a budget (unit tests, tools) every request succeeds.
  bool grow(uint64_t bytes) {
    if (budget_ == nullptr || used_ + bytes <= claimed_) {
      used_ += bytes;
      return true;
    }
    const uint64_t missing = used_ + bytes - claimed_;
    // A whole granule if it fits, else just what is missing: the last bytes under the
    // limit are still usable by the message that needs them.
    const uint64_t take = std::max(missing, granule);
    if (!budget_->try_take(take)) {
      if (take == missing || !budget_->try_take(missing)) return false;
      claimed_ += missing;
    } else {
      claimed_ += take;
    }
    used_ += bytes;
    return true;
  }
  // Gives back everything this session holds (its message buffer has been freed).
  void release() {
    if (budget_ != nullptr && claimed_ != 0) budget_->give_back(claimed_);
    claimed_ = 0;
    used_ = 0;
  }
  uint64_t held() const { return claimed_; }

 private:
  in_flight_budget* budget_;
  uint64_t claimed_ = 0;  // taken from the budget
  uint64_t used_ = 0;     // of which the message buffer accounts for this much
};

}  // namespace sluice::smtpd
