// categorize.h: one message's recipients routed, grouped by next hop and turned into a categorize request.
// Untrusted input: recipient addresses from stored envelopes (any bytes; route treats them as data).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/queue_id.h"
#include "route/route.h"
#include "smtp/envelope.h"
#include "store/store.h"

namespace sluice::shard {

// The categorizer's CPU work, without loops or the store: route every recipient with
// the table, group by next hop (route::group_by_next_hop) and fill the request with one
// item per hop (recipient indices, input order) and the undeliverable recipients with
// their DSN status. One per shard: it keeps its scratch vectors warm, so a message costs
// no allocation beyond the request's own strings.
class message_router {
 public:
  // `out` is overwritten (its vectors keep their capacity). The table and the envelope
  // are only read during the call.
  void categorize(const route::table& routes, base::queue_id id, const smtp::envelope& env,
                  const store::message_metadata& meta, store::categorize_request& out);

 private:
  std::vector<route::decision> decisions_;
  route::grouping grouping_;
};

// Which loop owns a next hop: a stable function of the hop key text (FNV-1a), so the
// owner is the same after a restart, when only the stored key is known.
unsigned owner_of(std::string_view hop_key, unsigned loops) noexcept;
// Which loop's shard categorizes a message.
unsigned shard_of(base::queue_id id, unsigned loops) noexcept;

}  // namespace sluice::shard
