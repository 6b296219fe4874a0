// hop_queues.cc: per-next-hop delivery queues of one loop.
#include "delivery/hop_queues.h"

namespace sluice::delivery {

void hop_queues::add(hop_item&& item) {
  queue& q = queues_[item.hop_id];
  if (q.key.empty()) {
    q.hop_id = item.hop_id;
    q.key = std::move(item.hop_key);
  }
  q.items.push_back({item.id, item.recipients, item.received_at_ms});
  q.recipients += item.recipients;
  if (q.oldest_ms == 0 || (item.received_at_ms != 0 && item.received_at_ms < q.oldest_ms))
    q.oldest_ms = item.received_at_ms;
  ++items_;
}

const hop_queues::queue* hop_queues::find(uint64_t hop_id) const {
  auto it = queues_.find(hop_id);
  return it == queues_.end() ? nullptr : &it->second;
}

}  // namespace sluice::delivery
