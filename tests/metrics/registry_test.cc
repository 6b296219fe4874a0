// registry_test.cc: counters from many threads, bounded label sets, histogram buckets, collectors.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <string>
#include <thread>
#include <vector>

#include "metrics/registry.h"

using namespace sluice::metrics;

namespace {

const sample* find_sample(const family_snapshot& f, std::vector<std::pair<std::string, std::string>> labels) {
  for (const auto& s : f.samples)
    if (s.labels == labels) return &s;
  return nullptr;
}

}  // namespace

Test(metrics_registry, threads_incrementing_give_exact_totals) {
  registry r;
  auto& shared = r.add_counter("t_shared_total", "one series bumped by every thread");
  auto& per = r.add_counter("t_per_total", "series looked up by every thread", {"worker"});
  constexpr int threads = 8, rounds = 100'000;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      counter& mine = per.with({std::to_string(t % 4)});
      for (int i = 0; i < rounds; ++i) {
        shared.get().inc();
        mine.inc(2);
        // Lookups racing with additions of new series must find the same ones.
        if (i % 1000 == 0) per.with({std::to_string((t + 1) % 4)}).inc(0);
      }
    });
  for (auto& t : ts) t.join();
  cr_assert_eq(shared.get().value(), uint64_t{threads} * rounds);
  cr_assert_eq(per.size(), 4u, "no label set was added twice by racing threads");
  auto snap = r.collect();
  cr_assert_eq(snap.size(), 2u);
  uint64_t total = 0;
  for (const auto& s : snap[1].samples) total += static_cast<uint64_t>(s.value);
  cr_assert_eq(total, uint64_t{threads} * rounds * 2);
  for (int w = 0; w < 4; ++w) {
    const sample* s = find_sample(snap[1], {{"worker", std::to_string(w)}});
    cr_assert(s != nullptr);
    cr_assert_eq(static_cast<uint64_t>(s->value), uint64_t{2} * rounds * 2, "worker %d", w);
  }
}

Test(metrics_registry, labels_beyond_the_bound_go_to_other) {
  registry r;
  auto& f = r.add_counter("t_delivered_total", "by connector and site", {"connector", "site"}, 3, "site");
  f.with({"Internet", "a.example"}).inc();
  f.with({"Internet", "b.example"}).inc();
  f.with({"Partner", "c.example"}).inc();
  // The bound is reached: new sites of either connector share one "other" series per connector.
  f.with({"Internet", "d.example"}).inc(5);
  f.with({"Internet", "e.example"}).inc(7);
  f.with({"Partner", "f.example"}).inc(11);
  // Known series keep counting as themselves.
  f.with({"Internet", "a.example"}).inc();
  auto snap = r.collect();
  const auto& fam = snap.at(0);
  cr_assert_eq(fam.samples.size(), 5u);
  cr_assert_eq(find_sample(fam, {{"connector", "Internet"}, {"site", "a.example"}})->value, 2);
  cr_assert_eq(find_sample(fam, {{"connector", "Internet"}, {"site", "other"}})->value, 12);
  cr_assert_eq(find_sample(fam, {{"connector", "Partner"}, {"site", "other"}})->value, 11);
  cr_assert_null(find_sample(fam, {{"connector", "Internet"}, {"site", "d.example"}}));
}

Test(metrics_registry, the_series_count_has_a_hard_cap) {
  registry r;
  auto& f = r.add_counter("t_x_total", "x", {"connector", "site"}, 2, "site");
  // A remote party that controls both labels still cannot grow the family without bound.
  for (int i = 0; i < 1000; ++i) f.with({"c" + std::to_string(i), "s" + std::to_string(i)}).inc();
  cr_assert_leq(f.size(), 5u);
  auto snap = r.collect();
  double total = 0;
  for (const auto& s : snap[0].samples) total += s.value;
  cr_assert_eq(total, 1000);
  cr_assert_not_null(find_sample(snap[0], {{"connector", "other"}, {"site", "other"}}));
}

Test(metrics_registry, histogram_buckets_are_cumulative) {
  registry r;
  auto& h = r.add_histogram("t_seconds", "latency", {0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 2.0, 20.0, 30.0}) h.get().observe(v);
  auto snap = r.collect();
  cr_assert_eq(snap[0].type, metric_type::histogram);
  const sample& s = snap[0].samples.at(0);
  cr_assert_eq(s.buckets.size(), 3u);
  // "le" is inclusive: 0.1 counts in the 0.1 bucket, 1.0 in the 1 bucket.
  cr_assert_eq(s.buckets[0].first, 0.1);
  cr_assert_eq(s.buckets[0].second, 2u);
  cr_assert_eq(s.buckets[1].second, 4u);
  cr_assert_eq(s.buckets[2].second, 5u);
  cr_assert_eq(s.count, 7u);
  cr_assert_float_eq(s.sum, 53.65, 1e-9);
}

Test(metrics_registry, collectors_run_at_collection_and_leave_with_their_handle) {
  registry r;
  int calls = 0;
  {
    auto handle = r.add_collector([&calls](std::vector<family_snapshot>& out) {
      ++calls;
      family_snapshot f;
      f.name = "t_sampled";
      f.type = metric_type::gauge;
      f.samples.push_back({{}, 42});
      out.push_back(std::move(f));
    });
    auto snap = r.collect();
    cr_assert_eq(snap.size(), 1u);
    cr_assert_eq(snap[0].samples[0].value, 42);
  }
  cr_assert_eq(r.collect().size(), 0u);
  cr_assert_eq(calls, 1);
}

Test(metrics_registry, a_family_without_labels_reads_zero_before_any_event) {
  registry r;
  r.add_counter("t_c_total", "c");
  r.add_histogram("t_h", "h", {1});
  auto snap = r.collect();
  cr_assert_eq(snap.at(0).samples.size(), 1u);
  cr_assert_eq(snap[0].samples[0].value, 0);
  cr_assert_eq(snap.at(1).samples.size(), 1u);
  cr_assert_eq(snap[1].samples[0].count, 0u);
}

Test(metrics_registry, gauges_go_up_and_down) {
  registry r;
  auto& g = r.add_gauge("t_open", "open", {"connector"});
  g.with({"a"}).add(3);
  g.with({"a"}).add(-1);
  g.with({"b"}).set(7);
  auto snap = r.collect();
  cr_assert_eq(find_sample(snap[0], {{"connector", "a"}})->value, 2);
  cr_assert_eq(find_sample(snap[0], {{"connector", "b"}})->value, 7);
}
