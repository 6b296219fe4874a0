// local_delivery_test.cc: the local delivery keys of [[accepted_domain]] (mailbox, maildir_root,
// maildir_path, lmtp) and the [dsn] section: defaults, every accepted form, every error.
// Untrusted input: none (test configurations written here).
#include <criterion/criterion.h>

#include <string>

#include "config/config.h"
#include "test_util.h"

using namespace sluice::config;
using sluice::config::test::expect_error;
using sluice::config::test::load_ok;

namespace {

// One accepted domain named example.com with the given extra lines (its keys start on line 3).
std::string domain_with(const std::string& lines) {
  return "[[accepted_domain]]\nname = \"example.com\"\n" + lines;
}

}  // namespace

Test(config_local_delivery, absent_means_no_mailbox) {
  auto c = load_ok(domain_with(""));
  const accepted_domain& d = c->accepted_domains.at(0);
  cr_assert(d.mailbox == mailbox_kind::none);
  cr_assert(d.maildir_root.empty());
  cr_assert_str_eq(d.maildir_path.c_str(), "{root}/{domain}/{local}/Maildir");
  cr_assert(d.lmtp_target.empty() && d.lmtp_socket.empty());
  cr_assert_eq(d.lmtp_port, 0);
  cr_assert_eq(std::string(to_string(mailbox_kind::none)), "none");
}

Test(config_local_delivery, maildir_with_the_default_template) {
  auto c = load_ok(R"toml(
[[accepted_domain]]
name = "example.com"
type = "internal_relay"
mailbox = "maildir"
maildir_root = "/var/mail//vhosts/"
)toml");
  const accepted_domain& d = c->accepted_domains.at(0);
  cr_assert(d.mailbox == mailbox_kind::maildir);
  cr_assert_str_eq(d.maildir_root.c_str(), "/var/mail/vhosts");  // normalized, no trailing '/'
  cr_assert_str_eq(d.maildir_path.c_str(), "{root}/{domain}/{local}/Maildir");
  cr_assert_eq(std::string(to_string(d.mailbox)), "maildir");
}

Test(config_local_delivery, maildir_with_a_template_of_its_own) {
  auto c = load_ok(domain_with("mailbox = \"maildir\"\nmaildir_root = \"/srv/mail\"\n"
                               "maildir_path = \"{root}/users/{local}.{domain}/{local}/md\"\n"));
  cr_assert_str_eq(c->accepted_domains.at(0).maildir_path.c_str(), "{root}/users/{local}.{domain}/{local}/md");
  // {domain} is optional.
  load_ok(domain_with("mailbox = \"maildir\"\nmaildir_root = \"/\"\nmaildir_path = \"{root}/{local}\"\n"));
}

Test(config_local_delivery, lmtp_targets) {
  struct {
    const char* text;
    const char* address;
    uint16_t port;
    const char* socket;
  } cases[] = {
      {"127.0.0.1:24", "127.0.0.1", 24, ""},
      {"[::1]:2424", "::1", 2424, ""},
      {"[192.0.2.7]:24", "192.0.2.7", 24, ""},
      {"/run/dovecot/lmtp", "::", 0, "/run/dovecot/lmtp"},
  };
  for (const auto& tc : cases) {
    auto c = load_ok(domain_with("mailbox = \"lmtp\"\nlmtp = \"" + std::string(tc.text) + "\"\n"));
    const accepted_domain& d = c->accepted_domains.at(0);
    cr_assert(d.mailbox == mailbox_kind::lmtp, "%s", tc.text);
    cr_assert_str_eq(d.lmtp_target.c_str(), tc.text);
    cr_assert_str_eq(d.lmtp_socket.c_str(), tc.socket, "%s", tc.text);
    cr_assert_eq(d.lmtp_port, tc.port, "%s", tc.text);
    cr_assert_eq(d.lmtp_address.to_string(), std::string(tc.address), "%s", tc.text);
  }
}

Test(config_local_delivery, mailbox_errors) {
  expect_error(domain_with("mailbox = \"mbox\"\n"), 3, "accepted_domain[0].mailbox",
               "'mbox' is not one of \"maildir\", \"lmtp\"");
  expect_error(domain_with("mailbox = true\n"), 3, "accepted_domain[0].mailbox", "expected one of");
  expect_error(domain_with("type = \"external_relay\"\nmailbox = \"lmtp\"\nlmtp = \"127.0.0.1:24\"\n"), 4,
               "accepted_domain[0].mailbox", "only for authoritative and internal_relay domains");
  // A bad mailbox value is the one error, not also every key of the kind it meant.
  load_result r = sluice::config::test::load(domain_with("mailbox = \"Maildir\"\nmaildir_root = \"/m\"\n"));
  cr_assert(!r.ok());
  cr_assert_eq(r.errors.size(), 1u, "%s", r.error_text().c_str());
}

Test(config_local_delivery, maildir_errors) {
  expect_error(domain_with("mailbox = \"maildir\"\n"), 1, "accepted_domain[0].maildir_root", "is required");
  expect_error(domain_with("mailbox = \"maildir\"\nmaildir_root = \"var/mail\"\n"), 4,
               "accepted_domain[0].maildir_root", "'var/mail' is not an absolute path");
  expect_error(domain_with("mailbox = \"maildir\"\nmaildir_root = \"\"\n"), 4, "accepted_domain[0].maildir_root",
               "is not an absolute path");
  expect_error(domain_with("mailbox = \"maildir\"\nmaildir_root = \"/var/\\u0001mail\"\n"), 4,
               "accepted_domain[0].maildir_root", "control character");
  expect_error(domain_with("mailbox = \"maildir\"\nmaildir_root = 5\n"), 4, "accepted_domain[0].maildir_root",
               "expected a string");
  expect_error(domain_with("maildir_root = \"/var/mail\"\n"), 3, "accepted_domain[0].maildir_root",
               "only used with mailbox = \"maildir\"");
  expect_error(domain_with("mailbox = \"lmtp\"\nlmtp = \"/run/lmtp\"\nmaildir_path = \"{root}/{local}\"\n"), 5,
               "accepted_domain[0].maildir_path", "only used with mailbox = \"maildir\"");
  struct {
    const char* template_text;
    const char* fragment;
  } bad[] = {
      {"/var/mail/{local}", "must start with {root}/"},
      {"{root}{local}", "must start with {root}/"},
      {"{domain}/{root}/{local}", "must start with {root}/"},
      {"{root}/{domain}/Maildir", "must contain {local}"},
      {"{root}/{user}/{local}", "unknown placeholder {user}"},
      {"{root}/{LOCAL}", "unknown placeholder {LOCAL}"},
      {"{root}/{local", "a '{' without its '}'"},
      {"{root}/local}", "a '}' without its '{'"},
      {"{root}/../{local}", "'.' or '..' components"},
      {"{root}/{local}/./Maildir", "'.' or '..' components"},
      {"{root}/{local}/..", "'.' or '..' components"},
      {"{root}/\\t{local}", "control character"},
      // Found by tests/fuzz/maildir: "..{root}" is no ".." component, yet expands to one.
      {"{root}/..{root}/{local}", "{root} only at its start"},
      {"{root}/.{root}/{local}", "{root} only at its start"},
  };
  for (const auto& b : bad) {
    expect_error(domain_with("mailbox = \"maildir\"\nmaildir_root = \"/m\"\nmaildir_path = \"" +
                             std::string(b.template_text) + "\"\n"),
                 5, "accepted_domain[0].maildir_path", b.fragment);
  }
}

Test(config_local_delivery, lmtp_errors) {
  expect_error(domain_with("mailbox = \"lmtp\"\n"), 1, "accepted_domain[0].lmtp", "is required");
  expect_error(domain_with("lmtp = \"127.0.0.1:24\"\n"), 3, "accepted_domain[0].lmtp",
               "only used with mailbox = \"lmtp\"");
  expect_error(domain_with("mailbox = \"maildir\"\nmaildir_root = \"/m\"\nlmtp = \"127.0.0.1:24\"\n"), 5,
               "accepted_domain[0].lmtp", "only used with mailbox = \"lmtp\"");
  for (const char* text : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "::1:24", "[::1]",
                           "[::1]:", "lmtp.example.com:24", "run/dovecot/lmtp", "", "[::1]x:24", "300.1.1.1:24"}) {
    expect_error(domain_with("mailbox = \"lmtp\"\nlmtp = \"" + std::string(text) + "\"\n"), 4,
                 "accepted_domain[0].lmtp", "is not IP:port, [IPv6]:port or the absolute path of a Unix socket");
  }
  std::string long_path = "/" + std::string(107, 's');
  expect_error(domain_with("mailbox = \"lmtp\"\nlmtp = \"" + long_path + "\"\n"), 4, "accepted_domain[0].lmtp",
               "is 108 bytes long; a Unix socket path holds 107");
  load_ok(domain_with("mailbox = \"lmtp\"\nlmtp = \"" + long_path.substr(0, 107) + "\"\n"));
}

Test(config_dsn, defaults) {
  auto c = load_ok("[server]\nhostname = \"MX.Example.org\"\n");
  const dsn_settings& d = c->dsn;
  cr_assert_eq(d.delay_after_s, 14400u);
  cr_assert(d.delay_without_notify);
  cr_assert_eq(d.expire_after_s, 86400u);
  cr_assert_eq(d.return_content_limit, 50000u);
  cr_assert_str_eq(d.reporting_mta.c_str(), "mx.example.org");  // server.hostname
  // An empty [dsn], and an explicit "", resolve the same way.
  cr_assert_eq(load_ok("[server]\nhostname = \"a.example\"\n[dsn]\nreporting_mta = \"\"\n")->dsn.reporting_mta,
               "a.example");
}

Test(config_dsn, every_key_is_read) {
  auto c = load_ok(R"toml(
[server]
hostname = "mx.example.org"

[dsn]
delay_after = "2h"
delay_without_notify = false
expire_after = "3d"
return_content_limit = "10M"
reporting_mta = "Reports.Example.NET"
)toml");
  const dsn_settings& d = c->dsn;
  cr_assert_eq(d.delay_after_s, 7200u);
  cr_assert_not(d.delay_without_notify);
  cr_assert_eq(d.expire_after_s, 3u * 86400);
  cr_assert_eq(d.return_content_limit, 10ull << 20);
  cr_assert_str_eq(d.reporting_mta.c_str(), "reports.example.net");
  auto n = load_ok("[dsn]\ndelay_after = \"0\"\nexpire_after = 60\nreturn_content_limit = \"50k\"\n");
  cr_assert_eq(n->dsn.delay_after_s, 0u);  // never
  cr_assert_eq(n->dsn.expire_after_s, 60u);
  cr_assert_eq(n->dsn.return_content_limit, 50u << 10);
  cr_assert_eq(load_ok("[dsn]\nreturn_content_limit = 1234\n")->dsn.return_content_limit, 1234u);
}

Test(config_dsn, errors) {
  expect_error("[dsn]\ndelay_after = \"4x\"\n", 2, "dsn.delay_after", "is not a duration");
  expect_error("[dsn]\ndelay_after = \"31d\"\n", 2, "dsn.delay_after", "must be between 0s and 30d");
  expect_error("[dsn]\ndelay_after = -1\n", 2, "dsn.delay_after", "must not be negative");
  expect_error("[dsn]\ndelay_without_notify = \"yes\"\n", 2, "dsn.delay_without_notify", "expected a boolean");
  expect_error("[dsn]\nexpire_after = 0\n", 2, "dsn.expire_after", "must be between 1s and 365d");
  expect_error("[dsn]\nexpire_after = \"366d\"\n", 2, "dsn.expire_after", "must be between 1s and 365d");
  expect_error("[dsn]\nreturn_content_limit = \"lots\"\n", 2, "dsn.return_content_limit", "is not a size");
  expect_error("[dsn]\nreturn_content_limit = 0\n", 2, "dsn.return_content_limit", "positive number of bytes");
  expect_error("[dsn]\nreporting_mta = \"not a host\"\n", 2, "dsn.reporting_mta", "is not a valid host name");
  expect_error("[dsn]\nreporting_mta = 7\n", 2, "dsn.reporting_mta", "expected a string");
  expect_error("[dsn]\ndelay_aftr = \"1h\"\n", 2, "dsn.delay_aftr", "did you mean 'delay_after'");
  expect_error("dsn = 5\n", 1, "dsn", "expected a table");
}
