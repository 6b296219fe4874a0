// hop_queues.h: the next hops one worker loop owns, each with its delivery items in arrival order.
// Untrusted input: none (items come from this daemon's own categorizer or store).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "base/queue_id.h"

namespace sluice::delivery {

// A delivery item on its way to the loop that owns its next hop. Moved through the ring:
// the ring owns it while it sits in a slot, the receiving loop afterwards.
struct hop_item {
  uint64_t hop_id = 0;
  base::queue_id id;
  uint32_t recipients = 0;
  int64_t received_at_ms = 0;
  // From the stored item when recovered at start (0 for new items): the retry schedule
  // survives a restart.
  int64_t next_attempt_ms = 0;  // unix ms; 0 = as soon as possible
  uint32_t attempts = 0;
  std::string hop_key;
};

// The next hops one loop owns, each with its items in arrival order: the structure the
// delivery engine will work from. Loop thread only.
class hop_queues {
 public:
  struct queued {
    base::queue_id id;
    uint32_t recipients = 0;
    int64_t received_at_ms = 0;
  };
  struct queue {
    uint64_t hop_id = 0;
    std::string key;
    std::deque<queued> items;
    uint64_t recipients = 0;
    int64_t oldest_ms = 0;
  };

  void add(hop_item&& item);
  const queue* find(uint64_t hop_id) const;
  const std::unordered_map<uint64_t, queue>& all() const { return queues_; }
  uint64_t items() const { return items_; }

 private:
  std::unordered_map<uint64_t, queue> queues_;
  uint64_t items_ = 0;
};

}  // namespace sluice::delivery
