// delivery_policy_test.cc: sluiced's delivery policies end to end: results per recipient, retries, limits, rollup, TLS, smart hosts.
#include <criterion/criterion.h>

#include <csignal>
#include <filesystem>
#include <string>

#include "delivery_env.h"
#include "pki.h"

using namespace sluice::testing;

namespace {

bool drained(const delivery_env& env, int timeout_ms = 30'000) {
  return eventually([&] { return env.queued_items() == 0; }, timeout_ms);
}

const char* one_mx = "mx-host=a.test,mx1.a.test,10\nhost-record=mx1.a.test,127.0.0.2\n";

verify_result verify_all(delivery_env& env, const send_result& sent) {
  for (auto& [address, s] : env.sinks) s->stop();
  return blaster_verify({sent.record}, env.received_logs());
}

}  // namespace

Test(delivery_policy, mixed_results_in_one_transaction, .timeout = 60) {
  delivery_env env(one_mx);
  auto& s = env.sink("127.0.0.2", {"--reject-rcpt", "*.1@a.test", "--defer-rcpt", "*.2@a.test"});
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  // Three recipients per message: .0 accepted, .1 refused 550, .2 deferred 451.
  const auto sent = env.send("s", 5, {"--domain", "a.test", "--rcpts", "3", "--to", "u{n}.{r}@{domain}"});
  cr_assert_eq(json_number(sent.json, "accepted"), 5, "%s", sent.json.c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DEFER") >= 5 && env.tracked_recipients("FAIL") >= 5; }, 20'000),
            "%s", env.daemon.log().c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == 5u; }, 5000), "%zu DELIVER", env.tracked_recipients("DELIVER"));
  for (const auto& line : env.tracking("FAIL")) cr_assert(line.find("5.1.1") != std::string::npos, "%s", line.c_str());
  // The deferred recipient stays queued; the failed one is reported to the sender.
  cr_assert(eventually([&] { return env.tracking("DSN").size() == 5u; }, 10'000), "%zu DSN", env.tracking("DSN").size());
  cr_assert(eventually([&] { return env.queued_items() == 5; }, 10'000), "%s", env.daemon.ctl("queue list").output.c_str());
  // The sink writes its record in batches: complete once it has stopped.
  s.stop();
  cr_assert_eq(count_lines(s.record_file()), 5u);
}

Test(delivery_policy, temporary_failures_are_retried_until_the_destination_recovers, .timeout = 90) {
  delivery_env env(one_mx);
  env.sink("127.0.0.2", {"--fail-for-ms", "2500"});
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 10, {"--domain", "a.test"});
  cr_assert(drained(env, 40'000), "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  cr_assert_geq(env.tracked_recipients("DEFER"), 1u);
  const auto v = verify_all(env, sent);
  cr_assert_eq(v.lost, 0, "%s", v.json.c_str());
  cr_assert_eq(v.duplicated, 0, "%s", v.json.c_str());
  cr_assert_eq(v.delivered, 10, "%s", v.json.c_str());
}

Test(delivery_policy, the_retry_schedule_survives_a_restart, .timeout = 90) {
  delivery_env env(one_mx);
  env.configure("", "", "");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  // Nothing listens yet: every attempt defers.
  const auto sent = env.send("s", 5, {"--domain", "a.test"});
  cr_assert(eventually([&] { return env.tracked_recipients("DEFER") >= 5; }, 20'000), "%s", env.daemon.log().c_str());
  env.daemon.stop();
  const auto before = env.daemon.ctl("queue list --json").output;
  cr_assert_eq(json_number(before, "delivery_items"), 5, "%s", before);
  env.sink("127.0.0.2");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  cr_assert(drained(env), "%s", env.daemon.log().c_str());
  const auto v = verify_all(env, sent);
  cr_assert_eq(v.lost, 0, "%s", v.json.c_str());
  cr_assert_eq(v.delivered, 5, "%s", v.json.c_str());
}

Test(delivery_policy, per_site_connection_limit_holds, .timeout = 90) {
  delivery_env env(one_mx);
  // Slow replies so that connections pile up if nothing holds them back.
  auto& s = env.sink("127.0.0.2", {"--latency", "20"});
  env.configure("", "max_connections = 2\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 100, {"--domain", "a.test", "--sessions", "20"});
  cr_assert(drained(env, 60'000), "%s", env.daemon.log().c_str());
  const auto summary = s.stop();
  cr_assert_leq(json_number(summary, "peak_sessions"), 2, "%s", summary.c_str());
  const auto v = blaster_verify({sent.record}, env.received_logs());
  cr_assert_eq(v.delivered, 100, "%s", v.json.c_str());
}

Test(delivery_policy, domains_with_one_mx_set_share_one_site, .timeout = 90) {
  // Ten domains, one MX host: shaped as one destination (MX rollup).
  std::string zone = "host-record=mx.hoster.test,127.0.0.2\n";
  std::string domains;
  for (int i = 0; i < 10; ++i) {
    zone += "mx-host=d" + std::to_string(i) + ".test,mx.hoster.test,10\n";
    domains += (i ? "," : "") + std::string("d") + std::to_string(i) + ".test";
  }
  delivery_env env(zone);
  auto& s = env.sink("127.0.0.2", {"--latency", "10"});
  env.configure("", "max_connections = 1\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 100, {"--domain", domains, "--sessions", "10"});
  cr_assert(drained(env, 60'000), "%s", env.daemon.log().c_str());
  const auto summary = s.stop();
  // One connection for the site (both loops count against it), not one per domain.
  cr_assert_eq(json_number(summary, "peak_sessions"), 1, "%s", summary.c_str());
  const auto v = blaster_verify({sent.record}, env.received_logs());
  cr_assert_eq(v.delivered, 100, "%s", v.json.c_str());
}

Test(delivery_policy, smart_hosts_fail_over, .timeout = 60) {
  delivery_env env("");
  auto& second = env.sink("127.0.0.3");  // the first smart host, 127.0.0.2, is down
  const std::string port = std::to_string(env.sink_port);
  env.configure("[[send_connector]]\nname = \"Outbound\"\naddress_spaces = [\"*\"]\nrouting = \"smarthost\"\n"
                "smart_hosts = [\"[127.0.0.2]:" + port + "\", \"[127.0.0.3]:" + port + "\"]\ntls = \"none\"\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 20, {"--domain", "anywhere.example"});
  cr_assert(drained(env), "%s", env.daemon.log().c_str());
  const auto v = verify_all(env, sent);  // stops the sinks: their records are complete
  cr_assert_eq(count_lines(second.record_file()), 20u);
  cr_assert_eq(v.delivered, 20, "%s", v.json.c_str());
}

Test(delivery_policy, mandatory_tls_to_a_host_without_starttls_defers, .timeout = 60) {
  delivery_env env(one_mx);
  auto& s = env.sink("127.0.0.2");  // no --starttls
  env.configure("[[send_connector]]\nname = \"Internet\"\naddress_spaces = [\"*\"]\ntls = \"mandatory\"\nport = " +
                std::to_string(env.sink_port) + "\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  env.send("s", 3, {"--domain", "a.test"});
  cr_assert(eventually([&] { return env.tracked_recipients("DEFER") >= 3; }, 20'000), "%s", env.daemon.log().c_str());
  for (const auto& line : env.tracking("DEFER")) cr_assert(line.find("4.7.4") != std::string::npos, "%s", line.c_str());
  cr_assert_eq(count_lines(s.record_file()), 0u);
  cr_assert_eq(env.queued_items(), 3);
}

Test(delivery_policy, partner_tls_checks_the_certificate_name, .timeout = 60) {
  // Both sinks present a certificate for mx.good.test from the test CA; only a.test's MX
  // host has that name.
  delivery_env env("mx-host=a.test,mx.good.test,10\nhost-record=mx.good.test,127.0.0.2\n"
                   "mx-host=b.test,mx1.b.test,10\nhost-record=mx1.b.test,127.0.0.3\n");
  pki ca;
  auto& good = env.sink("127.0.0.2", {"--starttls", "--tls-cert", ca.dir + "/good.pem", "--tls-key", ca.dir + "/good.key"});
  auto& wrong = env.sink("127.0.0.3", {"--starttls", "--tls-cert", ca.dir + "/good.pem", "--tls-key", ca.dir + "/good.key"});
  env.configure("[[send_connector]]\nname = \"Partner\"\naddress_spaces = [\"*\"]\ntls = \"partner\"\ntls_ca = \"" +
                ca.dir + "/ca.pem\"\nport = " + std::to_string(env.sink_port) + "\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  env.send("a", 3, {"--domain", "a.test"});
  env.send("b", 3, {"--domain", "b.test"});
  cr_assert(eventually([&] { return count_lines(good.record_file()) == 3 && env.tracked_recipients("DEFER") >= 3; }, 20'000),
            "%s", env.daemon.log().c_str());
  cr_assert_eq(count_lines(wrong.record_file()), 0u);
  for (const auto& line : env.tracking("DEFER")) cr_assert(line.find("4.7.5") != std::string::npos, "%s", line.c_str());
  for (const auto& line : env.tracking("DELIVER")) cr_assert(line.find("TLS") != std::string::npos, "%s", line.c_str());
}

Test(delivery_policy, opportunistic_tls_with_a_broken_handshake_falls_back_to_plaintext, .timeout = 60) {
  delivery_env env(one_mx);
  auto& s = env.sink("127.0.0.2", {"--starttls", "--tls-broken"});
  env.configure("[[send_connector]]\nname = \"Internet\"\naddress_spaces = [\"*\"]\ntls = \"opportunistic\"\nport = " +
                std::to_string(env.sink_port) + "\n");
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 5, {"--domain", "a.test"});
  cr_assert(drained(env), "%s", env.daemon.log().c_str());
  const auto v = verify_all(env, sent);
  cr_assert_eq(count_lines(s.record_file()), 5u);
  cr_assert_eq(v.delivered, 5, "%s", v.json.c_str());
}

Test(delivery_policy, bodies_go_out_from_the_store_map_without_a_copy, .timeout = 60) {
  delivery_env env(one_mx);
  env.sink("127.0.0.2");
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  const auto sent = env.send("s", 20, {"--domain", "a.test", "--size", "20k"});
  cr_assert(drained(env), "%s", env.daemon.log().c_str());
  env.daemon.stop();
  // At exit each loop reports how many body bytes its connections wrote straight from the
  // LMDB map (smtp_connection's borrowed-write counter).
  const std::string log = env.daemon.log();
  long long borrowed = 0;
  for (std::size_t at = 0; (at = log.find("body bytes written from the store map: ", at)) != std::string::npos;) {
    at += std::string("body bytes written from the store map: ").size();
    borrowed += std::atoll(log.c_str() + at);
  }
  cr_assert_geq(borrowed, 20 * 20'000, "%s", log.c_str());
  const auto v = verify_all(env, sent);
  cr_assert_eq(v.delivered, 20, "%s", v.json.c_str());
}

Test(delivery_policy, queued_mail_follows_the_route_table_when_its_connector_goes, .timeout = 90) {
  delivery_env env("");
  auto& fallback = env.sink("127.0.0.3");
  const std::string port = std::to_string(env.sink_port);
  auto connectors = [&](bool primary_enabled) {
    return "[[send_connector]]\nname = \"Primary\"\naddress_spaces = [\"a.test\"]\nrouting = \"smarthost\"\n"
           "smart_hosts = [\"[127.0.0.2]:" + port + "\"]\ntls = \"none\"\nenabled = " +
           (primary_enabled ? "true" : "false") +
           "\n\n[[send_connector]]\nname = \"Fallback\"\naddress_spaces = [\"*\"]\nrouting = \"smarthost\"\n"
           "smart_hosts = [\"[127.0.0.3]:" + port + "\"]\ntls = \"none\"\n";
  };
  env.configure(connectors(true));
  cr_assert(env.start(), "%s", env.daemon.log().c_str());
  // Primary's smart host is down: the mail waits in smarthost:Primary.
  const auto sent = env.send("s", 10, {"--domain", "a.test"});
  cr_assert(eventually([&] { return env.tracked_recipients("DEFER") >= 10; }, 20'000), "%s", env.daemon.log().c_str());
  cr_assert_eq(count_lines(fallback.record_file()), 0u);
  // The administrator disables Primary: at the next retry the route table sends a.test via Fallback.
  env.configure(connectors(false));
  env.daemon.signal(SIGHUP);
  cr_assert(drained(env), "%s\n%s", env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  cr_assert(eventually([&] { return env.tracked_recipients("ROUTE") >= 20; }, 5000), "%zu ROUTE",
            env.tracked_recipients("ROUTE"));  // ten at categorization, ten re-routed
  const auto v = verify_all(env, sent);
  cr_assert_eq(v.lost, 0, "%s", v.json.c_str());
  cr_assert_eq(v.delivered, 10, "%s", v.json.c_str());
  cr_assert_eq(count_lines(fallback.record_file()), 10u);
}
