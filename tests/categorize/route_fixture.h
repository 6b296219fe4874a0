// route_fixture.h: a small routing table with three kinds of next hop, for the categorizer tests.
#pragma once
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "route/route.h"

namespace categorize_test {

// sluice.test: authoritative with alice and bob (local:sluice.test);
// Outbound: smart host for "*" (smarthost:Outbound);
// Partner: DNS routing for partner.example (dns:Partner:partner.example).
inline std::shared_ptr<const sluice::route::table> three_hop_table() {
  using namespace sluice::route;
  std::vector<accepted_domain_spec> domains{
      {"sluice.test", domain_kind::authoritative, std::vector<std::string>{"alice", "bob"}}};
  std::vector<send_connector_spec> connectors(2);
  connectors[0].name = "Outbound";
  connectors[0].address_spaces = {{"*", 10}};
  connectors[0].routing = routing_method::smart_host;
  connectors[0].smart_hosts = {{"127.0.0.1", 2525}};
  connectors[1].name = "Partner";
  connectors[1].address_spaces = {{"partner.example", 1}};
  auto built = table::build(std::move(domains), std::move(connectors), limits{});
  if (!built.routes) std::abort();
  return built.routes;
}

}  // namespace categorize_test
