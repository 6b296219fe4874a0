// message_view_test.cc: the zero-copy message view: body chunks straight from the LMDB map, pinned by its transaction.
// Untrusted input: none (the tests write the store themselves).
#include <criterion/criterion.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string_view>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/store.h"
#include "store_fixture.h"

using namespace sluice;
using store::categorize_request;
using store::message_view;
using store::queue_store;
using store_test::categorize_all;
using store_test::deliver_all;
using store_test::make_request;
using store_test::submit_all;

namespace {

// Submits and categorizes `msgs` to one hop (every recipient); returns the hop id.
uint64_t queue_all(queue_store& s, std::vector<store::submit_request>& msgs) {
  cr_assert(submit_all(s, 0, msgs));
  std::vector<categorize_request> cats(msgs.size());
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    cr_assert_eq(msgs[i].result, store::submit_status::ok, "%s", msgs[i].error.c_str());
    cats[i].id = msgs[i].id;
    cats[i].received_at_ms = msgs[i].received_at_ms;
    std::vector<uint32_t> all;
    for (uint32_t r = 0; r < msgs[i].envelope.recipients.size(); ++r) all.push_back(r);
    cats[i].items.push_back({"smarthost:Outbound", all, 0});
  }
  cr_assert(categorize_all(s, 0, cats));
  for (auto& c : cats) cr_assert_eq(c.result, store::categorize_status::ok, "%s", c.error.c_str());
  return cats[0].items[0].hop_id;
}

std::string joined(const message_view& v) {
  std::string out;
  for (auto c : v.chunks) out.append(c);
  return out;
}

// The address ranges this process has data.mdb of `dir` mapped at (/proc/self/maps):
// a chunk inside one is read from the map, not from a copy on the heap.
std::vector<std::pair<uintptr_t, uintptr_t>> map_ranges(const std::string& dir) {
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const std::string file = dir + "/data.mdb";
  while (std::getline(maps, line)) {
    if (line.size() < file.size() || line.compare(line.size() - file.size(), file.size(), file) != 0) continue;
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2) out.emplace_back(lo, hi);
  }
  return out;
}

bool inside(const std::vector<std::pair<uintptr_t, uintptr_t>>& ranges, std::string_view chunk) {
  const auto p = reinterpret_cast<uintptr_t>(chunk.data());
  for (auto [lo, hi] : ranges)
    if (p >= lo && p + chunk.size() <= hi) return true;
  return false;
}

}  // namespace

Test(store_view, chunks_are_the_stored_body_read_from_the_map, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  std::vector<store::submit_request> msgs{make_request(gen.next(), 10'000, 3), make_request(gen.next(), 0, 1)};
  msgs[0].auth_user = "alice";
  const uint64_t hop = queue_all(s, msgs);
  std::string error;
  auto v = s.open_delivery(hop, msgs[0].id, error);
  cr_assert(v, "%s", error.c_str());
  cr_assert(v->id == msgs[0].id);
  cr_assert_eq(v->hop_id, hop);
  cr_assert_eq(v->envelope.recipients.size(), 3u);
  cr_assert(v->envelope.mail_from == msgs[0].envelope.mail_from);
  cr_assert(v->meta.auth_user == "alice");
  cr_assert_eq(v->meta.received_at_ms, msgs[0].received_at_ms);
  cr_assert(v->item.recipients == (std::vector<uint32_t>{0, 1, 2}));
  cr_assert_eq(v->item.received_at_ms, msgs[0].received_at_ms);
  cr_assert_eq(v->chunks.size(), (10'000 + s.chunk_size() - 1) / s.chunk_size());
  cr_assert(joined(*v) == msgs[0].body, "byte for byte");

  const auto ranges = map_ranges(o.tmp.sub("q"));
  cr_assert_not(ranges.empty(), "data.mdb is mapped");
  for (auto c : v->chunks) cr_assert(inside(ranges, c), "chunk at %p is not in the map", static_cast<const void*>(c.data()));
  auto w = s.open_delivery(hop, msgs[0].id, error);
  cr_assert(w);
  for (std::size_t i = 0; i < v->chunks.size(); ++i)
    cr_assert_eq(v->chunks[i].data(), w->chunks[i].data(), "two views share the map's bytes");

  auto empty = s.open_delivery(hop, msgs[1].id, error);
  cr_assert(empty, "%s", error.c_str());
  cr_assert(empty->chunks.empty(), "an empty body has no chunks");
}

Test(store_view, missing_or_delivered_items_have_no_view, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  std::vector<store::submit_request> msgs{make_request(gen.next(), 500, 1)};
  const uint64_t hop = queue_all(s, msgs);
  std::string error;
  cr_assert_null(s.open_delivery(hop + 1, msgs[0].id, error).get(), "another hop has no such item");
  cr_assert(error.empty());
  cr_assert_null(s.open_delivery(hop, gen.next(), error).get());
  cr_assert(error.empty());
  std::vector<store::deliver_request> done(1);
  done[0].id = msgs[0].id;
  done[0].hop_id = hop;
  done[0].delivered = {0};
  cr_assert(deliver_all(s, 0, done));
  cr_assert_eq(done[0].result, store::deliver_status::ok, "%s", done[0].error.c_str());
  cr_assert_null(s.open_delivery(hop, msgs[0].id, error).get(), "delivered and removed");
  cr_assert(error.empty(), "%s", error.c_str());
  cr_assert_eq(s.open_views(), 0u);
}

Test(store_view, open_views_counts_live_views_through_moves, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  std::vector<store::submit_request> msgs{make_request(gen.next(), 3000, 1), make_request(gen.next(), 3000, 1)};
  const uint64_t hop = queue_all(s, msgs);
  std::string error;
  cr_assert_eq(s.open_views(), 0u);
  auto a = s.open_delivery(hop, msgs[0].id, error);
  auto b = s.open_delivery(hop, msgs[1].id, error);
  cr_assert(a && b);
  cr_assert_eq(s.open_views(), 2u);
  message_view moved(std::move(*a));
  cr_assert_eq(s.open_views(), 2u, "a move hands the transaction over");
  cr_assert(a->chunks.empty());
  cr_assert(joined(moved) == msgs[0].body);
  a.reset();
  cr_assert_eq(s.open_views(), 2u, "the moved-from view holds nothing");
  *b = std::move(moved);  // b's own transaction ends, moved's goes to b
  cr_assert_eq(s.open_views(), 1u);
  cr_assert(joined(*b) == msgs[0].body);
  b.reset();
  cr_assert_eq(s.open_views(), 0u);
}

Test(store_view, a_view_keeps_its_body_while_the_message_is_delivered_and_pages_reused, .timeout = 60) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  std::vector<store::submit_request> msgs{make_request(gen.next(), 20'000, 1)};
  const uint64_t hop = queue_all(s, msgs);
  std::string error;
  auto v = s.open_delivery(hop, msgs[0].id, error);
  cr_assert(v, "%s", error.c_str());
  std::vector<store::deliver_request> done(1);
  done[0].id = msgs[0].id;
  done[0].hop_id = hop;
  done[0].delivered = {0};
  cr_assert(deliver_all(s, 0, done));
  cr_assert(done[0].message_removed);
  // New mail after the delete: without the view's transaction LMDB would hand the freed
  // body pages to these writes.
  for (int round = 0; round < 5; ++round) {
    std::vector<store::submit_request> more;
    for (int i = 0; i < 10; ++i) more.push_back(make_request(gen.next(), 20'000, 1));
    cr_assert(submit_all(s, 0, more));
  }
  cr_assert(joined(*v) == msgs[0].body, "the pinned snapshot is intact");
}

Test(store_view, five_hundred_views_at_once, .timeout = 120) {
  store_test::opened_store o;
  cr_assert(o.ok, "%s", o.error.c_str());
  auto& s = o.store;
  auto& gen = o.gen;
  std::vector<store::submit_request> msgs;
  for (int i = 0; i < 100; ++i) msgs.push_back(make_request(gen.next(), 2500 + 37 * i, 1));
  const uint64_t hop = queue_all(s, msgs);
  std::vector<std::unique_ptr<message_view>> views;
  std::string error;
  for (int i = 0; i < 500; ++i) {
    auto v = s.open_delivery(hop, msgs[i % msgs.size()].id, error);
    cr_assert(v, "view %d: %s", i, error.c_str());
    views.push_back(std::move(v));
  }
  cr_assert_eq(s.open_views(), 500u);
  for (std::size_t i = 0; i < views.size(); ++i) cr_assert(joined(*views[i]) == msgs[i % msgs.size()].body);
  // Destroyed on another thread than the one that made them (MDB_NOTLS).
  std::thread([&] { views.clear(); }).join();
  cr_assert_eq(s.open_views(), 0u);
  auto again = s.open_delivery(hop, msgs[0].id, error);
  cr_assert(again, "reader slots are given back: %s", error.c_str());
}
