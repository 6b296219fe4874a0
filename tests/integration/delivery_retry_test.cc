// delivery_retry_test.cc: sluiced's retry policy end to end: expiry, suspension of a dead site, reload of queued mail, recipient batches.
// Untrusted input: none.
#include <criterion/criterion.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "delivery_env.h"

using namespace sluice::testing;

namespace {

const char* one_mx = "mx-host=a.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n";

// The Internet connector with its MX port set to `port`.
std::string internet_on(uint16_t port) {
  return "[[send_connector]]\nname = \"Internet\"\naddress_spaces = [\"*\"]\ntls = \"none\"\nport = " +
         std::to_string(port) + "\n";
}

// The sum of "<N> <what>" over the workers' exit lines in sluiced's log (e.g. "connections opened").
long long exit_counter(const std::string& log, const std::string& what) {
  long long total = 0;
  const std::string needle = " " + what;
  for (std::size_t at = 0; (at = log.find(needle, at)) != std::string::npos; at += needle.size()) {
    std::size_t start = at;
    while (start > 0 && log[start - 1] >= '0' && log[start - 1] <= '9') --start;
    if (start < at) total += std::atoll(log.c_str() + start);
  }
  return total;
}

// Recipients of each transaction a sink recorded (id TAB ok TAB digest TAB from TAB rcpt,rcpt ...).
std::vector<std::size_t> recipients_per_transaction(const std::string& record) {
  std::vector<std::size_t> out;
  std::istringstream lines(slurp_file(record));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string rcpts;
    for (int f = 0; f < 5; ++f) std::getline(fields, rcpts, '\t');
    if (rcpts.empty()) continue;
    out.push_back(1 + static_cast<std::size_t>(std::count(rcpts.begin(), rcpts.end(), ',')));
  }
  return out;
}

// Waits for the queue to drain, stops the sinks and checks that every acknowledged
// recipient arrived once and intact, and was tracked as delivered.
void expect_all_arrived(delivery_env& env, const send_result& sent, long long recipients) {
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 20'000), "%s\n%s",
            env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  const auto v = env.verify(sent);
  cr_assert(v.lost == 0 && v.duplicated == 0 && v.corrupted == 0 && v.delivered == recipients,
            "%lld recipients acknowledged; verify: %s", recipients, v.json.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == static_cast<std::size_t>(recipients); }, 5000),
            "%zu DELIVER", env.tracked_recipients("DELIVER"));
}

}  // namespace

Test(delivery_retry, mail_that_cannot_be_delivered_expires_with_4_4_7, .timeout = 60) {
  delivery_env env(one_mx);  // nothing listens at 127.0.0.2
  // Keep the dead site from being suspended, so every retry is an attempt and the lifetime,
  // not a suspension, decides when the mail gives up.
  env.configure("", "expire_after = 3\nfailures_before_suspend = 10000\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto started = std::chrono::steady_clock::now();
  const auto sent = env.send("s", 5, {"--domain", "a.test"});
  cr_assert_eq(json_number(sent.json, "accepted"), 5, "%s", sent.json.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("EXPIRE") == 5u; }, 20'000), "%zu EXPIRE\n%s",
            env.tracked_recipients("EXPIRE"), env.daemon.log().c_str());
  const auto lifetime = std::chrono::steady_clock::now() - started;
  // Retried first, given up only once the lifetime is over.
  cr_assert_geq(env.tracked_recipients("DEFER"), 5u);
  cr_assert_geq(std::chrono::duration_cast<std::chrono::milliseconds>(lifetime).count(), 2900);
  for (const auto& line : env.tracking("EXPIRE")) {
    cr_assert(line.find("4.4.7") != std::string::npos, "%s", line.c_str());
    cr_assert(line.find("127.0.0.2") != std::string::npos, "the last error names the host: %s", line.c_str());
  }
  cr_assert_eq(env.tracked_recipients("DELIVER"), 0u);
  cr_assert_eq(env.tracked_recipients("FAIL"), 0u);
  // No delivery item is left; each sender got a failure report naming the expiry.
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 5000), "%s", env.daemon.ctl("queue list").output.c_str());
  cr_assert(eventually([&] { return env.tracking("DSN").size() == 5u; }, 10'000), "%zu DSN", env.tracking("DSN").size());
}

Test(delivery_retry, a_dead_site_is_suspended_after_repeated_failures, .timeout = 60) {
  delivery_env env(one_mx);  // nothing listens at 127.0.0.2
  env.configure("", "failures_before_suspend = 2\nsuspend = \"1h\"\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 20, {"--domain", "a.test"});
  cr_assert_eq(json_number(sent.json, "accepted"), 20, "%s", sent.json.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DEFER") >= 1u; }, 10'000), "%s", env.daemon.log().c_str());
  // Several retry periods (retry_first 1 s, retry_max 2 s): an unsuspended site would be
  // tried again for every message in each of them.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  env.daemon.stop();
  const std::string log = env.daemon.log();
  const long long opened = exit_counter(log, "connections opened");
  cr_assert(log.find("connections opened") != std::string::npos, "no exit counters in:\n%s", log.c_str());
  // The site's connections under way at once (the owning loop's share of max_connections,
  // 20 / 2 workers) plus those begun before the second failure suspended it, never one per
  // message per retry (without the suspension: about 70 in these 5 s).
  cr_assert_geq(opened, 2, "%s", log.c_str());
  cr_assert_leq(opened, 10 + 2, "%lld connections opened:\n%s", opened, log.c_str());
  // Suspended is not failed: every message is still queued.
  cr_assert_eq(env.queued_items(), 20, "%s", env.daemon.ctl("queue list").output.c_str());
  cr_assert_eq(env.tracked_recipients("FAIL") + env.tracked_recipients("EXPIRE") + env.tracked_recipients("DELIVER"), 0u,
               "%s", slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
}

Test(delivery_retry, a_reload_applies_to_mail_already_queued, .timeout = 60) {
  delivery_env env(one_mx);
  auto& sink = env.sink("127.0.0.2");  // on sink_port; the connector first points elsewhere
  const refusing_port dead;
  cr_assert_neq(dead.port(), 0, "no port could be held for the dead next hop");
  // The site is not suspended while the test waits for the reload (that is another test).
  const std::string keys = "failures_before_suspend = 10000\n";
  env.configure(internet_on(dead.port()), keys);
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 10, {"--domain", "a.test"});
  cr_assert_eq(json_number(sent.json, "accepted"), 10, "%s", sent.json.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DEFER") >= 10u; }, 20'000), "%s", env.daemon.log().c_str());
  cr_assert_eq(sink.received(), 0u);
  cr_assert_eq(env.queued_items(), 10);

  // Same connector, new port: the queued items' next hop ("dns:Internet:a.test") is
  // unchanged, and its site must be bound again under the new generation.
  env.configure(internet_on(env.sink_port), keys);
  env.daemon.signal(SIGHUP);
  cr_assert(eventually([&] { return env.daemon.log().find("configuration reloaded") != std::string::npos; }, 10'000),
            "%s", env.daemon.log().c_str());
  expect_all_arrived(env, sent, 10);
}

Test(delivery_retry, recipients_beyond_the_per_message_limit_go_in_further_transactions, .timeout = 60) {
  delivery_env env(one_mx);
  auto& sink = env.sink("127.0.0.2");
  env.relay_keys = "max_recipients = 300\n";
  env.configure("", "max_recipients_per_message = 100\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 1, {"--domain", "a.test", "--rcpts", "250", "--sessions", "1"});
  cr_assert_eq(json_number(sent.json, "accepted"), 1, "%s", sent.json.c_str());
  expect_all_arrived(env, sent, 250);  // stops the sink: its record is complete
  // Three transactions: 100 + 100 + 50 recipients, in whatever order they went.
  auto per = recipients_per_transaction(sink.record_file());
  std::sort(per.begin(), per.end());
  cr_assert_eq(per.size(), 3u, "%s", slurp_file(sink.record_file()).c_str());
  cr_assert_eq(per[0], 50u);
  cr_assert_eq(per[1], 100u);
  cr_assert_eq(per[2], 100u);
}
