// reroute_test.cc: the reroute transaction: an item's recipients move to other hops or fail; refs and hop records follow.
// Untrusted input: none (the tests write the store themselves).
#include <criterion/criterion.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "item_helpers.h"
#include "store/store.h"
#include "store_fixture.h"

using namespace sluice;
using store::deliver_request;
using store::deliver_status;
using store::queue_store;
using store::reroute_request;
using store::reroute_status;
using store_test::deliver_one;
using store_test::hop_of;
using store_test::items_of;
using store_test::outcome;
using store_test::queue_one;
using store_test::refusal;
using store_test::stats_of;
using store_test::t0;

namespace {

reroute_request reroute_of(uint64_t hop, base::queue_id id, std::vector<store::delivery_item_spec> items,
                     std::vector<store::report_entry> failed = {}, int64_t now = t0 + 1'000) {
  reroute_request r;
  r.id = id;
  r.hop_id = hop;
  r.items = std::move(items);
  r.failed = std::move(failed);
  r.now_ms = now;
  return r;
}

reroute_request reroute_one(queue_store& s, reroute_request r) {
  std::vector<reroute_request> v{std::move(r)};
  cr_assert(store_test::hand_all(
      v, [&](reroute_request* q) { return s.reroute(0, q); },
      [&](reroute_request** out, std::size_t max) { return s.take_rerouted(0, out, max); }));
  return std::move(v[0]);
}

uint32_t refs_of(const queue_store& s, base::queue_id id) {
  std::string error;
  const uint32_t n = s.references(id, error);
  cr_assert(error.empty(), "%s", error.c_str());
  return n;
}

}  // namespace

Test(store_reroute, all_recipients_move_to_a_new_hop, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  const base::queue_id id = o.gen.next();
  auto cat = queue_one(s, id, 5000, 3, {{"smarthost:Old", {0, 1, 2}, 0}});
  const uint64_t old_hop = cat.items[0].hop_id;
  // One failed attempt first, so there are attempts, a last error and a retry to carry or clear.
  auto deferred = deliver_one(s, outcome(old_hop, id, {}, {}, t0, t0 + 300'000, "451 4.4.1 old: refused"));
  cr_assert_eq(deferred.result, deliver_status::ok, "%s", deferred.error.c_str());
  cr_assert_eq(hop_of(s, old_hop).next_retry_ms, t0 + 300'000);

  auto r = reroute_one(s, reroute_of(old_hop, id, {{"smarthost:New", {0, 1, 2}, 0}}));
  cr_assert_eq(r.result, reroute_status::ok, "%s", r.error.c_str());
  const uint64_t new_hop = r.items[0].hop_id;
  cr_assert_neq(new_hop, 0u, "the hop id is set on ok");
  cr_assert_neq(new_hop, old_hop, "a new key gets a new hop");
  cr_assert_not(r.message_removed);

  auto oh = hop_of(s, old_hop);
  cr_assert_eq(oh.items, 0u);
  cr_assert_eq(oh.recipients, 0u);
  cr_assert_eq(oh.oldest_ms, 0);
  cr_assert_eq(oh.next_retry_ms, 0);
  cr_assert(oh.last_error.empty());
  cr_assert(items_of(s, old_hop).empty());
  auto nh = hop_of(s, new_hop);
  cr_assert(nh.key == "smarthost:New");
  cr_assert_eq(nh.items, 1u);
  cr_assert_eq(nh.recipients, 3u);
  cr_assert_eq(nh.oldest_ms, cat.received_at_ms);

  auto items = items_of(s, new_hop);
  cr_assert_eq(items.size(), 1u);
  const auto& item = items.at(id);
  cr_assert(item.recipients == (std::vector<uint32_t>{0, 1, 2}));
  cr_assert_eq(item.state, store::item_state::queued);
  cr_assert_eq(item.attempts, 1u, "attempts carry over");
  cr_assert_eq(item.next_attempt_ms, 0, "due at once on its new hop");
  cr_assert_eq(item.received_at_ms, cat.received_at_ms);
  cr_assert(item.last_error == "451 4.4.1 old: refused");
  cr_assert_eq(refs_of(s, id), 1u, "one item before, one after");
  auto st = stats_of(s);
  cr_assert_eq(st.delivery_items, 1u);
  cr_assert_eq(st.delivery_queues, 2u);
  cr_assert_eq(st.recipients, 3u);

  // The moved item is the message's only reference: delivering it removes message and body.
  auto done = deliver_one(s, outcome(new_hop, id, {0, 1, 2}));
  cr_assert_eq(done.result, deliver_status::ok, "%s", done.error.c_str());
  cr_assert(done.message_removed);
  st = stats_of(s);
  cr_assert_eq(st.messages, 0u);
  cr_assert_eq(st.body_chunks, 0u);
}

Test(store_reroute, an_item_splits_across_its_old_hop_and_a_new_one, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  const base::queue_id id = o.gen.next();
  auto cat = queue_one(s, id, 100, 4, {{"smarthost:A", {0, 1, 2, 3}, 0}});
  const uint64_t a = cat.items[0].hop_id;

  // 7 is not in the item: ignored. 1 is named twice: it goes where it is named first.
  auto r = reroute_one(s, reroute_of(a, id, {{"smarthost:A", {0, 3}, 0}, {"smarthost:B", {1, 2, 7}, 0},
                                       {"smarthost:C", {1}, 0}}));
  cr_assert_eq(r.result, reroute_status::ok, "%s", r.error.c_str());
  cr_assert_eq(r.items[0].hop_id, a, "the old key keeps its hop");
  const uint64_t b = r.items[1].hop_id;
  cr_assert_neq(b, 0u);
  cr_assert_neq(b, a);
  cr_assert_eq(r.items[2].hop_id, 0u, "a spec left with nobody creates nothing");

  cr_assert((items_of(s, a).at(id).recipients == std::vector<uint32_t>{0, 3}));
  cr_assert((items_of(s, b).at(id).recipients == std::vector<uint32_t>{1, 2}));
  auto ha = hop_of(s, a), hb = hop_of(s, b);
  cr_assert_eq(ha.items, 1u, "the new record replaces the old one");
  cr_assert_eq(ha.recipients, 2u);
  cr_assert_eq(ha.oldest_ms, cat.received_at_ms);
  cr_assert_eq(hb.items, 1u);
  cr_assert_eq(hb.recipients, 2u);
  cr_assert_eq(refs_of(s, id), 2u);
  auto st = stats_of(s);
  cr_assert_eq(st.delivery_items, 2u);
  cr_assert_eq(st.delivery_queues, 2u, "no hop for smarthost:C");
  cr_assert_eq(st.recipients, 4u);

  cr_assert(deliver_one(s, outcome(a, id, {0, 3})).result == deliver_status::ok);
  cr_assert_eq(stats_of(s).messages, 1u, "B's item still refers to it");
  cr_assert(deliver_one(s, outcome(b, id, {1, 2})).message_removed);
}

// Recipients the request names nowhere stay on the old hop, so a partial request loses no mail.
Test(store_reroute, recipients_named_nowhere_stay_on_the_old_hop, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  const base::queue_id id = o.gen.next();
  const uint64_t a = queue_one(s, id, 100, 3, {{"smarthost:A", {0, 1, 2}, 0}}).items[0].hop_id;
  cr_assert(deliver_one(s, outcome(a, id, {}, {}, t0, t0 + 60'000)).result == deliver_status::ok);

  auto r = reroute_one(s, reroute_of(a, id, {{"smarthost:B", {1}, 0}}));
  cr_assert_eq(r.result, reroute_status::ok, "%s", r.error.c_str());
  const auto kept = items_of(s, a).at(id);
  cr_assert((kept.recipients == std::vector<uint32_t>{0, 2}));
  cr_assert_eq(kept.state, store::item_state::queued);
  cr_assert_eq(kept.attempts, 1u);
  auto ha = hop_of(s, a);
  cr_assert_eq(ha.items, 1u);
  cr_assert_eq(ha.recipients, 2u);
  cr_assert_eq(hop_of(s, r.items[0].hop_id).recipients, 1u);
  cr_assert_eq(refs_of(s, id), 2u);
}

Test(store_reroute, failed_recipients_create_the_failed_list_and_a_reference, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  const base::queue_id id = o.gen.next();
  auto cat = queue_one(s, id, 3000, 3, {{"smarthost:A", {0, 1, 2}, 0}});
  const uint64_t a = cat.items[0].hop_id;

  // 5 is not in the item: ignored.
  auto r = reroute_one(s, reroute_of(a, id, {{"smarthost:B", {0}, 0}}, {refusal(1), refusal(2, t0 + 7), refusal(5)},
                               t0 + 1'000));
  cr_assert_eq(r.result, reroute_status::ok, "%s", r.error.c_str());
  const uint64_t b = r.items[0].hop_id;
  std::string error;
  auto failed = s.read_reports(id, error);
  cr_assert(failed.has_value(), "%s", error.c_str());
  cr_assert_eq(failed->size(), 2u);
  cr_assert_eq((*failed)[0].recipient, 1u);
  cr_assert_eq((*failed)[0].at_ms, t0 + 1'000, "an entry without a time gets the request's");
  cr_assert_eq((*failed)[1].recipient, 2u);
  cr_assert_eq((*failed)[1].at_ms, t0 + 7);
  cr_assert_eq(refs_of(s, id), 2u, "B's item and the new failed list");
  cr_assert_eq(hop_of(s, b).recipients, 1u);
  cr_assert_eq(hop_of(s, a).recipients, 0u);
  cr_assert_eq(stats_of(s).failed_messages, 1u);

  // Delivering B's item leaves the failed list's reference: message and body stay for the DSN.
  auto d = deliver_one(s, outcome(b, id, {0}));
  cr_assert_eq(d.result, deliver_status::ok, "%s", d.error.c_str());
  cr_assert_not(d.message_removed);
  cr_assert_eq(refs_of(s, id), 1u);
  auto m = s.read_message(id, error);
  cr_assert(m.has_value() && m->body.size() == 3000u, "%s", error.c_str());
}

Test(store_reroute, failures_join_an_existing_failed_list_without_a_new_reference, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  const base::queue_id id = o.gen.next();
  auto cat = queue_one(s, id, 100, 3, {{"smarthost:A", {0, 1}, 0}}, {{2, "5.4.4", "no route"}});
  const uint64_t a = cat.items[0].hop_id;
  cr_assert_eq(refs_of(s, id), 2u);
  // Everything that was left fails: the old item's reference goes, the list keeps the message.
  auto r = reroute_one(s, reroute_of(a, id, {}, {refusal(0), refusal(1)}));
  cr_assert_eq(r.result, reroute_status::ok, "%s", r.error.c_str());
  cr_assert_not(r.message_removed);
  cr_assert_eq(refs_of(s, id), 1u);
  std::string error;
  cr_assert_eq(s.read_reports(id, error)->size(), 3u);
  auto st = stats_of(s);
  cr_assert_eq(st.messages, 1u);
  cr_assert_eq(st.delivery_items, 0u);
  cr_assert_eq(hop_of(s, a).items, 0u);
}

Test(store_reroute, a_missing_item_writes_nothing, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  const base::queue_id id = o.gen.next();
  auto cat = queue_one(s, id, 100, 2, {{"smarthost:A", {0, 1}, 0}});
  const uint64_t a = cat.items[0].hop_id;
  const auto before = stats_of(s);

  auto wrong = reroute_one(s, reroute_of(a + 1, id, {{"smarthost:New", {0, 1}, 0}}, {refusal(0)}));
  cr_assert_eq(wrong.result, reroute_status::not_found);
  cr_assert_eq(wrong.items[0].hop_id, 0u);
  auto st = stats_of(s);
  cr_assert_eq(st.delivery_queues, before.delivery_queues, "no hop created for the key");
  cr_assert_eq(st.delivery_items, before.delivery_items);
  cr_assert_eq(st.failed_messages, 0u);
  cr_assert_eq(refs_of(s, id), 1u);
  cr_assert_eq(hop_of(s, a).items, 1u);

  // Once moved, the old item is gone: the same request again is a harmless duplicate.
  auto first = reroute_one(s, reroute_of(a, id, {{"smarthost:B", {0, 1}, 0}}));
  cr_assert_eq(first.result, reroute_status::ok, "%s", first.error.c_str());
  auto again = reroute_one(s, reroute_of(a, id, {{"smarthost:B", {0, 1}, 0}}));
  cr_assert_eq(again.result, reroute_status::not_found);
  cr_assert_eq(hop_of(s, first.items[0].hop_id).items, 1u, "counted once");
  cr_assert_eq(refs_of(s, id), 1u);
}

namespace {

// A store whose writer can be held between two commits: it calls notify after each commit
// and before it collects again, so requests posted while it is held there all go into the
// next transaction. The writer hands out a commit's replies before it notifies, so a test
// that needs to know which commit held a request asks `on_commit`, which runs on the
// writer thread at each notify (after the commit's results were set, before the gate).
struct gated_store {
  gated_store() {
    store::store_options opts;
    opts.dir = tmp.sub("q");
    opts.map_size = std::size_t{256} << 20;
    opts.notify = [this](unsigned) {
      const int commit = commits.fetch_add(1) + 1;
      std::unique_lock lock(mu);
      if (on_commit) on_commit(commit);
      cv.wait(lock, [this] { return open; });
    };
    std::string error;
    cr_assert(s.open(std::move(opts), error), "%s", error.c_str());
  }
  ~gated_store() {
    release();
    s.close();
  }
  // Holds the writer at its next notify, once a message submitted here (the filler, for
  // take_filler) is posted. If the writer still owed the notify of an earlier commit, it
  // is held there and the filler goes into the next transaction with what is posted
  // while held: either way, requests posted before release() share one commit.
  void hold() {
    {
      std::lock_guard lock(mu);
      open = false;
    }
    const int before = commits.load();
    filler = store_test::make_request(gen.next(), 10);
    cr_assert(s.submit(0, &filler));
    while (commits.load() == before) std::this_thread::yield();
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
  // Waits for the filler and `n` requests of Request's kind to come back.
  template <typename Request>
  void take(std::size_t (queue_store::*take_fn)(unsigned, Request**, std::size_t), std::size_t n) {
    Request* out[8];
    for (std::size_t got = 0; got < n;) got += (s.*take_fn)(0, out, 8);
  }
  void take_filler() {
    store::submit_request* out = nullptr;
    while (s.take_completed(0, &out, 1) == 0) std::this_thread::yield();
  }

  store_test::temp_dir tmp;
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  std::function<void(int commit)> on_commit;  // guarded by mu
  std::atomic<int> commits{0};
  queue_store s;
  base::queue_id_generator gen{0};
  store::submit_request filler;
};

}  // namespace

Test(store_reroute, a_reroute_and_a_deliver_of_one_message_in_one_batch, .timeout = 60) {
  gated_store g;
  auto& s = g.s;
  const base::queue_id id = g.gen.next();
  auto cat = queue_one(s, id, 2500, 3, {{"smarthost:A", {0, 1}, 0}, {"smarthost:B", {2}, 0}});
  const uint64_t a = cat.items[0].hop_id, b = cat.items[1].hop_id;
  cr_assert_eq(refs_of(s, id), 2u);

  g.hold();
  deliver_request d = outcome(a, id, {0, 1});
  reroute_request r = reroute_of(b, id, {{"smarthost:C", {2}, 0}});
  int deliver_commit = 0, reroute_commit = 0;  // guarded by g.mu
  {
    std::lock_guard lock(g.mu);
    g.on_commit = [&](int commit) {
      if (deliver_commit == 0 && d.result != deliver_status::pending) deliver_commit = commit;
      if (reroute_commit == 0 && r.result != reroute_status::pending) reroute_commit = commit;
    };
  }
  cr_assert(s.deliver(0, &d));
  cr_assert(s.reroute(0, &r));
  g.release();
  g.take_filler();
  g.take(&queue_store::take_delivered, 1);
  g.take(&queue_store::take_rerouted, 1);
  // Their replies came before the writer's notify for the commit that held them.
  int delivered_in = 0, rerouted_in = 0;
  while (delivered_in == 0 || rerouted_in == 0) {
    std::this_thread::yield();
    std::lock_guard lock(g.mu);
    delivered_in = deliver_commit;
    rerouted_in = reroute_commit;
  }
  {
    std::lock_guard lock(g.mu);
    g.on_commit = nullptr;  // it refers to d and r, which g outlives
  }
  cr_assert_eq(delivered_in, rerouted_in, "the deliver and the reroute shared one commit");
  cr_assert_eq(d.result, deliver_status::ok, "%s", d.error.c_str());
  cr_assert_eq(r.result, reroute_status::ok, "%s", r.error.c_str());
  cr_assert_not(d.message_removed, "the reroute's new item still refers to it");
  cr_assert_not(r.message_removed);
  const uint64_t c = r.items[0].hop_id;
  cr_assert_eq(refs_of(s, id), 1u, "2 - 1 delivered - 1 moved + 1 new");
  cr_assert_eq(hop_of(s, a).items, 0u);
  cr_assert_eq(hop_of(s, b).items, 0u);
  cr_assert_eq(hop_of(s, c).items, 1u);
  cr_assert((items_of(s, c).at(id).recipients == std::vector<uint32_t>{2}));

  auto last = deliver_one(s, outcome(c, id, {2}));
  cr_assert(last.message_removed);
  cr_assert_eq(stats_of(s).messages, 1u, "only the filler message is left");
}

// An invalid key is refused before anything is written, so it does not abort the
// transaction the rest of its batch shares.
Test(store_reroute, an_invalid_hop_key_fails_alone, .timeout = 60) {
  gated_store g;
  auto& s = g.s;
  const base::queue_id id1 = g.gen.next(), id2 = g.gen.next();
  const uint64_t a = queue_one(s, id1, 100, 2, {{"smarthost:A", {0, 1}, 0}}).items[0].hop_id;
  cr_assert_eq(queue_one(s, id2, 100, 1, {{"smarthost:A", {0}, 0}}).items[0].hop_id, a);

  g.hold();
  reroute_request bad = reroute_of(a, id1, {{"smarthost:B", {0}, 0}, {std::string(1000, 'x'), {1}, 0}});
  reroute_request good = reroute_of(a, id2, {{"smarthost:B", {0}, 0}});
  cr_assert(s.reroute(0, &bad));
  cr_assert(s.reroute(0, &good));
  g.release();
  g.take_filler();
  g.take(&queue_store::take_rerouted, 2);
  cr_assert_eq(bad.result, reroute_status::failed);
  cr_assert_not(bad.error.empty());
  cr_assert_eq(bad.items[0].hop_id, 0u);
  cr_assert_eq(good.result, reroute_status::ok, "%s", good.error.c_str());
  cr_assert_eq(items_of(s, a).at(id1).recipients.size(), 2u, "the invalid request wrote nothing");
  cr_assert_eq(hop_of(s, a).items, 1u);
  cr_assert_eq(hop_of(s, good.items[0].hop_id).items, 1u);
}

Test(store_reroute, refs_and_hops_survive_a_restart, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  const std::string dir = o.tmp.sub("q");
  const base::queue_id id = o.gen.next();
  uint64_t a = 0, b = 0, c = 0;
  {
    auto& s = o.store;
    a = queue_one(s, id, 4000, 4, {{"smarthost:A", {0, 1, 2, 3}, 0}}).items[0].hop_id;
    auto r = reroute_one(s, reroute_of(a, id, {{"smarthost:B", {0, 1}, 0}, {"smarthost:C", {2}, 0}}, {refusal(3)}));
    cr_assert_eq(r.result, reroute_status::ok, "%s", r.error.c_str());
    b = r.items[0].hop_id;
    c = r.items[1].hop_id;
  }
  o.store.close();

  queue_store s;
  store::store_options opts;
  opts.dir = dir;
  std::string error;
  cr_assert(s.open(std::move(opts), error), "%s", error.c_str());
  auto st = stats_of(s);
  cr_assert_eq(st.messages, 1u);
  cr_assert_eq(st.delivery_items, 2u);
  cr_assert_eq(st.delivery_queues, 3u);
  cr_assert_eq(st.failed_messages, 1u);
  cr_assert_eq(st.recipients, 4u);
  cr_assert_eq(refs_of(s, id), 3u, "two items and the failed list");
  cr_assert_eq(hop_of(s, a).items, 0u);
  cr_assert_eq(hop_of(s, b).recipients, 2u);
  cr_assert_eq(hop_of(s, c).recipients, 1u);

  // A new key after the restart does not reuse a hop id handed out before it.
  const base::queue_id id2 = o.gen.next();
  const uint64_t d = queue_one(s, id2, 10, 1, {{"smarthost:D", {0}, 0}}).items[0].hop_id;
  cr_assert_gt(d, std::max({a, b, c}));

  cr_assert(deliver_one(s, outcome(b, id, {0, 1})).result == deliver_status::ok);
  cr_assert_not(deliver_one(s, outcome(c, id, {2})).message_removed, "the failed list still holds it");
  cr_assert_eq(refs_of(s, id), 1u);
  s.close();
}
