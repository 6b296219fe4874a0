// mx_test.cc: RFC 5321 section 5 MX ordering, null MX, loops to self and site keys (dns/mx.h), without a network.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <set>
#include <string>
#include <vector>

#include "dns/mx.h"

using namespace sluice::dns;

namespace {

std::vector<std::string> names(const mx_plan& p) {
  std::vector<std::string> out;
  for (const auto& h : p.hosts) out.push_back(h.host);
  return out;
}

const std::vector<std::string> no_self;

}  // namespace

Test(mx, sorts_by_preference_and_normalizes_names) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({{30, "C.example."}, {10, "a.EXAMPLE"}, {20, "b.example."}}, no_self, rng);
  cr_assert_eq(p.status, lookup_status::ok);
  cr_assert(names(p) == (std::vector<std::string>{"a.example", "b.example", "c.example"}));
  cr_assert_eq(p.hosts[0].preference, 10);
  cr_assert_eq(p.hosts[2].preference, 30);
}

Test(mx, shuffles_equal_preferences_over_seeds) {
  std::set<std::vector<std::string>> seen;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    std::mt19937_64 rng(seed);
    auto p = plan_mx({{5, "best.example"}, {10, "x.example"}, {10, "y.example"}, {20, "last.example"}}, no_self, rng);
    auto n = names(p);
    cr_assert_eq(n.size(), 4u);
    cr_assert_eq(n.front(), "best.example");
    cr_assert_eq(n.back(), "last.example");
    seen.insert(n);
  }
  cr_assert_eq(seen.size(), 2u, "both orders of the two preference-10 hosts appear");
}

Test(mx, drops_duplicates_keeping_the_best_preference) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({{20, "a.example"}, {10, "A.example."}, {15, "b.example"}, {15, "b.example"}}, no_self, rng);
  cr_assert(names(p) == (std::vector<std::string>{"a.example", "b.example"}));
  cr_assert_eq(p.hosts[0].preference, 10);
}

Test(mx, self_drops_equal_and_worse_preferences) {
  std::mt19937_64 rng(1);
  std::vector<std::string> self = {"mx.self.example"};
  auto p = plan_mx({{10, "better.example"}, {20, "peer.example"}, {20, "MX.self.example."}, {30, "worse.example"}},
                   self, rng);
  cr_assert_eq(p.status, lookup_status::ok);
  cr_assert(names(p) == (std::vector<std::string>{"better.example"}));
}

Test(mx, self_as_best_mx_loops) {
  std::mt19937_64 rng(1);
  std::vector<std::string> self = {"other.self", "mx.self.example"};
  auto p = plan_mx({{10, "mx.self.example"}, {20, "backup.example"}}, self, rng);
  cr_assert_eq(p.status, lookup_status::loops_to_self);
  cr_assert(p.hosts.empty());
  cr_assert(enhanced_status(p.status) == "5.4.6");
}

Test(mx, null_mx) {
  std::mt19937_64 rng(1);
  cr_assert_eq(plan_mx({{0, ""}}, no_self, rng).status, lookup_status::null_mx);
  cr_assert_eq(plan_mx({{0, "."}}, no_self, rng).status, lookup_status::null_mx);
  // "." beside real hosts is not RFC 7505 null MX: the real hosts are used.
  auto mixed = plan_mx({{0, "."}, {10, "real.example"}}, no_self, rng);
  cr_assert_eq(mixed.status, lookup_status::ok);
  cr_assert(names(mixed) == (std::vector<std::string>{"real.example"}));
}

Test(mx, statuses_and_codes) {
  cr_assert(enhanced_status(lookup_status::nxdomain) == "5.1.2");
  cr_assert(enhanced_status(lookup_status::null_mx) == "5.1.10");
  cr_assert(enhanced_status(lookup_status::no_addresses) == "5.4.4");
  cr_assert(enhanced_status(lookup_status::temporary) == "4.4.3");
  cr_assert(enhanced_status(lookup_status::ok).empty());
  cr_assert_eq(reply_code(lookup_status::null_mx), 556);
  cr_assert_eq(reply_code(lookup_status::nxdomain), 550);
  cr_assert_eq(reply_code(lookup_status::temporary), 451);
  cr_assert_eq(reply_code(lookup_status::ok), 0);
}

Test(mx, site_key_ignores_order_case_and_duplicates) {
  std::vector<mx_record> a = {{10, "mx1.example"}, {20, "MX2.example."}};
  std::vector<mx_record> b = {{5, "mx2.example"}, {5, "mx1.example"}, {30, "mx1.example"}};
  std::string key = site_key(a, false, "one.example");
  cr_assert_str_eq(key.c_str(), "mx:mx1.example,mx2.example");
  cr_assert_eq(site_key(a, false, "one.example"), site_key(b, false, "two.example"));
  std::vector<mx_record> c = {{10, "mx1.example"}};
  cr_assert_neq(site_key(a, false, "one.example"), site_key(c, false, "one.example"));
  std::string implicit = site_key({}, true, "Plain.Example.");
  cr_assert_str_eq(implicit.c_str(), "host:plain.example");
}

// Found by the dns_answer fuzzer: a name ending in two dots kept one, so normalizing the
// normalized name changed it again (and a host could differ from itself in comparisons).
Test(mx, normalize_name_is_idempotent) {
  cr_assert_eq(normalize_name("MX1.Example.NET.."), "mx1.example.net");
  cr_assert_eq(normalize_name(normalize_name("a.example.")), "a.example");
  cr_assert_eq(normalize_name("."), "");
}
