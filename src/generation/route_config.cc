// route_config.cc: config::config → route::table adapter.
// Untrusted input: none (validated configuration only).
#include "generation/route_config.h"

#include <algorithm>

namespace sluice::generation {

route::accepted_domain_spec to_route_spec(const config::accepted_domain& d) {
  route::accepted_domain_spec spec;
  spec.name = d.name;
  spec.kind = d.type;
  if (d.has_recipient_list) {
    std::vector<std::string> list(d.recipients.begin(), d.recipients.end());
    // The set's iteration order depends on the hash seed and bucket count; sorting
    // keeps the table (and anything printed from it) the same from run to run.
    std::sort(list.begin(), list.end());
    spec.recipients = std::move(list);
  }
  return spec;
}

route::send_connector_spec to_route_spec(const config::send_connector& c) {
  route::send_connector_spec spec;
  spec.name = c.name;
  spec.enabled = c.enabled;
  spec.address_spaces.reserve(c.address_spaces.size());
  for (const auto& as : c.address_spaces) spec.address_spaces.push_back({as.domain, as.cost});
  spec.routing = c.routing;
  spec.smart_hosts.reserve(c.smart_hosts.size());
  for (const auto& h : c.smart_hosts) spec.smart_hosts.push_back({h.host, h.port});
  spec.port = c.port;
  spec.max_message_size = c.max_message_size;
  spec.tls = c.tls;
  spec.source_servers = c.source_servers;
  return spec;
}

std::shared_ptr<const route::table> build_route_table(const config::config& cfg,
                                                      std::vector<std::string>& errors) {
  std::vector<route::accepted_domain_spec> domains;
  domains.reserve(cfg.accepted_domains.size());
  for (const auto& d : cfg.accepted_domains) domains.push_back(to_route_spec(d));
  std::vector<route::send_connector_spec> connectors;
  connectors.reserve(cfg.send_connectors.size());
  for (const auto& c : cfg.send_connectors) connectors.push_back(to_route_spec(c));

  route::limits lim{.organisation_max_size = cfg.server.max_message_size};
  route::build_options options{.local_server = cfg.server.hostname};
  auto built = route::table::build(std::move(domains), std::move(connectors), lim, std::move(options));
  for (auto& e : built.errors) errors.push_back(std::move(e));
  return built.routes;
}

}  // namespace sluice::generation
