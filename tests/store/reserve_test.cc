// reserve_test.cc: the free-page reserve: a flood into a 1 MiB map is held back while categorizations and delivery outcomes always find room, and the queue drains.
// Untrusted input: none (the test writes the store itself).
#include <criterion/criterion.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/record.h"
#include "store/store.h"
#include "item_helpers.h"
#include "store_fixture.h"

using namespace sluice;
using store::categorize_request;
using store::categorize_status;
using store::deliver_request;
using store::deliver_status;
using store::queue_store;
using store::submit_status;
using store_test::categorize_all;
using store_test::deliver_all;
using store_test::make_request;
using store_test::outcome;
using store_test::stats_of;
using store_test::submit_all;

namespace {

struct accepted_message {
  base::queue_id id;
  smtp::envelope envelope;
  int64_t received_at_ms = 0;
  std::string body;
};

struct queued_item {
  uint64_t hop = 0;
  base::queue_id id;
  uint32_t recipients = 0;
};

// What the drain side saw: any result but ok is counted by kind.
struct drain_counts {
  std::size_t categorized = 0, delivered = 0;
  std::size_t categorize_full = 0, deliver_full = 0, other_failures = 0;
  std::string last_error;
};

// The categorizer's request for `m`, every third one with a header added by a "rule", so
// that its transaction writes the whole body again.
categorize_request categorization(const accepted_message& m, std::size_t chunk, std::size_t n) {
  categorize_request c;
  c.id = m.id;
  c.received_at_ms = m.received_at_ms;
  std::vector<uint32_t> rcpts;
  for (uint32_t r = 0; r < m.envelope.recipients.size(); ++r) rcpts.push_back(r);
  c.items.push_back({"dns:Internet:a.test", rcpts, 0});
  if (n % 3 == 0) {
    std::string body = "X-Rule: edited by a transport rule\r\n" + m.body;
    store::message_metadata meta;
    meta.received_at_ms = m.received_at_ms;
    meta.connector = "default";
    meta.client_address = "127.0.0.1";
    meta.client_helo = "client.example";
    meta.body_size = body.size();
    meta.body_chunks = static_cast<uint32_t>((body.size() + chunk - 1) / chunk);
    c.new_record = store::encode_record(m.envelope, meta);
    c.new_body = std::move(body);
  }
  return c;
}

void categorize_some(queue_store& s, std::vector<accepted_message>& batch, std::deque<queued_item>& items,
                     drain_counts& counts) {
  std::vector<categorize_request> cats;
  for (std::size_t i = 0; i < batch.size(); ++i)
    cats.push_back(categorization(batch[i], s.chunk_size(), counts.categorized + i));
  cr_assert(categorize_all(s, 1, cats));
  for (std::size_t i = 0; i < cats.size(); ++i) {
    if (cats[i].result == categorize_status::ok) {
      ++counts.categorized;
      items.push_back({cats[i].items[0].hop_id, cats[i].id, static_cast<uint32_t>(batch[i].envelope.recipients.size())});
    } else {
      (cats[i].result == categorize_status::storage_full ? counts.categorize_full : counts.other_failures)++;
      counts.last_error = cats[i].error;
    }
  }
}

void deliver_some(queue_store& s, std::deque<queued_item>& items, std::size_t n, drain_counts& counts) {
  std::vector<deliver_request> outcomes;
  for (; n > 0 && !items.empty(); --n) {
    const queued_item it = items.front();
    items.pop_front();
    std::vector<uint32_t> all;
    for (uint32_t r = 0; r < it.recipients; ++r) all.push_back(r);
    outcomes.push_back(outcome(it.hop, it.id, all));
  }
  cr_assert(deliver_all(s, 1, outcomes));
  for (const auto& r : outcomes) {
    if (r.result == deliver_status::ok) {
      ++counts.delivered;
    } else {
      (r.result == deliver_status::storage_full ? counts.deliver_full : counts.other_failures)++;
      counts.last_error = r.error;
    }
  }
}

}  // namespace

// The daemon's flood (tests/integration/store_full_test.cc) without sockets: one producer
// submits 8-16 KiB messages as fast as the writer takes them; the other categorizes them
// (a third with a rewritten body), keeps views open as deliveries in flight do (pinning
// the pages freed meanwhile), and records their outcomes more slowly than mail arrives,
// so the map fills. New mail gets storage_full; the writes that drain never do.
Test(store_reserve, a_flood_held_back_leaves_room_for_every_write_that_drains, .timeout = 120) {
  store_test::temp_dir tmp;
  queue_store s;
  store::store_options o;
  o.dir = tmp.sub("q");
  o.map_size = std::size_t{1} << 20;
  o.producers = 2;
  std::string error;
  cr_assert(s.open(std::move(o), error), "%s", error.c_str());

  std::mutex mu;
  std::vector<accepted_message> arrived;  // accepted, not yet taken by the drain
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> accepted{0}, held_back{0}, submit_failures{0};
  std::thread flood([&] {
    base::queue_id_generator gen(0);
    for (unsigned round = 0; !stop.load(); ++round) {
      std::vector<store::submit_request> batch;
      for (unsigned i = 0; i < 8; ++i)
        batch.push_back(make_request(gen.next(), 8192 + ((round * 8 + i) * 1031) % 8192, 1 + i % 2));
      if (!submit_all(s, 0, batch)) return;
      std::size_t refused = 0;
      std::unique_lock lock(mu);
      for (auto& m : batch) {
        if (m.result == submit_status::ok) {
          ++accepted;
          arrived.push_back({m.id, m.envelope, m.received_at_ms, m.body});
        } else if (m.result == submit_status::storage_full) {
          ++held_back;
          ++refused;
        } else {
          ++submit_failures;
        }
      }
      lock.unlock();
      if (refused == batch.size()) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a client's pause
    }
  });

  drain_counts counts;
  std::deque<queued_item> items;
  std::deque<std::unique_ptr<store::message_view>> in_flight;  // the oldest is released first
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((held_back.load() < 200 || counts.delivered < 200) && std::chrono::steady_clock::now() < deadline) {
    std::vector<accepted_message> batch;
    {
      std::lock_guard lock(mu);
      batch.swap(arrived);
    }
    if (!batch.empty()) categorize_some(s, batch, items, counts);
    // Deliveries in flight: a view opened on the newest item, each living four rounds.
    if (!items.empty()) {
      auto v = s.open_delivery(items.back().hop, items.back().id, error);
      in_flight.push_back(std::move(v));
    } else {
      in_flight.push_back(nullptr);
    }
    while (in_flight.size() > 4) in_flight.pop_front();
    deliver_some(s, items, 6, counts);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop.store(true);
  flood.join();
  cr_log_info("accepted %zu, held back %zu, categorized %zu, delivered %zu, reserve %llu pages", accepted.load(),
              held_back.load(), counts.categorized, counts.delivered,
              static_cast<unsigned long long>(s.reserved_pages()));
  cr_assert_eq(submit_failures.load(), 0u);
  cr_assert_gt(held_back.load(), 0u, "the 1 MiB map never filled: the test proves nothing");
  cr_assert_eq(counts.categorize_full, 0u, "%zu categorizations found the store full: %s", counts.categorize_full,
               counts.last_error.c_str());
  cr_assert_eq(counts.deliver_full, 0u, "%zu delivery outcomes found the store full: %s", counts.deliver_full,
               counts.last_error.c_str());
  cr_assert_eq(counts.other_failures, 0u, "%s", counts.last_error.c_str());

  // Everything accepted drains, and the store takes mail again.
  in_flight.clear();
  categorize_some(s, arrived, items, counts);
  while (!items.empty()) deliver_some(s, items, 64, counts);
  cr_assert_eq(counts.categorize_full + counts.deliver_full + counts.other_failures, 0u, "%s", counts.last_error.c_str());
  cr_assert_eq(counts.delivered, accepted.load());
  const auto st = stats_of(s);
  cr_assert(st.messages == 0 && st.submission_queued == 0 && st.delivery_items == 0,
            "%llu messages, %llu to categorize, %llu items left", static_cast<unsigned long long>(st.messages),
            static_cast<unsigned long long>(st.submission_queued), static_cast<unsigned long long>(st.delivery_items));
  base::queue_id_generator gen(1);
  std::vector<store::submit_request> after{make_request(gen.next(), 16000, 2)};
  cr_assert(submit_all(s, 0, after));
  cr_assert_eq(after[0].result, submit_status::ok, "%s", after[0].error.c_str());
}
