// reference_test.cc: the precomputed table agrees with a brute-force scan of the specs on random configurations.
#include <random>
#include <string>
#include <vector>

#include "fixtures.h"

using namespace route_test;

namespace {

// Few labels, so patterns overlap, nest and tie often.
std::string random_domain(std::mt19937& rng, int max_labels) {
  static const char* labels[] = {"a", "b", "mail", "eu", "x1"};
  static const char* tlds[] = {"com", "net"};
  std::string d = tlds[rng() % 2];
  int n = 1 + static_cast<int>(rng() % max_labels);
  for (int i = 0; i < n; ++i) d = std::string(labels[rng() % 5]) + "." + d;
  return d;
}

std::string shout(std::mt19937& rng, std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z' && rng() % 3 == 0) c = static_cast<char>(c - 32);
  return s;
}

// Specificity written independently of the library: exact > longer wildcard
// suffix > shorter > "*".
int specificity(const std::string& pattern, const std::string& domain) {
  if (pattern == "*") return 0;
  if (pattern.rfind("*.", 0) == 0) {
    std::string suffix = pattern.substr(1);
    bool sub = domain.size() > suffix.size() &&
               domain.compare(domain.size() - suffix.size(), suffix.size(), suffix) == 0;
    return sub ? static_cast<int>(suffix.size()) * 2 : -1;
  }
  return pattern == domain ? static_cast<int>(pattern.size()) * 2 + 1 : -1;
}

}  // namespace

Test(route_reference, agrees_with_brute_force_scan) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 40; ++round) {
    std::vector<accepted_domain_spec> domains;
    for (int i = 0; i < 6; ++i) {
      std::string name = (rng() % 3 == 0 ? "*." : "") + random_domain(rng, 2);
      bool dup = false;
      for (const auto& d : domains) dup = dup || d.name == name;
      if (dup) continue;
      domains.push_back({name, static_cast<domain_kind>(rng() % 3), std::nullopt});
    }
    std::vector<send_connector_spec> connectors;
    for (int i = 0; i < 12; ++i) {
      std::vector<address_space> spaces;
      int n = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n; ++k) {
        unsigned r = rng() % 10;
        std::string p = r == 0 ? "*" : (r < 5 ? "*." : "") + random_domain(rng, 2);
        spaces.push_back({shout(rng, p), 1 + static_cast<uint32_t>(rng() % 3)});
      }
      connectors.push_back(connector("c" + std::to_string(rng() % 1000) + "-" + std::to_string(i),
                                     spaces, rng() % 5 != 0));
    }
    auto t = must_build(domains, connectors);

    for (int q = 0; q < 300; ++q) {
      const std::string domain = random_domain(rng, 4);
      // Reference accepted domain.
      int best_a = -1, best_a_sp = -1;
      for (size_t i = 0; i < domains.size(); ++i) {
        int sp = specificity(domains[i].name, domain);
        if (sp > best_a_sp) best_a_sp = sp, best_a = static_cast<int>(i);
      }
      // Reference connector: specificity, then cost, then name; enabled only.
      const send_connector_spec* best_c = nullptr;
      int best_sp = -1;
      uint32_t best_cost = 0;
      for (const auto& c : connectors) {
        if (!c.enabled) continue;
        for (const auto& s : c.address_spaces) {
          std::string p = s.pattern;
          for (char& ch : p) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          int sp = specificity(p, domain);
          if (sp < 0) continue;
          if (!best_c || sp > best_sp || (sp == best_sp && s.cost < best_cost) ||
              (sp == best_sp && s.cost == best_cost && c.name < best_c->name)) {
            best_c = &c, best_sp = sp, best_cost = s.cost;
          }
        }
      }
      const std::string address = "user@" + shout(rng, domain) + (rng() % 4 == 0 ? "." : "");
      decision d = t->route_recipient(address, 0, 0);
      const std::string got_a = d.domain ? d.domain->name : "-";
      const std::string want_a = best_a >= 0 ? domains[best_a].name : "-";
      cr_assert_str_eq(got_a.c_str(), want_a.c_str(), "round %d %s", round, address.c_str());
      if (best_a >= 0 && domains[best_a].kind == domain_kind::authoritative) {
        cr_assert_eq(d.result, outcome::local_delivery, "%s", address.c_str());
        continue;
      }
      const std::string got_c = d.connector ? d.connector->name : "-";
      const std::string want_c = best_c ? best_c->name : "-";
      cr_assert_str_eq(got_c.c_str(), want_c.c_str(), "round %d %s", round, address.c_str());
      if (best_c) {
        cr_assert_eq(d.cost, best_cost, "%s", address.c_str());
        cr_assert_eq(specificity(std::string(d.matched), domain), best_sp, "%s", address.c_str());
      } else {
        cr_assert_eq(d.result, outcome::no_route, "%s", address.c_str());
      }
    }
  }
}

Test(route_reference, long_keys_compare_beyond_the_inline_head) {
  // Keys longer than a slot's inline head must still compare in full.
  const std::string base = "very-long-subdomain-label.another-long-label.example.com";
  const std::string local = "a.rather.long.local.part.for.testing";
  auto t = must_build({accepted_domain_spec{base, domain_kind::authoritative,
                                            std::vector<std::string>{local}},
                       accepted_domain_spec{"*.wild-" + base, domain_kind::authoritative,
                                            std::vector<std::string>{local + "@eu.wild-" + base}}},
                      {connector("long", {{"*.z" + base, 1}})});
  cr_assert_eq(t->route_recipient(local + "@" + base, 0, 0).result, outcome::local_delivery);
  std::string near = local;
  near.back() = 'h';  // same length, differs past the head
  cr_assert_eq(t->route_recipient(near + "@" + base, 0, 0).result, outcome::unknown_recipient);
  cr_assert_eq(t->route_recipient(local + "@EU.wild-" + base, 0, 0).result, outcome::local_delivery);
  cr_assert_eq(t->route_recipient(local + "@us.wild-" + base, 0, 0).result,
               outcome::unknown_recipient);
  decision d = t->route_recipient("u@q.z" + base, 0, 0);
  cr_assert_eq(d.result, outcome::remote);
  std::string matched(d.matched), want = "*.z" + base;
  cr_assert_str_eq(matched.c_str(), want.c_str());
  std::string other = base;
  other[base.size() - 5] = 'x';  // same length domain, differs past the head
  cr_assert_eq(t->route_recipient(local + "@" + other, 0, 0).result, outcome::no_route);
}
