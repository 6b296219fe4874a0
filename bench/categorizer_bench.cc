// categorizer_bench.cc: routing decisions and bifurcation against realistic, seeded routing tables.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "route/route.h"

namespace {

using namespace sluice::route;

// Sizes from the issue: what a large organisation's configuration looks like.
constexpr size_t accepted_domain_count = 1000;
constexpr size_t address_space_count = 10000;
constexpr size_t connector_count = 200;  // 50 address spaces each
constexpr size_t recipient_count = 100000;
constexpr size_t address_pool = 1 << 16;  // pre-generated recipients, cycled through

enum class mix : int { all, local, unknown, relay, exact, wildcard, no_route, count };
constexpr const char* mix_name[] = {"mix",      "local",    "unknown_recipient", "relay_domain",
                                    "exact_as", "wildcard", "no_route"};

std::string random_label(std::mt19937_64& rng, size_t lo, size_t hi) {
  std::uniform_int_distribution<size_t> len(lo, hi);
  std::uniform_int_distribution<int> ch('a', 'z');
  std::string s(len(rng), 'a');
  for (char& c : s) c = static_cast<char>(ch(rng));
  return s;
}

std::string random_domain(std::mt19937_64& rng) {
  static const std::array<const char*, 8> tlds = {"com", "net", "org", "de", "co.uk", "io", "fr", "nl"};
  return random_label(rng, 4, 12) + "." + tlds[rng() % tlds.size()];
}

std::string mixed_case(std::mt19937_64& rng, std::string s) {
  if (rng() % 10 == 0)  // some senders shout; normalisation is on the measured path
    for (char& c : s)
      if (c >= 'a' && c <= 'z' && rng() % 2) c = static_cast<char>(c - 32);
  return s;
}

// The routing configuration plus recipient pools per traffic class. Shared by
// every benchmark here; a whole-message categorization benchmark (submission
// record read + route + bifurcate + delivery records in one store transaction)
// belongs in this file too, built on realistic_tables() and messages_of(), so
// its figures compare directly with BM_route_decision.
struct fixture {
  std::shared_ptr<const table> routes;
  // Each pool packed into one buffer, as recipients sit in an envelope record:
  // scattered heap strings would measure the allocator's layout, not routing.
  struct packed {
    std::string bytes;
    std::vector<std::string_view> views;
    std::string_view operator[](size_t i) const { return views[i]; }
  };
  std::array<packed, static_cast<size_t>(mix::count)> addresses;
};

const fixture& realistic_tables() {
  static const fixture f = [] {
    fixture fx;
    std::mt19937_64 rng(20261128);

    std::vector<accepted_domain_spec> domains;
    std::vector<std::string> local_domains, relay_domains, wildcard_local;
    std::vector<size_t> authoritative;
    for (size_t i = 0; i < accepted_domain_count; ++i) {
      accepted_domain_spec d;
      const bool wild = i % 10 == 9;  // 10% "*.name"
      std::string base = random_domain(rng);
      d.name = wild ? "*." + base : base;
      const unsigned kind = rng() % 100;
      d.kind = kind < 70   ? domain_kind::authoritative
               : kind < 85 ? domain_kind::internal_relay
                           : domain_kind::external_relay;
      if (d.kind == domain_kind::authoritative) {
        if (wild) {
          wildcard_local.push_back(base);  // catch-all wildcard domains
        } else {
          d.recipients.emplace();
          authoritative.push_back(domains.size());
          local_domains.push_back(base);
        }
      } else {
        relay_domains.push_back(base);
        if (d.kind == domain_kind::internal_relay) d.recipients.emplace();
      }
      domains.push_back(std::move(d));
    }
    // 100,000 mailboxes spread over the authoritative domains.
    std::vector<std::string> mailboxes;
    for (size_t i = 0; i < recipient_count; ++i) {
      accepted_domain_spec& d = domains[authoritative[rng() % authoritative.size()]];
      std::string addr = random_label(rng, 3, 8) + "." + random_label(rng, 4, 10) + "@" + d.name;
      d.recipients->push_back(addr);
      mailboxes.push_back(std::move(addr));
    }

    // 10,000 address spaces, ~30% wildcards, drawn from a pool small enough that
    // patterns repeat across connectors (so cost and name tie-breaks happen).
    std::vector<std::string> pattern_bases;
    for (size_t i = 0; i < address_space_count * 6 / 10; ++i) pattern_bases.push_back(random_domain(rng));
    for (const auto& r : relay_domains) pattern_bases.push_back(r);
    std::vector<send_connector_spec> connectors(connector_count);
    std::vector<std::string> exact_targets, wildcard_targets;
    for (size_t i = 0; i < connector_count; ++i) {
      send_connector_spec& c = connectors[i];
      c.name = "connector-" + std::to_string(i);
      c.enabled = rng() % 20 != 0;
      c.max_message_size = (rng() % 4 == 0) ? 0 : (10u + rng() % 40) << 20;
      c.tls = static_cast<tls_policy>(rng() % 4);
      if (rng() % 3 == 0) {
        c.routing = routing_method::smart_host;
        c.smart_hosts = {{"relay-a." + std::to_string(i) + ".example", 25},
                         {"relay-b." + std::to_string(i) + ".example", 2525}};
      }
      for (size_t k = 0; k < address_space_count / connector_count; ++k) {
        const std::string& base = pattern_bases[rng() % pattern_bases.size()];
        const bool wild = rng() % 10 < 3;
        c.address_spaces.push_back({wild ? "*." + base : base, static_cast<uint32_t>(1 + rng() % 100)});
        if (c.enabled) (wild ? wildcard_targets : exact_targets).push_back(base);
      }
    }
    // Every relay domain gets a route so relay traffic is deliverable.
    connectors[0].enabled = true;
    for (const auto& r : relay_domains) connectors[0].address_spaces.push_back({r, 100});

    auto built = table::build(std::move(domains), std::move(connectors), limits{50u << 20});
    if (!built.routes) {
      for (const auto& e : built.errors) fprintf(stderr, "table: %s\n", e.c_str());
      abort();
    }
    fx.routes = built.routes;

    std::array<std::vector<std::string>, static_cast<size_t>(mix::count)> a;
    auto pool = [&](mix m) -> std::vector<std::string>& { return a[static_cast<size_t>(m)]; };
    for (size_t i = 0; i < address_pool; ++i) {
      pool(mix::local).push_back(mixed_case(rng, mailboxes[rng() % mailboxes.size()]));
      if (i % 4 == 0 && !wildcard_local.empty())  // catch-all subdomains count as local too
        pool(mix::local).back() = "user@" + random_label(rng, 2, 6) + "." +
                                  wildcard_local[rng() % wildcard_local.size()];
      pool(mix::unknown).push_back(random_label(rng, 5, 12) + "@" +
                                   local_domains[rng() % local_domains.size()]);
      pool(mix::relay).push_back(random_label(rng, 5, 12) + "@" +
                                 relay_domains[rng() % relay_domains.size()]);
      pool(mix::exact).push_back(mixed_case(rng, random_label(rng, 5, 12) + "@" +
                                                     exact_targets[rng() % exact_targets.size()]));
      pool(mix::wildcard).push_back(random_label(rng, 5, 12) + "@" + random_label(rng, 2, 8) +
                                    "." + wildcard_targets[rng() % wildcard_targets.size()]);
      pool(mix::no_route).push_back(random_label(rng, 5, 12) + "@" + random_domain(rng) + ".invalid");
    }
    // The realistic blend: mostly local and outbound, a little of everything else.
    const std::array<std::pair<mix, unsigned>, 6> weights = {{{mix::local, 40},
                                                              {mix::unknown, 5},
                                                              {mix::relay, 10},
                                                              {mix::exact, 20},
                                                              {mix::wildcard, 15},
                                                              {mix::no_route, 10}}};
    for (size_t i = 0; i < address_pool; ++i) {
      unsigned roll = static_cast<unsigned>(rng() % 100);
      for (const auto& [m, w] : weights) {
        if (roll < w) {
          pool(mix::all).push_back(pool(m)[rng() % address_pool]);
          break;
        }
        roll -= w;
      }
    }
    for (size_t k = 0; k < a.size(); ++k) {
      fixture::packed& pk = fx.addresses[k];
      for (const auto& addr : a[k]) pk.bytes += addr;
      size_t at = 0;
      for (const auto& addr : a[k]) {
        pk.views.emplace_back(pk.bytes.data() + at, addr.size());
        at += addr.size();
      }
    }
    return fx;
  }();
  return f;
}

void BM_route_decision(benchmark::State& state) {
  const fixture& f = realistic_tables();
  const auto& addrs = f.addresses[static_cast<size_t>(state.range(0))];
  const table& t = *f.routes;
  size_t i = 0;
  std::array<size_t, 8> outcomes{};
  for (auto _ : state) {
    decision d = t.route_recipient(addrs[i & (address_pool - 1)], 30000, 35u << 20);
    benchmark::DoNotOptimize(d);
    ++outcomes[static_cast<size_t>(d.result)];
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetLabel(mix_name[state.range(0)]);
  const double n = static_cast<double>(state.iterations());
  state.counters["local%"] = 100.0 * outcomes[static_cast<size_t>(outcome::local_delivery)] / n;
  state.counters["no_route%"] = 100.0 * outcomes[static_cast<size_t>(outcome::no_route)] / n;
  state.counters["unknown%"] = 100.0 * outcomes[static_cast<size_t>(outcome::unknown_recipient)] / n;
}
BENCHMARK(BM_route_decision)->DenseRange(0, static_cast<int>(mix::count) - 1);

// Recipients of one message each, routed in advance from the realistic blend.
struct message_batch {
  std::vector<std::vector<decision>> messages;
};

const message_batch& messages_of(size_t recipients) {
  static std::array<message_batch, 3> batches;
  const size_t slot = recipients == 1 ? 0 : recipients == 10 ? 1 : 2;
  message_batch& b = batches[slot];
  if (b.messages.empty()) {
    const fixture& f = realistic_tables();
    const auto& addrs = f.addresses[static_cast<size_t>(mix::all)];
    std::mt19937_64 rng(recipients);
    for (size_t m = 0; m < 1024; ++m) {
      std::vector<decision> ds;
      for (size_t r = 0; r < recipients; ++r)
        ds.push_back(f.routes->route_recipient(addrs[rng() % address_pool], 30000, 35u << 20));
      b.messages.push_back(std::move(ds));
    }
  }
  return b;
}

void BM_group_by_next_hop(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const message_batch& b = messages_of(n);
  grouping g;
  size_t i = 0, groups = 0;
  for (auto _ : state) {
    group_by_next_hop(b.messages[i & 1023], g);
    groups += g.groups.size();
    benchmark::DoNotOptimize(g.order.data());
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.counters["hops/msg"] = static_cast<double>(groups) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_group_by_next_hop)->Arg(1)->Arg(10)->Arg(100);

// Routing plus bifurcation of whole messages: the categorizer's CPU work without
// the store transaction.
void BM_route_and_group(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const fixture& f = realistic_tables();
  const auto& addrs = f.addresses[static_cast<size_t>(mix::all)];
  std::vector<decision> ds(n);
  grouping g;
  size_t next = 0;
  for (auto _ : state) {
    for (size_t r = 0; r < n; ++r)
      ds[r] = f.routes->route_recipient(addrs[next++ & (address_pool - 1)], 30000, 35u << 20);
    group_by_next_hop(ds, g);
    benchmark::DoNotOptimize(g.order.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_route_and_group)->Arg(1)->Arg(10)->Arg(100);

// A reload rebuilds the whole table: how long does the swap-in take?
void BM_table_build(benchmark::State& state) {
  realistic_tables();  // keep the fixture's own build out of the measurement
  std::mt19937_64 rng(7);
  std::vector<accepted_domain_spec> domains;
  for (size_t i = 0; i < accepted_domain_count; ++i) {
    accepted_domain_spec d{random_domain(rng), domain_kind::authoritative, std::vector<std::string>{}};
    for (size_t k = 0; k < recipient_count / accepted_domain_count; ++k)
      d.recipients->push_back(random_label(rng, 5, 12));
    domains.push_back(std::move(d));
  }
  std::vector<send_connector_spec> connectors(connector_count);
  for (size_t i = 0; i < connector_count; ++i) {
    connectors[i].name = "c" + std::to_string(i);
    for (size_t k = 0; k < address_space_count / connector_count; ++k)
      connectors[i].address_spaces.push_back(
          {(rng() % 10 < 3 ? "*." : "") + random_domain(rng), static_cast<uint32_t>(1 + rng() % 100)});
  }
  for (auto _ : state) {
    auto r = table::build(domains, connectors, limits{});
    benchmark::DoNotOptimize(r.routes.get());
  }
}
BENCHMARK(BM_table_build)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

// ---- whole-message categorization: envelope read + route + bifurcate + store transaction ----

#include "lib/bench_dir.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "categorize/categorize.h"
#include "store/store.h"

namespace {

// A queue store pre-filled with `messages` messages of `recipients` recipients each,
// drawn from the realistic blend, all waiting in the submission queue. The store lives
// under $SLUICE_BENCH_DIR (default /tmp, said on stderr; tmpfs refused, see bench_dir.h):
// put it on the disk the daemon would use, since every categorize transaction is an
// fsync'd commit.
struct filled_store {
  std::string dir;
  std::unique_ptr<sluice::store::queue_store> store;
  std::vector<sluice::base::queue_id> ids;
  uint64_t recipients = 0;

  ~filled_store() {
    store.reset();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

std::unique_ptr<filled_store> fill_store(size_t recipients, size_t messages) {
  using namespace sluice;
  auto fs = std::make_unique<filled_store>();
  std::string tmpl = bench::bench_base_dir("categorizer_bench") + "/sluice-catbench-XXXXXX";
  if (!mkdtemp(tmpl.data())) abort();
  fs->dir = tmpl;
  fs->store = std::make_unique<store::queue_store>();
  store::store_options o;
  o.dir = fs->dir + "/q";
  o.map_size = std::size_t{8} << 30;
  o.producers = 1;
  std::string error;
  if (!fs->store->open(std::move(o), error)) {
    fprintf(stderr, "bench store: %s\n", error.c_str());
    abort();
  }
  const fixture& f = realistic_tables();
  const auto& addrs = f.addresses[static_cast<size_t>(mix::all)];
  std::mt19937_64 rng(recipients * 7919);
  base::queue_id_generator gen(1);
  std::vector<store::submit_request> reqs(1024);
  std::vector<store::submit_request*> done(1024);
  const std::string body(1500, 'x');  // bodies are not read by the categorizer
  for (size_t m = 0; m < messages;) {
    size_t batch = std::min<size_t>(reqs.size(), messages - m);
    for (size_t i = 0; i < batch; ++i) {
      store::submit_request& r = reqs[i];
      r.id = gen.next();
      r.envelope.mail_from = "sender@example.org";
      r.envelope.recipients.clear();
      for (size_t k = 0; k < recipients; ++k)
        r.envelope.recipients.push_back({std::string(addrs[rng() % address_pool]), 0, ""});
      r.body = body;
      r.connector = "Internet";
      r.received_at_ms = 1700000000000;
      fs->ids.push_back(r.id);
      if (!fs->store->submit(0, &r)) abort();
    }
    size_t got = 0;
    while (got < batch) {
      size_t n = fs->store->take_completed(0, done.data(), done.size());
      for (size_t i = 0; i < n; ++i)
        if (done[i]->result != store::submit_status::ok) abort();
      got += n;
      if (n == 0) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    m += batch;
  }
  fs->recipients = uint64_t{recipients} * messages;
  return fs;
}

// What one categorizer shard does, pipelined as on its loop: envelopes read 256 at a
// time in one read transaction, each message routed and grouped, its categorize request
// handed to the writer (up to the lane's 4096 in flight), completions collected as
// they come. One iteration categorizes the whole pre-filled submission queue; the
// writer thread's group commits (one fsync each) run concurrently on the other core.
void BM_categorize_whole_message(benchmark::State& state) {
  using namespace sluice;
  const size_t n = static_cast<size_t>(state.range(0));
  const size_t messages = n == 1 ? 100000 : n == 10 ? 30000 : 4000;
  const fixture& f = realistic_tables();
  uint64_t items = 0, failed = 0, committed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto fs = fill_store(n, messages);
    std::vector<store::categorize_request> pool(store::queue_store::categorize_capacity);
    std::vector<store::categorize_request*> free_list;
    for (auto& r : pool) free_list.push_back(&r);
    std::vector<store::categorize_request*> done(256);
    categorize::message_router router;
    std::string problems, error;
    state.ResumeTiming();

    size_t next = 0, completed = 0;
    auto collect = [&] {
      size_t k = fs->store->take_categorized(0, done.data(), done.size());
      for (size_t i = 0; i < k; ++i) {
        if (done[i]->result == store::categorize_status::ok) ++committed;
        items += done[i]->items.size();
        failed += done[i]->failed.size();
        free_list.push_back(done[i]);
      }
      completed += k;
      return k;
    };
    while (completed < messages) {
      while (next < messages && free_list.size() >= 256) {
        const size_t take = std::min<size_t>(256, messages - next);
        std::span<const base::queue_id> ids(fs->ids.data() + next, take);
        fs->store->read_envelopes(
            ids,
            [&](base::queue_id id, const smtp::envelope& env, const store::message_metadata& meta) {
              store::categorize_request* r = free_list.back();
              free_list.pop_back();
              router.categorize(*f.routes, id, env, meta, *r);
              if (!fs->store->categorize(0, r)) abort();
            },
            problems, error);
        next += take;
      }
      if (collect() == 0) std::this_thread::yield();
    }
    state.PauseTiming();
    std::string err;
    auto st = fs->store->stats(err);
    if (!st || st->submission_queued != 0) abort();
    fs.reset();  // removing the store stays out of the measurement
    state.ResumeTiming();
  }
  const double total = static_cast<double>(messages) * static_cast<double>(state.iterations());
  state.counters["msgs/s"] = benchmark::Counter(total, benchmark::Counter::kIsRate);
  state.counters["rcpts/s"] = benchmark::Counter(total * static_cast<double>(n), benchmark::Counter::kIsRate);
  state.counters["items/msg"] = static_cast<double>(items) / total;
  state.counters["failed/msg"] = static_cast<double>(failed) / total;
  if (committed != static_cast<uint64_t>(total)) state.SkipWithError("not every categorization committed");
}
BENCHMARK(BM_categorize_whole_message)->Arg(1)->Arg(10)->Arg(100)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
