// lane_test.cc: one producer lane carrying two kinds of write operation: limits, completions and order per kind.
#include <criterion/criterion.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "store_fixture.h"

using namespace sluice;
using store::categorize_request;
using store::categorize_status;
using store::queue_store;
using store::submit_request;
using store::submit_status;
using store_test::make_request;
using store_test::submit_all;
using store_test::temp_dir;

namespace {

bool open_store(queue_store& s, const std::string& dir) {
  store::store_options o;
  o.dir = dir;
  o.producers = 1;
  o.map_size = std::size_t{256} << 20;
  std::string error;
  bool ok = s.open(std::move(o), error);
  if (!ok) cr_log_error("open failed: %s", error.c_str());
  return ok;
}

categorize_request one_hop(const submit_request& m) {
  categorize_request c;
  c.id = m.id;
  c.received_at_ms = m.received_at_ms;
  c.items.push_back({"smarthost:Outbound", {0}, 0});
  return c;
}

// Takes `want` requests of one kind, sleeping briefly while none are ready.
template <typename Request, typename Take>
std::vector<Request*> take_n(std::size_t want, Take take) {
  std::vector<Request*> got;
  Request* out[64];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    std::size_t n = take(out, 64);
    got.insert(got.end(), out, out + n);
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return got;
}

}  // namespace

Test(store_lane, kinds_share_a_lane_but_come_back_apart_and_in_order, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  base::queue_id_generator gen(3);
  std::vector<submit_request> first;
  for (int i = 0; i < 300; ++i) first.push_back(make_request(gen.next(), 100));
  cr_assert(submit_all(s, 0, first));

  // Interleave: categorize the first messages while submitting new ones, taking nothing.
  std::vector<submit_request> second;
  for (int i = 0; i < 300; ++i) second.push_back(make_request(gen.next(), 100));
  std::vector<categorize_request> cats;
  for (auto& m : first) cats.push_back(one_hop(m));
  for (std::size_t i = 0; i < 300; ++i) {
    cr_assert(s.categorize(0, &cats[i]));
    cr_assert(s.submit(0, &second[i]));
  }
  // Categorizations first: the submit completions met on the way must be kept for
  // take_completed, not lost or handed out as categorizations.
  auto done_cats = take_n<categorize_request>(
      cats.size(), [&](categorize_request** out, std::size_t max) { return s.take_categorized(0, out, max); });
  cr_assert_eq(done_cats.size(), cats.size());
  for (std::size_t i = 0; i < cats.size(); ++i) {
    cr_assert_eq(done_cats[i], &cats[i], "categorizations come back in the order handed in");
    cr_assert_eq(cats[i].result, categorize_status::ok, "%s", cats[i].error.c_str());
  }
  auto done_subs = take_n<submit_request>(
      second.size(), [&](submit_request** out, std::size_t max) { return s.take_completed(0, out, max); });
  cr_assert_eq(done_subs.size(), second.size());
  for (std::size_t i = 0; i < second.size(); ++i) {
    cr_assert_eq(done_subs[i], &second[i], "submissions come back in the order handed in");
    cr_assert_eq(second[i].result, submit_status::ok, "%s", second[i].error.c_str());
  }
  submit_request* none[4];
  cr_assert_eq(s.take_completed(0, none, 4), 0u);
  std::string error;
  auto st = s.stats(error);
  cr_assert(st.has_value(), "%s", error.c_str());
  cr_assert_eq(st->messages, 600u);
  cr_assert_eq(st->submission_queued, 300u);
  cr_assert_eq(st->delivery_items, 300u);
}

Test(store_lane, a_full_kind_does_not_block_another, .timeout = 60) {
  temp_dir tmp;
  queue_store s;
  cr_assert(open_store(s, tmp.sub("q")));
  base::queue_id_generator gen(4);
  std::vector<submit_request> subs;
  for (std::size_t i = 0; i < queue_store::ring_capacity + 1; ++i) subs.push_back(make_request(gen.next(), 10));
  std::size_t accepted = 0;
  for (auto& r : subs)
    if (s.submit(0, &r)) ++accepted;
  cr_assert_eq(accepted, queue_store::ring_capacity);
  // The submit limit is reached (nothing taken back), yet a categorization still goes in.
  categorize_request c = one_hop(subs[0]);
  c.result = categorize_status::failed;
  cr_assert(s.categorize(0, &c), "another kind's backlog must not refuse a request");
  auto done = take_n<categorize_request>(
      1, [&](categorize_request** out, std::size_t max) { return s.take_categorized(0, out, max); });
  cr_assert_eq(done.size(), 1u);
  cr_assert_eq(c.result, categorize_status::ok, "%s", c.error.c_str());
  // A refused submit is left as it was.
  subs.back().result = submit_status::failed;
  subs.back().error = "kept";
  cr_assert_not(s.submit(0, &subs.back()));
  cr_assert_eq(subs.back().result, submit_status::failed);
  cr_assert(subs.back().error == "kept");
  auto all = take_n<submit_request>(
      accepted, [&](submit_request** out, std::size_t max) { return s.take_completed(0, out, max); });
  cr_assert_eq(all.size(), accepted);
  cr_assert(s.submit(0, &subs.back()), "room again after completions were taken");
  // The writer borrows the request until it is taken back: subs must outlive that.
  auto last = take_n<submit_request>(
      1, [&](submit_request** out, std::size_t max) { return s.take_completed(0, out, max); });
  cr_assert_eq(last.size(), 1u);
}
