// connection_limits.h: per-connector and per-source-IP connection counts shared by all worker loops.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace sluice::smtpd {

// Counted with atomics so that accepting a connection on any loop takes no lock. Source
// addresses are counted in a fixed table of per-slot counters indexed by a hash of the
// address: two addresses sharing a slot share a limit (a stricter, never looser, limit),
// and with 64Ki slots that needs thousands of concurrent sources to matter.
class connection_limits {
 public:
  explicit connection_limits(size_t connectors)
      : totals_(std::make_unique<std::atomic<uint32_t>[]>(connectors)),
        per_ip_(std::make_unique<std::atomic<uint32_t>[]>(connectors * slots)),
        connectors_(connectors) {}

  // Reserves a slot for connector c and source hash h unless a limit is reached.
  bool acquire(size_t c, uint64_t source_hash, uint32_t max_total, uint32_t max_per_ip) {
    if (totals_[c].fetch_add(1, std::memory_order_relaxed) >= max_total) {
      totals_[c].fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    auto& ip = per_ip_[c * slots + (source_hash % slots)];
    if (ip.fetch_add(1, std::memory_order_relaxed) >= max_per_ip) {
      ip.fetch_sub(1, std::memory_order_relaxed);
      totals_[c].fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  void release(size_t c, uint64_t source_hash) {
    per_ip_[c * slots + (source_hash % slots)].fetch_sub(1, std::memory_order_relaxed);
    totals_[c].fetch_sub(1, std::memory_order_relaxed);
  }

  size_t connectors() const { return connectors_; }

 private:
  static constexpr size_t slots = 65536;
  std::unique_ptr<std::atomic<uint32_t>[]> totals_;
  std::unique_ptr<std::atomic<uint32_t>[]> per_ip_;
  size_t connectors_;
};

}  // namespace sluice::smtpd
