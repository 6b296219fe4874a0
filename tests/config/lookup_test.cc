// lookup_test.cc: receive connector selection, bindings, accepted domains and recipient lists.
#include <criterion/criterion.h>

#include <string>

#include "config/config.h"
#include "test_util.h"

using namespace sluice::config;
using sluice::config::test::load_ok;
using sluice::config::test::scratch_dir;

namespace {

ip_address ip(const char* text) {
  auto a = ip_address::parse(text);
  cr_assert(a.has_value(), "%s", text);
  return *a;
}

std::string selected(const config& c, const char* local, uint16_t port, const char* peer) {
  const receive_connector* rc = c.select_receive_connector(ip(local), port, ip(peer));
  return rc ? rc->name : "(none)";
}

const char* connectors = R"toml(
[[receive_connector]]
name = "Internet"
type = "internet"
bindings = ["0.0.0.0:25", "[::]:25"]

[[receive_connector]]
name = "Corp"
type = "enterprise"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.0.0.0/8", "2001:db8::/32"]

[[receive_connector]]
name = "Branch"
type = "enterprise"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.10.0.0(255.255.0.0)"]

[[receive_connector]]
name = "Printer"
type = "custom"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.10.1.5"]

[[receive_connector]]
name = "Scanner range"
type = "custom"
bindings = ["192.0.2.1:25"]
remote_ranges = ["10.10.1.1-10.10.1.9"]

[[receive_connector]]
name = "Submission"
type = "custom"
bindings = ["127.0.0.1:587"]
remote_ranges = ["127.0.0.0/8"]
)toml";

}  // namespace

Test(config_select, most_specific_range_wins) {
  auto c = load_ok(connectors);
  cr_assert(selected(*c, "192.0.2.1", 25, "203.0.113.9") == "Internet");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.200.0.1") == "Corp");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.10.200.1") == "Branch");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.10.1.5") == "Printer");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.10.1.6") == "Scanner range");
}

Test(config_select, binding_must_match_local_endpoint) {
  auto c = load_ok(connectors);
  // "Scanner range" is bound to 192.0.2.1 only: on another local address the peer
  // falls back to the next most specific connector bound to the wildcard.
  cr_assert(selected(*c, "198.51.100.1", 25, "10.10.1.6") == "Branch");
  // Port decides too.
  cr_assert(selected(*c, "127.0.0.1", 587, "127.0.0.1") == "Submission");
  cr_assert(selected(*c, "127.0.0.1", 25, "127.0.0.1") == "Internet");
  // IPv6 local address: only the [::]:25 binding of "Internet" and nothing IPv4-only.
  cr_assert(selected(*c, "2001:db8::25", 25, "2001:db8::1") == "Internet");
}

Test(config_select, v4_mapped_peer_is_treated_as_ipv4) {
  auto c = load_ok(connectors);
  cr_assert(selected(*c, "::ffff:192.0.2.1", 25, "::ffff:10.10.1.5") == "Printer");
}

Test(config_select, no_match_returns_null) {
  auto c = load_ok(connectors);
  cr_assert(selected(*c, "127.0.0.1", 587, "192.0.2.77") == "(none)", "remote range excludes the peer");
  cr_assert(selected(*c, "127.0.0.1", 2525, "127.0.0.1") == "(none)", "no binding on that port");
  cr_assert(selected(*c, "127.0.0.2", 587, "127.0.0.1") == "(none)", "binding is for another local address");
}

Test(config_select, exact_binding_beats_wildcard_on_equal_ranges_then_first_defined) {
  auto c = load_ok(R"toml(
[[receive_connector]]
name = "Wild"
type = "internet"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.0.0.0/8"]

[[receive_connector]]
name = "Exact"
type = "internet"
bindings = ["192.0.2.1:25"]
remote_ranges = ["10.0.0.0/8"]

[[receive_connector]]
name = "First"
type = "internet"
bindings = ["0.0.0.0:26"]
remote_ranges = ["10.0.0.0/8"]

[[receive_connector]]
name = "Second"
type = "internet"
bindings = ["0.0.0.0:26", "0.0.0.0:27"]
remote_ranges = ["10.0.0.1-11.0.0.0", "0.0.0.0/0"]
)toml");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.1.1.1") == "Exact");
  cr_assert(selected(*c, "192.0.2.2", 25, "10.1.1.1") == "Wild");
  // Equal sizes, both wildcard bindings: the connector defined first.
  cr_assert(selected(*c, "192.0.2.1", 26, "10.1.1.1") == "First");
  cr_assert(selected(*c, "192.0.2.1", 27, "10.1.1.1") == "Second");
}

Test(config_select, all_bindings_are_distinct_in_order) {
  auto c = load_ok(connectors);
  auto b = c->all_bindings();
  cr_assert_eq(b.size(), 4u);
  std::string s0 = b[0].to_string(), s1 = b[1].to_string(), s2 = b[2].to_string(), s3 = b[3].to_string();
  cr_assert_str_eq(s0.c_str(), "0.0.0.0:25");
  cr_assert_str_eq(s1.c_str(), "[::]:25");
  cr_assert_str_eq(s2.c_str(), "192.0.2.1:25");
  cr_assert_str_eq(s3.c_str(), "127.0.0.1:587");
}

// ---- accepted domains ----------------------------------------------------------------

Test(config_domains, exact_beats_wildcard_and_case_is_ignored) {
  auto c = load_ok(R"toml(
[[accepted_domain]]
name = "Example.com"
type = "authoritative"

[[accepted_domain]]
name = "*.example.com"
type = "internal_relay"

[[accepted_domain]]
name = "*.eu.example.com"
type = "external_relay"

[[accepted_domain]]
name = "mail.eu.example.com"
)toml");
  const accepted_domain* d = c->find_accepted_domain("EXAMPLE.COM");
  cr_assert(d != nullptr && d->name == "example.com" && d->type == sluice::route::domain_kind::authoritative);
  d = c->find_accepted_domain("example.com.");
  cr_assert(d != nullptr && d->name == "example.com", "trailing dot ignored");
  d = c->find_accepted_domain("sub.Example.com");
  cr_assert(d != nullptr && d->name == "*.example.com" && d->type == sluice::route::domain_kind::internal_relay);
  d = c->find_accepted_domain("a.b.example.com");
  cr_assert(d != nullptr && d->name == "*.example.com");
  d = c->find_accepted_domain("x.eu.example.com");
  cr_assert(d != nullptr && d->name == "*.eu.example.com", "the longer wildcard wins");
  d = c->find_accepted_domain("mail.eu.example.com");
  cr_assert(d != nullptr && d->name == "mail.eu.example.com" && d->type == sluice::route::domain_kind::authoritative);
  cr_assert(c->find_accepted_domain("notexample.com") == nullptr);
  cr_assert(c->find_accepted_domain("example.org") == nullptr);
  cr_assert(c->find_accepted_domain("") == nullptr);
  cr_assert(c->find_accepted_domain("com") == nullptr);
  cr_assert_eq(c->default_domain(), &c->accepted_domains[0]);
}

Test(config_domains, wildcard_does_not_match_its_parent) {
  auto c = load_ok("[[accepted_domain]]\nname = \"*.example.com\"\n");
  cr_assert(c->find_accepted_domain("example.com") == nullptr);
  cr_assert(c->find_accepted_domain("www.example.com") != nullptr);
}

Test(config_domains, duplicate_and_malformed_names) {
  sluice::config::test::expect_error(R"toml(
[[accepted_domain]]
name = "example.com"

[[accepted_domain]]
name = "EXAMPLE.COM"
)toml",
                                     6, "accepted_domain[1].name", "duplicate accepted domain 'example.com'");
  sluice::config::test::expect_error("[[accepted_domain]]\nname = \"*\"\n", 2, "accepted_domain[0].name",
                                     "is not a domain name");
  sluice::config::test::expect_error("[[accepted_domain]]\nname = \"ex ample.com\"\n", 2, "accepted_domain[0].name",
                                     "is not a domain name");
  sluice::config::test::expect_error("[[accepted_domain]]\nname = \"-bad.example.com\"\n", 2,
                                     "accepted_domain[0].name", "is not a domain name");
  sluice::config::test::expect_error("[[accepted_domain]]\nname = \"b\u00fccher.example\"\n", 2,
                                     "accepted_domain[0].name", "xn-- form");
}

Test(config_domains, recipients_file_loading) {
  scratch_dir dir;
  dir.write("users.txt",
            "# users of example.com\n"
            "Alice@Example.com\n"
            "  bob@example.com   # trailing comment\n"
            "\r\n"
            "carol@example.com\r\n");
  auto c = load_ok(R"toml(
[[accepted_domain]]
name = "example.com"
recipients = "users.txt"

[[accepted_domain]]
name = "open.example"
)toml",
                   dir.path());
  const accepted_domain* d = c->find_accepted_domain("example.com");
  cr_assert(d->has_recipient_list);
  cr_assert_eq(d->recipients.size(), 3u);
  cr_assert(d->recipients_file == dir.path() + "/users.txt");
  cr_assert(c->recipient_exists(*d, "alice@example.com"));
  cr_assert(c->recipient_exists(*d, "ALICE@EXAMPLE.COM"));
  cr_assert(c->recipient_exists(*d, "bob@example.com"));
  cr_assert(c->recipient_exists(*d, "carol@example.com"), "CRLF line ends are tolerated");
  cr_assert(!c->recipient_exists(*d, "dave@example.com"));
  cr_assert(!c->recipient_exists(*d, "alice"));
  // No recipients file: every address exists.
  const accepted_domain* open = c->find_accepted_domain("open.example");
  cr_assert(!open->has_recipient_list);
  cr_assert(c->recipient_exists(*open, "anyone@open.example"));
}

Test(config_domains, recipients_path_relative_to_config_file) {
  scratch_dir dir;
  std::string sub = dir.path() + "/etc";
  std::filesystem::create_directory(sub);
  dir.write("etc/users.txt", "a@example.com\n");
  std::string cfg =
      dir.write("etc/sluice.toml", "[[accepted_domain]]\nname = \"example.com\"\nrecipients = \"users.txt\"\n");
  load_result r = load_file(cfg);
  std::string errors = r.ok() ? "" : r.error_text();
  cr_assert(r.ok(), "%s", errors.c_str());
  const accepted_domain* d = r.value->find_accepted_domain("example.com");
  cr_assert(r.value->recipient_exists(*d, "A@example.com"));
  cr_assert(r.value->source == cfg);
}

Test(config_domains, recipients_must_belong_to_the_domain) {
  scratch_dir dir;
  std::string file = dir.write("users.txt", "a@sub.example.com\nb@deep.sub.example.com\nc@example.com\n");
  load_result r = load_string("[[accepted_domain]]\nname = \"*.example.com\"\nrecipients = \"users.txt\"\n",
                              "test.toml", dir.path());
  cr_assert(!r.ok());
  cr_assert_eq(r.errors.size(), 1u, "%s", r.error_text().c_str());
  cr_assert(r.error().file == file);
  cr_assert_eq(r.error().line, 3);
  const std::string& message = r.error().message;
  cr_assert(message.find("'c@example.com' is not in the accepted domain '*.example.com'") != std::string::npos, "%s",
            message.c_str());
  dir.write("users.txt", "a@sub.example.com\nb@deep.sub.example.com\n");
  auto c = load_ok("[[accepted_domain]]\nname = \"*.example.com\"\nrecipients = \"users.txt\"\n", dir.path());
  const accepted_domain* d = c->find_accepted_domain("deep.sub.example.com");
  cr_assert(d != nullptr && c->recipient_exists(*d, "B@Deep.Sub.Example.com"));
}
