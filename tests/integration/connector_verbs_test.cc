// connector_verbs_test.cc: `sluicectl receive-connector|send-connector|accepted-domain` editing the file of a running sluiced.
// Untrusted input: none (the test writes every file it reads).
#include <criterion/criterion.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "assertions.h"
#include "harness.h"
#include "peers.h"

using namespace sluice::testing;

namespace {

// The harness's working file with comments of our own, which every edit must keep.
std::string commented_config() {
  std::string c = "# connector_verbs_test: keep this comment\n" + sluiced_process::default_config();
  c.replace(c.find("[[receive_connector]]"), 0, "# the connectors below are edited by the test\n");
  return c;
}

// A sluiced started on commented_config().
struct running_daemon {
  sluiced_process d;
  running_daemon() {
    d.write_config(commented_config());
    START(d);
  }
};

std::string file_of(const sluiced_process& d) {
  std::ifstream in(d.dir() + "/sluice.toml", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// sluicectl --config <the daemon's file> args
command_result verb(const sluiced_process& d, const std::string& args) {
  return run(sluicectl_path() + " --config " + d.dir() + "/sluice.toml " + args);
}

command_result verb_ok(const sluiced_process& d, const std::string& args) {
  command_result r = verb(d, args);
  cr_assert_eq(r.status, 0, "sluicectl %s:\n%s", args.c_str(), r.output.c_str());
  return r;
}

// The command must fail (exit status 1).
command_result verb_refused(const sluiced_process& d, const std::string& args) {
  command_result r = verb(d, args);
  cr_assert_eq(r.status, 1, "sluicectl %s should fail:\n%s", args.c_str(), r.output.c_str());
  return r;
}

template <typename F>
bool within(int timeout_ms, F done) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// The greeting and EHLO reply of a session on port, or "" when nothing answers.
std::string ehlo_on(uint16_t port, std::string* greeting = nullptr) {
  smtp_client c(port);
  if (!c.connected()) return "";
  std::string hello = c.reply();
  if (greeting) *greeting = hello;
  if (code_of(hello) != 220) return "";
  return c.cmd("EHLO client.test");
}

bool parses_as_json(const std::string& text) {
  const std::string file = "/tmp/sluice-verbs-json-" + std::to_string(::getpid());
  std::ofstream(file) << text;
  bool ok = run("python3 -c 'import json,sys; json.load(open(sys.argv[1]))' " + file).status == 0;
  std::remove(file.c_str());
  return ok;
}

}  // namespace

Test(integration_connector_verbs, receive_connector_new_set_remove_on_a_running_daemon) {
  running_daemon daemon;
  sluiced_process& d = daemon.d;
  const uint16_t hq = free_port();
  const std::string binding = "127.0.0.1:" + std::to_string(hq);
  cr_assert_eq(ehlo_on(hq), "", "nothing listens on %u yet", hq);

  auto r = verb_ok(d, "receive-connector new --name \"Receive from HQ\" --usage internal --bindings " + binding +
                          " --remote-ip-ranges \"127.0.0.0(255.0.0.0)\" --permission-groups exchange-servers");
  EXPECT_HAS(r, "receive connector 'Receive from HQ' created in");
  EXPECT_HAS(r, "sluiced reloaded it");
  const std::string after_new = file_of(d);
  cr_assert(after_new.find("# connector_verbs_test: keep this comment\n") == 0, "%s", after_new.c_str());
  cr_assert(after_new.find("# the connectors below are edited by the test\n") != std::string::npos);
  cr_assert(after_new.find("remote_ranges = [\"127.0.0.0(255.0.0.0)\"]") != std::string::npos, "%s", after_new.c_str());

  // A real client is served on the new binding, and may relay (exchange-servers).
  {
    smtp_client c(hq);
    cr_assert(c.connected());
    EXPECT_CODE(c.reply(), 220);
    EXPECT_CODE(c.cmd("EHLO client.test"), 250);
    EXPECT_CODE(c.cmd("MAIL FROM:<a@hq.example>"), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<someone@elsewhere.example>"), 250);
  }
  cr_assert(ehlo_on(hq).find("SIZE 1048576") != std::string::npos, "the server's limit first");

  // set: the size limit shows in EHLO, the banner in the greeting.
  r = verb_ok(d, "receive-connector set --name \"receive from hq\" --max-message-size 54321 --banner \"hq gate ready\"");
  EXPECT_HAS(r, "changed in");
  std::string greeting;
  const std::string ehlo = ehlo_on(hq, &greeting);
  cr_assert(ehlo.find("SIZE 54321") != std::string::npos, "%s", ehlo.c_str());
  cr_assert(greeting.find("220 hq gate ready") == 0, "%s", greeting.c_str());
  // Only the connector's block changed: the rest of the file is as it was.
  const std::string after_set = file_of(d);
  cr_assert(after_set.substr(0, after_new.find("name = \"Receive from HQ\"")) ==
            after_new.substr(0, after_new.find("name = \"Receive from HQ\"")));

  // get shows it, as text and as JSON.
  r = verb_ok(d, "receive-connector get --name \"Receive from HQ\"");
  EXPECT_HAS(r, "usage:");
  EXPECT_HAS(r, "enterprise");
  EXPECT_HAS(r, binding);
  r = verb_ok(d, "receive-connector get --json");
  cr_assert(parses_as_json(r.output), "%s", r.output.c_str());
  EXPECT_HAS(r, "\"Receive from HQ\"");

  // remove: the binding stops accepting.
  r = verb_ok(d, "receive-connector remove --name \"Receive from HQ\" --json");
  cr_assert(parses_as_json(r.output), "%s", r.output.c_str());
  EXPECT_HAS(r, "\"reload\":\"reloaded\"");
  cr_assert(within(5000, [&] { return ehlo_on(hq).empty(); }), "still served on %s", binding.c_str());
  cr_assert(file_of(d).find("Receive from HQ") == std::string::npos);
  // The daemon's own connectors still serve.
  cr_assert(ehlo_on(d.port()).find("250") == 0);

  r = verb_refused(d, "receive-connector remove --name \"Receive from HQ\"");
  EXPECT_HAS(r, "there is no receive connector named 'Receive from HQ'");
}

Test(integration_connector_verbs, a_binding_and_range_pair_already_taken_is_refused) {
  running_daemon daemon;
  sluiced_process& d = daemon.d;
  const std::string before = file_of(d);
  // "Relay" has 127.0.0.1:<port> with 127.0.0.2 already.
  auto r = verb_refused(d, "receive-connector new --name Second --usage internet --bindings 127.0.0.1:" + std::to_string(d.port()) +
                       " --remote-ip-ranges 127.0.0.2");
  EXPECT_HAS(r, "each binding and remote range pair must belong to one connector");
  EXPECT_HAS(r, "was not changed");
  cr_assert(file_of(d) == before, "the file changed:\n%s", file_of(d).c_str());
  // The same through set, and a duplicate name through new.
  r = verb_refused(d, "receive-connector set --name Internet --remote-ip-ranges 127.0.0.2");
  EXPECT_HAS(r, "each binding and remote range pair must belong to one connector");
  r = verb_refused(d, "receive-connector new --name relay --bindings 127.0.0.1:2999 --usage custom --json");
  EXPECT_HAS(r, "already exists");
  cr_assert(file_of(d) == before, "the file changed:\n%s", file_of(d).c_str());
  // The daemon still runs the old configuration: 127.0.0.2 is the relay connector's.
  smtp_client c(d.port(), "127.0.0.2");
  EXPECT_CODE(c.reply(), 220);
  EXPECT_CODE(c.cmd("EHLO client.test"), 250);
  EXPECT_CODE(c.cmd("MAIL FROM:<a@example.org>"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<anyone@elsewhere.example>"), 250);
}

Test(integration_connector_verbs, send_connector_and_accepted_domain_through_route_test) {
  running_daemon daemon;
  sluiced_process& d = daemon.d;
  EXPECT_HAS(d.ctl("route test x@fresh.test"), "accepted domain: none");

  verb_ok(d, "accepted-domain new --domain-name fresh.test --domain-type internal-relay");
  EXPECT_HAS(d.ctl("route test x@fresh.test"), "accepted domain: fresh.test (internal relay)");
  verb_ok(d, "accepted-domain set --name Fresh.Test --domain-type ExternalRelay");
  EXPECT_HAS(d.ctl("route test x@fresh.test"), "accepted domain: fresh.test (external relay)");
  auto r = verb_ok(d, "accepted-domain get --json");
  cr_assert(parses_as_json(r.output), "%s", r.output.c_str());
  EXPECT_HAS(r, "\"domain_type\":\"external-relay\"");
  verb_ok(d, "accepted-domain remove --domain-name fresh.test");
  EXPECT_HAS(d.ctl("route test x@fresh.test"), "accepted domain: none");

  verb_ok(d, "send-connector new --name Partner --address-spaces SMTP:partner.test --smart-hosts 127.0.0.1:2626");
  r = d.ctl("route test x@partner.test");
  EXPECT_HAS(r, "send connector: Partner");
  EXPECT_HAS(r, "smart hosts 127.0.0.1:2626");
  verb_ok(d, "send-connector set --name Partner --address-spaces other.test --smart-hosts 127.0.0.1:2727");
  EXPECT_HAS(d.ctl("route test x@other.test"), "smart hosts 127.0.0.1:2727");
  r = d.ctl("route test x@partner.test");
  cr_assert(r.output.find("Partner") == std::string::npos, "%s", r.output.c_str());
  verb_ok(d, "send-connector set --name Partner --enabled false");
  cr_assert(d.ctl("route test x@other.test").output.find("send connector: Partner") == std::string::npos);
  verb_ok(d, "send-connector remove --name Partner");
  cr_assert(file_of(d).find("Partner") == std::string::npos, "%s", file_of(d).c_str());
  EXPECT_HAS(d.ctl("route test x@other.test"), "send connector: none");
}

Test(integration_connector_verbs, without_a_daemon_the_file_is_edited_and_the_message_says_so) {
  sluiced_process d;  // never started
  d.write_config(commented_config());
  auto r = verb_ok(d, "accepted-domain new --domain-name later.test --domain-type authoritative");
  EXPECT_HAS(r, "no sluiced is running: the file was changed; it takes effect at the next start");
  cr_assert(file_of(d).find("name = \"later.test\"") != std::string::npos);
  r = verb_ok(d, "send-connector new --name Out --address-spaces \"*.later.test;5\" --json");
  cr_assert(parses_as_json(r.output), "%s", r.output.c_str());
  EXPECT_HAS(r, "\"reload\":\"not_running\"");
  EXPECT_HAS(r, "\"changed\":true");
  // Starting now takes the edited file.
  START(d);
  EXPECT_HAS(d.ctl("route test x@later.test"), "accepted domain: later.test");
  EXPECT_HAS(d.ctl("route test x@a.later.test"), "send connector: Out");
  // A refusal in JSON parses too, and says why.
  r = verb_refused(d, "accepted-domain new --domain-name later.test --json");
  cr_assert(parses_as_json(r.output.substr(0, r.output.find('\n') + 1)), "%s", r.output.c_str());
  EXPECT_HAS(r, "\"ok\":false");
}

Test(integration_connector_verbs, a_change_the_daemon_refuses_is_undone) {
  running_daemon daemon;
  sluiced_process& d = daemon.d;
  const std::string before = file_of(d);
  // The file loads, but sluiced cannot open the connector's protocol log (a directory
  // stands where the file would be), so it refuses the reload; the file is put back.
  d.write_file("log/protocol/Blocked.csv/keep", "");
  auto r = verb_refused(d, "receive-connector new --name Blocked --usage internet --bindings 127.0.0.1:" +
                               std::to_string(free_port()) + " --protocol-logging true");
  EXPECT_HAS(r, "sluiced refused the change");
  EXPECT_HAS(r, "is as it was");
  EXPECT_HAS(r, "Blocked.csv");
  cr_assert(file_of(d) == before, "the file was not restored:\n%s", file_of(d).c_str());
  EXPECT_HAS(verb_ok(d, "receive-connector get"), "Relay");
  cr_assert(verb(d, "receive-connector get --name Blocked").status == 1);
}

// The receive connector keys the hardening work added, each through its option, each then
// holding for a real client of the new connector.
Test(integration_connector_verbs, receive_connector_limits_and_timeouts_take_effect, .timeout = 60) {
  running_daemon daemon;
  sluiced_process& d = daemon.d;
  const uint16_t port = free_port();
  auto r = verb_ok(d, "receive-connector new --name Hardened --usage internet --bindings 127.0.0.1:" + std::to_string(port) +
                          " --max-header-size 2K --max-protocol-errors 3 --helo-required true"
                          " --connection-inactivity-timeout 00:00:02 --connection-timeout 1m --data-timeout 20s"
                          " --content-timeout 0.00:05:00 --starttls offered");
  EXPECT_HAS(r, "sluiced reloaded it");
  const std::string file = file_of(d);
  for (const char* key : {"max_header_size = \"2K\"", "max_errors = 3", "starttls = \"offered\"", "helo_required = true",
                          "command_s = 2", "connection_s = 60", "data_s = 20", "content_s = 300"})
    cr_assert(file.find(key) != std::string::npos, "%s missing:\n%s", key, file.c_str());
  r = verb_ok(d, "receive-connector get --name Hardened");
  EXPECT_HAS(r, "2048");
  EXPECT_HAS(r, "connection_inactivity_timeout:");

  {
    smtp_client c(port);
    EXPECT_CODE(c.reply(), 220);
    EXPECT_CODE(c.cmd("MAIL FROM:<a@client.test>"), 503);  // helo_required (error 1 of 3)
    const std::string ehlo = c.cmd("EHLO client.test");
    EXPECT_CODE(ehlo, 250);
    cr_assert(ehlo.find("STARTTLS") != std::string::npos, "tls.starttls = offered: %s", ehlo.c_str());
    EXPECT_CODE(c.cmd("MAIL FROM:<a@client.test>"), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<b@relay.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    std::string header = "Subject: big\r\n";
    for (int i = 0; i < 5; ++i) header += "X-Big-" + std::to_string(i) + ": " + std::string(700, 'a') + "\r\n";
    c.send_raw(header + "\r\nbody\r\n.\r\n");  // 3.5 KiB of header in lines of 700 octets
    const std::string too_big = c.reply();
    cr_assert(too_big.starts_with("552 5.3.4"), "a header section over 2 KiB: %s", too_big.c_str());
  }
  {
    smtp_client c(port);
    EXPECT_CODE(c.reply(), 220);
    EXPECT_CODE(c.cmd("FOO"), 500);
    EXPECT_CODE(c.cmd("BAR"), 500);
    EXPECT_CODE(c.cmd("BAZ"), 500);
    const std::string closing = c.reply();
    cr_assert(closing.starts_with("421 4.7.0"), "the third error ends the session: %s", closing.c_str());
    cr_assert(c.closed_by_peer());
  }
  {
    smtp_client c(port);
    EXPECT_CODE(c.reply(), 220);
    const std::string idle = c.reply(6000);  // nothing sent: the 2 s command timeout
    cr_assert(idle.starts_with("421 4.4.2"), "%s", idle.c_str());
  }
  // The daemon's loader judges the values: a limit it does not take leaves the file alone.
  const std::string before = file_of(d);
  r = verb_refused(d, "receive-connector set --name Hardened --max-protocol-errors 0");
  EXPECT_HAS(r, "max_errors");
  EXPECT_HAS(r, "was not changed");
  r = verb_refused(d, "receive-connector set --name Hardened --connection-timeout 25:61:00");
  EXPECT_HAS(r, "is not a duration");
  cr_assert(file_of(d) == before);
  // set changes only that key.
  verb_ok(d, "receive-connector set --name Hardened --max-header-size 65536");
  cr_assert(file_of(d).find("max_header_size = 65536") != std::string::npos, "%s", file_of(d).c_str());
}

// The send connector's limits and security keys, and an accepted domain's maildir_path.
Test(integration_connector_verbs, send_connector_limits_and_maildir_path_take_effect, .timeout = 60) {
  running_daemon daemon;
  sluiced_process& d = daemon.d;
  const uint16_t sink_port = free_port();
  sink_process sink(d.dir(), "limits", "127.0.0.1", sink_port);
  auto r = verb_ok(d, "send-connector new --name Limits --address-spaces limits.test --smart-hosts 127.0.0.1:" +
                          std::to_string(sink_port) +
                          " --max-recipients-per-message 1 --max-connections 2 --max-messages-per-connection 10"
                          " --connection-rate 0.5 --message-rate 100 --failures-before-suspend 3 --suspend 00:10:00");
  EXPECT_HAS(r, "sluiced reloaded it");
  const std::string file = file_of(d);
  for (const char* key : {"max_recipients_per_message = 1", "max_connections = 2", "max_messages_per_connection = 10",
                          "connection_rate = 0.5", "message_rate = 100", "failures_before_suspend = 3", "suspend = 600"})
    cr_assert(file.find(key) != std::string::npos, "%s missing:\n%s", key, file.c_str());

  // One message to two recipients reaches the sink as two transactions (one RCPT each).
  smtp_client c(d.port(), "127.0.0.2");
  EXPECT_CODE(c.reply(), 220);
  EXPECT_CODE(c.cmd("EHLO client.test"), 250);
  EXPECT_CODE(c.cmd("MAIL FROM:<a@client.test>"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<one@limits.test>"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<two@limits.test>"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  c.send_raw("Subject: split\r\n\r\nhi\r\n.\r\n");
  EXPECT_CODE(c.reply(), 250);
  cr_assert(within(15'000, [&] { return sink.received() == 2; }), "sink received %zu:\n%s", sink.received(),
            d.log().c_str());

  // TLS and AUTH keys are checked by the loader as sluiced would: a partner name without tls = partner is refused.
  const std::string before = file_of(d);
  r = verb_refused(d, "send-connector set --name Limits --tls-domain partner.limits.test");
  EXPECT_HAS(r, "tls_verify_name");
  r = verb_refused(d, "send-connector set --name Limits --connection-rate fast");
  EXPECT_HAS(r, "is not a rate");
  cr_assert(file_of(d) == before);
  verb_ok(d, "send-connector set --name Limits --tls partner --tls-domain partner.limits.test");
  EXPECT_HAS(verb_ok(d, "send-connector get --name Limits"), "partner.limits.test");

  // maildir_path: a template the loader takes, and one that could leave maildir_root it refuses.
  d.write_file("box-recipients.txt", "u@box.test\n");
  verb_ok(d, "accepted-domain new --domain-name box.test --domain-type authoritative --recipients box-recipients.txt"
             " --mailbox maildir --maildir-root " + d.dir() + "/mail --maildir-path \"{root}/{domain}/{local}\"");
  EXPECT_HAS(verb_ok(d, "accepted-domain get --name box.test"), "{root}/{domain}/{local}");
  r = verb_refused(d, "accepted-domain set --name box.test --maildir-path \"/tmp/{local}\"");
  EXPECT_HAS(r, "maildir_path");
}
