// categorize_test.cc: routing and bifurcation of whole messages, alone and through the store.
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "../store/store_fixture.h"
#include "route_fixture.h"
#include "categorize/categorize.h"

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

Test(categorize, three_next_hops_become_three_items_in_first_appearance_order) {
  auto routes = categorize_test::three_hop_table();
  categorize::message_router router;
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

Test(categorize, reused_request_is_overwritten_not_appended) {
  auto routes = categorize_test::three_hop_table();
  categorize::message_router router;
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

Test(categorize, bifurcated_through_the_store_body_stored_once, .timeout = 60) {
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

  categorize::message_router router;
  std::vector<store::categorize_request> cats(1);
  std::string problems;
  cr_assert(s.read_envelopes(std::vector<base::queue_id>{msgs[0].id},
                             [&](base::queue_id id, const smtp::envelope& e, const store::message_metadata& m) {
                               router.categorize(*categorize_test::three_hop_table(), id, e, m, cats[0]);
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

Test(categorize_owner, hop_owner_and_shard_are_stable_and_in_range) {
  for (unsigned loops : {1u, 2u, 3u, 8u}) {
    std::vector<unsigned> seen(loops, 0);
    for (int i = 0; i < 1000; ++i) {
      std::string key = "dns:Internet:domain" + std::to_string(i) + ".example";
      unsigned o = categorize::owner_of(key, loops);
      cr_assert_lt(o, loops);
      cr_assert_eq(o, categorize::owner_of(key, loops));
      ++seen[categorize::shard_of(base::queue_id{(uint64_t(i) << 8) | 3}, loops)];
    }
    for (unsigned c : seen) cr_assert_gt(c, 1000u / loops / 2, "ids of one worker spread over the shards");
  }
}

// ---- transport rules applied by the categorizer ----

namespace {

rules::rule_spec rule(const char* name) {
  rules::rule_spec r;
  r.name = name;
  return r;
}

}  // namespace

Test(categorize_rules, reject_fails_every_recipient_with_the_rules_status) {
  auto routes = categorize_test::three_hop_table();
  auto r = rule("no-spam-domain");
  r.sender_domain = {"spam.example"};
  r.reject = rules::rejection_spec{"5.7.1", "policy: sender domain refused"};
  rules::rule_set set({r});
  categorize::message_router router;
  auto env = envelope_of({"alice@sluice.test", "x@partner.example"});
  env.mail_from = "bulk@spam.example";
  store::message_metadata meta;
  store::categorize_request req;
  router.categorize(*routes, &set, {}, base::queue_id{5}, env, meta, req);
  cr_assert_eq(req.items.size(), 0u);
  cr_assert_eq(req.failed.size(), 2u);
  std::string status = req.failed[1].status, reason = req.failed[1].reason;
  cr_assert_str_eq(status.c_str(), "5.7.1");
  cr_assert_str_eq(reason.c_str(), "policy: sender domain refused");
  cr_assert_eq(router.fired().size(), 1u);
  // Another sender: the rule does not fire and routing is as usual.
  env.mail_from = "someone@example.org";
  router.categorize(*routes, &set, {}, base::queue_id{6}, env, meta, req);
  cr_assert_eq(req.items.size(), 2u);
  cr_assert_eq(router.fired().size(), 0u);
  cr_assert(req.new_record.empty());
}

Test(categorize_rules, redirect_and_bcc_change_the_envelope_and_the_routing) {
  auto routes = categorize_test::three_hop_table();
  auto redirect = rule("ceo-to-assistant");
  redirect.recipient = {"alice@sluice.test"};
  redirect.redirect_to = "bob@sluice.test";
  auto audit = rule("audit-partner");
  audit.recipient_domain = {"partner.example"};
  audit.bcc = "audit@archive.example";
  rules::rule_set set({redirect, audit});
  categorize::message_router router;
  auto env = envelope_of({"alice@sluice.test", "x@partner.example"});
  store::message_metadata meta;
  meta.body_size = 10;
  store::categorize_request req;
  router.categorize(*routes, &set, {}, base::queue_id{7}, env, meta, req);
  cr_assert_eq(router.fired().size(), 2u);
  cr_assert_eq(req.recipient_delta, 1);
  cr_assert(!req.new_record.empty());
  smtp::envelope stored;
  store::message_metadata stored_meta;
  std::string error;
  cr_assert(store::decode_record(req.new_record, stored, stored_meta, error), "%s", error.c_str());
  cr_assert_eq(stored.recipients.size(), 3u);
  cr_assert(stored.recipients[0].address == "bob@sluice.test");
  cr_assert(stored.recipients[2].address == "audit@archive.example");
  // bob (local), x (Partner), audit (Outbound): three items, indices into the new list.
  cr_assert_eq(req.items.size(), 3u);
  std::string k2 = key_of(req, 2);
  cr_assert_str_eq(k2.c_str(), "smarthost:Outbound");
  cr_assert(req.items[2].recipients == std::vector<uint32_t>({2}));
}

Test(categorize_rules, route_via_forces_the_named_connector_and_merges_by_hop) {
  auto routes = categorize_test::three_hop_table();
  auto via = rule("partner-via-smarthost");
  via.recipient_domain = {"partner.example"};
  via.route_via = "Outbound";
  auto bad = rule("via-missing");
  bad.recipient = {"q@else.example"};
  bad.route_via = "NoSuchConnector";
  rules::rule_set set({via, bad});
  categorize::message_router router;
  auto env = envelope_of({"x@partner.example", "z@other.example", "q@else.example"});
  store::message_metadata meta;
  store::categorize_request req;
  router.categorize(*routes, &set, {}, base::queue_id{8}, env, meta, req);
  cr_assert_eq(req.items.size(), 1u, "partner mail joins the smart host's item");
  std::string k0 = key_of(req, 0);
  cr_assert_str_eq(k0.c_str(), "smarthost:Outbound");
  cr_assert(req.items[0].recipients == std::vector<uint32_t>({1, 0}));
  cr_assert_eq(req.failed.size(), 1u);
  cr_assert_eq(req.failed[0].recipient, 2u);
  std::string status = req.failed[0].status;
  cr_assert_str_eq(status.c_str(), "5.4.4");
}

Test(categorize_rules, header_edit_rewrites_the_stored_body_once, .timeout = 60) {
  store_test::temp_dir tmp;
  store::queue_store s;
  store::store_options o;
  o.dir = tmp.sub("q");
  o.map_size = std::size_t{64} << 20;
  std::string error;
  cr_assert(s.open(std::move(o), error), "%s", error.c_str());
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs{store_test::make_request(gen.next(), 0, 0)};
  msgs[0].envelope = envelope_of({"alice@sluice.test", "x@partner.example", "q@else.example"});
  msgs[0].body = "Subject: quarterly\r\nX-Class: internal\r\n\r\n" + std::string(5000, 'b') + "\r\n";
  cr_assert(store_test::submit_all(s, 0, msgs));

  auto tag = rule("tag-internal");
  tag.header = rules::header_condition{"x-class", rules::header_condition::kind::glob, "internal"};
  tag.add_header = rules::header_field{"X-Scanned", "yes"};
  rules::rule_set set({tag});
  cr_assert(set.needs_headers());
  std::string headers;
  cr_assert(s.read_header_block(msgs[0].id, headers, 65536, error));
  cr_assert(headers == "Subject: quarterly\r\nX-Class: internal\r\n\r\n", "%s", headers.c_str());

  categorize::message_router router;
  std::vector<store::categorize_request> cats(1);
  std::string problems;
  cr_assert(s.read_envelopes(std::vector<base::queue_id>{msgs[0].id},
                             [&](base::queue_id id, const smtp::envelope& e, const store::message_metadata& m) {
                               router.categorize(*categorize_test::three_hop_table(), &set, headers, id, e, m, cats[0]);
                               cr_assert(router.header_edits_pending());
                               auto whole = s.read_message(id, error);
                               router.finish_with_body(std::move(whole->body), e, m, s.chunk_size(), cats[0]);
                             },
                             problems, error));
  cr_assert(store_test::categorize_all(s, 0, cats));
  cr_assert_eq(cats[0].result, store::categorize_status::ok, "%s", cats[0].error.c_str());
  auto m = s.read_message(msgs[0].id, error);
  cr_assert(m.has_value(), "%s", error.c_str());
  cr_assert(m->body == "X-Scanned: yes\r\n" + msgs[0].body, "body now starts: %.60s", m->body.c_str());
  cr_assert_eq(m->meta.body_size, m->body.size());
  auto st = s.stats(error);
  cr_assert_eq(st->messages, 1u);
  cr_assert_eq(st->delivery_items, 3u);
}
