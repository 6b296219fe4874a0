// categorizer_loop_test.cc: categorizer shards on real loops: recovery, ring hand-off, items at their owners.
#include <criterion/criterion.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "../store/store_fixture.h"
#include "route_fixture.h"
#include "categorize/categorizer.h"

using namespace sluice;

namespace {

constexpr unsigned loops = 2;

struct loop_thread {
  std::thread thread;
  std::atomic<net::async_signal*> wake{nullptr};
  std::atomic<net::loop*> loop{nullptr};
  std::atomic<uint64_t> items{0};
  std::atomic<uint64_t> categorized{0};
  // Copied out by the loop thread after its loop ended.
  std::map<std::string, uint64_t> hop_items;
  uint64_t misplaced = 0;
  std::map<std::string, uint64_t> events;  // "ROUTE smarthost:Outbound", "FAIL 5.1.1 <nobody@...>"
};

std::vector<store::submit_request> messages(base::queue_id_generator& gen, int n) {
  std::vector<store::submit_request> out;
  for (int i = 0; i < n; ++i) {
    auto r = store_test::make_request(gen.next(), 3000, 0);
    for (const char* a : {"alice@sluice.test", "x@partner.example", "q@else.example", "nobody@sluice.test"})
      r.envelope.recipients.push_back({a, 0, ""});
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

Test(categorizer_loops, recovery_and_ring_handoff_put_every_item_at_its_owner, .timeout = 120) {
  store_test::temp_dir tmp;
  categorize::links links(loops);
  std::vector<std::unique_ptr<loop_thread>> lts;
  for (unsigned i = 0; i < loops; ++i) lts.push_back(std::make_unique<loop_thread>());
  std::atomic<int> logged{0};
  links.log = [&](const std::string&) { logged.fetch_add(1); };
  links.wake = [&](unsigned to) {
    if (auto* s = lts[to]->wake.load(std::memory_order_acquire)) s->send();
  };
  store::queue_store s;
  store::store_options o;
  o.dir = tmp.sub("q");
  o.map_size = std::size_t{256} << 20;
  o.producers = loops + 1;  // lane `loops` is the test's own submitter
  o.notify = [&](unsigned p) {
    if (p < loops) links.wake(p);
  };
  std::string error;
  cr_assert(s.open(std::move(o), error), "%s", error.c_str());

  // Phase one: acknowledged before the shards exist, found again by recover().
  base::queue_id_generator gen(7);
  // Phase zero: categorized in an earlier life of the daemon; the items are in the
  // store and must reach their owners' queues once, whatever the loops do meanwhile.
  auto older = messages(gen, 50);
  cr_assert(store_test::submit_all(s, loops, older));
  std::vector<store::categorize_request> cats(older.size());
  for (size_t i = 0; i < older.size(); ++i) {
    cats[i].id = older[i].id;
    cats[i].received_at_ms = older[i].received_at_ms;
    cats[i].items = {{"local:sluice.test", {0}, 0}, {"dns:Partner:partner.example", {1}, 0},
                     {"smarthost:Outbound", {2}, 0}};
  }
  cr_assert(store_test::categorize_all(s, loops, cats));
  cr_assert(links.load_stored_items(s, error), "%s", error.c_str());

  auto early = messages(gen, 300);
  cr_assert(store_test::submit_all(s, loops, early));

  auto routes = categorize_test::three_hop_table();
  for (unsigned i = 0; i < loops; ++i)
    lts[i]->thread = std::thread([&, i] {
      loop_thread& lt = *lts[i];
      net::loop l;
      categorize::categorizer cat(l, i, s, links, routes);
      cat.set_tracker([&lt](const log::tracking_record& r) {
        std::string key(log::to_string(r.event));
        if (r.event == log::tracking_event::route) key += " " + std::string(r.connector);
        if (r.event == log::tracking_event::fail)
          key += " " + std::string(r.detail) + " <" + std::string(r.recipients[0]) + ">";
        ++lt.events[key];
      });
      net::async_signal sig(l, [&] {
        cat.poll();
        lt.items.store(cat.queues().items());
        lt.categorized.store(cat.stats().categorized);
      });
      lt.loop.store(&l);
      lt.wake.store(&sig);
      sig.send();  // anything pushed before the handle was published
      cat.recover();
      l.run();
      lt.wake.store(nullptr);
      for (const auto& [id, q] : cat.queues().all()) {
        lt.hop_items[q.key] = q.items.size();
        if (categorize::owner_of(q.key, loops) != i) ++lt.misplaced;
      }
    });

  // Phase two: durable now, handed to the shards through the rings. The test thread
  // plays loop 0's receive path, which is the only pusher of row 0 of the id mesh.
  auto late = messages(gen, 300);
  cr_assert(store_test::submit_all(s, loops, late));
  bool woke[loops] = {};
  for (auto& m : late) {
    unsigned target = categorize::shard_of(m.id, loops);
    while (!links.ids.ring(0, target).push(m.id)) std::this_thread::yield();
    woke[target] = true;
  }
  for (unsigned t = 0; t < loops; ++t)
    if (woke[t]) links.wake(t);

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  uint64_t items = 0, categorized = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    items = categorized = 0;
    for (auto& lt : lts) {
      items += lt->items.load();
      categorized += lt->categorized.load();
    }
    if (items == 1950 && categorized == 600) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (unsigned t = 0; t < loops; ++t) links.wake(t);  // re-poll: counters update on wake
  }
  for (auto& lt : lts) {
    while (!lt->loop.load()) std::this_thread::yield();
    lt->loop.load()->stop();
  }
  for (auto& lt : lts) lt->thread.join();
  cr_assert_eq(categorized, 600u);
  cr_assert_eq(items, 1950u, "three items per message, each once");
  std::map<std::string, uint64_t> per_hop;
  for (auto& lt : lts) {
    cr_assert_eq(lt->misplaced, 0u, "a hop's queue lives on its owner");
    for (const auto& [k, n] : lt->hop_items) per_hop[k] += n;
  }
  cr_assert_eq(per_hop.size(), 3u);
  cr_assert_eq(per_hop["local:sluice.test"], 650u);
  cr_assert_eq(per_hop["smarthost:Outbound"], 650u);
  cr_assert_eq(per_hop["dns:Partner:partner.example"], 650u);
  auto st = s.stats(error);
  cr_assert_eq(st->submission_queued, 0u);
  cr_assert_eq(st->delivery_items, 1950u);
  cr_assert_eq(st->failed_messages, 600u);
  std::map<std::string, uint64_t> events;
  for (auto& lt : lts)
    for (const auto& [k, n] : lt->events) events[k] += n;
  cr_assert_eq(events["ROUTE smarthost:Outbound"], 600u);
  cr_assert_eq(events["ROUTE local:sluice.test"], 600u);
  cr_assert_eq(events["ROUTE dns:Partner:partner.example"], 600u);
  cr_assert_eq(events["FAIL 5.1.1 recipient unknown <nobody@sluice.test>"], 600u, "every failed recipient is tracked");
  cr_assert_eq(events.size(), 4u);
}

Test(categorizer_loops, routes_set_on_the_loop_apply_to_later_messages, .timeout = 60) {
  store_test::temp_dir tmp;
  categorize::links links(1);
  std::atomic<net::async_signal*> wake{nullptr};
  // A reload as the worker does it: the new table is handed over on the loop thread.
  std::shared_ptr<const route::table> next_routes;  // written before `install` is sent
  std::atomic<net::async_signal*> install{nullptr};
  std::atomic<bool> installed{false};
  std::atomic<net::loop*> loop_ptr{nullptr};
  std::atomic<uint64_t> categorized{0};
  std::map<std::string, uint64_t> hop_items;
  links.log = [](const std::string&) {};
  links.wake = [&](unsigned) {
    if (auto* s = wake.load(std::memory_order_acquire)) s->send();
  };
  store::queue_store s;
  store::store_options o;
  o.dir = tmp.sub("q");
  o.map_size = std::size_t{64} << 20;
  o.producers = 2;
  o.notify = [&](unsigned p) {
    if (p == 0) links.wake(0);
  };
  std::string error;
  cr_assert(s.open(std::move(o), error), "%s", error.c_str());

  std::thread t([&] {
    net::loop l;
    categorize::categorizer cat(l, 0, s, links, categorize_test::three_hop_table());
    net::async_signal sig(l, [&] {
      cat.poll();
      categorized.store(cat.stats().categorized);
    });
    net::async_signal install_sig(l, [&] {
      cat.set_routes(next_routes, nullptr);
      installed.store(true);
    });
    install.store(&install_sig);
    wake.store(&sig);
    loop_ptr.store(&l);
    cat.recover();
    l.run();
    install.store(nullptr);
    wake.store(nullptr);
    for (const auto& [id, q] : cat.queues().all()) hop_items[q.key] = q.items.size();
  });
  while (!loop_ptr.load()) std::this_thread::yield();

  // The reloaded configuration drops the Partner connector: partner.example now
  // matches only "*" and goes to the smart host.
  std::vector<route::send_connector_spec> connectors(1);
  connectors[0].name = "Outbound";
  connectors[0].address_spaces = {{"*", 10}};
  connectors[0].routing = route::routing_method::smart_host;
  connectors[0].smart_hosts = {{"127.0.0.1", 2525}};
  auto next = route::table::build({{"sluice.test", route::domain_kind::authoritative, std::nullopt}},
                                  std::move(connectors), route::limits{});
  cr_assert(next.routes);
  next_routes = next.routes;
  install.load()->send();
  for (int i = 0; i < 1000 && !installed.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  cr_assert(installed.load(), "the loop took the new table");

  base::queue_id_generator gen(3);
  auto msgs = messages(gen, 20);
  cr_assert(store_test::submit_all(s, 1, msgs));
  for (auto& m : msgs) cr_assert(links.ids.ring(0, 0).push(m.id));
  links.wake(0);
  for (int i = 0; i < 3000 && categorized.load() < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    links.wake(0);
  }
  loop_ptr.load()->stop();
  t.join();
  cr_assert_eq(categorized.load(), 20u);
  cr_assert_eq(hop_items.count("dns:Partner:partner.example"), 0u);
  cr_assert_eq(hop_items["smarthost:Outbound"], 20u);
  cr_assert_eq(hop_items["local:sluice.test"], 20u, "sluice.test accepts every address now");
}
