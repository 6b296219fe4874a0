// table.cc: builds the routing table from accepted domains and send connectors, and routes one recipient.
// Untrusted input: recipient addresses (route_recipient); configuration (build).
#include <algorithm>

#include "route/hop_key.h"
#include "route/table_impl.h"

namespace sluice::route {

namespace detail {

bool parse_address(std::string_view in, char (&buf)[buffer_size], parsed_address& out) noexcept {
  if (in.size() >= 2 && in.front() == '<' && in.back() == '>') in = in.substr(1, in.size() - 2);
  size_t at = in.rfind('@');
  if (at == std::string_view::npos || at == 0) return false;
  std::string_view local = in.substr(0, at);
  std::string_view dom = in.substr(at + 1);
  if (!dom.empty() && dom.back() == '.') dom.remove_suffix(1);
  if (dom.empty() || dom.size() > max_domain || local.size() + 1 + dom.size() > max_address)
    return false;
  lower_copy(buf, local.data(), local.size());
  buf[local.size()] = '@';
  char* d = buf + local.size() + 1;
  const size_t n = dom.size();
  lower_copy(d, dom.data(), n);
  // Validate and find the label starts, left to right.
  uint16_t starts[max_labels];
  uint32_t count = 1;
  starts[0] = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(d[i]);
    if (c <= ' ' || c == 0x7f) return false;
    if (c == '.') {
      if (i == 0 || i == n - 1 || d[i - 1] == '.' || count == max_labels) return false;
      starts[count++] = static_cast<uint16_t>(i + 1);
    }
  }
  // Hash every suffix, right to left (see domain_hash).
  uint64_t h = hash_seed;
  size_t end = n;
  for (uint32_t k = count, j = 0; k-- > 0; ++j) {
    h = suffix_combine(h, d + starts[k], end - starts[k]);
    end = starts[k] - 1u;
    out.label_start[j] = starts[k];
    out.suffix_hash[j] = h;
  }
  out.labels = count;
  out.raw_domain = dom;
  out.local = std::string_view(buf, local.size());
  out.domain = std::string_view(d, n);
  out.address = std::string_view(buf, local.size() + 1 + n);
  out.dhash = h;
  return true;
}

std::string normalise_name(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = lower(c);
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

std::string domain_problem(std::string_view domain) {
  if (domain.empty()) return "empty domain";
  if (domain.size() > 253) return "domain longer than 253 characters";
  size_t label = 0;
  for (size_t i = 0; i <= domain.size(); ++i) {
    if (i == domain.size() || domain[i] == '.') {
      if (label == 0) return "empty label";
      if (label > 63) return "label longer than 63 characters";
      label = 0;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(domain[i]);
    if (c <= ' ' || c == 0x7f || c == '@' || c == '*' || c == ',' || c == '<' || c == '>')
      return "invalid character in domain";
    ++label;
  }
  return {};
}

}  // namespace detail

using detail::domain_hash;

bool deliverable(outcome o) noexcept {
  return o == outcome::local_delivery || o == outcome::relay_internal ||
         o == outcome::relay_external || o == outcome::remote;
}

std::string_view enhanced_status(outcome o) noexcept {
  switch (o) {
    case outcome::no_route: return "5.4.4";
    case outcome::unknown_recipient: return "5.1.1";
    case outcome::too_big: return "5.3.4";
    case outcome::bad_address: return "5.1.3";
    default: return "";
  }
}

std::string_view reason(outcome o) noexcept {
  switch (o) {
    case outcome::no_route: return "no route";
    case outcome::unknown_recipient: return "recipient unknown";
    case outcome::too_big: return "message too big for the path";
    case outcome::bad_address: return "bad recipient address syntax";
    default: return "";
  }
}

std::string_view to_string(outcome o) noexcept {
  switch (o) {
    case outcome::local_delivery: return "local_delivery";
    case outcome::relay_internal: return "relay_internal";
    case outcome::relay_external: return "relay_external";
    case outcome::remote: return "remote";
    case outcome::no_route: return "no_route";
    case outcome::unknown_recipient: return "unknown_recipient";
    case outcome::too_big: return "too_big";
    case outcome::bad_address: return "bad_address";
  }
  return "?";
}

std::string_view to_string(domain_kind k) noexcept {
  switch (k) {
    case domain_kind::authoritative: return "authoritative";
    case domain_kind::internal_relay: return "internal relay";
    case domain_kind::external_relay: return "external relay";
  }
  return "?";
}

std::string_view to_string(tls_policy t) noexcept {
  switch (t) {
    case tls_policy::none: return "none";
    case tls_policy::opportunistic: return "opportunistic";
    case tls_policy::mandatory: return "mandatory";
    case tls_policy::partner: return "partner";
  }
  return "?";
}

bool next_hop::operator==(const next_hop& o) const noexcept {
  if (kind != o.kind || index != o.index || hash != o.hash) return false;
  if (kind != hop_kind::dns) return true;
  if (domain.size() != o.domain.size()) return false;
  for (size_t i = 0; i < domain.size(); ++i)
    if (detail::lower(domain[i]) != detail::lower(o.domain[i])) return false;
  return true;
}

table::table(build_key) : impl_(std::make_unique<impl>()) {}
table::~table() = default;

namespace {

bool better(const send_connector_spec& a, uint32_t cost_a, const send_connector_spec& b,
            uint32_t cost_b) {
  if (cost_a != cost_b) return cost_a < cost_b;
  return a.name < b.name;
}

// Keeps the best (connector, cost) for one pattern slot.
template <class Cost>
void offer(const std::vector<send_connector_spec>& cs, int32_t& slot_conn, Cost& slot_cost,
           int32_t conn, uint32_t cost) {
  if (slot_conn == conn) {
    slot_cost = static_cast<Cost>(std::min<uint32_t>(slot_cost, cost));
  } else if (slot_conn < 0 || better(cs[conn], cost, cs[slot_conn], slot_cost)) {
    slot_conn = conn;
    slot_cost = static_cast<Cost>(cost);
  }
}

uint64_t hop_hash(hop_kind kind, uint32_t index, uint64_t dhash) {
  return detail::mix((static_cast<uint64_t>(kind) << 32 | index) * 0x9e3779b97f4a7c15ull ^ dhash);
}

}  // namespace

table::build_result table::build(std::vector<accepted_domain_spec> domains,
                                 std::vector<send_connector_spec> connectors, limits lim,
                                 build_options options) {
  build_result r;
  auto t = std::make_shared<table>(build_key{});
  t->domains_ = std::move(domains);
  t->connectors_ = std::move(connectors);
  t->limits_ = lim;
  t->options_ = std::move(options);
  impl& m = *t->impl_;
  auto& errors = r.errors;

  size_t names = 1, recipients = 1;
  for (const auto& d : t->domains_) {
    ++names;
    if (d.recipients) recipients += d.recipients->size();
  }
  for (const auto& c : t->connectors_) names += c.address_spaces.size();
  m.domains.reserve(names);
  m.recipients.reserve(recipients);

  auto node = [&](const std::string& name) -> domain_node& {
    return m.domains.upsert(name, domain_hash(name), 0, "*.");
  };

  for (size_t i = 0; i < t->domains_.size(); ++i) {
    accepted_domain_spec& d = t->domains_[i];
    d.name = detail::normalise_name(d.name);
    const bool wild = d.name.starts_with("*.");
    const std::string base = wild ? d.name.substr(2) : d.name;
    const std::string where = "accepted domain \"" + d.name + "\": ";
    if (d.name == "*") {
      errors.push_back(where + "\"*\" is not supported; use a send connector with address space *");
      continue;
    }
    if (std::string p = detail::domain_problem(base); !p.empty()) {
      errors.push_back(where + p);
      continue;
    }
    domain_node& n = node(base);
    int32_t& slot = wild ? n.accepted_wild : n.accepted_exact;
    if (slot >= 0) {
      errors.push_back(where + "listed twice");
      continue;
    }
    slot = static_cast<int32_t>(i);
    (wild ? n.flags_wild : n.flags_exact) = accepted_flags(d);
    if (!d.recipients || d.kind == domain_kind::external_relay) continue;
    for (const std::string& entry : *d.recipients) {
      std::string a = detail::normalise_name(entry);
      size_t at = a.rfind('@');
      if (at == std::string::npos) {
        if (wild) {
          errors.push_back(where + "recipient \"" + entry + "\" needs a domain (wildcard domain)");
          continue;
        }
        at = a.size();
        a += '@' + base;
      }
      std::string_view local = std::string_view(a).substr(0, at);
      std::string_view dom = std::string_view(a).substr(at + 1);
      const bool inside = wild ? (dom.size() > base.size() + 1 && dom.ends_with("." + base))
                               : dom == base;
      if (local.empty() || !inside) {
        errors.push_back(where + "recipient \"" + entry + "\" is not an address in this domain");
        continue;
      }
      m.recipients.upsert(wild ? std::string_view(a) : local,
                          detail::address_hash(local, domain_hash(dom)), static_cast<uint32_t>(i));
    }
  }

  m.usable.assign(t->connectors_.size(), 0);
  for (size_t i = 0; i < t->connectors_.size(); ++i) {
    send_connector_spec& c = t->connectors_[i];
    const std::string where = "send connector \"" + c.name + "\": ";
    if (c.name.empty()) errors.push_back("send connector with an empty name");
    for (size_t j = 0; j < i; ++j)
      if (t->connectors_[j].name == c.name) errors.push_back(where + "name used twice");
    if (c.address_spaces.empty()) errors.push_back(where + "no address spaces");
    if (c.routing == routing_method::dns && c.port == 0) errors.push_back(where + "port 0");
    if (c.routing == routing_method::smart_host && c.smart_hosts.empty())
      errors.push_back(where + "smart host routing without smart hosts");
    for (const smart_host& h : c.smart_hosts)
      if (h.host.empty() || h.port == 0)
        errors.push_back(where + "smart host \"" + h.host + ":" + std::to_string(h.port) +
                         "\" needs a host and a non-zero port");
    bool sourced = t->options_.local_server.empty() || c.source_servers.empty() ||
                   std::find(c.source_servers.begin(), c.source_servers.end(),
                             t->options_.local_server) != c.source_servers.end();
    const bool usable = c.enabled && sourced;
    m.usable[i] = usable;
    for (address_space& s : c.address_spaces) {
      s.pattern = detail::normalise_name(s.pattern);
      const std::string sw = where + "address space \"" + s.pattern + "\": ";
      if (s.cost < 1 || s.cost > 100) {
        errors.push_back(sw + "cost must be 1..100");
        continue;
      }
      const int32_t ci = static_cast<int32_t>(i);
      if (s.pattern == "*") {
        if (usable) offer(t->connectors_, m.default_conn, m.default_cost, ci, s.cost);
        continue;
      }
      const bool wild = s.pattern.starts_with("*.");
      const std::string base = wild ? s.pattern.substr(2) : s.pattern;
      if (std::string p = detail::domain_problem(base); !p.empty()) {
        errors.push_back(sw + p);
        continue;
      }
      if (!usable) continue;  // never chosen, so never in the hot tables
      domain_node& n = node(base);
      if (wild)
        offer(t->connectors_, n.conn_wild, n.cost_wild, ci, s.cost);
      else
        offer(t->connectors_, n.conn_exact, n.cost_exact, ci, s.cost);
    }
  }

  if (errors.empty()) r.routes = std::move(t);
  return r;
}

decision table::route_recipient(std::string_view address, uint64_t message_size,
                                uint64_t receive_connector_max) const noexcept {
  decision d;
  char buf[detail::buffer_size];
  detail::parsed_address p;
  if (!detail::parse_address(address, buf, p)) return d;  // bad_address
  const impl& m = *impl_;
  // Whether the recipient table will be needed is not known yet; asking the
  // memory system for both lines now makes a local delivery cost about one
  // miss instead of two in a row.
  const uint64_t rhash = detail::address_hash(p.local, p.dhash);
  m.recipients.prefetch(rhash);
  m.domains.prefetch(p.dhash);

  int32_t a = -1, c = -1;
  uint8_t a_flags = 0;
  bool a_wild = false;
  uint32_t cost = 0;
  std::string_view pattern;
  if (const auto* s = m.domains.find(p.domain, p.dhash)) {
    a = s->value.accepted_exact;
    a_flags = s->value.flags_exact;
    if (s->value.conn_exact >= 0) {
      c = s->value.conn_exact;
      cost = s->value.cost_exact;
      pattern = m.domains.key_of(*s);
    }
  }
  // Parent suffixes, longest first; the first hit of each kind is the most specific.
  for (int k = static_cast<int>(p.labels) - 2; k >= 0; --k) {
    if (a >= 0 && (c >= 0 || flags_kind(a_flags) == domain_kind::authoritative)) break;
    std::string_view suffix = p.domain.substr(p.label_start[k]);
    const auto* s = m.domains.find(suffix, p.suffix_hash[k]);
    if (!s) continue;
    if (a < 0 && s->value.accepted_wild >= 0) {
      a = s->value.accepted_wild;
      a_flags = s->value.flags_wild;
      a_wild = true;
    }
    if (c < 0 && s->value.conn_wild >= 0) {
      c = s->value.conn_wild;
      cost = s->value.cost_wild;
      pattern = m.domains.arena_view(s->off - 2, s->len + 2u);
    }
  }
  if (c < 0 && m.default_conn >= 0) {
    c = m.default_conn;
    cost = m.default_cost;
    pattern = "*";
  }

  auto hosted_here = [&](int32_t ai) {
    return m.recipients.find(a_wild ? p.address : p.local, rhash, static_cast<uint32_t>(ai)) !=
           nullptr;
  };
  auto deliver_locally = [&](int32_t ai) {
    d.result = outcome::local_delivery;
    d.hop = next_hop{hop_kind::local, static_cast<uint32_t>(ai), {},
                     hop_hash(hop_kind::local, static_cast<uint32_t>(ai), 0)};
  };
  auto via_connector = [&](outcome o) {
    if (c < 0) {
      d.result = outcome::no_route;
      return;
    }
    const send_connector_spec& sc = connectors_[c];
    d.result = o;
    d.connector = &sc;
    d.matched = pattern;
    d.cost = cost;
    d.tls = sc.tls;
    const uint32_t ci = static_cast<uint32_t>(c);
    if (sc.routing == routing_method::smart_host)
      d.hop = next_hop{hop_kind::smart_host, ci, {}, hop_hash(hop_kind::smart_host, ci, 0)};
    else
      d.hop = next_hop{hop_kind::dns, ci, p.raw_domain, hop_hash(hop_kind::dns, ci, p.dhash)};
  };

  if (a >= 0) {
    d.domain = &domains_[a];  // not dereferenced here: the node carries what is needed
    const bool has_table = (a_flags & flag_has_recipients) != 0;
    switch (flags_kind(a_flags)) {
      case domain_kind::authoritative:
        if (!has_table || hosted_here(a))
          deliver_locally(a);
        else
          d.result = outcome::unknown_recipient;
        break;
      case domain_kind::internal_relay:
        if (has_table && hosted_here(a))
          deliver_locally(a);
        else
          via_connector(outcome::relay_internal);
        break;
      case domain_kind::external_relay:
        via_connector(outcome::relay_external);
        break;
    }
  } else {
    via_connector(outcome::remote);
  }

  auto consider = [&](uint64_t v, limit_source from) {
    if (v != 0 && (d.size_limit == 0 || v < d.size_limit)) {
      d.size_limit = v;
      d.size_limit_from = from;
    }
  };
  consider(receive_connector_max, limit_source::receive_connector);
  consider(limits_.organisation_max_size, limit_source::organisation);
  if (d.connector) consider(d.connector->max_message_size, limit_source::send_connector);
  if (deliverable(d.result) && message_size != 0 && d.size_limit != 0 &&
      message_size > d.size_limit)
    d.result = outcome::too_big;
  return d;
}

std::string table::hop_key(const next_hop& hop) const {
  switch (hop.kind) {
    case hop_kind::none: return {};
    case hop_kind::local: return std::string(local_hop_prefix) + domains_[hop.index].name;
    case hop_kind::smart_host: return std::string(smart_host_hop_prefix) + connectors_[hop.index].name;
    case hop_kind::dns: {
      // The domain passed parse_address, so it is at most max_hop_domain_size long.
      static_assert(detail::max_domain == max_hop_domain_size);
      std::string key = std::string(dns_hop_prefix) + connectors_[hop.index].name + ":";
      for (char ch : hop.domain) key += detail::lower(ch);
      return key;
    }
  }
  return {};
}

}  // namespace sluice::route
