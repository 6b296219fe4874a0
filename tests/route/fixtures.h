// fixtures.h: small helpers to build route tables in tests.
#pragma once
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "route/route.h"

namespace route_test {

using namespace sluice::route;

inline send_connector_spec connector(std::string name, std::vector<address_space> spaces,
                                     bool enabled = true) {
  send_connector_spec c;
  c.name = std::move(name);
  c.enabled = enabled;
  c.address_spaces = std::move(spaces);
  return c;
}

inline send_connector_spec smarthost_connector(std::string name, std::vector<address_space> spaces,
                                               std::vector<smart_host> hosts) {
  send_connector_spec c = connector(std::move(name), std::move(spaces));
  c.routing = routing_method::smart_host;
  c.smart_hosts = std::move(hosts);
  return c;
}

inline std::shared_ptr<const table> must_build(std::vector<accepted_domain_spec> domains,
                                               std::vector<send_connector_spec> connectors,
                                               limits lim = {}, build_options opt = {}) {
  auto r = table::build(std::move(domains), std::move(connectors), lim, std::move(opt));
  for (const auto& e : r.errors) cr_log_error("build error: %s", e.c_str());
  cr_assert(r.routes != nullptr, "table must build");
  return r.routes;
}

inline bool any_line_has(const std::vector<std::string>& lines, const std::string& a,
                         const std::string& b = {}) {
  for (const auto& l : lines)
    if (l.find(a) != std::string::npos && (b.empty() || l.find(b) != std::string::npos))
      return true;
  return false;
}

}  // namespace route_test
