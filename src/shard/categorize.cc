// categorize.cc: route, bifurcate and describe one message for the categorize transaction.
// Untrusted input: recipient addresses from stored envelopes.
#include "shard/categorize.h"

namespace sluice::shard {

void message_router::categorize(const route::table& routes, base::queue_id id, const smtp::envelope& env,
                                const store::message_metadata& meta, store::categorize_request& out) {
  out.id = id;
  out.received_at_ms = meta.received_at_ms;
  out.result = store::categorize_status::pending;
  out.error.clear();
  const std::size_t n = env.recipients.size();
  decisions_.resize(n);
  // The receive connector's own limit was enforced at DATA; the limits that matter
  // now are the organisation's and the send connector's.
  for (std::size_t i = 0; i < n; ++i)
    decisions_[i] = routes.route_recipient(env.recipients[i].address, meta.body_size, 0);
  route::group_by_next_hop(decisions_, grouping_);

  // resize keeps the surviving items' vectors and strings, so a warm request reuses them.
  out.items.resize(grouping_.groups.size());
  for (std::size_t g = 0; g < grouping_.groups.size(); ++g) {
    const route::hop_group& grp = grouping_.groups[g];
    store::delivery_item_spec& item = out.items[g];
    item.hop_key = routes.hop_key(grp.hop);
    auto rcpts = grouping_.recipients(grp);
    item.recipients.assign(rcpts.begin(), rcpts.end());
    item.hop_id = 0;
  }
  out.failed.resize(grouping_.failed.size());
  for (std::size_t f = 0; f < grouping_.failed.size(); ++f) {
    const uint32_t r = grouping_.failed[f];
    store::failed_recipient& fr = out.failed[f];
    fr.recipient = r;
    fr.status = route::enhanced_status(decisions_[r].result);
    fr.reason = route::reason(decisions_[r].result);
  }
}

unsigned owner_of(std::string_view hop_key, unsigned loops) noexcept {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : hop_key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return loops <= 1 ? 0 : static_cast<unsigned>(h % loops);
}

unsigned shard_of(base::queue_id id, unsigned loops) noexcept {
  // The low byte of an id is the issuing worker and the rest a timestamp: multiply
  // so both spread over the shards instead of pinning a worker's ids to one shard.
  const uint64_t h = id.value * 0x9E3779B97F4A7C15ull;
  return loops <= 1 ? 0 : static_cast<unsigned>((h >> 32) % loops);
}

}  // namespace sluice::shard
