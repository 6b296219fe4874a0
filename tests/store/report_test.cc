// report_test.cc: pending delivery-status reports: deliver adds them once, the report op consumes them and enqueues the DSN atomically.
// Untrusted input: none (the tests write the store themselves).
#include <criterion/criterion.h>
#include <lmdb.h>

#include <string>
#include <utility>
#include <vector>

#include "store/codec.h"
#include "store/schema.h"
#include "store/store.h"
#include "item_helpers.h"
#include "store_fixture.h"

using namespace sluice;
using store::deliver_status;
using store::queue_store;
using store::report_action;
using store::report_entry;
using store::report_request;
using store::report_status;
// The shared helpers (item_helpers.h): queue_one, outcome, deliver_one, items_of, stats_of, ...
using namespace store_test;

namespace {

report_entry entry(uint32_t idx, report_action action, int64_t at = 0) {
  report_entry e;
  e.recipient = idx;
  e.action = action;
  e.at_ms = at;
  e.status = action == report_action::delayed ? "4.4.1" : "2.0.0";
  e.diagnostic = action == report_action::delayed ? "451 4.4.1 connection refused" : "250 2.0.0 ok";
  e.remote_mta = "mx.example[192.0.2.1]";
  if (action == report_action::delayed) e.will_retry_until_ms = t0 + 5 * 86'400'000;
  return e;
}

std::vector<report_entry> list_of(const queue_store& s, base::queue_id id) {
  std::string error;
  auto l = s.read_reports(id, error);
  cr_assert(error.empty(), "%s", error.c_str());
  return l ? *l : std::vector<report_entry>{};
}

bool has(const std::vector<report_entry>& l, uint32_t idx, report_action a) {
  for (const auto& e : l)
    if (e.recipient == idx && e.action == a) return true;
  return false;
}

// A DSN to the original's sender, with a body spanning several chunks.
report_request dsn_for(base::queue_id original, base::queue_id dsn_id,
                       std::vector<std::pair<uint32_t, report_action>> consumed) {
  report_request r;
  r.id = original;
  r.consumed = std::move(consumed);
  r.has_message = true;
  r.dsn_id = dsn_id;
  r.envelope.mail_from = "";
  r.envelope.recipients.push_back({"sender@example.org", 0, ""});
  r.connector = "dsn";
  r.received_at_ms = t0 + 10;
  r.body = "From: MAILER-DAEMON@mx.example\r\nContent-Type: multipart/report; report-type=delivery-status\r\n\r\n";
  for (int i = 0; i < 600; ++i) r.body += "line " + std::to_string(i) + " of the returned message\r\n";
  return r;
}

report_request report_one(queue_store& s, report_request r) {
  std::vector<report_request> v{std::move(r)};
  cr_assert(store_test::report_all(s, 0, v));
  return std::move(v[0]);
}

void reopen(queue_store& s, const std::string& dir) {
  s.close();
  store::store_options o;
  o.dir = dir;
  o.map_size = std::size_t{256} << 20;
  std::string error;
  cr_assert(s.open(std::move(o), error), "%s", error.c_str());
}

bool in_submission(const queue_store& s, base::queue_id id) {
  bool found = false;
  std::string error;
  cr_assert(s.for_each_submission([&](base::queue_id q) { return !(found = q == id); }, error), "%s", error.c_str());
  return found;
}

queue_store& opened(store_test::opened_store& o) {
  cr_assert(o.ok, "%s", o.error.c_str());
  return o.store;
}

}  // namespace

Test(store_report, deliver_adds_success_and_delay_reports_once_and_marks_the_item, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  const base::queue_id id = o.gen.next();
  const uint64_t hop = queue_one(s, id, 3000, 3, {{"smarthost:Outbound", {0, 1, 2}, 0}}).items[0].hop_id;
  std::string error;
  cr_assert_eq(s.references(id, error), 1u);

  auto r = outcome(hop, id, {0});
  r.reports = {entry(0, report_action::delivered), entry(1, report_action::delayed),
               // Not what happened to these in this outcome: ignored.
               entry(2, report_action::delivered), entry(0, report_action::delayed), entry(7, report_action::delayed),
               entry(1, report_action::failed)};
  r.mark_delay_reported = true;
  r = deliver_one(s, std::move(r));
  cr_assert_eq(r.result, deliver_status::ok, "%s", r.error.c_str());
  cr_assert_eq(r.remaining, 2u);
  auto l = list_of(s, id);
  cr_assert_eq(l.size(), 2u);
  cr_assert(has(l, 0, report_action::delivered) && has(l, 1, report_action::delayed));
  for (const auto& e : l) cr_assert_eq(e.at_ms, t0, "at_ms 0 is the attempt's time");
  cr_assert(l[1].will_retry_until_ms == t0 + 5 * 86'400'000 && l[1].diagnostic == "451 4.4.1 connection refused");
  cr_assert_eq(s.references(id, error), 2u, "the new list holds one reference");
  cr_assert_eq(stats_of(s).failed_messages, 1u);
  auto item = items_of(s, hop).at(id);
  cr_assert(item.delay_reported);
  cr_assert(item.recipients == (std::vector<uint32_t>{1, 2}));
  auto view = s.open_delivery(hop, id, error);
  cr_assert(view, "%s", error.c_str());
  cr_assert(view->item.delay_reported, "the engine reads the flag from its view");
  view.reset();

  // The same pair again (a repeated outcome, another path): not added twice, no new reference.
  auto again = outcome(hop, id, {}, {refusal(2)}, t0 + 1);
  again.reports = {entry(1, report_action::delayed, t0 + 1)};
  again = deliver_one(s, std::move(again));
  cr_assert_eq(again.result, deliver_status::ok, "%s", again.error.c_str());
  l = list_of(s, id);
  cr_assert_eq(l.size(), 3u, "only the failure is new");
  cr_assert(has(l, 2, report_action::failed));
  cr_assert_eq(l[1].at_ms, t0, "the pair already there is kept as it was");
  cr_assert_eq(s.references(id, error), 2u);
  cr_assert(items_of(s, hop).at(id).delay_reported, "a later outcome keeps the flag");
  // The same recipient may have a delay report and then a failure: other actions.
  auto last = outcome(hop, id, {}, {refusal(1)}, t0 + 2);
  last = deliver_one(s, std::move(last));
  cr_assert_eq(last.remaining, 0u);
  l = list_of(s, id);
  cr_assert_eq(l.size(), 4u);
  cr_assert(has(l, 1, report_action::delayed) && has(l, 1, report_action::failed));
  cr_assert_eq(s.references(id, error), 1u, "the item is gone, the list remains");
}

Test(store_report, a_deferral_without_mark_leaves_the_flag_unset, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  const base::queue_id id = o.gen.next();
  const uint64_t hop = queue_one(s, id, 100, 2, {{"smarthost:Outbound", {0, 1}, 0}}).items[0].hop_id;
  auto r = deliver_one(s, outcome(hop, id, {0}));
  cr_assert_eq(r.result, deliver_status::ok, "%s", r.error.c_str());
  cr_assert_not(items_of(s, hop).at(id).delay_reported);
  std::string error;
  cr_assert_not(s.read_reports(id, error).has_value(), "no report asked, no list");
  cr_assert_eq(s.references(id, error), 1u);
}

Test(store_report, dsn_is_enqueued_with_the_entries_consumed_and_survives_reopen, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  const std::string dir = o.tmp.sub("q");
  const base::queue_id id = o.gen.next();
  const uint64_t hop = queue_one(s, id, 5000, 2, {{"smarthost:Outbound", {0, 1}, 0}}).items[0].hop_id;
  auto r = deliver_one(s, outcome(hop, id, {}, {refusal(0), refusal(1)}));
  cr_assert_eq(r.result, deliver_status::ok, "%s", r.error.c_str());
  std::string error;
  cr_assert_eq(s.references(id, error), 1u, "only the list holds the message now");
  reopen(s, dir);
  cr_assert_eq(list_of(s, id).size(), 2u, "the pending reports are durable");

  const base::queue_id dsn_id = o.gen.next();
  auto rep = report_one(s, dsn_for(id, dsn_id, {{0, report_action::failed}, {1, report_action::failed}}));
  cr_assert_eq(rep.result, report_status::ok, "%s", rep.error.c_str());
  cr_assert(rep.message_removed, "the list held the last reference");
  const std::string body = dsn_for(id, dsn_id, {}).body;
  reopen(s, dir);

  cr_assert_not(s.read_reports(id, error).has_value());
  cr_assert(error.empty(), "%s", error.c_str());
  cr_assert_not(s.read_message(id, error).has_value(), "the original is deleted with its last reference");
  cr_assert_eq(s.references(id, error), 0u);
  auto dsn = s.read_message(dsn_id, error);
  cr_assert(dsn.has_value(), "%s", error.c_str());
  cr_assert(dsn->body == body, "the DSN's body byte for byte");
  cr_assert(dsn->envelope.mail_from.empty() && dsn->envelope.recipients.size() == 1);
  cr_assert(dsn->envelope.recipients[0].address == "sender@example.org");
  cr_assert(dsn->meta.connector == "dsn" && dsn->meta.received_at_ms == t0 + 10);
  cr_assert(in_submission(s, dsn_id), "the DSN waits for the categorizer like any message");
  auto st = stats_of(s);
  cr_assert_eq(st.messages, 1u);
  cr_assert_eq(st.recipients, 1u, "the original's two recipients out, the DSN's one in");
  cr_assert_eq(st.failed_messages, 0u);
  cr_assert_eq(st.body_chunks, (body.size() + s.chunk_size() - 1) / s.chunk_size());
  cr_assert(s.id_floor() == dsn_id, "the DSN's id raises the floor");
}

Test(store_report, the_message_stays_while_an_item_remains, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  const base::queue_id id = o.gen.next();
  const uint64_t hop =
      queue_one(s, id, 100, 3, {{"smarthost:Outbound", {0, 1}, 0}}, {{2, "5.4.4", "no route"}}).items[0].hop_id;
  std::string error;
  cr_assert_eq(s.references(id, error), 2u);
  auto rep = report_one(s, dsn_for(id, o.gen.next(), {{2, report_action::failed}}));
  cr_assert_eq(rep.result, report_status::ok, "%s", rep.error.c_str());
  cr_assert_not(rep.message_removed);
  cr_assert_eq(s.references(id, error), 1u, "the emptied list dropped its reference");
  cr_assert(s.read_message(id, error).has_value(), "the item still needs the message");
  cr_assert_eq(items_of(s, hop).size(), 1u);
  cr_assert_eq(stats_of(s).messages, 2u);
}

Test(store_report, a_missing_entry_makes_the_request_stale_and_writes_nothing, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  const base::queue_id id = o.gen.next();
  queue_one(s, id, 100, 2, {}, {{0, "5.4.4", "no route"}, {1, "5.4.4", "no route"}});
  const auto before = stats_of(s);

  // (1, delayed) is not there: the request is composed from a list that no longer holds.
  const base::queue_id dsn_id = o.gen.next();
  auto rep = report_one(s, dsn_for(id, dsn_id, {{0, report_action::failed}, {1, report_action::delayed}}));
  cr_assert_eq(rep.result, report_status::stale, "%s", rep.error.c_str());
  std::string error;
  cr_assert_eq(list_of(s, id).size(), 2u, "the entry that was present is not consumed");
  cr_assert_not(s.read_message(dsn_id, error).has_value(), "no DSN stored");
  cr_assert_eq(stats_of(s).messages, before.messages);
  cr_assert_eq(stats_of(s).recipients, before.recipients);
  cr_assert_eq(s.references(id, error), 1u);

  // A second DSN for entries another one already consumed is stale too: sent once.
  auto first = report_one(s, dsn_for(id, o.gen.next(), {{0, report_action::failed}}));
  cr_assert_eq(first.result, report_status::ok, "%s", first.error.c_str());
  const base::queue_id twice = o.gen.next();
  auto second = report_one(s, dsn_for(id, twice, {{0, report_action::failed}}));
  cr_assert_eq(second.result, report_status::stale);
  cr_assert_not(s.read_message(twice, error).has_value());
  cr_assert_eq(list_of(s, id).size(), 1u);
  // And once the message is gone altogether.
  auto done = report_one(s, dsn_for(id, o.gen.next(), {{1, report_action::failed}}));
  cr_assert_eq(done.result, report_status::ok, "%s", done.error.c_str());
  cr_assert(done.message_removed);
  auto gone = report_one(s, dsn_for(id, o.gen.next(), {{1, report_action::failed}}));
  cr_assert_eq(gone.result, report_status::stale);
}

Test(store_report, consume_only_drops_the_entries_and_stores_no_message, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  const base::queue_id id = o.gen.next();
  queue_one(s, id, 100, 3, {}, {{0, "5.4.4", "no route"}, {1, "5.4.4", "no route"}, {2, "5.4.4", "no route"}});
  report_request r;
  r.id = id;
  r.consumed = {{1, report_action::failed}};
  r = report_one(s, std::move(r));
  cr_assert_eq(r.result, report_status::ok, "%s", r.error.c_str());
  auto l = list_of(s, id);
  cr_assert_eq(l.size(), 2u);
  cr_assert(has(l, 0, report_action::failed) && has(l, 2, report_action::failed) && !has(l, 1, report_action::failed));
  auto st = stats_of(s);
  cr_assert_eq(st.messages, 1u, "nothing enqueued");
  cr_assert_eq(st.submission_queued, 0u);

  report_request rest;
  rest.id = id;
  rest.consumed = {{0, report_action::failed}, {2, report_action::failed}};
  rest = report_one(s, std::move(rest));
  cr_assert_eq(rest.result, report_status::ok, "%s", rest.error.c_str());
  cr_assert(rest.message_removed);
  cr_assert_eq(stats_of(s).messages, 0u);
  cr_assert_eq(stats_of(s).failed_messages, 0u);
}

Test(store_report, a_duplicate_dsn_id_fails_alone_and_writes_nothing, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  const base::queue_id id = o.gen.next();
  queue_one(s, id, 100, 1, {}, {{0, "5.4.4", "no route"}});
  const base::queue_id taken = o.gen.next();
  queue_one(s, taken, 100, 1, {{"smarthost:Outbound", {0}, 0}});
  auto rep = report_one(s, dsn_for(id, taken, {{0, report_action::failed}}));  // another message's id
  cr_assert_eq(rep.result, report_status::failed);
  cr_assert(rep.error.find("duplicate") != std::string::npos, "%s", rep.error.c_str());
  cr_assert_eq(list_of(s, id).size(), 1u, "the entry stays: the DSN was not stored");
  std::string error;
  cr_assert(s.read_message(id, error).has_value());
}

Test(store_report, list_reports_pages_in_queue_order, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  std::vector<base::queue_id> ids;
  for (int i = 0; i < 5; ++i) {
    const base::queue_id id = o.gen.next();
    ids.push_back(id);
    // Every other message has a pending list.
    if (i % 2 == 0) queue_one(s, id, 10, 1, {}, {{0, "5.4.4", "no route"}});
    else queue_one(s, id, 10, 1, {{"smarthost:Outbound", {0}, 0}});
  }
  std::string error;
  auto all = s.list_reports({}, 100, error);
  cr_assert(error.empty(), "%s", error.c_str());
  cr_assert(all == (std::vector<base::queue_id>{ids[0], ids[2], ids[4]}));
  auto page = s.list_reports({}, 2, error);
  cr_assert(page == (std::vector<base::queue_id>{ids[0], ids[2]}));
  page = s.list_reports(page.back(), 2, error);
  cr_assert(page == (std::vector<base::queue_id>{ids[4]}), "strictly after");
  cr_assert(s.list_reports(ids[1], 10, error) == (std::vector<base::queue_id>{ids[2], ids[4]}),
            "after an id without a list");
  cr_assert(s.list_reports(ids[4], 10, error).empty());
  cr_assert(s.list_reports({}, 0, error).empty());
}

Test(store_report, open_message_pins_the_body_without_an_item, .timeout = 60) {
  store_test::opened_store o;
  queue_store& s = opened(o);
  const base::queue_id id = o.gen.next();
  queue_one(s, id, 7000, 2, {}, {{0, "5.4.4", "no route"}, {1, "5.4.4", "no route"}});
  const std::string body = store_test::make_request(id, 7000, 2).body;
  std::string error;
  auto v = s.open_message(id, error);
  cr_assert(v, "%s", error.c_str());
  cr_assert_eq(s.open_views(), 1u);
  cr_assert(v->id == id && v->hop_id == 0 && v->item.recipients.empty());
  cr_assert_eq(v->envelope.recipients.size(), 2u);
  cr_assert_eq(v->meta.body_size, 7000u);
  std::string joined;
  for (auto c : v->chunks) joined.append(c);
  cr_assert(joined == body, "the chunks are the body in order");
  v.reset();
  cr_assert_eq(s.open_views(), 0u);

  report_request r;
  r.id = id;
  r.consumed = {{0, report_action::failed}, {1, report_action::failed}};
  r = report_one(s, std::move(r));
  cr_assert_eq(r.result, report_status::ok, "%s", r.error.c_str());
  cr_assert_null(s.open_message(id, error).get());
  cr_assert(error.empty(), "a message gone is not an error: %s", error.c_str());
}

// ---- records and databases an older sluice wrote ----

Test(store_record_versions, report_lists_of_every_version_decode, .timeout = 60) {
  std::string error;
  // Version 2: the v1 fields plus remote MTA, diagnostic and time.
  store::binary_writer w;
  w.u8(2);
  w.u32(1);
  w.u32(3);
  w.str("5.1.1");
  w.str("no such user");
  w.str("mx.example[192.0.2.1]");
  w.str("550 5.1.1 no such user");
  w.u64(42);
  std::vector<report_entry> l;
  cr_assert(store::decode_reports(w.take(), l, error), "%s", error.c_str());
  cr_assert_eq(l.size(), 1u);
  cr_assert(l[0].recipient == 3 && l[0].at_ms == 42 && l[0].diagnostic == "550 5.1.1 no such user");
  cr_assert(l[0].action == report_action::failed && l[0].will_retry_until_ms == 0, "old entries are failures");

  // Version 3 round-trips every action and the retry horizon.
  std::vector<report_entry> v3{entry(0, report_action::delivered, 5), entry(1, report_action::delayed, 6),
                               entry(2, report_action::relayed, 7), refusal(3, 8)};
  const std::string bytes = store::encode_reports(v3);
  cr_assert_eq(static_cast<uint8_t>(bytes[0]), 3u);
  cr_assert(store::decode_reports(bytes, l, error), "%s", error.c_str());
  cr_assert_eq(l.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    cr_assert(l[i].action == v3[i].action && l[i].at_ms == v3[i].at_ms && l[i].status == v3[i].status);
    cr_assert_eq(l[i].will_retry_until_ms, v3[i].will_retry_until_ms);
  }
  std::string bad = bytes;
  bad[bad.size() - 9] = 4;  // the last entry's action: out of range
  cr_assert_not(store::decode_reports(bad, l, error));
  cr_assert_not(store::decode_reports(bytes.substr(0, bytes.size() - 1), l, error));
  bad = bytes;
  bad[0] = 4;
  cr_assert_not(store::decode_reports(bad, l, error), "a future version is refused");

  cr_assert(store::to_string(report_action::failed) == "failed");
  cr_assert(store::to_string(report_action::delayed) == "delayed");
  cr_assert(store::to_string(report_action::delivered) == "delivered");
  cr_assert(store::to_string(report_action::relayed) == "relayed");

  // Items: version 3 adds delay_reported; version 2 records decode it false.
  store::delivery_item_record item{store::item_state::deferred, 2, 10, 20, {1, 4}, "451 later", 15, true};
  std::string enc = store::encode_item(item);
  store::delivery_item_record back;
  cr_assert(store::decode_item(enc, back, error), "%s", error.c_str());
  cr_assert(back.delay_reported && back.recipients == item.recipients && back.last_attempt_ms == 15);
  std::string v2 = enc.substr(0, enc.size() - 2);  // without delay_reported and held (version 4)
  v2[0] = 2;
  back.delay_reported = true;
  cr_assert(store::decode_item(v2, back, error), "%s", error.c_str());
  cr_assert_not(back.delay_reported);
  cr_assert(back.last_error == "451 later");
  enc.back() = 2;
  cr_assert_not(store::decode_item(enc, back, error), "a flag byte other than 0 or 1 is refused");
}

Test(store_record_versions, the_failed_database_of_an_older_store_becomes_reports, .timeout = 60) {
  store_test::opened_store o;
  opened(o);
  const std::string dir = o.tmp.sub("q");
  const base::queue_id id = o.gen.next();
  queue_one(o.store, id, 100, 2, {}, {{0, "5.4.4", "no route"}, {1, "5.4.4", "no route"}});
  o.store.close();
  // As an older sluice left it: the list (version 1) in `failed`, no `reports` database.
  put_raw(dir, "reports", "", "", 0, true);
  store::binary_writer w;
  w.u8(1);
  w.u32(2);
  for (uint32_t i = 0; i < 2; ++i) {
    w.u32(i);
    w.str("5.4.4");
    w.str("old route");
  }
  auto idk = store::schema::make_id_key(id);
  put_raw(dir, "failed", std::string(idk.begin(), idk.end()), w.take(), MDB_CREATE);
  // Read-only (sluicectl before the daemon upgraded the store) finds the lists too.
  {
    queue_store ro;
    store::store_options opts;
    opts.dir = dir;
    opts.read_only = true;
    std::string error;
    cr_assert(ro.open(std::move(opts), error), "%s", error.c_str());
    auto l = ro.read_reports(id, error);
    cr_assert(l.has_value() && l->size() == 2, "%s", error.c_str());
  }
  queue_store s;
  store::store_options opts;
  opts.dir = dir;
  std::string error;
  cr_assert(s.open(std::move(opts), error), "%s", error.c_str());
  auto l = list_of(s, id);
  cr_assert_eq(l.size(), 2u, "the old lists moved into reports");
  cr_assert(l[0].reason == "old route" && l[0].action == report_action::failed);
  cr_assert(s.list_reports({}, 10, error) == (std::vector<base::queue_id>{id}));
  auto rep = report_one(s, dsn_for(id, o.gen.next(), {{0, report_action::failed}, {1, report_action::failed}}));
  cr_assert_eq(rep.result, report_status::ok, "%s", rep.error.c_str());
  cr_assert(rep.message_removed, "the migrated list kept the message's reference");
}
