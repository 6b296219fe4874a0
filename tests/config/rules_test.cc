// rules_test.cc: [[transport_rule]] parsing and every validation error's file:line:col: key form.
#include <criterion/criterion.h>

#include <string>

#include "config/config.h"
#include "test_util.h"

using namespace sluice::config;
using sluice::config::test::expect_error;
using sluice::config::test::load_ok;

namespace {

// Lines 1-10; rules start on line 11.
const std::string base = R"toml([[receive_connector]]
name = "Default"
type = "internet"
bindings = ["127.0.0.1:2525"]

[[send_connector]]
name = "Outbound"
address_spaces = ["*"]


)toml";

}  // namespace

Test(config_rules, full_rule_parses) {
  auto c = load_ok(base + R"toml([[transport_rule]]
name = "tag external"
sender = ["*@Example.org", "boss@contoso.com", "*@*.contoso.com"]
sender_domain = ["contoso.com", "*.contoso.com"]
recipient = ["a@b.test"]
recipient_domain = ["b.test"]
header = { name = "Subject", pattern = "*invoice*" }
size_above = "10M"
received_on = ["default"]
add_header = { name = "X-Tag", value = "external" }
replace_header = { name = "Subject", value = "[EXT] tagged" }
redirect_to = "archive@contoso.com"
bcc = "audit@contoso.com"
route_via = "outbound"
stop = true

[[transport_rule]]
name = "block"
enabled = false
header = { name = "X-Spam", contains = "yes" }
reject = { status = "5.7.1", text = "Policy violation" }
)toml");
  cr_assert_eq(c->transport_rules.size(), 2u);
  const auto& r = c->transport_rules[0];
  cr_assert(r.name == "tag external" && r.enabled && r.stop);
  cr_assert_eq(r.line, 11);
  cr_assert_eq(r.sender.size(), 3u);
  cr_assert(r.sender[0] == "*@example.org");
  cr_assert_eq(r.sender_domain.size(), 2u);
  cr_assert(r.header && r.header->name == "Subject" && r.header->pattern == "*invoice*");
  cr_assert(r.header->how == sluice::rules::header_condition::kind::glob);
  cr_assert(r.size_above && *r.size_above == 10ull << 20);
  cr_assert(r.received_on.size() == 1 && r.received_on[0] == "Default", "rewritten to the connector's spelling");
  cr_assert(r.add_header && r.add_header->name == "X-Tag" && r.add_header->value == "external");
  cr_assert(r.replace_header && r.replace_header->value == "[EXT] tagged");
  cr_assert(r.redirect_to == "archive@contoso.com" && r.bcc == "audit@contoso.com");
  cr_assert(r.route_via == "Outbound");
  const auto& b = c->transport_rules[1];
  cr_assert_not(b.enabled);
  cr_assert(b.header->how == sluice::rules::header_condition::kind::contains);
  cr_assert(b.reject && b.reject->status == "5.7.1" && b.reject->text == "Policy violation");
}

Test(config_rules, no_rules_is_fine_and_reject_text_defaults) {
  auto c = load_ok(base);
  cr_assert(c->transport_rules.empty());
  c = load_ok(base + "[[transport_rule]]\nname = \"r\"\nreject = { status = \"4.7.0\" }\n");
  cr_assert(!c->transport_rules[0].reject->text.empty());
}

Test(config_rules, unknown_send_connector_in_route_via) {
  auto e = expect_error(base + "[[transport_rule]]\nname = \"r\"\nroute_via = \"Partner\"\n", 13,
                        "transport_rule[0].route_via", "no send connector named 'Partner'");
  cr_assert(e.message.find("'Outbound'") != std::string::npos, "lists the defined ones: %s", e.message.c_str());
}

Test(config_rules, unknown_receive_connector) {
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nreceived_on = [\"Default\", \"Client\"]\nbcc = \"a@b.test\"\n",
               13, "transport_rule[0].received_on", "no receive connector named 'Client'");
}

Test(config_rules, bad_status_codes) {
  const char* bad[] = {"2.0.0", "5.7", "5.7.1.1", "x.7.1", "5.1234.1", "5..1", "5.7.", "571"};
  for (const char* s : bad) {
    expect_error(base + "[[transport_rule]]\nname = \"r\"\nreject = { status = \"" + s + "\", text = \"no\" }\n", 13,
                 "transport_rule[0].reject.status", "is not a failure status code");
  }
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nreject = { text = \"no\" }\n", 13,
               "transport_rule[0].reject.status", "is required");
}

Test(config_rules, line_breaks_in_header_values_are_refused) {
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nadd_header = { name = \"X-A\", value = \"a\\r\\nBcc: x@evil.test\" }\n",
               13, "transport_rule[0].add_header.value", "CR, LF");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nreplace_header = { name = \"Subject\", value = \"a\\nb\" }\n",
               13, "transport_rule[0].replace_header.value", "inject");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nreject = { status = \"5.7.1\", text = \"a\\r\\n250 ok\" }\n",
               13, "transport_rule[0].reject.text", "one non-empty line");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nadd_header = { name = \"X A:\", value = \"v\" }\n", 13,
               "transport_rule[0].add_header.name", "not a header field name");
}

Test(config_rules, rule_without_action) {
  expect_error(base + "[[transport_rule]]\nname = \"quiet\"\nsender = [\"*@a.test\"]\nstop = true\n", 11,
               "transport_rule[0]", "has no action");
}

Test(config_rules, reject_with_other_actions) {
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nbcc = \"a@b.test\"\nreject = { status = \"5.7.1\" }\n", 14,
               "transport_rule[0].reject", "cannot be combined");
}

Test(config_rules, bad_patterns_and_addresses) {
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nsender = [\"a*@b.test\"]\nbcc = \"a@b.test\"\n", 13,
               "transport_rule[0].sender", "is not an address pattern");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nrecipient_domain = [\"b_.test\"]\nbcc = \"a@b.test\"\n", 13,
               "transport_rule[0].recipient_domain", "is not a domain");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nsender_domain = []\nbcc = \"a@b.test\"\n", 13,
               "transport_rule[0].sender_domain", "must not be empty");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nredirect_to = \"*@b.test\"\n", 13,
               "transport_rule[0].redirect_to", "is not an e-mail address");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nbcc = \"nobody\"\n", 13, "transport_rule[0].bcc",
               "is not an e-mail address");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nsize_above = \"lots\"\nbcc = \"a@b.test\"\n", 13,
               "transport_rule[0].size_above", "is not a size");
}

Test(config_rules, header_condition_errors) {
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nheader = { name = \"Subject\", pattern = \"a\", contains = \"b\" }\n"
               "bcc = \"a@b.test\"\n", 13, "transport_rule[0].header.contains", "not both");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nheader = { name = \"Subject\" }\nbcc = \"a@b.test\"\n", 13,
               "transport_rule[0].header.pattern", "is required");
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nheader = { name = \"Subject\", patern = \"x\" }\nbcc = \"a@b.test\"\n",
               13, "transport_rule[0].header.patern", "did you mean 'pattern'");
}

Test(config_rules, unknown_keys_duplicates_and_names) {
  expect_error(base + "[[transport_rule]]\nname = \"r\"\nbcc = \"a@b.test\"\nredirect = \"x@y.test\"\n", 14,
               "transport_rule[0].redirect", "unknown key");
  expect_error(base + "[[transport_rule]]\nname = \"R\"\nbcc = \"a@b.test\"\n[[transport_rule]]\nname = \"r\"\nbcc = \"a@b.test\"\n",
               15, "transport_rule[1].name", "duplicate transport rule name");
  expect_error(base + "[[transport_rule]]\nbcc = \"a@b.test\"\n", 11, "transport_rule[0].name", "is required");
  expect_error(base + "[transport_rule]\nname = \"r\"\nbcc = \"a@b.test\"\n", 11, "transport_rule",
               "write [[transport_rule]]");
}
