// explain.cc: the slow, allocating account of a routing decision for `sluicectl route test`.
// Untrusted input: the address typed by the administrator (quoted back verbatim only in lines).
#include <algorithm>
#include <string>

#include "route/table_impl.h"

namespace sluice::route {

namespace {

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string bytes(uint64_t v) { return v == 0 ? std::string("none") : std::to_string(v); }

std::string_view limit_name(limit_source s) {
  switch (s) {
    case limit_source::receive_connector: return "receive connector";
    case limit_source::organisation: return "organisation";
    case limit_source::send_connector: return "send connector";
    case limit_source::none: break;
  }
  return "none";
}

// A connector's best matching address space for one domain.
struct candidate {
  size_t connector = 0;
  std::string_view pattern;
  int specificity = -1;
  uint32_t cost = 0;
};

}  // namespace

std::vector<std::string> table::explain(std::string_view address, uint64_t message_size,
                                        uint64_t receive_connector_max) const {
  std::vector<std::string> out;
  const decision d = route_recipient(address, message_size, receive_connector_max);
  char buf[detail::buffer_size];
  detail::parsed_address p;
  if (!detail::parse_address(address, buf, p)) {
    out.push_back("recipient " + quoted(address) + ": not a routable address");
    out.push_back("outcome: bad_address (" + std::string(enhanced_status(d.result)) + " " +
                  std::string(reason(d.result)) + ")");
    return out;
  }
  const std::string domain(p.domain);
  out.push_back("recipient " + std::string(p.address) + " (domain " + domain + ")");

  // Accepted domains: every match, most specific first; only the first counts.
  std::vector<std::pair<int, size_t>> accepted;
  for (size_t i = 0; i < domains_.size(); ++i) {
    int sp = pattern_specificity(domains_[i].name, domain);
    if (sp >= 0) accepted.emplace_back(sp, i);
  }
  std::sort(accepted.begin(), accepted.end(),
            [](const auto& x, const auto& y) { return x.first > y.first; });
  if (accepted.empty()) {
    out.push_back("accepted domain: none (not ours; RCPT needs relay permission)");
  } else {
    const accepted_domain_spec& w = domains_[accepted.front().second];
    out.push_back("accepted domain: " + w.name + " (" + std::string(to_string(w.kind)) + ")");
    for (size_t k = 1; k < accepted.size(); ++k)
      out.push_back("  lost: accepted domain " + domains_[accepted[k].second].name +
                    ": less specific than " + w.name);
    if (w.kind != domain_kind::external_relay) {
      if (!w.recipients)
        out.push_back(w.kind == domain_kind::authoritative
                          ? "recipient: no recipient table, every address exists"
                          : "recipient: no local recipients, relayed");
      else if (d.result == outcome::unknown_recipient)
        out.push_back("recipient: not in the recipient table");
      else if (d.hop.kind == hop_kind::local)
        out.push_back("recipient: in the recipient table, delivered here");
      else
        out.push_back("recipient: not hosted here, relayed");
    }
  }

  const bool connectors_consulted =
      d.hop.kind != hop_kind::local && d.result != outcome::unknown_recipient;
  if (!connectors_consulted) {
    out.push_back("send connectors: not consulted (delivered by this server)");
  } else {
    std::vector<candidate> cands;
    for (size_t i = 0; i < connectors_.size(); ++i) {
      candidate best;
      best.connector = i;
      for (const address_space& s : connectors_[i].address_spaces) {
        int sp = pattern_specificity(s.pattern, domain);
        if (sp < 0) continue;
        if (sp > best.specificity || (sp == best.specificity && s.cost < best.cost)) {
          best.pattern = s.pattern;
          best.specificity = sp;
          best.cost = s.cost;
        }
      }
      if (best.specificity >= 0) cands.push_back(best);
    }
    const impl& m = *impl_;
    const send_connector_spec* winner = d.connector;
    int win_sp = winner ? pattern_specificity(d.matched, domain) : -1;
    std::sort(cands.begin(), cands.end(), [&](const candidate& x, const candidate& y) {
      if (m.usable[x.connector] != m.usable[y.connector]) return m.usable[x.connector] > 0;
      if (x.specificity != y.specificity) return x.specificity > y.specificity;
      if (x.cost != y.cost) return x.cost < y.cost;
      return connectors_[x.connector].name < connectors_[y.connector].name;
    });
    if (winner) {
      out.push_back("send connector: " + winner->name + " (address space " +
                    std::string(d.matched) + ", cost " + std::to_string(d.cost) + ")");
      if (winner->routing == routing_method::smart_host) {
        std::string hosts;
        for (const smart_host& h : winner->smart_hosts) {
          if (!hosts.empty()) hosts += ", ";
          hosts += h.host + ":" + std::to_string(h.port);
        }
        out.push_back("next hop: smart hosts " + hosts +
                      (winner->smart_hosts.size() > 1 ? " (load balanced, failover to the others)"
                                                      : ""));
      } else {
        out.push_back("next hop: MX of " + domain + " (DNS routing" +
                      (winner->port != 25 ? ", port " + std::to_string(winner->port) : "") + ")");
      }
    } else {
      out.push_back(cands.empty() ? "send connector: none has a matching address space"
                                  : "send connector: none usable among those that match");
    }
    for (const candidate& c : cands) {
      const send_connector_spec& sc = connectors_[c.connector];
      if (&sc == winner) continue;
      std::string line = "  lost: connector " + sc.name + " (address space " +
                         std::string(c.pattern) + ", cost " + std::to_string(c.cost) + "): ";
      if (!sc.enabled)
        line += "disabled";
      else if (!m.usable[c.connector])
        line += "this server (" + options_.local_server + ") is not one of its source servers";
      else if (c.specificity < win_sp)
        line += "less specific than " + std::string(d.matched);
      else if (c.cost > d.cost)
        line += "higher cost (" + std::to_string(c.cost) + " > " + std::to_string(d.cost) + ")";
      else
        line += "tie-break by name (" + winner->name + " sorts first)";
      out.push_back(line);
    }
  }

  out.push_back("size limit: " + bytes(d.size_limit) + " (from " +
                std::string(limit_name(d.size_limit_from)) + "; receive connector " +
                bytes(receive_connector_max) + ", organisation " +
                bytes(limits_.organisation_max_size) + ", send connector " +
                (d.connector ? bytes(d.connector->max_message_size) : std::string("n/a")) + ")");
  if (message_size != 0)
    out.push_back("message size: " + std::to_string(message_size) +
                  (d.result == outcome::too_big ? " exceeds the limit" : " within the limit"));
  out.push_back("tls policy: " + std::string(d.connector ? to_string(d.tls) : "n/a"));
  std::string last = "outcome: " + std::string(to_string(d.result));
  if (!deliverable(d.result))
    last += " (" + std::string(enhanced_status(d.result)) + " " + std::string(reason(d.result)) + ")";
  else
    last += " via " + hop_key(d.hop);
  out.push_back(last);
  return out;
}

}  // namespace sluice::route
