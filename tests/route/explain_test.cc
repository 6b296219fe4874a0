// explain_test.cc: explain() states the decision and why each other matching route lost.
#include <string>

#include "fixtures.h"

using namespace route_test;

Test(route_explain, names_each_loser_and_reason) {
  send_connector_spec winner = smarthost_connector("bravo", {{"*.example.com", 5}},
                                                   {{"relay1.test", 25}, {"relay2.test", 2525}});
  winner.tls = tls_policy::mandatory;
  winner.max_message_size = 4096;
  auto t = must_build({}, {winner,
                           connector("charlie", {{"*.example.com", 5}}),
                           connector("delta", {{"*.example.com", 20}}),
                           connector("echo", {{"*", 1}}),
                           connector("foxtrot", {{"mail.example.com", 1}}, false),
                           connector("golf", {{"unrelated.test", 1}})},
                      limits{10000});
  auto lines = t->explain("user@Mail.Example.com", 1000, 20000);
  for (const auto& l : lines) cr_log_info("%s", l.c_str());
  cr_assert(any_line_has(lines, "send connector: bravo", "*.example.com, cost 5"));
  cr_assert(any_line_has(lines, "relay1.test:25, relay2.test:2525", "load balanced"));
  cr_assert(any_line_has(lines, "lost: connector charlie", "tie-break by name"));
  cr_assert(any_line_has(lines, "lost: connector delta", "higher cost (20 > 5)"));
  cr_assert(any_line_has(lines, "lost: connector echo", "less specific than *.example.com"));
  cr_assert(any_line_has(lines, "lost: connector foxtrot", "disabled"));
  cr_assert(!any_line_has(lines, "golf"), "non-matching connectors are not candidates");
  cr_assert(any_line_has(lines, "size limit: 4096", "send connector"));
  cr_assert(any_line_has(lines, "tls policy: mandatory"));
  cr_assert(any_line_has(lines, "outcome: remote", "smarthost:bravo"));
}

Test(route_explain, agrees_with_route_recipient_on_failures) {
  auto t = must_build({accepted_domain_spec{"contoso.com", domain_kind::authoritative,
                                            std::vector<std::string>{"alice"}},
                       accepted_domain_spec{"*.contoso.com", domain_kind::external_relay, {}}},
                      {connector("off", {{"*", 1}}, false)});
  auto lines = t->explain("bob@contoso.com", 0);
  cr_assert(any_line_has(lines, "accepted domain: contoso.com", "authoritative"));
  cr_assert(any_line_has(lines, "outcome: unknown_recipient", "5.1.1"));
  cr_assert(any_line_has(lines, "send connectors: not consulted"));

  lines = t->explain("bob@nowhere.test", 0);
  cr_assert(any_line_has(lines, "accepted domain: none"));
  cr_assert(any_line_has(lines, "lost: connector off", "disabled"));
  cr_assert(any_line_has(lines, "outcome: no_route", "5.4.4 no route"));

  lines = t->explain("a@eu.contoso.com", 0);
  cr_assert(any_line_has(lines, "accepted domain: *.contoso.com", "external relay"));

  lines = t->explain("not an address", 0);
  cr_assert(any_line_has(lines, "outcome: bad_address"));
}

Test(route_explain, reports_too_big_with_the_limiting_hop) {
  auto t = must_build({accepted_domain_spec{"contoso.com", domain_kind::authoritative, {}}}, {},
                      limits{2000});
  auto lines = t->explain("u@contoso.com", 5000, 100000);
  cr_assert(any_line_has(lines, "size limit: 2000", "organisation"));
  cr_assert(any_line_has(lines, "message size: 5000 exceeds the limit"));
  cr_assert(any_line_has(lines, "outcome: too_big", "5.3.4"));
}

Test(route_explain, dns_next_hop_names_the_domain_and_port) {
  send_connector_spec c = connector("internet", {{"*", 10}});
  c.port = 2525;
  auto t = must_build({}, {c});
  auto lines = t->explain("u@Fabrikam.test.", 0);
  cr_assert(any_line_has(lines, "next hop: MX of fabrikam.test", "port 2525"));
  cr_assert(any_line_has(lines, "outcome: remote via dns:internet:fabrikam.test"));
}
