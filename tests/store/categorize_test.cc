// categorize_test.cc: the categorize transaction: bifurcation, atomicity, hop records, restart.
#include <criterion/criterion.h>

#include <map>
#include <string>
#include <vector>

#include "store/store.h"
#include "store_fixture.h"

using namespace sluice;
using store::categorize_request;
using store::categorize_status;
using store::queue_store;
using store_test::categorize_all;
using store_test::make_request;
using store_test::submit_all;
using store_test::temp_dir;

namespace {

bool open_store(queue_store& s, const std::string& dir, bool read_only = false) {
  store::store_options o;
  o.dir = dir;
  o.producers = 2;
  o.map_size = std::size_t{256} << 20;
  o.read_only = read_only;
  std::string error;
  bool ok = s.open(std::move(o), error);
  if (!ok) cr_log_error("open failed: %s", error.c_str());
  return ok;
}

categorize_request three_hops(const store::submit_request& m) {
  categorize_request c;
  c.id = m.id;
  c.received_at_ms = m.received_at_ms;
  c.items.push_back({"smarthost:Outbound", {0, 3}, 0});
  c.items.push_back({"local:sluice.test", {1}, 0});
  c.items.push_back({"dns:Internet:example.net", {2}, 0});
  c.failed.push_back({4, "5.1.1", "unknown recipient"});
  return c;
}

std::map<std::string, store::hop_entry> hops_of(const queue_store& s) {
  std::map<std::string, store::hop_entry> out;
  std::string error;
  bool ok = s.for_each_hop(
      [&](const store::hop_entry& e) {
        out[e.record.key] = e;
        return true;
      },
      error);
  cr_assert(ok, "%s", error.c_str());
  return out;
}

}  // namespace

Test(store_categorize, three_next_hops_make_three_items_and_one_body, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs{make_request(gen.next(), 9000, 5)};
  cr_assert(submit_all(s, 0, msgs));
  std::string error;
  auto before = s.stats(error);
  cr_assert_eq(before->submission_queued, 1u);

  std::vector<categorize_request> cats{three_hops(msgs[0])};
  cr_assert(categorize_all(s, 1, cats));
  cr_assert_eq(cats[0].result, categorize_status::ok, "%s", cats[0].error.c_str());
  for (const auto& it : cats[0].items) cr_assert_neq(it.hop_id, 0u);

  auto st = s.stats(error);
  cr_assert_eq(st->submission_queued, 0u);
  cr_assert_eq(st->delivery_items, 3u);
  cr_assert_eq(st->delivery_queues, 3u);
  cr_assert_eq(st->messages, 1u, "the message is stored once, not per item");
  cr_assert_eq(st->failed_messages, 1u);
  // Bodies are chunked per message id; a copy per item would show up as more tree pages
  // and, more directly, the one message reads back whole.
  auto m = s.read_message(msgs[0].id, error);
  cr_assert(m.has_value());
  cr_assert(m->body == msgs[0].body);
  cr_assert_eq(s.references(msgs[0].id, error), 4u);  // three items + the failed list

  auto hops = hops_of(s);
  cr_assert_eq(hops.size(), 3u);
  const auto& out = hops.at("smarthost:Outbound");
  cr_assert_eq(out.record.items, 1u);
  cr_assert_eq(out.record.recipients, 2u);
  cr_assert_eq(out.record.oldest_ms, msgs[0].received_at_ms);
  cr_assert_eq(out.record.status, store::hop_status::ready);
  std::vector<uint32_t> rcpts;
  cr_assert(s.for_each_item(out.id, [&](base::queue_id id, const store::delivery_item_record& item) {
    cr_assert(id == msgs[0].id);
    rcpts = item.recipients;
    return true;
  }, error));
  cr_assert_eq(rcpts.size(), 2u);
  cr_assert_eq(rcpts[0], 0u);
  cr_assert_eq(rcpts[1], 3u);
  auto failed = s.read_reports(msgs[0].id, error);
  cr_assert(failed.has_value());
  cr_assert_eq(failed->size(), 1u);
  std::string status = (*failed)[0].status;
  cr_assert_str_eq(status.c_str(), "5.1.1");
}

Test(store_categorize, second_categorization_is_not_queued_and_changes_nothing, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs{make_request(gen.next(), 100, 5)};
  cr_assert(submit_all(s, 0, msgs));
  std::vector<categorize_request> cats{three_hops(msgs[0]), three_hops(msgs[0])};
  cr_assert(categorize_all(s, 0, cats));
  cr_assert_eq(cats[0].result, categorize_status::ok);
  cr_assert_eq(cats[1].result, categorize_status::not_queued);
  std::string error;
  auto st = s.stats(error);
  cr_assert_eq(st->delivery_items, 3u);
  cr_assert_eq(hops_of(s).at("local:sluice.test").record.items, 1u);
}

Test(store_categorize, invalid_request_leaves_submission_entry_and_writes_nothing, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs{make_request(gen.next(), 100, 5), make_request(gen.next(), 100, 5)};
  cr_assert(submit_all(s, 0, msgs));
  std::vector<categorize_request> cats{three_hops(msgs[0]), three_hops(msgs[1])};
  cats[0].items[1].hop_key.clear();  // invalid: the whole message must stay uncategorized
  cr_assert(categorize_all(s, 0, cats));
  cr_assert_eq(cats[0].result, categorize_status::failed);
  cr_assert_eq(cats[1].result, categorize_status::ok);
  std::string error;
  auto st = s.stats(error);
  cr_assert_eq(st->submission_queued, 1u);
  cr_assert_eq(st->delivery_items, 3u);
  cr_assert_eq(st->failed_messages, 1u);
  std::vector<base::queue_id> pending;
  cr_assert(s.for_each_submission([&](base::queue_id id) {
    pending.push_back(id);
    return true;
  }, error));
  cr_assert_eq(pending.size(), 1u);
  cr_assert(pending[0] == msgs[0].id);
  cr_assert_eq(s.references(msgs[0].id, error), 0u);
}

Test(store_categorize, submission_entry_disappears_exactly_when_items_appear, .timeout = 120) {
  // A reader polling during categorization must never see a message both in the
  // submission queue and with items, nor in neither.
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs;
  for (int i = 0; i < 400; ++i) msgs.push_back(make_request(gen.next(), 300, 5));
  cr_assert(submit_all(s, 0, msgs));
  std::vector<categorize_request> cats;
  for (auto& m : msgs) cats.push_back(three_hops(m));
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    std::string error;
    while (!done.load()) {
      auto st = s.stats(error);  // one read transaction: a consistent snapshot
      if (!st) continue;
      uint64_t categorized = 400 - st->submission_queued;
      if (st->delivery_items != 3 * categorized || st->failed_messages != categorized) torn.fetch_add(1);
    }
  });
  bool ok = categorize_all(s, 1, cats);
  done.store(true);
  reader.join();
  cr_assert(ok);
  cr_assert_eq(torn.load(), 0);
  std::string error;
  auto st = s.stats(error);
  cr_assert_eq(st->submission_queued, 0u);
  cr_assert_eq(st->delivery_items, 1200u);
  auto hops = hops_of(s);
  cr_assert_eq(hops.size(), 3u, "one hop id per key, however many messages");
  cr_assert_eq(hops.at("smarthost:Outbound").record.items, 400u);
  cr_assert_eq(hops.at("smarthost:Outbound").record.recipients, 800u);
  int64_t oldest = msgs[0].received_at_ms;
  for (auto& m : msgs) oldest = std::min(oldest, m.received_at_ms);
  cr_assert_eq(hops.at("smarthost:Outbound").record.oldest_ms, oldest);
}

Test(store_categorize, restart_keeps_items_and_pending_submissions, .timeout = 60) {
  temp_dir tmp;
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs{make_request(gen.next(), 5000, 5), make_request(gen.next(), 10, 5)};
  uint64_t hop_id = 0;
  {
    queue_store s;
    cr_assert(open_store(s, tmp.sub("q")));
    cr_assert(submit_all(s, 0, msgs));
    std::vector<categorize_request> cats{three_hops(msgs[0])};
    cr_assert(categorize_all(s, 0, cats));
    hop_id = cats[0].items[0].hop_id;
  }
  queue_store ro;
  cr_assert(open_store(ro, tmp.sub("q"), true));
  std::string error;
  auto st = ro.stats(error);
  cr_assert_eq(st->delivery_items, 3u);
  cr_assert_eq(st->submission_queued, 1u);
  std::vector<base::queue_id> pending;
  cr_assert(ro.for_each_submission([&](base::queue_id id) {
    pending.push_back(id);
    return true;
  }, error));
  cr_assert_eq(pending.size(), 1u);
  cr_assert(pending[0] == msgs[1].id, "only the uncategorized message is fed to the shards again");
  ro.close();

  // The same hop key keeps its id after a restart.
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  std::vector<categorize_request> cats{three_hops(msgs[1])};
  cr_assert(categorize_all(s, 0, cats));
  cr_assert_eq(cats[0].result, categorize_status::ok);
  cr_assert_eq(cats[0].items[0].hop_id, hop_id);
  cr_assert_eq(hops_of(s).at("smarthost:Outbound").record.items, 2u);
}

Test(store_categorize, envelopes_read_in_one_transaction_skip_missing) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs{make_request(gen.next(), 10, 2), make_request(gen.next(), 10, 3)};
  cr_assert(submit_all(s, 0, msgs));
  std::vector<base::queue_id> ids{msgs[0].id, gen.next(), msgs[1].id};
  std::vector<size_t> counts;
  std::string problems, error;
  cr_assert(s.read_envelopes(ids, [&](base::queue_id, const smtp::envelope& e, const store::message_metadata&) {
    counts.push_back(e.recipients.size());
  }, problems, error));
  cr_assert_eq(counts.size(), 2u);
  cr_assert_eq(counts[0], 2u);
  cr_assert_eq(counts[1], 3u);
  cr_assert(problems.empty());
}

Test(store_categorize, records_round_trip_and_reject_truncation) {
  store::hop_record h{"dns:Internet:example.net", store::hop_status::retry, 3, 7, 1000, 2000, "451 try later"};
  store::hop_record back;
  std::string error;
  std::string bytes = store::encode_hop(h);
  cr_assert(store::decode_hop(bytes, back, error));
  cr_assert(back.key == h.key && back.status == h.status && back.items == 3 && back.recipients == 7 &&
            back.oldest_ms == 1000 && back.next_retry_ms == 2000 && back.last_error == h.last_error);
  cr_assert(!store::decode_hop(bytes.substr(0, bytes.size() - 1), back, error));
  store::delivery_item_record item{store::item_state::deferred, 2, 5, 6, {1, 4, 9}};
  std::string ib = store::encode_item(item);
  store::delivery_item_record ib_back;
  cr_assert(store::decode_item(ib, ib_back, error));
  cr_assert(ib_back.recipients == item.recipients && ib_back.attempts == 2);
  cr_assert(!store::decode_item(ib.substr(0, ib.size() - 2), ib_back, error));
  std::string fb = store::encode_reports({{1, "5.4.4", "no route"}});
  std::vector<store::report_entry> f;
  cr_assert(store::decode_reports(fb, f, error));
  cr_assert(f.size() == 1 && f[0].recipient == 1 && f[0].reason == "no route");
  fb.push_back('x');
  cr_assert(!store::decode_reports(fb, f, error));
}

Test(store_categorize, map_full_categorizes_what_fits_and_leaves_the_rest_queued, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  store::store_options o;
  o.dir = tmp.sub("q");
  o.map_size = std::size_t{2} << 20;  // 512 pages
  std::string error;
  cr_assert(s.open(std::move(o), error), "%s", error.c_str());
  base::queue_id_generator gen(0);
  std::vector<store::submit_request> msgs;
  for (int i = 0; i < 40; ++i) msgs.push_back(make_request(gen.next(), 200, 1));
  cr_assert(submit_all(s, 0, msgs));
  // Every message to 40 hops of its own with long keys: about 1.3 MB of hop names and
  // records in all, more than the map has left, so the batch cannot commit whole.
  std::vector<categorize_request> cats(msgs.size());
  for (size_t m = 0; m < msgs.size(); ++m) {
    cats[m].id = msgs[m].id;
    cats[m].received_at_ms = msgs[m].received_at_ms;
    for (int h = 0; h < 40; ++h)
      cats[m].items.push_back({"dns:Internet:" + std::string(400, 'a' + h % 26) + std::to_string(m * 100 + h), {0}, 0});
  }
  cr_assert(categorize_all(s, 0, cats));
  size_t ok = 0, full = 0;
  for (auto& c : cats) {
    if (c.result == categorize_status::ok) ++ok;
    else if (c.result == categorize_status::storage_full) ++full;
    else cr_assert_fail("unexpected result %d: %s", static_cast<int>(c.result), c.error.c_str());
  }
  cr_assert_gt(ok, 0u, "what fits is categorized");
  cr_assert_gt(full, 0u, "the rest is refused as storage_full");
  auto st = s.stats(error);
  cr_assert(st.has_value(), "%s", error.c_str());
  cr_assert_eq(st->submission_queued, full, "refused messages stay in the submission queue");
  cr_assert_eq(st->delivery_items, ok * 40, "and have no items");
}
