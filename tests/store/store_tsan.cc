// store_tsan.cc: producers submitting and categorizing through their store lanes to its writer, under ThreadSanitizer.
// Standalone (no Criterion, whose arena cannot run under TSan); exits non-zero on any failure.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iterator>
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
      std::vector<store::categorize_request> cats(reqs[p].size());
      for (std::size_t i = 0; i < cats.size(); ++i) {
        cats[i].id = reqs[p][i].id;
        cats[i].received_at_ms = reqs[p][i].received_at_ms;
        cats[i].items.push_back({"smarthost:p" + std::to_string(p), {0}, 0});
        cats[i].items.push_back({"local:shared", {0}, 0});
      }
      const std::size_t half = reqs[p].size() / 2;
      std::vector<store::submit_request> first(std::make_move_iterator(reqs[p].begin()),
                                               std::make_move_iterator(reqs[p].begin() + half));
      std::vector<store::submit_request> second(std::make_move_iterator(reqs[p].begin() + half),
                                                std::make_move_iterator(reqs[p].end()));
      if (!store_test::submit_all(s, p, first)) bad.fetch_add(1);
      // Both kinds on the lane at once: the first half is categorized while the second
      // is submitted, and both kinds' completions are taken as they come.
      std::size_t next_sub = 0, next_cat = 0, done_sub = 0, done_cat = 0;
      store::submit_request* sout[128];
      store::categorize_request* cout[128];
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while (done_sub < second.size() || done_cat < half) {
        while (next_sub < second.size() && s.submit(p, &second[next_sub])) ++next_sub;
        while (next_cat < half && s.categorize(p, &cats[next_cat])) ++next_cat;
        std::size_t n = s.take_completed(p, sout, 128), m = s.take_categorized(p, cout, 128);
        done_sub += n;
        done_cat += m;
        if (n + m == 0) {
          if (std::chrono::steady_clock::now() > deadline) {
            bad.fetch_add(1);
            break;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      }
      std::vector<store::categorize_request> rest(std::make_move_iterator(cats.begin() + half),
                                                  std::make_move_iterator(cats.end()));
      if (!store_test::categorize_all(s, p, rest)) bad.fetch_add(1);
      for (auto* v : {&first, &second})
        for (auto& r : *v)
          if (r.result != store::submit_status::ok) bad.fetch_add(1);
      for (std::size_t i = 0; i < half; ++i)
        if (cats[i].result != store::categorize_status::ok) bad.fetch_add(1);
      for (auto& c : rest)
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
