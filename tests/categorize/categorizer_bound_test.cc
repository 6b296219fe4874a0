// categorizer_bound_test.cc: a shard's body budget under header edits, and its backoff on failing messages.
#include <criterion/criterion.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../store/store_fixture.h"
#include "route_fixture.h"
#include "categorize/categorizer.h"

using namespace sluice;

namespace {

// One shard on its own loop over a store opened for it (lane 0: the shard, lane 1: the
// test's submitter). `until` is checked on the loop after every wake-up.
struct one_shard {
  store_test::temp_dir tmp;
  categorize::links links{1};
  store::queue_store store;
  std::atomic<net::async_signal*> wake{nullptr};
  std::mutex lines_mutex;
  std::vector<std::string> lines;

  one_shard() {
    links.log = [this](const std::string& line) {
      std::lock_guard lock(lines_mutex);
      lines.push_back(line);
    };
    links.wake = [this](unsigned) {
      if (auto* s = wake.load(std::memory_order_acquire)) s->send();
    };
    store::store_options o;
    o.dir = tmp.sub("q");
    o.map_size = std::size_t{1} << 30;
    o.producers = 2;
    o.notify = [this](unsigned p) {
      if (p == 0) links.wake(0);
    };
    std::string error;
    cr_assert(store.open(std::move(o), error), "%s", error.c_str());
  }

  // Runs the shard until `done(cat)` holds (checked after each wake-up and every 5 ms) or
  // `seconds` pass; `setup` configures it before recover(). Returns whether `done` held.
  template <class Setup, class Done>
  bool run(std::shared_ptr<const route::table> routes, Setup setup, Done done, int seconds) {
    std::atomic<bool> finished{false};
    std::thread t([&] {
      net::loop l;
      categorize::categorizer cat(l, 0, store, links, routes);
      setup(cat);
      auto check = [&] {
        if (done(cat)) {
          finished.store(true);
          cat.shutdown();
          l.halt();
        }
      };
      net::async_signal sig(l, [&] {
        cat.poll();
        check();
      });
      net::timer deadline(l), tick(l);
      deadline.start(static_cast<uint64_t>(seconds) * 1000, 0, [&] {
        cat.shutdown();
        l.halt();
      });
      tick.start(5, 5, [&] {
        cat.poll();
        check();
      });
      wake.store(&sig);
      cat.recover();
      l.run();
      wake.store(nullptr);
      // The store borrows in-flight requests: wait for them before the shard goes.
      while (!cat.idle()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        cat.poll();
      }
    });
    t.join();
    return finished.load();
  }
};

std::shared_ptr<const rules::rule_set> tag_every_message() {
  rules::rule_spec tag;
  tag.name = "tag";
  tag.add_header = rules::header_field{"X-Scanned", "yes"};
  return std::make_shared<const rules::rule_set>(std::vector<rules::rule_spec>{tag});
}

}  // namespace

// Recovery of a backlog of large messages under a header-edit rule: on the base every one
// of them was read and held at once (4096 may be in flight), and every pooled job kept its
// body after completion.
Test(categorizer_bound, a_backlog_of_large_edited_messages_stays_within_the_body_budget, .timeout = 120) {
  one_shard sh;
  constexpr int messages = 48;
  constexpr std::size_t body_size = std::size_t{1} << 20;
  constexpr std::size_t budget = std::size_t{4} << 20;
  base::queue_id_generator gen(5);
  std::vector<store::submit_request> reqs;
  for (int i = 0; i < messages; ++i) {
    auto r = store_test::make_request(gen.next(), body_size, 0);
    r.body.replace(0, 16, "Subject: big\r\n\r\n");
    r.envelope.recipients.push_back({"x@partner.example", 0, ""});
    reqs.push_back(std::move(r));
  }
  cr_assert(store_test::submit_all(sh.store, 1, reqs));
  const base::queue_id sample = reqs[messages / 2].id;
  reqs.clear();

  categorize::categorizer_stats stats;
  std::size_t held_after = 0;
  bool done = sh.run(
      categorize_test::three_hop_table(),
      [&](categorize::categorizer& cat) {
        cat.set_routes(categorize_test::three_hop_table(), tag_every_message());
        cat.set_body_budget(budget);
      },
      [&](categorize::categorizer& cat) {
        if (cat.stats().categorized < messages || !cat.idle()) return false;
        stats = cat.stats();
        held_after = cat.job_bytes();
        return true;
      },
      60);
  cr_assert(done, "every message categorized");
  cr_assert_eq(stats.categorized, static_cast<uint64_t>(messages));
  cr_assert_gt(stats.body_waits, 0u, "messages waited for the budget");
  // A body is charged at its capacity: the edited size plus the edit's small reserve.
  cr_assert_leq(stats.body_bytes_peak, budget + 64 * 1024, "peak %zu over the budget %zu", stats.body_bytes_peak,
                budget);
  cr_assert_eq(stats.body_bytes, 0u);
  cr_assert_lt(held_after, std::size_t{256} << 10, "the pool keeps %zu bytes after the backlog", held_after);

  std::string error;
  auto st = sh.store.stats(error);
  cr_assert(st);
  cr_assert_eq(st->submission_queued, 0u);
  cr_assert_eq(st->delivery_items, static_cast<uint64_t>(messages));
  auto edited = sh.store.read_message(sample, error);
  cr_assert(edited, "%s", error.c_str());
  cr_assert(edited->body.rfind("X-Scanned: yes\r\nSubject: big\r\n\r\n", 0) == 0, "the edit was stored");
}

// One message larger than the whole budget is not stuck behind it.
Test(categorizer_bound, a_message_larger_than_the_budget_proceeds_alone, .timeout = 60) {
  one_shard sh;
  base::queue_id_generator gen(6);
  std::vector<store::submit_request> reqs;
  for (int i = 0; i < 3; ++i) {
    auto r = store_test::make_request(gen.next(), std::size_t{2} << 20, 0);
    r.body.replace(0, 16, "Subject: big\r\n\r\n");
    r.envelope.recipients.push_back({"alice@sluice.test", 0, ""});
    reqs.push_back(std::move(r));
  }
  cr_assert(store_test::submit_all(sh.store, 1, reqs));
  categorize::categorizer_stats stats;
  bool done = sh.run(
      categorize_test::three_hop_table(),
      [&](categorize::categorizer& cat) {
        cat.set_routes(categorize_test::three_hop_table(), tag_every_message());
        cat.set_body_budget(std::size_t{1} << 20);
      },
      [&](categorize::categorizer& cat) {
        stats = cat.stats();
        return stats.categorized == 3 && cat.idle();
      },
      30);
  cr_assert(done, "categorized %llu of 3", static_cast<unsigned long long>(stats.categorized));
  cr_assert_leq(stats.body_bytes_peak, (std::size_t{2} << 20) + 64 * 1024, "one at a time");
}

// A next-hop key longer than the store allows (a connector name the config loader now
// refuses, built here straight into a table) fails in the store every time. The shard
// backs off (not once a second for ever), logs once per attempt, and finally fails the
// recipients with 5.3.0 into the failed list, where the DSN generator finds them.
Test(categorizer_bound, a_message_that_keeps_failing_backs_off_and_is_failed_with_5_3_0, .timeout = 60) {
  one_shard sh;
  std::vector<route::send_connector_spec> connectors(1);
  connectors[0].name = std::string(470, 'c');
  connectors[0].address_spaces = {{"*", 1}};
  auto built = route::table::build({}, std::move(connectors), route::limits{});
  cr_assert(built.routes);

  base::queue_id_generator gen(8);
  std::vector<store::submit_request> reqs;
  for (int i = 0; i < 3; ++i) {
    auto r = store_test::make_request(gen.next(), 500, 0);
    r.envelope.recipients.push_back({"x@far.example", 0, ""});
    r.envelope.recipients.push_back({"y@far.example", 0, ""});
    reqs.push_back(std::move(r));
  }
  cr_assert(store_test::submit_all(sh.store, 1, reqs));

  categorize::retry_policy policy;
  policy.first_ms = 20;
  policy.cap_ms = 80;
  policy.give_up_after = 5;
  categorize::categorizer_stats stats;
  auto started = std::chrono::steady_clock::now();
  bool done = sh.run(
      built.routes, [&](categorize::categorizer& cat) { cat.set_retry_policy(policy); },
      [&](categorize::categorizer& cat) {
        stats = cat.stats();
        return stats.given_up == 3 && cat.idle() && cat.retrying() == 0;
      },
      30);
  auto elapsed = std::chrono::steady_clock::now() - started;
  cr_assert(done, "given up %llu of 3", static_cast<unsigned long long>(stats.given_up));
  cr_assert_eq(stats.store_errors, 15u, "five attempts per message");
  // 20 + 40 + 80 + 80 ms of backoff before the fifth attempt.
  cr_assert_geq(elapsed, std::chrono::milliseconds(220), "the delays grew");

  for (const auto& m : reqs) {
    const std::string id = m.id.text();
    int retry_lines = 0, give_up_lines = 0;
    for (const auto& line : sh.lines) {
      if (line.find(id) == std::string::npos) continue;
      if (line.find("retrying in") != std::string::npos) ++retry_lines;
      if (line.find("failing its recipients with 5.3.0") != std::string::npos) ++give_up_lines;
    }
    cr_assert_eq(retry_lines, 4, "%s: one line per backoff step", id.c_str());
    cr_assert_eq(give_up_lines, 1);
    std::string error;
    auto failed = sh.store.read_reports(m.id, error);
    cr_assert(failed, "%s has a failed list: %s", id.c_str(), error.c_str());
    cr_assert_eq(failed->size(), 2u);
    for (const auto& f : *failed) cr_assert_str_eq(f.status.c_str(), "5.3.0");
  }
  std::string error;
  auto st = sh.store.stats(error);
  cr_assert_eq(st->submission_queued, 0u, "nothing left to retry");
  cr_assert_eq(st->failed_messages, 3u);
  bool delays_logged = false;
  for (const auto& line : sh.lines) delays_logged |= line.find("attempt 3, retrying in 80 ms") != std::string::npos;
  cr_assert(delays_logged, "the third failure waits the cap");
}
