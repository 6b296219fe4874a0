// categorize.cc: route, bifurcate and describe one message for the categorize transaction.
// Untrusted input: recipient addresses from stored envelopes; header blocks of stored bodies.
#include "categorize/categorize.h"

#include "route/hop_key.h"
#include "store/schema.h"

namespace sluice::categorize {

// The configuration is checked against route's limit (config::load); the store enforces
// its own. A route limit above the store's would let a checked configuration produce keys
// the store refuses, which is exactly the failure the check exists to prevent.
static_assert(route::max_hop_key_size <= store::schema::max_hop_key_size);

namespace {

std::string lower_domain_of(std::string_view address) {
  auto at = address.rfind('@');
  std::string_view d = at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  std::string out(d);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The hop key a route_via action forces, or "" when the connector cannot be used.
std::string forced_hop_key(const route::table& routes, std::string_view connector, std::string_view address) {
  for (const auto& c : routes.send_connectors()) {
    if (c.name != connector || !c.enabled) continue;
    if (c.routing == route::routing_method::smart_host) return std::string(route::smart_host_hop_prefix) + c.name;
    std::string domain = lower_domain_of(address);
    // Longer than route_recipient accepts: the key could exceed what the store holds.
    if (domain.empty() || domain.size() > route::max_hop_domain_size) return {};
    return std::string(route::dns_hop_prefix) + c.name + ":" + domain;
  }
  return {};
}

}  // namespace

void begin_request(store::categorize_request& r, base::queue_id id, int64_t received_at_ms) {
  r.id = id;
  r.received_at_ms = received_at_ms;
  r.result = store::categorize_status::pending;
  r.error.clear();
  r.new_record.clear();
  r.new_body.reset();
  r.recipient_delta = 0;
}

void message_router::categorize(const route::table& routes, const rules::rule_set* rules, std::string_view headers,
                                base::queue_id id, const smtp::envelope& env, const store::message_metadata& meta,
                                store::categorize_request& out) {
  begin_request(out, id, meta.received_at_ms);
  outcome_.clear();
  envelope_changed_ = false;

  const smtp::envelope* effective = &env;
  if (rules && !rules->empty()) {
    views_.clear();
    for (const auto& r : env.recipients) views_.push_back(r.address);
    rules::message_view view{env.mail_from, views_, headers, meta.body_size, meta.connector};
    if (rules->evaluate(view, outcome_)) {
      if (outcome_.reject) {
        // Rejected by policy: nothing is routed, every recipient gets the rule's DSN.
        out.items.clear();
        out.failed.resize(env.recipients.size());
        for (uint32_t i = 0; i < env.recipients.size(); ++i)
          out.failed[i] = {i, std::string(outcome_.reject->status), std::string(outcome_.reject->text)};
        return;
      }
      if (!outcome_.redirects.empty() || !outcome_.bcc.empty()) {
        changed_ = env;
        for (const auto& r : outcome_.redirects)
          if (r.index < changed_.recipients.size()) changed_.recipients[r.index].address = std::string(r.value);
        for (std::string_view b : outcome_.bcc) changed_.recipients.push_back({std::string(b), 0, ""});
        effective = &changed_;
        envelope_changed_ = true;
        out.recipient_delta = static_cast<int64_t>(changed_.recipients.size()) -
                              static_cast<int64_t>(env.recipients.size());
        out.new_record = store::encode_record(changed_, meta);
      }
    }
  }

  const std::size_t n = effective->recipients.size();
  decisions_.resize(n);
  // The receive connector's own limit was enforced at DATA; the limits that matter
  // now are the organisation's and the send connector's.
  for (std::size_t i = 0; i < n; ++i) {
    if (!outcome_.routes.empty() && !outcome_.route_for(i).empty()) {
      // Routed by a rule: kept out of the table's grouping (added below by key).
      decisions_[i] = route::decision{};
      decisions_[i].result = route::outcome::no_route;
      continue;
    }
    decisions_[i] = routes.route_recipient(effective->recipients[i].address, meta.body_size, 0);
  }
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
  out.failed.clear();
  for (const uint32_t r : grouping_.failed) {
    std::string_view forced = outcome_.routes.empty() ? std::string_view{} : outcome_.route_for(r);
    if (!forced.empty()) {
      std::string key = forced_hop_key(routes, forced, effective->recipients[r].address);
      if (!key.empty()) {
        store::delivery_item_spec* item = nullptr;
        for (auto& it : out.items)
          if (it.hop_key == key) item = &it;
        if (!item) {
          out.items.push_back({std::move(key), {}, 0});
          item = &out.items.back();
        }
        item->recipients.push_back(r);
        continue;
      }
    }
    store::report_entry fr;
    fr.recipient = r;
    fr.status = route::enhanced_status(decisions_[r].result);
    fr.reason = forced.empty() ? std::string(route::reason(decisions_[r].result))
                               : "send connector " + std::string(forced) + " named by a transport rule is not available";
    out.failed.push_back(std::move(fr));
  }
}

void message_router::finish_with_body(std::string body, const smtp::envelope& env,
                                      const store::message_metadata& meta, std::size_t chunk_size,
                                      store::categorize_request& out) {
  rules::apply_header_edits(body, outcome_);
  store::message_metadata m = meta;
  m.body_size = body.size();
  m.body_chunks = static_cast<uint32_t>(chunk_size == 0 ? 0 : (body.size() + chunk_size - 1) / chunk_size);
  // The record is rewritten whenever the body is: it carries the body's size.
  out.new_record = store::encode_record(envelope_changed_ ? changed_ : env, m);
  out.new_body = std::move(body);
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

}  // namespace sluice::categorize
