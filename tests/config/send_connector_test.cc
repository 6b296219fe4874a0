// send_connector_test.cc: the outbound keys of [[send_connector]]: delivery limits, TLS name
// and CA, smart-host AUTH credentials, EHLO name, and each of their errors.
// Untrusted input: none (test configurations written here).
#include <criterion/criterion.h>
#include <sys/stat.h>

#include <string>

#include "config/config.h"
#include "test_util.h"

using namespace sluice::config;
using sluice::config::test::expect_error;
using sluice::config::test::load_ok;
using sluice::config::test::scratch_dir;

namespace {

// A smart-host connector; extra is appended to its table (line 5 onwards).
std::string smarthost(const std::string& extra) {
  return "[[send_connector]]\nname = \"Relay\"\naddress_spaces = [\"*\"]\nrouting = \"smarthost\"\n"
         "smart_hosts = [\"relay.example.com\"]\n" + extra;
}

std::string write_credentials(const scratch_dir& dir, const std::string& content, mode_t mode) {
  std::string path = dir.write("relay.auth", content);
  cr_assert_eq(::chmod(path.c_str(), mode), 0);
  return path;
}

}  // namespace

Test(config_send_connector, defaults) {
  auto c = load_ok(smarthost(""));
  const send_connector& sc = c->send_connectors.at(0);
  cr_assert(sc.limits.empty());
  cr_assert(sc.tls_verify_name.empty() && sc.tls_ca.empty() && sc.auth_credentials.empty());
  cr_assert(sc.auth_user.empty() && sc.auth_password.empty() && sc.helo.empty());
  // Unset limits inherit [delivery]'s.
  delivery_limits eff = sc.limits.apply(c->delivery.limits);
  cr_assert_eq(eff.max_connections, 20u);
}

Test(config_send_connector, limit_keys_in_the_table) {
  auto c = load_ok("[delivery]\nmax_connections = 40\nmessage_rate = 3\n" +
                   smarthost("max_connections = 2\nmax_messages_per_connection = 50\n"
                             "max_recipients_per_message = 25\nconnection_rate = 0.25\nmessage_rate = 8\n"
                             "failures_before_suspend = 9\nsuspend = \"2m\"\n"));
  const delivery_limits_override& o = c->send_connectors.at(0).limits;
  cr_assert_eq(o.max_connections.value_or(0), 2u);
  cr_assert_eq(o.max_messages_per_connection.value_or(0), 50u);
  cr_assert_eq(o.max_recipients_per_message.value_or(0), 25u);
  cr_assert_eq(o.connection_rate.value_or(0), 0.25);
  cr_assert_eq(o.message_rate.value_or(0), 8.0);
  cr_assert_eq(o.failures_before_suspend.value_or(0), 9u);
  cr_assert_eq(o.suspend_s.value_or(0), 120u);
  delivery_limits eff = o.apply(c->delivery.limits);
  cr_assert_eq(eff.max_connections, 2u);
  cr_assert_eq(eff.message_rate, 8.0);
  auto partial = load_ok("[delivery]\nmax_connections = 40\nmessage_rate = 3\n" + smarthost("suspend = 60\n"));
  eff = partial->send_connectors.at(0).limits.apply(partial->delivery.limits);
  cr_assert(eff.max_connections == 40 && eff.message_rate == 3 && eff.suspend_s == 60);
}

Test(config_send_connector, tls_keys) {
  scratch_dir dir;
  dir.write("partner-ca.pem", "-----BEGIN CERTIFICATE-----\n");
  auto c = load_ok(smarthost("tls = \"partner\"\ntls_verify_name = \"MX.Partner.example\"\n"
                             "tls_ca = \"partner-ca.pem\"\nhelo = \"Out.Example.COM\"\n"),
                   dir.path());
  const send_connector& sc = c->send_connectors.at(0);
  cr_assert_str_eq(sc.tls_verify_name.c_str(), "mx.partner.example");
  std::string ca = dir.path() + "/partner-ca.pem";
  cr_assert_str_eq(sc.tls_ca.c_str(), ca.c_str());
  cr_assert_str_eq(sc.helo.c_str(), "out.example.com");
  c = load_ok(smarthost("tls = \"mandatory\"\ntls_ca = \"partner-ca.pem\"\n"), dir.path());
  cr_assert_str_eq(c->send_connectors.at(0).tls_ca.c_str(), ca.c_str());
}

Test(config_send_connector, tls_key_errors) {
  scratch_dir dir;
  dir.write("ca.pem", "x");
  expect_error(smarthost("tls_verify_name = \"mx.example.com\"\n"), 6, "send_connector[0].tls_verify_name",
               "is only used with tls = \"partner\"");
  expect_error(smarthost("tls = \"partner\"\ntls_verify_name = \"not a name\"\n"), 7,
               "send_connector[0].tls_verify_name", "'not a name' is not a host name");
  expect_error(smarthost("tls = \"none\"\ntls_ca = \"ca.pem\"\n"), 7, "send_connector[0].tls_ca",
               "is only used with tls = \"mandatory\" or \"partner\"", dir.path());
  expect_error(smarthost("tls = \"partner\"\ntls_ca = \"missing.pem\"\n"), 7, "send_connector[0].tls_ca",
               "does not exist", dir.path());
  expect_error(smarthost("helo = \"-bad-\"\n"), 6, "send_connector[0].helo", "'-bad-' is not a valid host name");
}

Test(config_send_connector, auth_credentials_are_read) {
  scratch_dir dir;
  write_credentials(dir, "relayuser:s3cr:et\n", 0600);
  auto c = load_ok(smarthost("auth_credentials = \"relay.auth\"\n"), dir.path());
  const send_connector& sc = c->send_connectors.at(0);
  std::string file = dir.path() + "/relay.auth";
  cr_assert_str_eq(sc.auth_credentials.c_str(), file.c_str());
  cr_assert_str_eq(sc.auth_user.c_str(), "relayuser");
  cr_assert_str_eq(sc.auth_password.c_str(), "s3cr:et");  // only the first ':' separates
  write_credentials(dir, "u:p\r\n\n", 0640);  // CRLF and a trailing blank line are fine
  c = load_ok(smarthost("auth_credentials = \"relay.auth\"\n"), dir.path());
  cr_assert_str_eq(c->send_connectors.at(0).auth_password.c_str(), "p");
}

Test(config_send_connector, auth_credentials_errors) {
  scratch_dir dir;
  const char* key = "send_connector[0].auth_credentials";
  std::string text = smarthost("auth_credentials = \"relay.auth\"\n");
  expect_error(text, 6, key, "does not exist", dir.path());
  struct {
    const char* content;
    mode_t mode;
    const char* fragment;
  } cases[] = {
      {"u:p\n", 0644, "is readable by everyone"},
      {"no colon here\n", 0600, "must hold one line user:password"},
      {":password\n", 0600, "must hold one line user:password"},
      {"user:\n", 0600, "must hold one line user:password"},
      {"", 0600, "must hold one line user:password"},
      {"a:b\nc:d\n", 0600, "it has more"},
  };
  for (const auto& c : cases) {
    write_credentials(dir, c.content, c.mode);
    expect_error(text, 6, key, c.fragment, dir.path());
  }
  write_credentials(dir, "u:p\n", 0600);
  expect_error("[[send_connector]]\nname = \"Out\"\naddress_spaces = [\"*\"]\nauth_credentials = \"relay.auth\"\n", 4,
               key, "is only used with routing = \"smarthost\"", dir.path());
  std::filesystem::create_directory(dir.path() + "/adir");
  expect_error(smarthost("auth_credentials = \"adir\"\n"), 6, key, "is not a regular file", dir.path());
  if (::geteuid() != 0) {  // root reads anything
    write_credentials(dir, "u:p\n", 0200);
    expect_error(text, 6, key, "cannot read", dir.path());
  }
}

Test(config_send_connector, limit_errors) {
  expect_error(smarthost("max_connections = 0\n"), 6, "send_connector[0].max_connections", "between 1 and 10000");
  expect_error(smarthost("connection_rate = -2\n"), 6, "send_connector[0].connection_rate", "between 0 (unlimited)");
  expect_error(smarthost("suspend = \"1w\"\n"), 6, "send_connector[0].suspend", "is not a duration");
  expect_error(smarthost("max_recipients_per_mesage = 5\n"), 6, "send_connector[0].max_recipients_per_mesage",
               "did you mean 'max_recipients_per_message'?");
}

// chunking: BDAT on by default; [delivery] turns it off everywhere, a connector for itself.
Test(config_send_connector, chunking_key) {
  auto c = load_ok(smarthost(""));
  cr_assert(c->delivery.chunking);
  cr_assert(!c->send_connectors.at(0).chunking.has_value(), "unset: [delivery] decides");
  auto off = load_ok(smarthost("chunking = false\n") + "[delivery]\nchunking = true\n");
  cr_assert(off->delivery.chunking);
  cr_assert(off->send_connectors.at(0).chunking == false);
  auto all_off = load_ok(smarthost("") + "[delivery]\nchunking = false\n");
  cr_assert(!all_off->delivery.chunking);
  sluice::config::test::expect_error(smarthost("chunking = \"no\"\n"), 6, "send_connector[0].chunking", "boolean");
}
