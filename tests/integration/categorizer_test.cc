// categorizer_test.cc: sluiced categorizes accepted mail into per-next-hop delivery queues that survive kill -9.
#include <criterion/criterion.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

using namespace sluice::testing;

namespace {

// The default test config plus two send connectors: a smart host for everything
// (127.0.0.1 on a port nobody answers: nothing is delivered yet) and DNS routing
// for partner.example. sluice.test stays authoritative, relay.test external relay.
std::string config_with_send_connectors() {
  std::string cfg = sluiced_process::default_config();
  cfg += R"(
[[send_connector]]
name = "Outbound"
address_spaces = ["*"]
routing = "smarthost"
smart_hosts = ["127.0.0.1:)" + std::to_string(free_port()) + R"("]

[[send_connector]]
name = "Partner"
address_spaces = [{ domain = "partner.example", cost = 1 }]
routing = "dns"
)";
  return cfg;
}

// The JSON object of one delivery queue in `sluicectl queue list --json`, or "".
std::string queue_entry(const std::string& json, const std::string& hop) {
  auto at = json.find("{\"next_hop\":\"" + hop + "\"");
  if (at == std::string::npos) return "";
  return json.substr(at, json.find('}', at) - at + 1);
}

long field(const std::string& json, const std::string& name) {
  std::smatch m;
  std::regex re("\"" + name + "\":(\\d+)");
  return std::regex_search(json, m, re) ? std::stol(m[1]) : -1;
}

// Polls `queue list --json` until the submission queue is empty and `queues` delivery
// queues exist, for up to five seconds; returns the last output.
std::string wait_categorized(const sluiced_process& d, long queues) {
  std::string out;
  for (int i = 0; i < 250; ++i) {
    out = d.ctl("queue list --json").output;
    if (field(out, "submission_queued") == 0 && field(out, "delivery_queues") == queues) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return out;
}

void expect_queue(const std::string& json, const std::string& hop, long items, long recipients) {
  std::string e = queue_entry(json, hop);
  cr_assert(!e.empty(), "no delivery queue %s in %s", hop.c_str(), json.c_str());
  cr_assert_eq(field(e, "items"), items, "%s", e.c_str());
  cr_assert_eq(field(e, "recipients"), recipients, "%s", e.c_str());
  // ready, or retry once the delivery engine has tried it (these daemons' DNS answers nothing).
  cr_assert(e.find("\"status\":\"ready\"") != std::string::npos || e.find("\"status\":\"retry\"") != std::string::npos,
            "%s", e.c_str());
}

}  // namespace

Test(integration_categorizer, three_next_hops_three_queues_and_restart_keeps_them, .timeout = 90) {
  sluiced_process d;
  d.write_config(config_with_send_connectors());
  bool started = d.start();
  cr_assert(started, "sluiced did not start: %s", d.log().c_str());

  {
    // From 127.0.0.2: the Relay connector, which may relay to elsewhere.example.
    smtp_client c(d.port(), "127.0.0.2");
    cr_assert(c.connected());
    c.reply();
    c.cmd("EHLO client.example");
    cr_assert_eq(code_of(c.cmd("MAIL FROM:<sender@example.org>")), 250);
    for (const char* r : {"alice@sluice.test", "x@partner.example", "y@relay.test", "bob@sluice.test",
                          "z@elsewhere.example", "w@partner.example"})
      cr_assert_eq(code_of(c.cmd(std::string("RCPT TO:<") + r + ">")), 250, "%s", r);
    cr_assert_eq(code_of(c.cmd("DATA")), 354);
    std::string reply = c.cmd("Subject: bifurcate\r\n\r\none body, three next hops\r\n.");
    cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
    c.cmd("QUIT");
  }

  std::string json = wait_categorized(d, 3);
  cr_assert_eq(field(json, "submission_queued"), 0, "%s", json.c_str());
  cr_assert_eq(field(json, "delivery_queues"), 3, "%s", json.c_str());
  cr_assert_eq(field(json, "delivery_items"), 3, "%s", json.c_str());
  cr_assert_eq(field(json, "messages"), 1, "the body is stored once: %s", json.c_str());
  expect_queue(json, "local:sluice.test", 1, 2);
  expect_queue(json, "dns:Partner:partner.example", 1, 2);
  expect_queue(json, "smarthost:Outbound", 1, 2);

  auto text = d.ctl("queue list");
  cr_assert(text.output.find("smarthost:Outbound") != std::string::npos, "%s", text.output.c_str());
  cr_assert(text.output.find("0 awaiting categorization") != std::string::npos, "%s", text.output.c_str());

  d.kill9();
  started = d.start();
  cr_assert(started, "sluiced did not restart: %s", d.log().c_str());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  json = d.ctl("queue list --json").output;
  cr_assert_eq(field(json, "submission_queued"), 0, "%s", json.c_str());
  cr_assert_eq(field(json, "delivery_items"), 3, "not categorized twice: %s", json.c_str());
  expect_queue(json, "local:sluice.test", 1, 2);
  expect_queue(json, "dns:Partner:partner.example", 1, 2);
  expect_queue(json, "smarthost:Outbound", 1, 2);
  d.stop();
}

Test(integration_categorizer, many_messages_from_many_sessions_all_categorized, .timeout = 120) {
  sluiced_process d;
  d.write_config(config_with_send_connectors());
  bool started = d.start();
  cr_assert(started, "sluiced did not start: %s", d.log().c_str());
  constexpr int sessions = 4, per_session = 50;
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  for (int s = 0; s < sessions; ++s)
    threads.emplace_back([&] {
      smtp_client c(d.port(), "127.0.0.2");
      c.reply();
      c.cmd("EHLO client.example");
      for (int i = 0; i < per_session; ++i) {
        c.cmd("MAIL FROM:<sender@example.org>");
        c.cmd("RCPT TO:<alice@sluice.test>");
        c.cmd("RCPT TO:<someone@partner.example>");
        c.cmd("DATA");
        if (code_of(c.cmd("Subject: load\r\n\r\nbody\r\n.")) == 250) accepted.fetch_add(1);
      }
      c.cmd("QUIT");
    });
  for (auto& t : threads) t.join();
  cr_assert_eq(accepted.load(), sessions * per_session);
  std::string json = wait_categorized(d, 2);
  for (int i = 0; i < 100 && field(json, "delivery_items") != 2 * sessions * per_session; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    json = d.ctl("queue list --json").output;
  }
  cr_assert_eq(field(json, "submission_queued"), 0, "%s", json.substr(0, 600).c_str());
  expect_queue(json, "local:sluice.test", sessions * per_session, sessions * per_session);
  expect_queue(json, "dns:Partner:partner.example", sessions * per_session, sessions * per_session);
  d.stop();
  // A clean stop leaves nothing half-done: the counts are the same after it.
  json = d.ctl("queue list --json").output;
  cr_assert_eq(field(json, "delivery_items"), 2 * sessions * per_session);
}

Test(integration_categorizer, transport_rules_bcc_header_and_reject, .timeout = 90) {
  sluiced_process d;
  d.write_config(config_with_send_connectors() + R"(
[[transport_rule]]
name = "archive partner mail"
recipient_domain = ["partner.example"]
bcc = "postmaster@sluice.test"
add_header = { name = "X-Archived", value = "yes" }

[[transport_rule]]
name = "no bulk"
header = { name = "Subject", pattern = "*bulk*" }
reject = { status = "5.7.1", text = "Bulk mail refused by policy" }
)");
  bool started = d.start();
  cr_assert(started, "sluiced did not start: %s", d.log().c_str());
  std::vector<std::string> ids;
  for (const char* subject : {"contract", "weekly bulk offer"}) {
    smtp_client c(d.port(), "127.0.0.2");
    c.start_transaction();
    cr_assert_eq(code_of(c.cmd("RCPT TO:<x@partner.example>")), 250);
    c.cmd("DATA");
    std::string reply = c.cmd(std::string("Subject: ") + subject + "\r\n\r\nbody\r\n.");
    cr_assert_eq(code_of(reply), 250, "%s", reply.c_str());
    ids.push_back(queue_id_of(reply));
    c.cmd("QUIT");
  }
  std::string json = wait_categorized(d, 2);
  cr_assert_eq(field(json, "submission_queued"), 0, "%s", json.c_str());
  // The first message: x@partner.example plus the BCC to the local archive.
  expect_queue(json, "dns:Partner:partner.example", 1, 1);
  expect_queue(json, "local:sluice.test", 1, 1);
  auto shown = d.ctl("queue show " + ids[0]);
  cr_assert(shown.output.find("X-Archived: yes") != std::string::npos, "%s", shown.output.c_str());
  cr_assert(shown.output.find("postmaster@sluice.test") != std::string::npos, "%s", shown.output.c_str());
  // Rules that fired and the failed recipients are in the message tracking log.
  d.stop();
  std::string log = run("cat " + d.dir() + "/log/tracking.csv").output;
  cr_assert(log.find(",RULE,\"" + ids[0] + "\"") != std::string::npos, "%s", log.c_str());
  cr_assert(log.find("archive partner mail") != std::string::npos, "%s", log.c_str());
  cr_assert(log.find(",FAIL,") != std::string::npos, "%s", log.c_str());
  cr_assert(log.find("5.7.1 Bulk mail refused by policy") != std::string::npos, "%s", log.c_str());
  // ... and its sender is told, with the status the rule gave.
  cr_assert(log.find(",DSN,\"" + ids[1] + "\"") != std::string::npos, "%s", log.c_str());
}

Test(integration_categorizer, kill9_during_a_burst_every_accepted_message_categorized_once, .timeout = 120) {
  sluiced_process d;
  d.write_config(config_with_send_connectors());
  bool started = d.start();
  cr_assert(started, "sluiced did not start: %s", d.log().c_str());
  constexpr int sessions = 4, per_session = 100;
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < sessions; ++s)
    threads.emplace_back([&] {
      smtp_client c(d.port(), "127.0.0.2");
      c.reply();
      c.cmd("EHLO client.example");
      for (int i = 0; i < per_session; ++i) {
        c.cmd("MAIL FROM:<sender@example.org>");
        c.cmd("RCPT TO:<someone@partner.example>");
        c.cmd("DATA");
        if (code_of(c.cmd("Subject: burst\r\n\r\nbody\r\n.")) == 250) accepted.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  // Killed right after the last 250: some messages may be acknowledged but not yet
  // categorized; the restart must categorize those, and only those.
  d.kill9();
  started = d.start();
  cr_assert(started, "sluiced did not restart: %s", d.log().c_str());
  std::string json;
  for (int i = 0; i < 250; ++i) {
    json = d.ctl("queue list --json").output;
    if (field(json, "submission_queued") == 0 && field(json, "delivery_items") == accepted.load()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  cr_assert_eq(accepted.load(), sessions * per_session);
  cr_assert_eq(field(json, "submission_queued"), 0, "%s", json.substr(0, 400).c_str());
  cr_assert_eq(field(json, "delivery_items"), sessions * per_session, "%s", json.substr(0, 400).c_str());
  expect_queue(json, "dns:Partner:partner.example", sessions * per_session, sessions * per_session);
  d.stop();
}
