// table_test.cc: route::table picks the right accepted domain, send connector, next hop and size limit.
#include <string>

#include "fixtures.h"
#include "route/hop_key.h"

using namespace route_test;

namespace {

std::string name_of(const decision& d) {
  return d.connector ? d.connector->name : std::string("(none)");
}

}  // namespace

Test(route_match, most_specific_address_space_wins) {
  auto t = must_build({}, {connector("star", {{"*", 1}}),
                           connector("example", {{"*.example.com", 1}}),
                           connector("sub", {{"*.sub.example.com", 1}}),
                           connector("exact", {{"host.sub.example.com", 1}})});
  struct {
    const char* address;
    const char* connector;
    const char* pattern;
  } cases[] = {
      {"u@host.sub.example.com", "exact", "host.sub.example.com"},
      {"u@other.sub.example.com", "sub", "*.sub.example.com"},
      {"u@a.b.sub.example.com", "sub", "*.sub.example.com"},
      {"u@sub.example.com", "example", "*.example.com"},
      {"u@www.example.com", "example", "*.example.com"},
      {"u@example.org", "star", "*"},
  };
  for (const auto& c : cases) {
    decision d = t->route_recipient(c.address, 0, 0);
    std::string got = name_of(d);
    std::string matched(d.matched);
    cr_assert_eq(d.result, outcome::remote, "%s", c.address);
    cr_assert_str_eq(got.c_str(), c.connector, "%s", c.address);
    cr_assert_str_eq(matched.c_str(), c.pattern, "%s", c.address);
  }
}

Test(route_match, wildcard_does_not_match_bare_domain) {
  auto t = must_build({}, {connector("wild", {{"*.example.com", 1}})});
  cr_assert_eq(t->route_recipient("u@example.com", 0, 0).result, outcome::no_route);
  cr_assert_eq(t->route_recipient("u@x.example.com", 0, 0).result, outcome::remote);
  // A suffix that is not at a label boundary is not a subdomain.
  cr_assert_eq(t->route_recipient("u@badexample.com", 0, 0).result, outcome::no_route);
}

Test(route_match, lowest_cost_breaks_ties) {
  auto t = must_build({}, {connector("a-expensive", {{"*.example.com", 50}}),
                           connector("b-cheap", {{"*.example.com", 5}}),
                           connector("c-general", {{"*", 1}})});
  decision d = t->route_recipient("u@mail.example.com", 0, 0);
  std::string got = name_of(d);
  cr_assert_str_eq(got.c_str(), "b-cheap");
  cr_assert_eq(d.cost, 5u);
}

Test(route_match, name_breaks_equal_cost_ties) {
  auto t = must_build({}, {connector("zulu", {{"example.com", 10}}),
                           connector("alpha", {{"example.com", 10}}),
                           connector("mike", {{"example.com", 10}})});
  std::string got = name_of(t->route_recipient("u@example.com", 0, 0));
  cr_assert_str_eq(got.c_str(), "alpha");
}

Test(route_match, same_connector_listing_a_pattern_twice_uses_its_lowest_cost) {
  auto t = must_build({}, {connector("a", {{"example.com", 30}, {"example.com", 3}}),
                           connector("b", {{"example.com", 4}})});
  decision d = t->route_recipient("u@example.com", 0, 0);
  std::string got = name_of(d);
  cr_assert_str_eq(got.c_str(), "a");
  cr_assert_eq(d.cost, 3u);
}

Test(route_match, disabled_connector_never_chosen) {
  auto t = must_build({}, {connector("specific-but-off", {{"exact.example.com", 1}}, false),
                           connector("general", {{"*.example.com", 90}}),
                           connector("only-off", {{"off.test", 1}}, false)});
  std::string got = name_of(t->route_recipient("u@exact.example.com", 0, 0));
  cr_assert_str_eq(got.c_str(), "general");
  cr_assert_eq(t->route_recipient("u@off.test", 0, 0).result, outcome::no_route);
}

Test(route_match, source_servers_restrict_connectors_when_server_named) {
  send_connector_spec elsewhere = connector("elsewhere", {{"example.com", 1}});
  elsewhere.source_servers = {"edge2"};
  send_connector_spec here = connector("here", {{"example.com", 50}});
  here.source_servers = {"edge1", "edge3"};
  auto t = must_build({}, {elsewhere, here}, {}, build_options{"edge1"});
  std::string got = name_of(t->route_recipient("u@example.com", 0, 0));
  cr_assert_str_eq(got.c_str(), "here");
  auto any = must_build({}, {elsewhere, here});  // no server name: source servers ignored
  got = name_of(any->route_recipient("u@example.com", 0, 0));
  cr_assert_str_eq(got.c_str(), "elsewhere");
}

Test(route_match, case_and_trailing_dot_are_normalised) {
  auto t = must_build({accepted_domain_spec{"Contoso.COM.", domain_kind::authoritative,
                                            std::vector<std::string>{"Alice"}}},
                      {connector("Out", {{"*.Example.COM", 1}})});
  decision d = t->route_recipient("ALICE@CONTOSO.com.", 0, 0);
  cr_assert_eq(d.result, outcome::local_delivery);
  cr_assert_eq(t->route_recipient("alice@contoso.com", 0, 0).result, outcome::local_delivery);
  d = t->route_recipient("Bob@Mail.EXAMPLE.com.", 0, 0);
  cr_assert_eq(d.result, outcome::remote);
  std::string matched(d.matched);
  cr_assert_str_eq(matched.c_str(), "*.example.com");
  // The DNS next hop keeps the domain as written, minus the trailing dot.
  std::string hop_domain(d.hop.domain);
  cr_assert_str_eq(hop_domain.c_str(), "Mail.EXAMPLE.com");
  std::string key = t->hop_key(d.hop);
  cr_assert_str_eq(key.c_str(), "dns:Out:mail.example.com");
}

Test(route_match, idn_a_labels_match_as_is_and_u_labels_bytewise) {
  auto t = must_build({}, {connector("idn", {{"xn--bcher-kva.example", 1}}),
                           connector("utf8", {{"b\xc3\xbc" "cher.test", 1}})});
  std::string got = name_of(t->route_recipient("u@XN--BCHER-KVA.example", 0, 0));
  cr_assert_str_eq(got.c_str(), "idn");
  got = name_of(t->route_recipient("u@B\xc3\xbc" "CHER.test", 0, 0));
  cr_assert_str_eq(got.c_str(), "utf8");
}

Test(route_match, malformed_addresses_are_bad_address) {
  auto t = must_build({}, {connector("all", {{"*", 1}})});
  const char* bad[] = {"nodomain", "@example.com", "u@", "u@.", "u@a..b", "u@.a.b", "u@a b.c"};
  for (const char* a : bad) cr_assert_eq(t->route_recipient(a, 0, 0).result, outcome::bad_address, "%s", a);
  std::string long_domain(300, 'a');
  cr_assert_eq(t->route_recipient("u@" + long_domain, 0, 0).result, outcome::bad_address);
  cr_assert_eq(t->route_recipient("<u@example.com>", 0, 0).result, outcome::remote);
}

Test(route_domains, authoritative_requires_existing_recipient) {
  auto t = must_build({accepted_domain_spec{"contoso.com", domain_kind::authoritative,
                                            std::vector<std::string>{"alice", "bob@contoso.com"}},
                       accepted_domain_spec{"open.test", domain_kind::authoritative, std::nullopt}},
                      {connector("all", {{"*", 1}})});
  decision d = t->route_recipient("alice@contoso.com", 0, 0);
  cr_assert_eq(d.result, outcome::local_delivery);
  cr_assert_eq(d.hop.kind, hop_kind::local);
  cr_assert_null(d.connector);
  cr_assert(!d.needs_relay_permission());
  cr_assert_eq(t->route_recipient("bob@contoso.com", 0, 0).result, outcome::local_delivery);
  cr_assert_eq(t->route_recipient("BOB@Contoso.COM", 0, 0).result, outcome::local_delivery,
               "full-address entries match case-insensitively too");
  d = t->route_recipient("mallory@contoso.com", 0, 0);
  cr_assert_eq(d.result, outcome::unknown_recipient);
  cr_assert_null(d.connector, "authoritative domains never fall through to a connector");
  std::string status(enhanced_status(d.result));
  cr_assert_str_eq(status.c_str(), "5.1.1");
  cr_assert_eq(t->route_recipient("anyone@open.test", 0, 0).result, outcome::local_delivery);
}

Test(route_domains, wildcard_accepted_domain_covers_subdomains_only) {
  auto t = must_build({accepted_domain_spec{"*.corp.test", domain_kind::authoritative, std::nullopt}},
                      {});
  decision d = t->route_recipient("u@eu.corp.test", 0, 0);
  cr_assert_eq(d.result, outcome::local_delivery);
  std::string key = t->hop_key(d.hop);
  cr_assert_str_eq(key.c_str(), "local:*.corp.test");
  cr_assert_eq(t->route_recipient("u@corp.test", 0, 0).result, outcome::no_route);
}

Test(route_domains, exact_accepted_domain_beats_wildcard) {
  auto t = must_build(
      {accepted_domain_spec{"*.corp.test", domain_kind::external_relay, std::nullopt},
       accepted_domain_spec{"hq.corp.test", domain_kind::authoritative, std::nullopt}},
      {connector("partner", {{"*.corp.test", 1}})});
  cr_assert_eq(t->route_recipient("u@hq.corp.test", 0, 0).result, outcome::local_delivery);
  cr_assert_eq(t->route_recipient("u@branch.corp.test", 0, 0).result, outcome::relay_external);
}

Test(route_domains, longest_matching_name_wins_at_label_boundaries) {
  auto t = must_build({accepted_domain_spec{"Example.com", domain_kind::authoritative, std::nullopt},
                       accepted_domain_spec{"*.example.com", domain_kind::internal_relay, std::nullopt},
                       accepted_domain_spec{"*.eu.example.com", domain_kind::external_relay, std::nullopt},
                       accepted_domain_spec{"mail.eu.example.com", domain_kind::authoritative, std::nullopt}},
                      {connector("all", {{"*", 1}})});
  struct {
    const char* address;
    const char* domain;
  } cases[] = {
      {"u@EXAMPLE.COM", "example.com"},
      {"u@example.com.", "example.com"},
      {"u@sub.Example.com", "*.example.com"},
      {"u@a.b.example.com", "*.example.com"},
      {"u@x.eu.example.com", "*.eu.example.com"},
      {"u@a.x.eu.example.com", "*.eu.example.com"},
      {"u@mail.eu.example.com", "mail.eu.example.com"},
      {"u@notexample.com", "(none)"},
      {"u@example.org", "(none)"},
      {"u@com", "(none)"},
  };
  for (const auto& c : cases) {
    decision d = t->route_recipient(c.address, 0, 0);
    std::string got = d.domain ? d.domain->name : std::string("(none)");
    cr_assert_str_eq(got.c_str(), c.domain, "%s", c.address);
  }
  cr_assert_eq(t->route_recipient("u@sub.example.com", 0, 0).result, outcome::relay_internal);
  cr_assert_eq(t->route_recipient("u@x.eu.example.com", 0, 0).result, outcome::relay_external);
  cr_assert_eq(t->route_recipient("u@mail.eu.example.com", 0, 0).result, outcome::local_delivery);
  cr_assert_eq(t->route_recipient("u@notexample.com", 0, 0).result, outcome::remote);
}

Test(route_domains, relay_domains_route_through_connectors) {
  auto t = must_build(
      {accepted_domain_spec{"partner.test", domain_kind::external_relay, std::nullopt},
       accepted_domain_spec{"legacy.test", domain_kind::internal_relay,
                            std::vector<std::string>{"migrated"}}},
      {smarthost_connector("to-partner", {{"partner.test", 10}}, {{"mx.partner.test", 25}}),
       smarthost_connector("to-legacy", {{"legacy.test", 10}},
                           {{"old1.legacy.test", 25}, {"old2.legacy.test", 2525}})});
  decision d = t->route_recipient("x@partner.test", 0, 0);
  cr_assert_eq(d.result, outcome::relay_external);
  cr_assert(!d.needs_relay_permission(), "relay domains are ours: no relay permission needed");
  cr_assert_eq(d.hop.kind, hop_kind::smart_host);
  std::string key = t->hop_key(d.hop);
  cr_assert_str_eq(key.c_str(), "smarthost:to-partner");
  d = t->route_recipient("someone@legacy.test", 0, 0);
  cr_assert_eq(d.result, outcome::relay_internal);
  std::string got = name_of(d);
  cr_assert_str_eq(got.c_str(), "to-legacy");
  cr_assert_eq(t->route_recipient("migrated@legacy.test", 0, 0).result, outcome::local_delivery);
}

Test(route_domains, relay_domain_without_connector_is_no_route) {
  auto t = must_build({accepted_domain_spec{"partner.test", domain_kind::external_relay, {}}}, {});
  decision d = t->route_recipient("x@partner.test", 0, 0);
  cr_assert_eq(d.result, outcome::no_route);
  cr_assert_not_null(d.domain);
}

Test(route_domains, no_route_without_matching_connector) {
  auto t = must_build({}, {connector("only", {{"example.com", 1}})});
  decision d = t->route_recipient("u@elsewhere.test", 0, 0);
  cr_assert_eq(d.result, outcome::no_route);
  cr_assert(d.needs_relay_permission());
  cr_assert_eq(d.hop.kind, hop_kind::none);
  std::string r(reason(d.result)), s(enhanced_status(d.result));
  cr_assert_str_eq(r.c_str(), "no route");
  cr_assert_str_eq(s.c_str(), "5.4.4");
}

Test(route_size, effective_limit_is_lowest_of_three) {
  send_connector_spec c = connector("out", {{"*", 1}});
  c.max_message_size = 5000;
  auto t = must_build({}, {c}, limits{8000});
  decision d = t->route_recipient("u@example.com", 0, 10000);
  cr_assert_eq(d.size_limit, 5000u);
  cr_assert_eq(d.size_limit_from, limit_source::send_connector);
  d = t->route_recipient("u@example.com", 0, 3000);
  cr_assert_eq(d.size_limit, 3000u);
  cr_assert_eq(d.size_limit_from, limit_source::receive_connector);
  c.max_message_size = 0;  // 0 means no limit of its own
  auto t2 = must_build({}, {c}, limits{8000});
  d = t2->route_recipient("u@example.com", 0, 0);
  cr_assert_eq(d.size_limit, 8000u);
  cr_assert_eq(d.size_limit_from, limit_source::organisation);
  auto t3 = must_build({}, {c}, limits{0});
  cr_assert_eq(t3->route_recipient("u@example.com", 1u << 30, 0).size_limit, 0u);
  cr_assert_eq(t3->route_recipient("u@example.com", 1u << 30, 0).result, outcome::remote);
}

Test(route_size, over_the_limit_is_too_big) {
  send_connector_spec c = connector("out", {{"*", 1}});
  c.max_message_size = 5000;
  auto t = must_build({accepted_domain_spec{"contoso.com", domain_kind::authoritative, {}}}, {c},
                      limits{8000});
  decision d = t->route_recipient("u@example.com", 5001, 10000);
  cr_assert_eq(d.result, outcome::too_big);
  std::string s(enhanced_status(d.result));
  cr_assert_str_eq(s.c_str(), "5.3.4");
  cr_assert_eq(t->route_recipient("u@example.com", 5000, 10000).result, outcome::remote);
  // Local delivery has no send connector on the path: the organisation limit applies.
  cr_assert_eq(t->route_recipient("u@contoso.com", 7000, 10000).result, outcome::local_delivery);
  cr_assert_eq(t->route_recipient("u@contoso.com", 8001, 10000).result, outcome::too_big);
  // Unknown size (0) is never too big.
  cr_assert_eq(t->route_recipient("u@example.com", 0, 10000).result, outcome::remote);
}

Test(route_build, configuration_errors_are_reported) {
  send_connector_spec no_hosts = connector("sh", {{"a.test", 1}});
  no_hosts.routing = routing_method::smart_host;
  auto r = table::build(
      {accepted_domain_spec{"dup.test", domain_kind::authoritative, {}},
       accepted_domain_spec{"DUP.test.", domain_kind::authoritative, {}},
       accepted_domain_spec{"c.test", domain_kind::authoritative,
                            std::vector<std::string>{"x@other.test"}}},
      {connector("c", {{"a.test", 0}}), connector("c", {{"a.*.test", 1}}), no_hosts,
       connector("empty", {})},
      {});
  cr_assert_null(r.routes.get());
  cr_assert(any_line_has(r.errors, "dup.test", "twice"));
  cr_assert(any_line_has(r.errors, "x@other.test", "not an address in this domain"));
  cr_assert(any_line_has(r.errors, "cost must be 1..100"));
  cr_assert(any_line_has(r.errors, "name used twice"));
  cr_assert(any_line_has(r.errors, "a.*.test", "invalid character"));
  cr_assert(any_line_has(r.errors, "smart host routing without smart hosts"));
  cr_assert(any_line_has(r.errors, "no address spaces"));
}

Test(hop_key, parses_what_hop_key_writes) {
  using sluice::route::hop_key_kind;
  using sluice::route::parse_hop_key;
  auto l = parse_hop_key("local:contoso.com");
  cr_assert_eq(l.kind, hop_key_kind::local);
  cr_assert(l.name == "contoso.com");
  auto s = parse_hop_key("smarthost:Outbound");
  cr_assert_eq(s.kind, hop_key_kind::smart_host);
  cr_assert(s.name == "Outbound");
  // A connector name may contain ':'; the domain never does.
  auto d = parse_hop_key("dns:To:Internet:fabrikam.com");
  cr_assert_eq(d.kind, hop_key_kind::dns);
  cr_assert(d.name == "To:Internet");
  cr_assert(d.domain == "fabrikam.com");
  cr_assert_eq(parse_hop_key("dns:nodomain").kind, hop_key_kind::invalid);
  cr_assert_eq(parse_hop_key("dns:x:").kind, hop_key_kind::invalid);
  cr_assert_eq(parse_hop_key("mx:whatever").kind, hop_key_kind::invalid);
}
