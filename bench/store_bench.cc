// store_bench.cc: durable group-commit throughput of the queue store (2 KB messages, 1/2/4 producers).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lib/bench_dir.h"
#include "store/store.h"

using namespace sluice;

namespace {

constexpr std::size_t per_producer = 1000;  // messages each producer submits per iteration

struct bench_dir {
  std::string path;
  bench_dir() {
    std::string tmpl = bench::bench_base_dir("store_bench") + "/sluice-store-bench-XXXXXX";
    if (mkdtemp(tmpl.data())) path = tmpl;
  }
  ~bench_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Each producer stands in for a worker loop: it submits its requests, then sleeps on a
// futex that the store's notify callback bumps (the daemon uses uv_async_send there).
void BM_store_group_commit(benchmark::State& state) {
  const unsigned producers = static_cast<unsigned>(state.range(0));
  bench_dir dir;
  auto signals = std::make_unique<std::atomic<uint32_t>[]>(producers);
  store::queue_store s;
  store::store_options o;
  o.dir = dir.path + "/q";
  o.producers = producers;
  o.notify = [&signals](unsigned p) {
    signals[p].fetch_add(1, std::memory_order_release);
    signals[p].notify_one();
  };
  std::string error;
  if (!s.open(std::move(o), error)) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::vector<base::queue_id_generator> gens;
  std::vector<std::vector<store::submit_request>> reqs(producers);
  for (unsigned p = 0; p < producers; ++p) {
    gens.emplace_back(p);
    reqs[p].resize(per_producer);
    for (auto& r : reqs[p]) {
      r.envelope.mail_from = "sender@example.org";
      r.envelope.recipients.push_back({"rcpt@example.com", 0, ""});
      r.body.assign(2048, 'x');
      r.connector = "bench";
      r.client_address = "127.0.0.1";
    }
  }
  std::atomic<bool> failed{false};
  std::vector<base::queue_id> done_ids;
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (unsigned p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (auto& r : reqs[p]) r.id = gens[p].next();
        std::size_t next = 0, done = 0;
        store::submit_request* out[256];
        while (done < per_producer) {
          while (next < per_producer && s.submit(p, &reqs[p][next])) ++next;
          uint32_t seen = signals[p].load(std::memory_order_acquire);
          std::size_t n = s.take_completed(p, out, 256);
          for (std::size_t i = 0; i < n; ++i)
            if (out[i]->result != store::submit_status::ok) failed = true;
          done += n;
          if (n == 0) signals[p].wait(seen, std::memory_order_acquire);
        }
      });
    }
    for (auto& t : threads) t.join();
    // Drain outside the timed region, so the store stays small (a FIFO steady state).
    state.PauseTiming();
    done_ids.clear();
    for (auto& v : reqs)
      for (auto& r : v) done_ids.push_back(r.id);
    if (!s.remove(done_ids, error)) failed = true;
    state.ResumeTiming();
  }
  if (failed) state.SkipWithError("a submit or remove failed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * producers * per_producer);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * producers * per_producer *
                          2048);
}

}  // namespace

BENCHMARK(BM_store_group_commit)->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
