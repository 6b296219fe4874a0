// connection_limits.h: per-connector and per-source-IP connection counts shared by all worker loops and reloads.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice::smtpd {

// One receive connector's counts. Counted with atomics so that accepting a connection on
// any loop takes no lock. Source addresses are counted in a fixed table of per-slot
// counters indexed by a hash of the address: two addresses sharing a slot share a limit
// (a stricter, never looser, limit), and with 64Ki slots that needs thousands of
// concurrent sources to matter.
class connector_counts {
 public:
  connector_counts() : per_ip_(std::make_unique<std::atomic<uint32_t>[]>(slots)) {}

  // Reserves a slot for source hash h unless a limit is reached.
  bool acquire(uint64_t source_hash, uint32_t max_total, uint32_t max_per_ip) {
    if (total_.fetch_add(1, std::memory_order_relaxed) >= max_total) {
      total_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    auto& ip = per_ip_[source_hash % slots];
    if (ip.fetch_add(1, std::memory_order_relaxed) >= max_per_ip) {
      ip.fetch_sub(1, std::memory_order_relaxed);
      total_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void release(uint64_t source_hash) {
    per_ip_[source_hash % slots].fetch_sub(1, std::memory_order_relaxed);
    total_.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  static constexpr size_t slots = 65536;
  std::atomic<uint32_t> total_{0};
  std::unique_ptr<std::atomic<uint32_t>[]> per_ip_;
};

// The daemon's counts by connector name, one registry per daemon (main owns it; every
// generation built draws from it). A reload that keeps a connector's name keeps its
// counts, so connections still open under the old generation count against the new
// one's limits, and a flood does not start over at zero. Entries are weak: a connector's
// counts live while a generation or an open connection still holds them.
class connection_registry {
 public:
  // Main thread, while building a generation (the mutex only guards the map).
  std::shared_ptr<connector_counts> counts_for(const std::string& connector) {
    std::lock_guard lock(mutex_);
    auto& slot = by_name_[connector];
    auto counts = slot.lock();
    if (!counts) slot = counts = std::make_shared<connector_counts>();
    std::erase_if(by_name_, [](const auto& entry) { return entry.second.expired(); });
    return counts;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<connector_counts>> by_name_;
};

// One generation's view: its connectors' counts by index (parallel to the generation's
// receive connectors), each shared with every generation that has the same name.
class connection_limits {
 public:
  connection_limits(connection_registry& registry, const std::vector<std::string>& connector_names) {
    for (const auto& name : connector_names) by_connector_.push_back(registry.counts_for(name));
  }

  bool acquire(size_t c, uint64_t source_hash, uint32_t max_total, uint32_t max_per_ip) {
    return by_connector_[c]->acquire(source_hash, max_total, max_per_ip);
  }
  void release(size_t c, uint64_t source_hash) { by_connector_[c]->release(source_hash); }

  size_t connectors() const { return by_connector_.size(); }

 private:
  std::vector<std::shared_ptr<connector_counts>> by_connector_;
};

}  // namespace sluice::smtpd
