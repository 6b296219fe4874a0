// store_tsan.cc: producers submitting and categorizing through the store's rings to its writer, under ThreadSanitizer.
// Standalone (no Criterion, whose arena cannot run under TSan); exits non-zero on any failure.
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "store/store.h"
#include "store_fixture.h"

int main() {
  using namespace sluice;
  store_test::temp_dir tmp;
  constexpr unsigned producers = 3;
  std::atomic<int> notifications{0};
  store::queue_store s;
  store::store_options o;
  o.dir = tmp.sub("q");
  o.producers = producers;
  o.map_size = std::size_t{256} << 20;
  o.notify = [&](unsigned) { notifications.fetch_add(1); };
  std::string error;
  if (!s.open(std::move(o), error)) {
    std::fprintf(stderr, "open: %s\n", error.c_str());
    return 1;
  }
  std::atomic<int> bad{0};
  std::vector<std::vector<store::submit_request>> reqs(producers);
  std::vector<std::thread> threads;
  for (unsigned p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      base::queue_id_generator gen(p);
      for (int i = 0; i < 2000; ++i) reqs[p].push_back(store_test::make_request(gen.next(), 500));
      if (!store_test::submit_all(s, p, reqs[p])) bad.fetch_add(1);
      for (auto& r : reqs[p])
        if (r.result != store::submit_status::ok) bad.fetch_add(1);
      // Then categorize them on the same lane: the second request kind through the
      // same rings, group commit and completion path.
      std::vector<store::categorize_request> cats(reqs[p].size());
      for (std::size_t i = 0; i < cats.size(); ++i) {
        cats[i].id = reqs[p][i].id;
        cats[i].received_at_ms = reqs[p][i].received_at_ms;
        cats[i].items.push_back({"smarthost:p" + std::to_string(p), {0}, 0});
        cats[i].items.push_back({"local:shared", {0}, 0});
      }
      if (!store_test::categorize_all(s, p, cats)) bad.fetch_add(1);
      for (auto& c : cats)
        if (c.result != store::categorize_status::ok) bad.fetch_add(1);
    });
  for (auto& t : threads) t.join();
  auto st = s.stats(error);
  const bool ok = bad.load() == 0 && st && st->messages == producers * 2000u && st->submission_queued == 0 &&
                  st->delivery_items == producers * 4000u && st->delivery_queues == producers + 1;
  std::printf("store group commit under TSan: %s (%d notifications)\n", ok ? "ok" : "FAILED",
              notifications.load());
  return ok ? 0 : 1;
}
