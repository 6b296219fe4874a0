// group_test.cc: group_by_next_hop bifurcates a message's recipients per next hop, order preserved.
#include <string>
#include <vector>

#include "fixtures.h"

using namespace route_test;

namespace {

std::shared_ptr<const table> three_hops() {
  return must_build({accepted_domain_spec{"contoso.com", domain_kind::authoritative, {}}},
                    {smarthost_connector("partners", {{"*.partner.test", 1}}, {{"gw.test", 25}}),
                     connector("internet", {{"*", 10}})});
}

std::vector<decision> route_all(const table& t, const std::vector<std::string>& rcpts,
                                uint64_t size = 0) {
  std::vector<decision> out;
  for (const auto& r : rcpts) out.push_back(t.route_recipient(r, size, 0));
  return out;
}

}  // namespace

Test(route_group, three_next_hops_become_three_groups_in_first_appearance_order) {
  auto t = three_hops();
  std::vector<std::string> rcpts = {
      "a@fabrikam.test",     // 0 dns:internet:fabrikam.test
      "b@contoso.com",       // 1 local
      "c@eu.partner.test",   // 2 smart host partners
      "d@FABRIKAM.test",     // 3 same dns hop as 0 (case-insensitive)
      "e@us.partner.test",   // 4 same smart host as 2 (different domain, same connector)
      "f@contoso.com",       // 5 local
  };
  auto ds = route_all(*t, rcpts);
  grouping g;
  group_by_next_hop(ds, g);
  cr_assert_eq(g.groups.size(), 3u);
  cr_assert(g.failed.empty());
  const std::vector<std::vector<uint32_t>> want = {{0, 3}, {1, 5}, {2, 4}};
  const char* keys[] = {"dns:internet:fabrikam.test", "local:contoso.com", "smarthost:partners"};
  for (size_t i = 0; i < 3; ++i) {
    auto members = g.recipients(g.groups[i]);
    std::vector<uint32_t> got(members.begin(), members.end());
    cr_assert(got == want[i], "group %zu members", i);
    std::string key = t->hop_key(g.groups[i].hop);
    cr_assert_str_eq(key.c_str(), keys[i]);
  }
}

Test(route_group, distinct_dns_domains_are_distinct_hops) {
  auto t = three_hops();
  // Decisions view the addresses' domains: the strings must outlive them.
  const std::vector<std::string> rcpts = {"a@one.test", "b@two.test", "c@one.test", "d@three.test"};
  auto ds = route_all(*t, rcpts);
  grouping g;
  group_by_next_hop(ds, g);
  cr_assert_eq(g.groups.size(), 3u);
  cr_assert_eq(g.groups[0].count, 2u);
  cr_assert_eq(g.recipients(g.groups[0])[1], 2u);
}

Test(route_group, failed_recipients_are_set_aside) {
  auto t = must_build({accepted_domain_spec{"contoso.com", domain_kind::authoritative,
                                            std::vector<std::string>{"alice"}}},
                      {connector("only", {{"example.com", 1}})});
  const std::vector<std::string> rcpts = {"nobody@contoso.com", "alice@contoso.com",
                                          "x@nowhere.test", "y@example.com", "bad"};
  auto ds = route_all(*t, rcpts);
  grouping g;
  group_by_next_hop(ds, g);
  cr_assert_eq(g.groups.size(), 2u);
  std::vector<uint32_t> failed(g.failed.begin(), g.failed.end());
  cr_assert(failed == (std::vector<uint32_t>{0, 2, 4}));
}

Test(route_group, reuse_clears_previous_message_and_handles_many_hops) {
  auto t = three_hops();
  std::vector<std::string> rcpts;
  for (int i = 0; i < 200; ++i) rcpts.push_back("u" + std::to_string(i) + "@d" + std::to_string(i % 70) + ".test");
  auto ds = route_all(*t, rcpts);
  grouping g;
  group_by_next_hop(ds, g);
  cr_assert_eq(g.groups.size(), 70u);
  cr_assert_eq(g.order.size(), 200u);
  for (size_t i = 0; i < g.groups.size(); ++i) {
    auto members = g.recipients(g.groups[i]);
    cr_assert_eq(members.front(), i, "first appearance order");
    for (size_t k = 1; k < members.size(); ++k) cr_assert_gt(members[k], members[k - 1]);
  }
  const std::vector<std::string> one = {"a@x.test"};
  auto small = route_all(*t, one);
  group_by_next_hop(small, g);
  cr_assert_eq(g.groups.size(), 1u);
  cr_assert_eq(g.order.size(), 1u);
  group_by_next_hop({}, g);
  cr_assert(g.groups.empty() && g.order.empty() && g.failed.empty());
}
