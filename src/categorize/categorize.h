// categorize.h: one message's recipients routed, grouped by next hop and turned into a categorize request.
// Untrusted input: recipient addresses from stored envelopes (any bytes; route treats them as data).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/queue_id.h"
#include "route/route.h"
#include "rules/rules.h"
#include "smtp/envelope.h"
#include "store/store.h"

namespace sluice::categorize {

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
                  const store::message_metadata& meta, store::categorize_request& out) {
    categorize(routes, nullptr, {}, id, env, meta, out);
  }
  // With transport rules (null or empty: none), evaluated before routing on the message
  // as received; `headers` is the body's header block (needed only when
  // rules->needs_headers()). Effects on `out`: a reject fails every recipient with the
  // rule's status and text; redirects and BCC recipients change the envelope (new_record,
  // recipient_delta, and the indices refer to the new recipient list); route_via sends a
  // recipient through the named send connector (5.4.4 if it does not exist or is
  // disabled). Header edits are left to the caller, which has to read the whole body:
  // see header_edits_pending() and finish_with_body().
  void categorize(const route::table& routes, const rules::rule_set* rules, std::string_view headers,
                  base::queue_id id, const smtp::envelope& env, const store::message_metadata& meta,
                  store::categorize_request& out);

  // The rules that fired for the last message (views into the rule set), for the log.
  const std::vector<rules::fired_rule>& fired() const { return outcome_.fired; }
  // The last message's envelope as categorized: `env` unless rules changed it.
  const smtp::envelope& effective(const smtp::envelope& env) const { return envelope_changed_ ? changed_ : env; }
  bool header_edits_pending() const { return !outcome_.header_edits.empty(); }
  // Applies the last message's header edits to its full body and completes `out` (new body
  // and the envelope record with the new size), chunked as the store does.
  void finish_with_body(std::string body, const smtp::envelope& env, const store::message_metadata& meta,
                        std::size_t chunk_size, store::categorize_request& out);

 private:
  std::vector<route::decision> decisions_;
  route::grouping grouping_;
  rules::outcome outcome_;
  std::vector<std::string_view> views_;
  smtp::envelope changed_;  // the envelope after redirects and BCC, when rules changed it
  bool envelope_changed_ = false;
};

// Makes a pooled request ready for message `id`: no result, error, rule edits or
// recipient delta left from its last use (items and failed are the caller's to fill).
void begin_request(store::categorize_request& r, base::queue_id id, int64_t received_at_ms);

// Which loop owns a next hop: a stable function of the hop key text (FNV-1a), so the
// owner is the same after a restart, when only the stored key is known.
unsigned owner_of(std::string_view hop_key, unsigned loops) noexcept;
// Which loop's shard categorizes a message.
unsigned shard_of(base::queue_id id, unsigned loops) noexcept;

}  // namespace sluice::categorize
