// categorizer_tsan.cc: three worker loops receiving, categorizing across shards and handing items to their owners, under ThreadSanitizer.
// Untrusted input: none (the messages are made here). Standalone (no Criterion, whose arena cannot
// run under TSan, see tests/ring/ring_stress.h); built only in build-tsan; exits non-zero on any failure.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../store/store_fixture.h"
#include "categorize/categorizer.h"
#include "route_fixture.h"

using namespace sluice;

namespace {

constexpr unsigned loops = 3;
constexpr std::size_t per_loop = 200;

// One worker loop as the daemon runs it: its own store lane for its sessions' submissions and
// its shard's categorizations, so every id crosses to a shard (often another loop's) and every
// item to its hop's owner through the rings, while the store writer completes both kinds.
struct worker {
  std::thread thread;
  std::atomic<net::async_signal*> wake{nullptr};
  std::atomic<net::loop*> loop{nullptr};
  std::atomic<uint64_t> items{0};
  std::atomic<uint64_t> categorized{0};
  std::vector<store::submit_request> received;  // filled before the thread starts
  // Written by the loop thread after its loop ended, read after join.
  std::map<std::string, uint64_t> hop_items;
  uint64_t misplaced = 0;
  uint64_t failed = 0;
};

void run_worker(unsigned index, worker& w, store::queue_store& s, categorize::links& links,
                std::shared_ptr<const route::table> routes) {
  net::loop l;
  categorize::categorizer cat(l, index, s, links, std::move(routes));
  cat.set_tracker([&w](const log::tracking_record& r) {
    if (r.event == log::tracking_event::fail) ++w.failed;
  });
  std::size_t next = 0;
  net::async_signal sig(l, [&] {
    // The receive path: submit what the lane takes, hand each durable id to its shard.
    while (next < w.received.size() && s.submit(index, &w.received[next])) ++next;
    store::submit_request* done[64];
    for (std::size_t n; (n = s.take_completed(index, done, 64)) != 0;)
      for (std::size_t i = 0; i < n; ++i) cat.hand_off(done[i]->id);
    cat.poll();
    w.items.store(cat.queues().items());
    w.categorized.store(cat.stats().categorized);
  });
  w.loop.store(&l);
  w.wake.store(&sig, std::memory_order_release);
  sig.send();
  l.run();
  w.wake.store(nullptr);
  // Stopped only once everything is categorized, so no request is left in the store.
  if (!cat.idle()) ++w.misplaced;
  for (const auto& [id, q] : cat.queues().all()) {
    w.hop_items[q.key] = q.items.size();
    if (categorize::owner_of(q.key, loops) != index) ++w.misplaced;
  }
}

}  // namespace

int main() {
  store_test::temp_dir tmp;
  categorize::links links(loops);
  std::vector<std::unique_ptr<worker>> workers;
  for (unsigned i = 0; i < loops; ++i) workers.push_back(std::make_unique<worker>());
  links.log = [](const std::string&) {};  // the failed recipients: counted through the tracker
  links.wake = [&](unsigned to) {
    if (auto* sig = workers[to]->wake.load(std::memory_order_acquire)) sig->send();
  };
  store::queue_store s;
  store::store_options o;
  o.dir = tmp.sub("q");
  o.map_size = std::size_t{256} << 20;
  o.producers = loops;
  o.notify = [&](unsigned p) { links.wake(p); };
  std::string error;
  if (!s.open(std::move(o), error)) {
    std::fprintf(stderr, "open: %s\n", error.c_str());
    return 1;
  }
  for (unsigned i = 0; i < loops; ++i) {
    base::queue_id_generator gen(i);
    for (std::size_t m = 0; m < per_loop; ++m) {
      auto r = store_test::make_request(gen.next(), 2000, 0);
      for (const char* a : {"alice@sluice.test", "x@partner.example", "q@else.example", "nobody@sluice.test"})
        r.envelope.recipients.push_back({a, 0, ""});
      workers[i]->received.push_back(std::move(r));
    }
  }
  auto routes = categorize_test::three_hop_table();
  for (unsigned i = 0; i < loops; ++i)
    workers[i]->thread = std::thread(run_worker, i, std::ref(*workers[i]), std::ref(s), std::ref(links), routes);

  const uint64_t messages = loops * per_loop;
  uint64_t items = 0, categorized = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    items = categorized = 0;
    for (auto& w : workers) {
      items += w->items.load();
      categorized += w->categorized.load();
    }
    if (items == 3 * messages && categorized == messages) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (unsigned t = 0; t < loops; ++t) links.wake(t);  // counters are published on a wake-up
  }
  for (auto& w : workers) {
    while (!w->loop.load()) std::this_thread::yield();
    w->loop.load()->stop();
  }
  for (auto& w : workers) w->thread.join();

  std::map<std::string, uint64_t> per_hop;
  uint64_t misplaced = 0, failed = 0;
  for (auto& w : workers) {
    misplaced += w->misplaced;
    failed += w->failed;
    for (const auto& [k, n] : w->hop_items) per_hop[k] += n;
  }
  auto st = s.stats(error);
  const bool ok = categorized == messages && items == 3 * messages && misplaced == 0 && failed == messages &&
                  per_hop.size() == 3 && per_hop["local:sluice.test"] == messages &&
                  per_hop["smarthost:Outbound"] == messages && per_hop["dns:Partner:partner.example"] == messages &&
                  st && st->submission_queued == 0 && st->delivery_items == 3 * messages;
  std::printf("categorizer %u loops under TSan: %s (%llu categorized, %llu items, %llu failed recipients)\n", loops,
              ok ? "ok" : "FAILED", static_cast<unsigned long long>(categorized),
              static_cast<unsigned long long>(items), static_cast<unsigned long long>(failed));
  return ok ? 0 : 1;
}
