// control_test.cc: the control operation: hold/release, suspend/resume with a time, removal with items, reports and refs.
// Untrusted input: none (the tests write the store themselves).
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "item_helpers.h"
#include "store/codec.h"
#include "store/schema.h"

using namespace store_test;
using store::control_action;
using store::control_request;
using store::control_status;

namespace {

control_request control_one(queue_store& s, control_request r) {
  std::vector<control_request> v{std::move(r)};
  cr_assert(hand_all(
      v, [&](control_request* q) { return s.control(0, q); },
      [&](control_request** out, std::size_t max) { return s.take_controlled(0, out, max); }));
  return std::move(v[0]);
}

control_request on_message(control_action a, base::queue_id id) {
  control_request r;
  r.action = a;
  r.id = id;
  return r;
}

control_request on_hop(control_action a, std::string key, int64_t until = 0, int64_t now = t0) {
  control_request r;
  r.action = a;
  r.hop_key = std::move(key);
  r.until_ms = until;
  r.now_ms = now;
  return r;
}

void reopen(opened_store& o) {
  o.store.close();
  store::store_options opts;
  opts.dir = o.tmp.sub("q");
  opts.map_size = std::size_t{256} << 20;
  std::string error;
  cr_assert(o.store.open(std::move(opts), error), "%s", error.c_str());
}

}  // namespace

Test(store_control, hold_and_release_every_item_of_a_message_and_reopen_keeps_the_flag, .timeout = 60) {
  opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  const base::queue_id id = o.gen.next(), other = o.gen.next();
  auto cat = queue_one(o.store, id, 100, 3, {{"dns:Internet:a.example", {0, 1}, 0}, {"dns:Internet:b.example", {2}, 0}});
  auto cat2 = queue_one(o.store, other, 100, 1, {{"dns:Internet:a.example", {0}, 0}});
  const uint64_t a = cat.items[0].hop_id, b = cat.items[1].hop_id;

  auto held = control_one(o.store, on_message(control_action::hold, id));
  cr_assert_eq(held.result, control_status::ok, "%s", held.error.c_str());
  cr_assert_eq(held.hops.size(), 2u);
  cr_assert_eq(held.recipients, 3u);
  cr_assert(items_of(o.store, a)[id].held && items_of(o.store, b)[id].held);
  cr_assert_not(items_of(o.store, a)[other].held, "another message's item is untouched");

  // An outcome for a held item (an attempt that was on the wire) keeps the flag.
  auto d = deliver_one(o.store, outcome(a, id, {0}));
  cr_assert_eq(d.result, store::deliver_status::ok);
  cr_assert(items_of(o.store, a)[id].held);

  reopen(o);
  std::string error;
  auto items = o.store.items_of(id, error);
  cr_assert(items.has_value(), "%s", error.c_str());
  cr_assert_eq(items->size(), 2u);
  for (const auto& m : *items) cr_assert(m.item.held, "held after reopen on %s", m.hop_key.c_str());

  auto released = control_one(o.store, on_message(control_action::release, id));
  cr_assert_eq(released.result, control_status::ok, "%s", released.error.c_str());
  cr_assert_not(items_of(o.store, a)[id].held);
  cr_assert_not(items_of(o.store, b)[id].held);
  cr_assert_eq(items_of(o.store, a)[id].recipients, (std::vector<uint32_t>{1}), "release changes nothing else");

  cr_assert_eq(control_one(o.store, on_message(control_action::hold, o.gen.next())).result, control_status::not_found);
  (void)cat2;
}

Test(store_control, suspend_with_until_resume_and_a_hop_never_seen, .timeout = 60) {
  opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  const base::queue_id id = o.gen.next();
  auto cat = queue_one(o.store, id, 100, 1, {{"dns:Internet:a.example", {0}, 0}});
  const uint64_t a = cat.items[0].hop_id;

  auto s = control_one(o.store, on_hop(control_action::suspend, "dns:Internet:a.example", t0 + 60'000));
  cr_assert_eq(s.result, control_status::ok, "%s", s.error.c_str());
  cr_assert_eq(s.hop_id, a);
  auto h = hop_of(o.store, a);
  cr_assert_eq(h.status, store::hop_status::suspended);
  cr_assert_eq(h.suspended_until_ms, t0 + 60'000);
  cr_assert_eq(h.items, 1u, "counts stay");
  cr_assert(store::suspended_at(h, t0 + 59'999));
  cr_assert_not(store::suspended_at(h, t0 + 60'000), "a suspension ends at its time");

  // An outcome before the time keeps the suspension; one after it ends it.
  deliver_one(o.store, outcome(a, id, {}, {}, t0 + 1000, t0 + 2000));
  cr_assert_eq(hop_of(o.store, a).status, store::hop_status::suspended);
  deliver_one(o.store, outcome(a, id, {}, {}, t0 + 61'000, t0 + 62'000));
  h = hop_of(o.store, a);
  cr_assert_eq(h.status, store::hop_status::retry);
  cr_assert_eq(h.suspended_until_ms, 0);

  // Suspended until resumed, survives a reopen; resume goes back to what the hop was doing.
  cr_assert_eq(control_one(o.store, on_hop(control_action::suspend, "dns:Internet:a.example")).result, control_status::ok);
  reopen(o);
  h = hop_of(o.store, a);
  cr_assert(h.status == store::hop_status::suspended && h.suspended_until_ms == 0);
  cr_assert(store::suspended_at(h, INT64_MAX));
  auto r = control_one(o.store, on_hop(control_action::resume, "dns:Internet:a.example", 0, t0 + 61'500));
  cr_assert_eq(r.result, control_status::ok, "%s", r.error.c_str());
  cr_assert_eq(hop_of(o.store, a).status, store::hop_status::retry, "its retry at t0+62s is still ahead");

  // A hop nobody has sent to yet: made, suspended, with no items; a categorization then
  // adds to it and the suspension stays.
  auto n = control_one(o.store, on_hop(control_action::suspend, "dns:Internet:new.example"));
  cr_assert_eq(n.result, control_status::ok, "%s", n.error.c_str());
  cr_assert_neq(n.hop_id, 0u);
  h = hop_of(o.store, n.hop_id);
  cr_assert(h.key == "dns:Internet:new.example" && h.items == 0 && h.status == store::hop_status::suspended);
  auto later = queue_one(o.store, o.gen.next(), 10, 1, {{"dns:Internet:new.example", {0}, 0}});
  cr_assert_eq(later.items[0].hop_id, n.hop_id);
  h = hop_of(o.store, n.hop_id);
  cr_assert(h.items == 1 && h.status == store::hop_status::suspended);

  cr_assert_eq(control_one(o.store, on_hop(control_action::resume, "dns:Internet:never.example")).result,
               control_status::not_found);
  cr_assert_eq(control_one(o.store, on_hop(control_action::suspend, "")).result, control_status::failed);
}

Test(store_control, remove_takes_items_reports_and_refs_and_keeps_hop_counts_right, .timeout = 60) {
  opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  const base::queue_id id = o.gen.next(), other = o.gen.next();
  auto cat = queue_one(o.store, id, 5000, 4, {{"dns:Internet:a.example", {0, 1}, 0}, {"dns:Internet:b.example", {2}, 0}},
                       {{3, "5.4.4", "no route"}});
  queue_one(o.store, other, 100, 2, {{"dns:Internet:a.example", {0, 1}, 0}});
  const uint64_t a = cat.items[0].hop_id, b = cat.items[1].hop_id;
  std::string error;
  cr_assert_eq(o.store.references(id, error), 3u);
  cr_assert(o.store.read_reports(id, error).has_value());
  const auto before = stats_of(o.store);

  auto r = control_one(o.store, on_message(control_action::remove, id));
  cr_assert_eq(r.result, control_status::ok, "%s", r.error.c_str());
  cr_assert_eq(r.hops.size(), 2u);
  cr_assert_eq(r.recipients, 3u);
  cr_assert_not(o.store.read_message(id, error).has_value());
  cr_assert(error.empty(), "%s", error.c_str());
  cr_assert_not(o.store.read_reports(id, error).has_value());
  cr_assert_eq(o.store.references(id, error), 0u);
  cr_assert(items_of(o.store, b).empty());
  cr_assert_eq(items_of(o.store, a).count(id), 0u);
  auto ha = hop_of(o.store, a), hb = hop_of(o.store, b);
  cr_assert(ha.items == 1 && ha.recipients == 2, "a keeps the other message: %llu items %llu recipients",
            static_cast<unsigned long long>(ha.items), static_cast<unsigned long long>(ha.recipients));
  cr_assert(hb.items == 0 && hb.recipients == 0 && hb.oldest_ms == 0);
  const auto after = stats_of(o.store);
  cr_assert_eq(after.messages, before.messages - 1);
  cr_assert_eq(after.recipients, before.recipients - 4);
  cr_assert_eq(after.delivery_items, before.delivery_items - 2);
  cr_assert_eq(after.failed_messages, before.failed_messages - 1);
  cr_assert_eq(after.body_chunks, 1u, "the other message's single chunk is all that is left");
  // The other message is whole.
  cr_assert(o.store.read_message(other, error).has_value());
  cr_assert_eq(o.store.references(other, error), 1u);

  cr_assert_eq(control_one(o.store, on_message(control_action::remove, id)).result, control_status::not_found,
               "a second removal finds nothing");
  // A message not categorized yet leaves the submission queue too.
  const base::queue_id fresh = o.gen.next();
  std::vector<store::submit_request> msgs{make_request(fresh, 100, 1)};
  cr_assert(submit_all(o.store, 0, msgs));
  cr_assert_eq(control_one(o.store, on_message(control_action::remove, fresh)).result, control_status::ok);
  cr_assert_eq(stats_of(o.store).submission_queued, 0u);
  cr_assert_not(o.store.read_message(fresh, error).has_value());
}

Test(store_control, records_an_older_sluice_wrote_decode_as_not_held_and_not_suspended_until) {
  std::string error;
  store::delivery_item_record item{store::item_state::deferred, 2, 10, 20, {1, 4}, "451 later", 15, true, true};
  std::string enc = store::encode_item(item);
  store::delivery_item_record back;
  cr_assert(store::decode_item(enc, back, error), "%s", error.c_str());
  cr_assert(back.held && back.delay_reported);
  std::string v3 = enc.substr(0, enc.size() - 1);
  v3[0] = 3;
  cr_assert(store::decode_item(v3, back, error), "%s", error.c_str());
  cr_assert_not(back.held, "a version 3 item is not held");
  cr_assert(back.delay_reported);
  enc.back() = 2;
  cr_assert_not(store::decode_item(enc, back, error), "a held byte other than 0 or 1 is refused");

  store::hop_record h{"dns:Internet:a.example", store::hop_status::suspended, 1, 2, 3, 4, "x", 99};
  std::string hb = store::encode_hop(h);
  store::hop_record hback;
  cr_assert(store::decode_hop(hb, hback, error), "%s", error.c_str());
  cr_assert_eq(hback.suspended_until_ms, 99);
  std::string v1 = hb.substr(0, hb.size() - 8);
  v1[0] = 1;
  cr_assert(store::decode_hop(v1, hback, error), "%s", error.c_str());
  cr_assert(hback.status == store::hop_status::suspended && hback.suspended_until_ms == 0 && hback.last_error == "x");
  cr_assert_not(store::decode_hop(hb.substr(0, hb.size() - 1), hback, error));
}

Test(store_control, bounce_rules_are_kept_listed_and_cancelled, .timeout = 60) {
  opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  std::string error;
  queue_one(o.store, o.gen.next(), 10, 1, {{"dns:Internet:a.example", {0}, 0}});  // meta has its counters
  cr_assert(o.store.bounce_rules(error)->empty());
  cr_assert_eq(control_one(o.store, on_hop(control_action::bounce, "b.example", t0 + 5000)).result, control_status::ok);
  cr_assert_eq(control_one(o.store, on_hop(control_action::bounce, "a.example", t0 + 9000)).result, control_status::ok);
  cr_assert_eq(control_one(o.store, on_hop(control_action::bounce, "a.example", t0 + 7000)).result, control_status::ok,
               "a second rule for a domain replaces the first");
  reopen(o);
  auto rules = o.store.bounce_rules(error);
  cr_assert(rules.has_value(), "%s", error.c_str());
  cr_assert_eq(rules->size(), 2u);
  cr_assert((*rules)[0].first == "a.example" && (*rules)[0].second == t0 + 7000);
  cr_assert((*rules)[1].first == "b.example" && (*rules)[1].second == t0 + 5000);
  cr_assert_eq(stats_of(o.store).messages, 1u, "the counters beside the rules are untouched");
  cr_assert_eq(control_one(o.store, on_hop(control_action::unbounce, "a.example")).result, control_status::ok);
  cr_assert_eq(control_one(o.store, on_hop(control_action::unbounce, "a.example")).result, control_status::not_found);
  rules = o.store.bounce_rules(error);
  cr_assert(rules->size() == 1 && (*rules)[0].first == "b.example");
  cr_assert_eq(control_one(o.store, on_hop(control_action::bounce, "")).result, control_status::failed);
}
