// examples_test.cc: every configuration in etc/examples passes `sluicectl config check`, starts, and its connectors answer as documented.
// Untrusted input: none (the shipped examples and the test's own daemons).
#include <criterion/criterion.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "assertions.h"
#include "harness.h"
#include "peers.h"

using namespace sluice::testing;
namespace fs = std::filesystem;

namespace {

std::string examples_dir() { return source_root() + "/etc/examples"; }

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size()) text.replace(pos, from.size(), to);
}

// An example made runnable in `d`'s directory: its companion files copied beside it, its
// directories moved there, its ports moved to free loopback ports (the first of 25 and
// 587 it binds to d.port(); returned by original port), IPv6 bindings dropped, and the
// test's user kept (the example's user = "sluice" may not exist here).
std::map<std::string, uint16_t> install_example(sluiced_process& d, const std::string& name) {
  for (const auto& e : fs::directory_iterator(examples_dir()))
    if (e.path().extension() != ".toml") fs::copy_file(e.path(), d.dir() + "/" + e.path().filename().string());
  std::string text = slurp_file(examples_dir() + "/" + name);
  cr_assert(!text.empty(), "no etc/examples/%s", name.c_str());
  replace_all(text, "/var/lib/sluice/queue", "@DIR@/queue");  // where sluicectl looks
  replace_all(text, "/var/lib/sluice", "@DIR@/lib");
  replace_all(text, "/var/log/sluice", "@DIR@/log");
  replace_all(text, "user = \"sluice\"\ngroup = \"sluice\"\n", "allow_root = true\n");
  std::map<std::string, uint16_t> ports;
  for (const std::string port : {"25", "587"}) {
    if (text.find(":" + port + "\"") == std::string::npos) continue;
    const uint16_t to = ports.empty() ? d.port() : free_port();
    ports[port] = to;
    for (const std::string any : {"0.0.0.0:", "127.0.0.1:"}) replace_all(text, "\"" + any + port + "\"", "\"127.0.0.1:" + std::to_string(to) + "\"");
    for (const std::string any : {"[::]:", "[::1]:"}) replace_all(text, ", \"" + any + port + "\"", "");
  }
  d.write_config(text);
  return ports;
}

// install_example(), then starts the daemon.
std::map<std::string, uint16_t> start_example(sluiced_process& d, const std::string& name) {
  auto ports = install_example(d, name);
  START(d);
  return ports;
}

// The EHLO reply of a plaintext session.
std::string ehlo(uint16_t port) {
  smtp_client c(port);
  cr_assert(c.connected(), "nothing listens on %u", port);
  cr_assert_eq(code_of(c.reply()), 220);
  return c.cmd("EHLO check.example");
}

bool has_extension(const std::string& reply, const std::string& ext) {
  std::istringstream in(reply);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (l.size() > 4 && l.compare(4, ext.size(), ext) == 0) return true;
  }
  return false;
}

}  // namespace

Test(integration_examples, every_example_passes_config_check, .timeout = 60) {
  size_t checked = 0;
  for (const auto& e : fs::directory_iterator(examples_dir())) {
    if (e.path().extension() != ".toml") continue;
    const command_result r = run(sluicectl_path() + " config check " + e.path().string());
    cr_assert_eq(r.status, 0, "%s:\n%s", e.path().c_str(), r.output.c_str());
    cr_assert(r.output.find(": ok") != std::string::npos, "%s", r.output.c_str());
    ++checked;
  }
  cr_assert_geq(checked, 3u, "edge-relay.toml, hub.toml and smarthost-outbound.toml, at least");
  for (const char* name : {"edge-relay.toml", "hub.toml", "smarthost-outbound.toml"})
    cr_assert(fs::exists(examples_dir() + "/" + name), "no etc/examples/%s", name);
}

Test(integration_examples, the_edge_relay_offers_starttls_and_verifies_recipients, .timeout = 60) {
  sluiced_process d;
  start_example(d, "edge-relay.toml");
  const std::string reply = ehlo(d.port());
  cr_assert(has_extension(reply, "STARTTLS"), "%s", reply.c_str());
  cr_assert(!has_extension(reply, "AUTH"), "AUTH on the internet connector: %s", reply.c_str());

  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@example.com>"), 250);
  const std::string unknown = c.cmd("RCPT TO:<nobody-here@example.com>");
  cr_assert(unknown.starts_with("550 5.1.10 "), "an unknown recipient was not refused: %s", unknown.c_str());
  const std::string relay = c.cmd("RCPT TO:<someone@elsewhere.example>");
  cr_assert(relay.starts_with("550 5.7.54 "), "the internet connector relays: %s", relay.c_str());
  d.stop();
}

Test(integration_examples, the_hub_offers_starttls_to_the_organisation, .timeout = 60) {
  sluiced_process d;
  start_example(d, "hub.toml");
  const std::string reply = ehlo(d.port());
  cr_assert(has_extension(reply, "STARTTLS"), "%s", reply.c_str());
  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<bob@example.com>"), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<someone@elsewhere.example>"), 250);  // the organisation relays
  d.stop();
}

Test(integration_examples, smarthost_outbound_offers_auth_on_587_only_after_starttls, .timeout = 60) {
  sluiced_process d;
  auto ports = start_example(d, "smarthost-outbound.toml");
  cr_assert(ports.count("587") == 1 && ports.count("25") == 1);
  const std::string plain = ehlo(ports["587"]);
  cr_assert(has_extension(plain, "STARTTLS"), "%s", plain.c_str());
  cr_assert(!has_extension(plain, "AUTH"), "AUTH before TLS: %s", plain.c_str());
  // Mail without AUTH is refused.
  smtp_client c(ports["587"]);
  const std::string mail = c.start_transaction();
  cr_assert(code_of(mail) >= 500, "MAIL without TLS and AUTH: %s", mail.c_str());

  const command_result tls = run("printf 'EHLO check.example\\r\\nQUIT\\r\\n' | timeout 20 openssl s_client -starttls smtp -connect 127.0.0.1:" +
                                 std::to_string(ports["587"]) + " -crlf -quiet");
  cr_assert(tls.output.find("250-AUTH PLAIN LOGIN") != std::string::npos ||
                tls.output.find("250 AUTH PLAIN LOGIN") != std::string::npos,
            "no AUTH after STARTTLS:\n%s", tls.output.c_str());
  // Local programs on 25 need no password and no TLS.
  const std::string local = ehlo(ports["25"]);
  cr_assert_eq(code_of(local), 250, "%s", local.c_str());
  d.stop();
}
