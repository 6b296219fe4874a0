// categorize_test.cc: routing and bifurcation of whole messages, alone and through the store.
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "../store/store_fixture.h"
#include "route_fixture.h"
#include "shard/categorize.h"
#include "shard/mesh.h"
#include "mesh_stress.h"

using namespace sluice;

namespace {

smtp::envelope envelope_of(const std::vector<std::string>& rcpts) {
  smtp::envelope e;
  e.mail_from = "sender@example.org";
  for (const auto& r : rcpts) e.recipients.push_back({r, 0, ""});
  return e;
}

std::string key_of(const store::categorize_request& r, size_t i) { return r.items[i].hop_key; }

}  // namespace

Test(shard_categorize, three_next_hops_become_three_items_in_first_appearance_order) {
  auto routes = shard_test::three_hop_table();
  shard::message_router router;
  auto env = envelope_of({"alice@sluice.test", "x@partner.example", "someone@elsewhere.example",
                          "bob@SLUICE.test", "nobody@sluice.test", "y@partner.example", "z@other.example"});
  store::message_metadata meta;
  meta.received_at_ms = 1234;
  meta.body_size = 100;
  store::categorize_request req;
  router.categorize(*routes, base::queue_id{42}, env, meta, req);
  cr_assert_eq(req.id.value, 42u);
  cr_assert_eq(req.received_at_ms, 1234);
  cr_assert_eq(req.items.size(), 3u);
  std::string k0 = key_of(req, 0), k1 = key_of(req, 1), k2 = key_of(req, 2);
  cr_assert_str_eq(k0.c_str(), "local:sluice.test");
  cr_assert_str_eq(k1.c_str(), "dns:Partner:partner.example");
  cr_assert_str_eq(k2.c_str(), "smarthost:Outbound");
  cr_assert(req.items[0].recipients == std::vector<uint32_t>({0, 3}));
  cr_assert(req.items[1].recipients == std::vector<uint32_t>({1, 5}));
  cr_assert(req.items[2].recipients == std::vector<uint32_t>({2, 6}));
  cr_assert_eq(req.failed.size(), 1u);
  cr_assert_eq(req.failed[0].recipient, 4u);
  std::string status = req.failed[0].status;
  cr_assert_str_eq(status.c_str(), "5.1.1");
}

Test(shard_categorize, reused_request_is_overwritten_not_appended) {
  auto routes = shard_test::three_hop_table();
  shard::message_router router;
  store::message_metadata meta;
  store::categorize_request req;
  router.categorize(*routes, base::queue_id{1},
                    envelope_of({"alice@sluice.test", "x@partner.example", "q@else.example", "bad@sluice.test"}), meta,
                    req);
  cr_assert_eq(req.items.size(), 3u);
  router.categorize(*routes, base::queue_id{2}, envelope_of({"q@else.example"}), meta, req);
  cr_assert_eq(req.items.size(), 1u);
  cr_assert(req.items[0].recipients == std::vector<uint32_t>({0}));
  cr_assert_eq(req.failed.size(), 0u);
  std::string k = key_of(req, 0);
  cr_assert_str_eq(k.c_str(), "smarthost:Outbound");
}

Test(shard_categorize, bifurcated_through_the_store_body_stored_once, .timeout = 60) {
  store_test::temp_dir tmp;
  store::queue_store s;
  store::store_options o;
  o.dir = tmp.sub("q");
  o.map_size = std::size_t{64} << 20;
  std::string error;
  cr_assert(s.open(std::move(o), error), "%s", error.c_str());
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs{store_test::make_request(gen.next(), 20000, 0)};
  msgs[0].envelope = envelope_of({"alice@sluice.test", "x@partner.example", "q@else.example", "bob@sluice.test"});
  cr_assert(store_test::submit_all(s, 0, msgs));
  auto before = s.stats(error);

  shard::message_router router;
  std::vector<store::categorize_request> cats(1);
  std::string problems;
  cr_assert(s.read_envelopes(std::vector<base::queue_id>{msgs[0].id},
                             [&](base::queue_id id, const smtp::envelope& e, const store::message_metadata& m) {
                               router.categorize(*shard_test::three_hop_table(), id, e, m, cats[0]);
                             },
                             problems, error));
  cr_assert_eq(cats[0].items.size(), 3u);
  cr_assert(store_test::categorize_all(s, 0, cats));
  cr_assert_eq(cats[0].result, store::categorize_status::ok);
  auto after = s.stats(error);
  cr_assert_eq(after->submission_queued, 0u);
  cr_assert_eq(after->delivery_items, 3u);
  cr_assert_eq(after->delivery_queues, 3u);
  cr_assert_eq(after->messages, 1u);
  // A 20 KB body is ~10 chunk pages; three copies would add ~20 more. The item
  // records are a few bytes each, so the tree grows by a handful of pages at most.
  cr_assert_lt(after->pages.tree_pages, before->pages.tree_pages + 10, "%lu -> %lu",
               (unsigned long)before->pages.tree_pages, (unsigned long)after->pages.tree_pages);
  auto m = s.read_message(msgs[0].id, error);
  cr_assert(m && m->body == msgs[0].body);
  cr_assert_eq(s.references(msgs[0].id, error), 3u);
}

Test(shard_owner, hop_owner_and_shard_are_stable_and_in_range) {
  for (unsigned loops : {1u, 2u, 3u, 8u}) {
    std::vector<unsigned> seen(loops, 0);
    for (int i = 0; i < 1000; ++i) {
      std::string key = "dns:Internet:domain" + std::to_string(i) + ".example";
      unsigned o = shard::owner_of(key, loops);
      cr_assert_lt(o, loops);
      cr_assert_eq(o, shard::owner_of(key, loops));
      ++seen[shard::shard_of(base::queue_id{(uint64_t(i) << 8) | 3}, loops)];
    }
    for (unsigned c : seen) cr_assert_gt(c, 1000u / loops / 2, "ids of one worker spread over the shards");
  }
}

Test(shard_mesh, concurrent_pairs_lose_and_reorder_nothing, .timeout = 120) {
  cr_assert_eq(mesh_stress::run(3, 100000), 0u);
}
