// delivery_mx_test.cc: sluiced delivers over SMTP through a real dnsmasq to blaster sinks: MX order, failover, DNS outcomes.
#include <criterion/criterion.h>

#include "assertions.h"
#include "delivery_env.h"

using namespace sluice::testing;

namespace {

// Waits until the store holds no delivery item (every one delivered or failed).
bool drained(const delivery_env& env, int timeout_ms = 20'000) {
  return eventually([&] { return env.queued_items() == 0; }, timeout_ms);
}

void expect_all_delivered(delivery_env& env, const send_result& sent, long long messages) {
  cr_assert_eq(sent.status, 0, "blaster send: %s", sent.json.c_str());
  cr_assert_eq(json_number(sent.json, "accepted"), messages, "%s", sent.json.c_str());
  cr_assert(drained(env), "queue not drained: %s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  for (auto& [address, s] : env.sinks) s->stop();
  const auto v = blaster_verify({sent.record}, env.received_logs());
  cr_assert_eq(v.lost, 0, "verify: %s", v.json.c_str());
  cr_assert_eq(v.duplicated, 0, "verify: %s", v.json.c_str());
  cr_assert_eq(v.corrupted, 0, "verify: %s", v.json.c_str());
  cr_assert_eq(v.delivered, messages, "verify: %s", v.json.c_str());
}

const char* two_mx = R"(mx-host=a.test,mx1.a.test,10
mx-host=a.test,mx2.a.test,20
host-record=mx1.a.test,127.0.0.2
host-record=mx2.a.test,127.0.0.3
)";

}  // namespace

Test(delivery_mx, delivers_to_the_lowest_preference, .timeout = 60) {
  delivery_env env(two_mx);
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  auto& primary = env.sink("127.0.0.2");
  auto& backup = env.sink("127.0.0.3");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 40, {"--domain", "a.test"});
  expect_all_delivered(env, sent, 40);
  cr_assert_eq(count_lines(primary.record_file()), 40u);
  cr_assert_eq(count_lines(backup.record_file()), 0u);
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == 40u; }, 5000), "%zu DELIVER", env.tracked_recipients("DELIVER"));
  // The tracking log names the remote host and its reply.
  cr_assert(env.tracking("DELIVER")[0].find("mx1.a.test[127.0.0.2]") != std::string::npos, "%s",
            env.tracking("DELIVER")[0].c_str());
  // Nothing is held for a next hop whose items are all done (one entry per domain for ever
  // would grow without bound on a relay).
  env.daemon.stop();
  const std::string log = env.daemon.log();
  std::size_t workers = 0;
  for (std::size_t at = 0; (at = log.find("; 0 next hops held", at)) != std::string::npos; ++at) ++workers;
  cr_assert_eq(workers, 2u, "%s", log.c_str());
}

Test(delivery_mx, fails_over_when_the_primary_is_down, .timeout = 60) {
  delivery_env env(two_mx);
  auto& backup = env.sink("127.0.0.3");  // nothing listens on 127.0.0.2
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 20, {"--domain", "a.test"});
  expect_all_delivered(env, sent, 20);
  cr_assert_eq(count_lines(backup.record_file()), 20u);
}

Test(delivery_mx, fails_over_when_the_primary_answers_421, .timeout = 60) {
  delivery_env env(two_mx);
  auto& primary = env.sink("127.0.0.2", {"--greeting", "421"});
  auto& backup = env.sink("127.0.0.3");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 20, {"--domain", "a.test"});
  expect_all_delivered(env, sent, 20);
  cr_assert_eq(count_lines(primary.record_file()), 0u);
  cr_assert_eq(count_lines(backup.record_file()), 20u);
}

Test(delivery_mx, fails_over_when_the_primary_stalls_past_the_greeting_timeout, .timeout = 60) {
  delivery_env env(two_mx);
  env.sink("127.0.0.2", {"--stall-at", "greeting"});
  auto& backup = env.sink("127.0.0.3");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 10, {"--domain", "a.test"});
  expect_all_delivered(env, sent, 10);
  cr_assert_eq(count_lines(backup.record_file()), 10u);
}

Test(delivery_mx, spreads_over_equal_preferences, .timeout = 60) {
  delivery_env env(R"(mx-host=eq.test,a.eq.test,10
mx-host=eq.test,b.eq.test,10
host-record=a.eq.test,127.0.0.4
host-record=b.eq.test,127.0.0.5
)");
  auto& a = env.sink("127.0.0.4");
  auto& b = env.sink("127.0.0.5");
  // One message per connection, so every message is a fresh choice between the two.
  env.configure("", "max_messages_per_connection = 1\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 40, {"--domain", "eq.test"});
  expect_all_delivered(env, sent, 40);
  cr_assert_gt(count_lines(a.record_file()), 0u);
  cr_assert_gt(count_lines(b.record_file()), 0u);
}

Test(delivery_mx, delivers_to_the_domain_itself_without_mx, .timeout = 60) {
  delivery_env env("host-record=plain.test,127.0.0.6\n");
  auto& s = env.sink("127.0.0.6");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 10, {"--domain", "plain.test"});
  expect_all_delivered(env, sent, 10);
  cr_assert_eq(count_lines(s.record_file()), 10u);
}

// Permanent DNS outcomes fail the recipients (for the DSN stage) and empty the queue.
static void expect_failed(const char* zone, const char* domain, const char* status) {
  delivery_env env(zone);
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 5, {"--domain", domain});
  cr_assert_eq(json_number(sent.json, "accepted"), 5, "%s", sent.json.c_str());
  cr_assert(drained(env), "%s", env.daemon.ctl("queue list").output.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("FAIL") == 5u; }, 5000), "%s", env.daemon.log().c_str());
  for (const auto& line : env.tracking("FAIL")) cr_assert(line.find(status) != std::string::npos, "%s", line.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == 0u; }, 5000), "%zu DELIVER", env.tracked_recipients("DELIVER"));
  // Each sender is told (the reports to blaster.test fail in turn, and are dropped), and
  // nothing is left pending.
  cr_assert(eventually([&] { return env.tracking("DSN").size() == 5u; }, 10'000), "%zu DSN", env.tracking("DSN").size());
  cr_assert(eventually([&] { return json_number(env.daemon.ctl("queue list --json").output, "failed_messages") == 0; }, 10'000),
            "%s", env.daemon.ctl("queue list --json").output.c_str());
}

Test(delivery_mx, null_mx_fails_with_5_1_10, .timeout = 60) { expect_failed("mx-host=nullmx.test,.,0\n", "nullmx.test", "5.1.10"); }

Test(delivery_mx, nxdomain_fails_with_5_1_2, .timeout = 60) { expect_failed("", "nosuch.test", "5.1.2"); }

Test(delivery_mx, mx_pointing_back_at_us_fails_with_5_4_6, .timeout = 60) {
  expect_failed("mx-host=loop.test,mx.sluice.test,10\nhost-record=mx.sluice.test,127.0.0.7\n", "loop.test", "5.4.6");
}

Test(delivery_mx, servfail_defers_and_keeps_the_mail, .timeout = 60) {
  // dnsmasq forwards fail.test to a server that is not there: SERVFAIL (or a timeout).
  delivery_env env("server=/fail.test/127.0.0.1#" + std::to_string(sluice_test::unused_udp_port()) + "\n");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 3, {"--domain", "fail.test"});
  cr_assert_eq(json_number(sent.json, "accepted"), 3, "%s", sent.json.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DEFER") >= 3; }, 20'000), "%s", env.daemon.log().c_str());
  for (const auto& line : env.tracking("DEFER")) cr_assert(line.find("4.4.3") != std::string::npos, "%s", line.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("FAIL") == 0u; }, 5000), "%zu FAIL", env.tracked_recipients("FAIL"));
  cr_assert_eq(env.queued_items(), 3);
  // The queue shows why.
  const auto list = env.daemon.ctl("queue list").output;
  cr_assert(list.find("4.4.3") != std::string::npos, "%s", list.c_str());
}
