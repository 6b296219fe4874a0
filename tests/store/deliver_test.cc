// deliver_test.cc: the deliver transaction: items shrink and go, failed lists grow, refs and hop records follow.
// Untrusted input: none (the tests write the store themselves).
#include <criterion/criterion.h>
#include <lmdb.h>

#include <map>
#include <string>
#include <vector>

#include "store/codec.h"
#include "store/schema.h"
#include "store/store.h"
#include "item_helpers.h"
#include "store_fixture.h"

using namespace sluice;
using store::categorize_request;
using store::categorize_status;
using store::deliver_request;
using store::deliver_status;
using store::queue_store;
using store_test::categorize_all;
using store_test::deliver_all;
using store_test::make_request;
using store_test::submit_all;
using store_test::deliver_one;
using store_test::hop_of;
using store_test::items_of;
using store_test::outcome;
using store_test::put_raw;
using store_test::queue_one;
using store_test::refusal;
using store_test::stats_of;
using store_test::t0;

Test(store_deliver, all_delivered_removes_item_message_and_body, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  const base::queue_id id = gen.next();
  auto cat = queue_one(s, id, 5000, 3, {{"smarthost:Outbound", {0, 1, 2}, 0}});
  const uint64_t hop = cat.items[0].hop_id;
  auto before = stats_of(s);
  cr_assert_eq(before.messages, 1u);
  cr_assert_eq(before.body_chunks, 3u);
  cr_assert_eq(before.recipients, 3u);

  auto r = deliver_one(s, outcome(hop, id, {0, 1, 2}));
  cr_assert_eq(r.result, deliver_status::ok, "%s", r.error.c_str());
  cr_assert_eq(r.remaining, 0u);
  cr_assert(r.message_removed);
  auto st = stats_of(s);
  cr_assert_eq(st.messages, 0u);
  cr_assert_eq(st.body_chunks, 0u, "the body goes with the message");
  cr_assert_eq(st.delivery_items, 0u);
  cr_assert_eq(st.recipients, 0u);
  cr_assert_eq(st.failed_messages, 0u);
  std::string error;
  cr_assert_not(s.read_message(id, error).has_value());
  cr_assert(error.empty(), "%s", error.c_str());
  cr_assert_eq(s.references(id, error), 0u);
  auto h = hop_of(s, hop);
  cr_assert_eq(h.items, 0u);
  cr_assert_eq(h.recipients, 0u);
  cr_assert_eq(h.oldest_ms, 0);
  cr_assert_eq(h.next_retry_ms, 0);
  cr_assert_eq(h.status, store::hop_status::ready);

  // The item is gone: a second outcome for it is a harmless duplicate.
  auto again = deliver_one(s, outcome(hop, id, {0, 1, 2}));
  cr_assert_eq(again.result, deliver_status::not_found);
  cr_assert_not(again.message_removed);
  cr_assert_eq(stats_of(s).delivery_queues, 1u);
}

Test(store_deliver, partial_outcome_keeps_deferred_recipients_and_records_failures, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  const base::queue_id id = gen.next();
  auto cat = queue_one(s, id, 3000, 5, {{"dns:Internet:example.com", {0, 1, 2, 3, 4}, 0}});
  const uint64_t hop = cat.items[0].hop_id;
  std::string error;
  cr_assert_eq(s.references(id, error), 1u);

  // 0 delivered, 2 refused for good, 9 not in the item (ignored), 1, 3, 4 deferred.
  auto r = deliver_one(s, outcome(hop, id, {0}, {refusal(2), refusal(9)}, t0, t0 + 300'000));
  cr_assert_eq(r.result, deliver_status::ok, "%s", r.error.c_str());
  cr_assert_eq(r.remaining, 3u);
  cr_assert_not(r.message_removed);
  auto items = items_of(s, hop);
  cr_assert_eq(items.size(), 1u);
  const auto& item = items.at(id);
  cr_assert(item.recipients == (std::vector<uint32_t>{1, 3, 4}));
  cr_assert_eq(item.state, store::item_state::deferred);
  cr_assert_eq(item.attempts, 1u);
  cr_assert_eq(item.next_attempt_ms, t0 + 300'000);
  cr_assert_eq(item.last_attempt_ms, t0);
  cr_assert(item.last_error == "451 4.4.1 mx.example[192.0.2.1]: connection refused");
  auto failed = s.read_reports(id, error);
  cr_assert(failed.has_value(), "%s", error.c_str());
  cr_assert_eq(failed->size(), 1u, "index 9 is not in the item");
  const auto& f = (*failed)[0];
  cr_assert_eq(f.recipient, 2u);
  cr_assert(f.status == "5.1.1" && f.reason == "no such user");
  cr_assert(f.remote_mta == "mx.example[192.0.2.1]");
  cr_assert(f.diagnostic == "550 5.1.1 <rcpt2@example.com>: no such user");
  cr_assert_eq(f.at_ms, t0, "an entry without a time gets the attempt's");
  cr_assert_eq(s.references(id, error), 2u, "the item and the new failed list");
  auto h = hop_of(s, hop);
  cr_assert_eq(h.items, 1u);
  cr_assert_eq(h.recipients, 3u);
  cr_assert_eq(h.status, store::hop_status::retry);
  cr_assert_eq(h.next_retry_ms, t0 + 300'000);
  cr_assert(h.last_error == "451 4.4.1 mx.example[192.0.2.1]: connection refused");
  cr_assert_eq(stats_of(s).messages, 1u);

  // Second attempt: 1 and 3 delivered, 4 refused. The item goes; the failed list keeps
  // the message and its body for the DSN generator.
  auto second = deliver_one(s, outcome(hop, id, {1, 3}, {refusal(4, t0 + 1)}, t0 + 400'000));
  cr_assert_eq(second.result, deliver_status::ok, "%s", second.error.c_str());
  cr_assert_eq(second.remaining, 0u);
  cr_assert_not(second.message_removed);
  cr_assert(items_of(s, hop).empty());
  failed = s.read_reports(id, error);
  cr_assert_eq(failed->size(), 2u);
  cr_assert_eq((*failed)[1].recipient, 4u);
  cr_assert_eq((*failed)[1].at_ms, t0 + 1, "a time given is kept");
  cr_assert_eq(s.references(id, error), 1u, "only the failed list is left");
  auto m = s.read_message(id, error);
  cr_assert(m.has_value(), "the body stays while the failed list refers to it");
  cr_assert_eq(m->body.size(), 3000u);
  h = hop_of(s, hop);
  cr_assert_eq(h.items, 0u);
  cr_assert_eq(h.recipients, 0u);
  cr_assert_eq(h.next_retry_ms, 0);
  cr_assert_eq(h.status, store::hop_status::ready);
  cr_assert(h.last_error.empty());
  auto st = stats_of(s);
  cr_assert_eq(st.messages, 1u);
  cr_assert_eq(st.recipients, 5u, "the message is still stored whole");
}

Test(store_deliver, failures_join_the_categorizers_failed_list_without_a_new_reference, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  const base::queue_id id = gen.next();
  auto cat = queue_one(s, id, 100, 3, {{"smarthost:Outbound", {0, 1}, 0}}, {{2, "5.4.4", "no route"}});
  const uint64_t hop = cat.items[0].hop_id;
  std::string error;
  cr_assert_eq(s.references(id, error), 2u);
  auto r = deliver_one(s, outcome(hop, id, {0}, {refusal(1)}));
  cr_assert_eq(r.result, deliver_status::ok, "%s", r.error.c_str());
  cr_assert_not(r.message_removed);
  auto failed = s.read_reports(id, error);
  cr_assert_eq(failed->size(), 2u);
  cr_assert_eq((*failed)[0].recipient, 2u);
  cr_assert((*failed)[0].reason == "no route");
  cr_assert((*failed)[0].remote_mta.empty());
  cr_assert_eq((*failed)[1].recipient, 1u);
  cr_assert_eq(s.references(id, error), 1u, "item gone (-1), list already counted (+0)");
  cr_assert_eq(stats_of(s).messages, 1u);
}

Test(store_deliver, message_of_two_hops_stays_until_both_items_are_gone, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  const base::queue_id id = gen.next();
  auto cat = queue_one(s, id, 4500, 2, {{"smarthost:A", {0}, 0}, {"smarthost:B", {1}, 0}});
  const uint64_t a = cat.items[0].hop_id, b = cat.items[1].hop_id;
  cr_assert_neq(a, b);
  auto first = deliver_one(s, outcome(a, id, {0}));
  cr_assert_eq(first.result, deliver_status::ok, "%s", first.error.c_str());
  cr_assert_not(first.message_removed);
  std::string error;
  cr_assert_eq(s.references(id, error), 1u);
  auto m = s.read_message(id, error);
  cr_assert(m.has_value() && m->body.size() == 4500u);
  cr_assert_eq(hop_of(s, a).items, 0u);
  cr_assert_eq(hop_of(s, b).items, 1u);
  // Delivering B's recipient to A changes nothing: it is not in A's item any more.
  auto wrong = deliver_one(s, outcome(a, id, {1}));
  cr_assert_eq(wrong.result, deliver_status::not_found);
  cr_assert_eq(hop_of(s, b).recipients, 1u);

  auto second = deliver_one(s, outcome(b, id, {1}));
  cr_assert_eq(second.result, deliver_status::ok, "%s", second.error.c_str());
  cr_assert(second.message_removed);
  auto st = stats_of(s);
  cr_assert_eq(st.messages, 0u);
  cr_assert_eq(st.body_chunks, 0u);
  cr_assert_eq(st.recipients, 0u);
  cr_assert_eq(st.delivery_items, 0u);
}

Test(store_deliver, duplicate_outcomes_in_one_batch_apply_once, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  const base::queue_id id = gen.next();
  auto cat = queue_one(s, id, 100, 2, {{"smarthost:Outbound", {0, 1}, 0}});
  const uint64_t hop = cat.items[0].hop_id;
  std::vector<deliver_request> reqs{outcome(hop, id, {0, 1}), outcome(hop, id, {0, 1})};
  cr_assert(deliver_all(s, 0, reqs));
  cr_assert_eq(reqs[0].result, deliver_status::ok, "%s", reqs[0].error.c_str());
  cr_assert_eq(reqs[1].result, deliver_status::not_found);
  auto h = hop_of(s, hop);
  cr_assert_eq(h.items, 0u, "counted down once");
  cr_assert_eq(stats_of(s).messages, 0u);
}

Test(store_deliver, hop_next_retry_and_last_error_follow_the_attempts, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  const base::queue_id x = gen.next(), y = gen.next();
  auto cx = queue_one(s, x, 10, 2, {{"dns:Internet:example.net", {0, 1}, 0}});
  auto cy = queue_one(s, y, 10, 1, {{"dns:Internet:example.net", {0}, 0}});
  const uint64_t hop = cx.items[0].hop_id;
  cr_assert_eq(cy.items[0].hop_id, hop);
  cr_assert_eq(hop_of(s, hop).items, 2u);
  cr_assert_eq(hop_of(s, hop).recipients, 3u);

  cr_assert_eq(deliver_one(s, outcome(hop, x, {}, {}, t0, t0 + 600'000, "451 first")).result, deliver_status::ok);
  auto h = hop_of(s, hop);
  cr_assert_eq(h.next_retry_ms, t0 + 600'000);
  cr_assert_eq(h.status, store::hop_status::retry);
  cr_assert(h.last_error == "451 first");
  cr_assert_eq(h.recipients, 3u, "nothing left the hop");
  // An earlier retry wins.
  cr_assert_eq(deliver_one(s, outcome(hop, y, {}, {}, t0 + 1, t0 + 300'000, "451 second")).result, deliver_status::ok);
  h = hop_of(s, hop);
  cr_assert_eq(h.next_retry_ms, t0 + 300'000);
  cr_assert(h.last_error == "451 second");
  // A later one does not replace a pending earlier one...
  cr_assert_eq(deliver_one(s, outcome(hop, x, {}, {}, t0 + 2, t0 + 900'000, "451 third")).result, deliver_status::ok);
  cr_assert_eq(hop_of(s, hop).next_retry_ms, t0 + 300'000);
  // ...but does replace one that has passed.
  cr_assert_eq(deliver_one(s, outcome(hop, y, {}, {}, t0 + 300'001, t0 + 1'200'000)).result, deliver_status::ok);
  cr_assert_eq(hop_of(s, hop).next_retry_ms, t0 + 1'200'000);
  auto items = items_of(s, hop);
  cr_assert_eq(items.at(x).attempts, 2u);
  cr_assert_eq(items.at(x).next_attempt_ms, t0 + 900'000);
  cr_assert_eq(items.at(y).attempts, 2u);
  cr_assert_eq(items.at(y).next_attempt_ms, t0 + 1'200'000);

  // x delivered: one item left, its retry still pending.
  auto dx = deliver_one(s, outcome(hop, x, {0, 1}, {}, t0 + 400'000));
  cr_assert(dx.message_removed);
  h = hop_of(s, hop);
  cr_assert_eq(h.items, 1u);
  cr_assert_eq(h.recipients, 1u);
  cr_assert_eq(h.status, store::hop_status::retry);
  cr_assert_eq(h.next_retry_ms, t0 + 1'200'000);
  // y delivered: the hop is empty and idle.
  auto dy = deliver_one(s, outcome(hop, y, {0}, {}, t0 + 1'200'000));
  cr_assert(dy.message_removed);
  h = hop_of(s, hop);
  cr_assert_eq(h.items, 0u);
  cr_assert_eq(h.recipients, 0u);
  cr_assert_eq(h.oldest_ms, 0);
  cr_assert_eq(h.next_retry_ms, 0);
  cr_assert_eq(h.status, store::hop_status::ready);
  cr_assert(h.last_error.empty());
}

Test(store_deliver, a_full_store_still_records_deliveries_and_frees_space, .timeout = 120) {
  store_test::opened_store o(std::size_t{2} << 20);  // 512 pages, 32 reserved
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  std::vector<std::pair<uint64_t, base::queue_id>> queued;
  bool full = false;
  for (int round = 0; round < 200 && !full; ++round) {
    std::vector<store::submit_request> batch;
    for (int i = 0; i < 10; ++i) batch.push_back(make_request(gen.next(), 4000, 2));
    cr_assert(submit_all(s, 0, batch));
    std::vector<categorize_request> cats;
    for (auto& m : batch) {
      if (m.result == store::submit_status::storage_full) {
        full = true;
        continue;
      }
      cr_assert_eq(m.result, store::submit_status::ok, "%s", m.error.c_str());
      categorize_request c;
      c.id = m.id;
      c.received_at_ms = m.received_at_ms;
      c.items.push_back({"smarthost:Outbound", {0, 1}, 0});
      cats.push_back(std::move(c));
    }
    cr_assert(categorize_all(s, 0, cats));
    for (auto& c : cats) {
      cr_assert_eq(c.result, categorize_status::ok, "%s", c.error.c_str());
      queued.emplace_back(c.items[0].hop_id, c.id);
    }
  }
  cr_assert(full, "a 2 MiB map must fill up");
  cr_assert_gt(queued.size(), 20u);
  // A deferral rewrites the item (it needs pages too); deliveries free them. The oldest
  // three quarters go: bodies are packed two chunks a page across messages, so only
  // neighbours removed together free whole pages.
  std::vector<deliver_request> outcomes;
  for (std::size_t i = 0; i < queued.size(); ++i)
    outcomes.push_back(i < queued.size() - queued.size() / 4 ? outcome(queued[i].first, queued[i].second, {0, 1})
                                                             : outcome(queued[i].first, queued[i].second, {0}));
  cr_assert(deliver_all(s, 0, outcomes));
  for (auto& r : outcomes) cr_assert_eq(r.result, deliver_status::ok, "%s", r.error.c_str());
  auto st = stats_of(s);
  cr_assert_eq(st.messages, queued.size() / 4);
  std::vector<store::submit_request> after;
  for (int i = 0; i < 10; ++i) after.push_back(make_request(gen.next(), 4000, 2));
  cr_assert(submit_all(s, 0, after));
  for (auto& m : after) cr_assert_eq(m.result, store::submit_status::ok, "freed space takes mail again: %s", m.error.c_str());
}

// ---- records written by an earlier version ----

namespace {

std::string item_v1(const std::vector<uint32_t>& rcpts, uint32_t attempts) {
  store::binary_writer w;
  w.u8(1);
  w.u8(static_cast<uint8_t>(store::item_state::queued));
  w.u32(attempts);
  w.u64(1000);  // received_at
  w.u64(2000);  // next_attempt
  w.u32(static_cast<uint32_t>(rcpts.size()));
  for (uint32_t r : rcpts) w.u32(r);
  return w.take();
}

std::string failed_v1(uint32_t idx, const std::string& status, const std::string& reason) {
  store::binary_writer w;
  w.u8(1);
  w.u32(1);
  w.u32(idx);
  w.str(status);
  w.str(reason);
  return w.take();
}

}  // namespace

Test(store_record_versions, version_1_item_and_failed_records_decode) {
  std::string error;
  store::delivery_item_record item;
  item.last_error = "stale";
  item.last_attempt_ms = 7;
  cr_assert(store::decode_item(item_v1({3, 5}, 2), item, error), "%s", error.c_str());
  cr_assert(item.recipients == (std::vector<uint32_t>{3, 5}));
  cr_assert_eq(item.attempts, 2u);
  cr_assert_eq(item.received_at_ms, 1000);
  cr_assert_eq(item.next_attempt_ms, 2000);
  cr_assert(item.last_error.empty(), "fields a v1 record lacks are reset");
  cr_assert_eq(item.last_attempt_ms, 0);
  cr_assert_not(store::decode_item(item_v1({3}, 0) + "x", item, error));
  std::string future = store::encode_item(item);
  future[0] = 5;
  cr_assert_not(store::decode_item(future, item, error), "a future version is refused");

  std::vector<store::report_entry> f;
  cr_assert(store::decode_reports(failed_v1(4, "5.1.1", "unknown recipient"), f, error), "%s", error.c_str());
  cr_assert_eq(f.size(), 1u);
  cr_assert(f[0].recipient == 4 && f[0].status == "5.1.1" && f[0].reason == "unknown recipient");
  cr_assert(f[0].remote_mta.empty() && f[0].diagnostic.empty() && f[0].at_ms == 0);
  cr_assert_not(store::decode_reports(failed_v1(4, "5.1.1", "x").substr(0, 10), f, error));

  // The current version round-trips the new fields.
  store::delivery_item_record d{store::item_state::deferred, 3, 10, 20, {1}, "451 later", 15};
  store::delivery_item_record back;
  cr_assert(store::decode_item(store::encode_item(d), back, error));
  cr_assert(back.last_error == "451 later" && back.last_attempt_ms == 15 && back.attempts == 3);
  std::vector<store::report_entry> list{refusal(6, 99)};
  cr_assert(store::decode_reports(store::encode_reports(list), f, error));
  cr_assert(f.size() == 1 && f[0].remote_mta == "mx.example[192.0.2.1]" && f[0].at_ms == 99 &&
            f[0].diagnostic == "550 5.1.1 <rcpt6@example.com>: no such user");
}

Test(store_record_versions, deliver_works_on_records_an_older_sluice_wrote, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  const std::string dir = o.tmp.sub("q");
  const base::queue_id id = o.gen.next();
  uint64_t hop = 0;
  {
    queue_store& s = o.store;
    hop = queue_one(s, id, 100, 3, {{"smarthost:Outbound", {0, 1}, 0}}, {{2, "5.4.4", "no route"}}).items[0].hop_id;
  }
  o.store.close();
  auto dk = store::schema::make_delivery_key(hop, id);
  auto idk = store::schema::make_id_key(id);
  put_raw(dir, "delivery", std::string(dk.begin(), dk.end()), item_v1({0, 1}, 4));
  put_raw(dir, "reports", std::string(idk.begin(), idk.end()), failed_v1(2, "5.4.4", "no route"));

  queue_store s;
  store::store_options opts;
  opts.dir = dir;
  std::string error;
  cr_assert(s.open(std::move(opts), error), "%s", error.c_str());
  auto r = deliver_one(s, outcome(hop, id, {}, {refusal(0)}, t0, t0 + 60'000, "452 4.2.2 full"));
  cr_assert_eq(r.result, deliver_status::ok, "%s", r.error.c_str());
  cr_assert_eq(r.remaining, 1u);
  auto items = items_of(s, hop);
  const auto& item = items.at(id);
  cr_assert_eq(item.attempts, 5u, "the old record's attempts carry on");
  cr_assert(item.recipients == (std::vector<uint32_t>{1}));
  cr_assert(item.last_error == "452 4.2.2 full", "rewritten in the new version");
  auto failed = s.read_reports(id, error);
  cr_assert(failed.has_value(), "%s", error.c_str());
  cr_assert_eq(failed->size(), 2u);
  cr_assert((*failed)[0].reason == "no route", "the old entry survives the rewrite");
  cr_assert((*failed)[1].remote_mta == "mx.example[192.0.2.1]");
}
