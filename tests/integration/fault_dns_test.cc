// fault_dns_test.cc: sluiced delivering through a DNS that fails (dnsmasq paused, SERVFAIL, truncated answers, an MX set that changes): mail waits, never bounces, and arrives once.
// Untrusted input: none (the test's own dnsmasq and sinks).
#include <criterion/criterion.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actions_env.h"
#include "delivery_env.h"

using namespace sluice::testing;

namespace {

const char* one_mx = "mx-host=a.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n";

bool drained(const delivery_env& env, int timeout_ms = 20'000) {
  return eventually([&] { return env.queued_items() == 0; }, timeout_ms);
}

// Every acknowledged message of `sent` arrived at the sinks once and intact (stops them).
void expect_arrived_once(delivery_env& env, const std::vector<send_result>& sent, long long messages) {
  for (auto& [address, s] : env.sinks) s->stop();
  std::vector<std::string> records;
  for (const auto& s : sent) records.push_back(s.record);
  const auto v = blaster_verify(records, env.received_logs());
  cr_assert(v.lost == 0 && v.duplicated == 0 && v.corrupted == 0 && v.delivered == messages, "%lld sent; verify: %s",
            messages, v.json.c_str());
}

// Mail to a domain whose lookups fail temporarily: deferred with 4.4.3 saying `why`, kept
// through several retries, never failed or reported.
void expect_waiting(delivery_env& env, long long messages, const char* why) {
  cr_assert(eventually([&] { return env.tracked_recipients("DEFER") >= static_cast<std::size_t>(messages); }, 20'000),
            "%s", env.daemon.log().c_str());
  std::this_thread::sleep_for(std::chrono::seconds(3));  // retry_first 1 s, retry_max 2 s
  for (const auto& line : env.tracking("DEFER")) {
    cr_assert(line.find("4.4.3") != std::string::npos, "%s", line.c_str());
    cr_assert(line.find(why) != std::string::npos, "%s", line.c_str());
  }
  cr_assert_gt(env.tracked_recipients("DEFER"), static_cast<std::size_t>(messages), "retried while DNS fails");
  cr_assert_eq(env.tracked_recipients("FAIL") + env.tracked_recipients("EXPIRE"), 0u, "%s",
               slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  cr_assert_eq(env.tracking("DSN").size(), 0u);
  cr_assert_eq(env.queued_items(), messages, "%s", env.daemon.ctl("queue list").output.c_str());
}

}  // namespace

Test(fault_dns, a_server_that_never_answers_defers_until_it_does, .timeout = 60) {
  delivery_env env(one_mx);
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  env.sink("127.0.0.2");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  // Stopped, not gone: the queries sit in its socket unanswered, so every lookup times out.
  env.dns.pause();
  cr_assert_eq(env.dns.query("a.test", 15, 300).rcode, -1, "a paused dnsmasq answers nothing");
  const auto sent = env.send("s", 5, {"--domain", "a.test"});
  cr_assert_eq(json_number(sent.json, "accepted"), 5, "%s", sent.json.c_str());
  expect_waiting(env, 5, "timed out");
  env.dns.resume();
  cr_assert(drained(env), "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  expect_arrived_once(env, {sent}, 5);
}

Test(fault_dns, servfail_defers_until_the_domain_s_servers_answer, .timeout = 60) {
  // fail.test's own name server, broken at first (it says SERVFAIL, and dnsmasq, which
  // forwards fail.test there, passes that on), then itself again on the same port.
  sluice_test::dnsmasq upstream("mx-host=fail.test,mx1.fail.test,10\nhost-record=mx1.fail.test,127.0.0.2\n");
  cr_assert(upstream.ok(), "%s", upstream.error().c_str());
  upstream.stop();
  auto broken = std::make_unique<sluice_test::servfail_server>(upstream.port());
  cr_assert(broken->ok());
  delivery_env env("server=/fail.test/127.0.0.1#" + std::to_string(upstream.port()) + "\n");
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  const auto probe = env.dns.query("fail.test", 15);
  cr_assert_eq(probe.rcode, 2, "SERVFAIL from dnsmasq (rcode %d)", probe.rcode);
  env.sink("127.0.0.2");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 5, {"--domain", "fail.test"});
  cr_assert_eq(json_number(sent.json, "accepted"), 5, "%s", sent.json.c_str());
  expect_waiting(env, 5, "SERVFAIL");
  broken.reset();
  cr_assert(upstream.restart(), "%s", upstream.error().c_str());
  cr_assert(drained(env), "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  expect_arrived_once(env, {sent}, 5);
}

Test(fault_dns, a_truncated_answer_is_asked_again_over_tcp, .timeout = 60) {
  // Forty MX hosts with long names: far beyond the 512 bytes of a UDP answer without EDNS.
  // The one that works, the best, is written first, and dnsmasq answers in the reverse
  // order, so the truncated UDP answer lacks it: only the whole answer (over TCP) finds it.
  // The others point where nothing listens.
  std::string zone = "mx-host=big.test,mx-best.big.test,5\nhost-record=mx-best.big.test,127.0.0.2\n";
  for (int i = 0; i < 39; ++i) {
    const std::string host = "mx" + std::to_string(i) + ".a-rather-long-label-to-fill-the-answer.big.test";
    zone += "mx-host=big.test," + host + ",10\nhost-record=" + host + ",127.0.0.3\n";
  }
  delivery_env env(zone);
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  const auto probe = env.dns.query("big.test", 15);
  cr_assert(probe.rcode == 0 && probe.truncated, "a truncated UDP answer (rcode %d, TC %d, %d answers)", probe.rcode,
            probe.truncated, probe.answers);
  env.sink("127.0.0.2");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 10, {"--domain", "big.test"});
  cr_assert_eq(json_number(sent.json, "accepted"), 10, "%s", sent.json.c_str());
  cr_assert(drained(env), "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  cr_assert_eq(env.tracked_recipients("DEFER"), 0u, "%s", slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  expect_arrived_once(env, {sent}, 10);
  for (const auto& line : env.tracking("DELIVER"))
    cr_assert(line.find("mx-best.big.test[127.0.0.2]") != std::string::npos, "%s", line.c_str());
}

Test(fault_dns, a_changed_mx_set_takes_over_once_its_ttl_is_out, .timeout = 90) {
  // Short TTLs: dnsmasq gives its own records local-ttl seconds.
  const std::string common = "local-ttl=2\nhost-record=mx1.a.test,127.0.0.2\nhost-record=mx2.a.test,127.0.0.3\n";
  delivery_env env(common + "mx-host=a.test,mx1.a.test,10\n");
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  auto& old_mx = env.sink("127.0.0.2", {"--latency", "50"});
  auto& new_mx = env.sink("127.0.0.3");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto first = env.send("first", 20, {"--domain", "a.test", "--run-id", "first"});
  cr_assert_eq(json_number(first.json, "accepted"), 20, "%s", first.json.c_str());
  // While that is delivered, the domain moves: the same server, a new zone.
  cr_assert(env.dns.restart("local=/test/\n" + common + "mx-host=a.test,mx2.a.test,10\n"), "%s", env.dns.error().c_str());
  cr_assert(drained(env), "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  // The old host is retired (its record is complete once it has stopped). Mail sent now may
  // still go by the answer sluiced holds, and waits; none of it is lost, and once the
  // answer is out of date it goes to the new host.
  old_mx.stop();
  const std::size_t at_old = old_mx.received();
  const auto second = env.send("second", 10, {"--domain", "a.test", "--run-id", "second"});
  cr_assert_eq(json_number(second.json, "accepted"), 10, "%s", second.json.c_str());
  cr_assert(drained(env, 30'000), "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  // By now every hop has the new answer: new mail goes straight to the new host.
  const std::size_t defers = env.tracked_recipients("DEFER");
  const auto third = env.send("third", 10, {"--domain", "a.test", "--run-id", "third"});
  cr_assert_eq(json_number(third.json, "accepted"), 10, "%s", third.json.c_str());
  cr_assert(drained(env), "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  cr_assert_eq(env.tracked_recipients("DEFER"), defers, "%s", slurp_file(env.daemon.dir() + "/log/tracking.csv").c_str());
  cr_assert_eq(env.tracked_recipients("FAIL"), 0u);
  expect_arrived_once(env, {first, second, third}, 40);
  cr_assert_eq(count_lines(old_mx.record_file()), at_old);
  cr_assert_eq(count_lines(new_mx.record_file()), 40u - at_old, "%zu at the old host", at_old);
}

// A hop follows its domain's answer for as long as the answer's TTL, with a floor of one
// second (issue 13: it was ten): an MX moved under a TTL of 1 s is used by the first
// attempt after that second. The old MX defers everything, so the message stays on its hop
// (and the hop stays bound) until an attempt goes to the new one; attempts are made only
// when the test asks (sluicectl message retry), retries being ten minutes apart.
Test(fault_dns, a_moved_mx_with_a_one_second_ttl_is_used_by_the_next_attempt_after_it, .timeout = 60) {
  using namespace std::chrono_literals;
  const std::string hosts = "local-ttl=1\nhost-record=mx1.a.test,127.0.0.2\nhost-record=mx2.a.test,127.0.0.3\n";
  delivery_env env(hosts + "mx-host=a.test,mx1.a.test,10\n");
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  auto& old_mx = env.sink("127.0.0.2", {"--defer-rcpt", "*@a.test"});
  auto& new_mx = env.sink("127.0.0.3");
  env.configure("", "failures_before_suspend = 10000\n");
  const std::string path = env.daemon.dir() + "/sluice.toml";
  std::string config = slurp_file(path);
  const std::string quick = "retry_first = 1\nretry_max = 2\n";
  cr_assert(config.find(quick) != std::string::npos, "%s", config.c_str());
  config.replace(config.find(quick), quick.size(), "retry_first = 600\nretry_max = 600\n");
  env.daemon.write_file("sluice.toml", config);
  START(env.daemon);
  const std::string tracking = env.daemon.dir() + "/log/tracking.csv";

  std::string why;
  const std::string id =
      submit_to(env.daemon.port(), "sender@client.test", {"x@a.test"}, "Subject: moved\r\n\r\nhello\r\n", why);
  cr_assert(!id.empty(), "%s", why.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DEFER", id) == 1; }, 20'000), "%s\n%s",
            slurp_file(tracking).c_str(), env.daemon.log().c_str());
  cr_assert(has(env.tracking("DEFER").back(), "mx1.a.test[127.0.0.2]"), "%s", slurp_file(tracking).c_str());

  // The domain moves. The answer sluiced holds was taken before the first attempt: once the
  // restarted server answers and a second more has passed, it is out of date.
  cr_assert(env.dns.restart("local=/test/\n" + hosts + "mx-host=a.test,mx2.a.test,10\n"), "%s", env.dns.error().c_str());
  std::this_thread::sleep_for(1500ms);
  const auto retried = ctl_ok(env, "message retry " + id + " --json");
  cr_assert_eq(json_number(retried.output, "items"), 1, "%s", retried.output.c_str());
  cr_assert(eventually([&] { return lines_about(env, "DELIVER", id) + lines_about(env, "DEFER", id) >= 2; }, 10'000),
            "%s\n%s", slurp_file(tracking).c_str(), env.daemon.log().c_str());
  cr_assert_eq(lines_about(env, "DEFER", id), 1u, "the attempt after the TTL went to the old MX:\n%s",
               slurp_file(tracking).c_str());
  cr_assert_eq(lines_about(env, "DELIVER", id), 1u, "%s", slurp_file(tracking).c_str());
  cr_assert(has(env.tracking("DELIVER").back(), "mx2.a.test[127.0.0.3]"), "%s", slurp_file(tracking).c_str());
  cr_assert(eventually([&] { return new_mx.received() == 1; }, 5000), "the new MX recorded %zu", new_mx.received());
  cr_assert_eq(old_mx.received(), 0u);
}
