// accepted_domain_test.cc: loading [[accepted_domain]]: names, duplicates and recipient files.
// Which domain and recipient a message matches is route::table's decision (tests/route,
// tests/generation); these tests check what the loader hands it.
#include <criterion/criterion.h>

#include <filesystem>
#include <string>

#include "config/config.h"
#include "test_util.h"

using namespace sluice::config;
namespace route = sluice::route;
using sluice::config::test::expect_error;
using sluice::config::test::load_ok;
using sluice::config::test::scratch_dir;

Test(config_domains, names_are_lower_cased_and_kept_in_file_order) {
  auto c = load_ok(R"toml(
[[accepted_domain]]
name = "Example.com"
type = "authoritative"

[[accepted_domain]]
name = "*.Example.com"
type = "internal_relay"

[[accepted_domain]]
name = "*.eu.example.com"
type = "external_relay"

[[accepted_domain]]
name = "mail.eu.example.com"
)toml");
  cr_assert_eq(c->accepted_domains.size(), 4u);
  const char* names[] = {"example.com", "*.example.com", "*.eu.example.com", "mail.eu.example.com"};
  route::domain_kind kinds[] = {route::domain_kind::authoritative, route::domain_kind::internal_relay,
                                route::domain_kind::external_relay, route::domain_kind::authoritative};
  for (size_t i = 0; i < 4; ++i) {
    cr_assert_str_eq(c->accepted_domains[i].name.c_str(), names[i]);
    cr_assert_eq(c->accepted_domains[i].type, kinds[i], "%s", names[i]);
    cr_assert(!c->accepted_domains[i].has_recipient_list, "%s", names[i]);
  }
  cr_assert(!c->accepted_domains[0].is_wildcard());
  cr_assert(c->accepted_domains[1].is_wildcard());
  cr_assert_eq(c->default_domain(), &c->accepted_domains[0]);
}

Test(config_domains, duplicate_and_malformed_names) {
  expect_error(R"toml(
[[accepted_domain]]
name = "example.com"

[[accepted_domain]]
name = "EXAMPLE.COM"
)toml",
               6, "accepted_domain[1].name", "duplicate accepted domain 'example.com'");
  expect_error("[[accepted_domain]]\nname = \"*\"\n", 2, "accepted_domain[0].name", "is not a domain name");
  expect_error("[[accepted_domain]]\nname = \"ex ample.com\"\n", 2, "accepted_domain[0].name", "is not a domain name");
  expect_error("[[accepted_domain]]\nname = \"-bad.example.com\"\n", 2, "accepted_domain[0].name",
               "is not a domain name");
  expect_error("[[accepted_domain]]\nname = \"b\u00fccher.example\"\n", 2, "accepted_domain[0].name", "xn-- form");
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
  const accepted_domain& d = c->accepted_domains.at(0);
  cr_assert(d.has_recipient_list);
  cr_assert(d.recipients_file == dir.path() + "/users.txt");
  // Lower-cased, comments and blanks stripped, CRLF line ends tolerated.
  cr_assert_eq(d.recipients.size(), 3u);
  for (const char* a : {"alice@example.com", "bob@example.com", "carol@example.com"}) {
    cr_assert_eq(d.recipients.count(a), 1u, "%s", a);
  }
  // No recipients file: no list, so route treats every address as existing.
  const accepted_domain& open = c->accepted_domains.at(1);
  cr_assert(!open.has_recipient_list);
  cr_assert(open.recipients.empty());
  cr_assert(open.recipients_file.empty());
}

Test(config_domains, recipients_path_relative_to_config_file) {
  scratch_dir dir;
  std::string sub = dir.path() + "/etc";
  std::filesystem::create_directory(sub);
  dir.write("etc/users.txt", "A@example.com\n");
  std::string cfg =
      dir.write("etc/sluice.toml", "[[accepted_domain]]\nname = \"example.com\"\nrecipients = \"users.txt\"\n");
  load_result r = load_file(cfg);
  std::string errors = r.ok() ? "" : r.error_text();
  cr_assert(r.ok(), "%s", errors.c_str());
  const accepted_domain& d = r.value->accepted_domains.at(0);
  cr_assert(d.recipients_file == sub + "/users.txt", "%s", d.recipients_file.c_str());
  cr_assert_eq(d.recipients.count("a@example.com"), 1u);
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
  dir.write("users.txt", "a@sub.example.com\nB@Deep.Sub.Example.com\n");
  auto c = load_ok("[[accepted_domain]]\nname = \"*.example.com\"\nrecipients = \"users.txt\"\n", dir.path());
  const accepted_domain& d = c->accepted_domains.at(0);
  cr_assert_eq(d.recipients.size(), 2u);
  cr_assert_eq(d.recipients.count("b@deep.sub.example.com"), 1u);
}
