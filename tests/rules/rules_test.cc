// rules_test.cc: transport rules: each condition, AND/OR, order, stop, disabled rules, actions.
#include <criterion/criterion.h>

#include <string>
#include <string_view>
#include <vector>

#include "rules/rules.h"

using namespace sluice::rules;

namespace {

const std::string headers =
    "Received: from a by b; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
    "From: Alice <alice@contoso.com>\r\n"
    "Subject: Your invoice\r\n"
    " number 42 is due\r\n"
    "X-Spam: no\r\n"
    "\r\n"
    "Subject: not a header, this is the body\r\n";

struct fixture {
  std::vector<std::string_view> rcpts{"bob@example.org", "carol@sub.example.org", "dave@other.test"};
  message_view m() const {
    message_view v;
    v.sender = "alice@contoso.com";
    v.recipients = rcpts;
    v.headers = headers;
    v.size = 5000;
    v.receive_connector = "Default";
    return v;
  }
};

rule_spec tag(std::string name) {
  rule_spec r;
  r.name = std::move(name);
  r.add_header = header_field{"X-Tag", r.name};
  return r;
}

// An outcome's views point into its rule_set, so the latest set is kept alive here.
rule_set kept;

outcome run(std::vector<rule_spec> specs, const message_view& m) {
  kept = rule_set(std::move(specs));
  outcome out;
  kept.evaluate(m, out);
  return out;
}

bool fires(rule_spec r, const message_view& m) { return !run({std::move(r)}, m).empty(); }

}  // namespace

Test(rules_conditions, rule_without_conditions_fires_on_everything) {
  fixture f;
  cr_assert(fires(tag("all"), f.m()));
}

Test(rules_conditions, sender_address_patterns) {
  fixture f;
  auto with = [&](std::vector<std::string> s) {
    rule_spec r = tag("s");
    r.sender = std::move(s);
    return fires(r, f.m());
  };
  cr_assert(with({"alice@contoso.com"}));
  cr_assert(with({"ALICE@Contoso.COM"}), "case-insensitive");
  cr_assert(with({"*@contoso.com"}));
  cr_assert_not(with({"*@*.contoso.com"}), "subdomain wildcard excludes the domain itself");
  cr_assert_not(with({"bob@contoso.com", "*@example.org"}));
  cr_assert(with({"bob@contoso.com", "*@contoso.com"}), "OR within the list");
  message_view m = f.m();
  m.sender = "x@mail.contoso.com";
  rule_spec r = tag("s");
  r.sender = {"*@*.contoso.com"};
  cr_assert(fires(r, m));
  m.sender = "";
  cr_assert_not(fires(r, m), "the null sender matches no address pattern");
}

Test(rules_conditions, sender_domain_patterns) {
  fixture f;
  rule_spec r = tag("d");
  r.sender_domain = {"contoso.com"};
  cr_assert(fires(r, f.m()));
  r.sender_domain = {"*.contoso.com"};
  cr_assert_not(fires(r, f.m()));
  message_view m = f.m();
  m.sender = "a@deep.mail.contoso.com.";
  cr_assert(fires(r, m), "subdomains at any depth, trailing dot ignored");
  m.sender = "a@evilcontoso.com";
  r.sender_domain = {"*.contoso.com", "contoso.com"};
  cr_assert_not(fires(r, m), "a suffix that is not a label boundary does not match");
}

Test(rules_conditions, recipient_any_matches_and_both_lists_and_together) {
  fixture f;
  rule_spec r = tag("r");
  r.recipient = {"dave@other.test"};
  cr_assert(fires(r, f.m()), "any recipient");
  r.recipient = {"nobody@other.test"};
  cr_assert_not(fires(r, f.m()));
  r.recipient = {};
  r.recipient_domain = {"*.example.org"};
  cr_assert(fires(r, f.m()));
  // Both lists must hold for the same recipient.
  r.recipient = {"bob@example.org"};
  r.recipient_domain = {"*.example.org"};
  cr_assert_not(fires(r, f.m()), "bob is not in a subdomain, carol is not bob");
  r.recipient = {"*@sub.example.org"};
  cr_assert(fires(r, f.m()));
}

Test(rules_conditions, size_above_is_strict) {
  fixture f;
  rule_spec r = tag("size");
  r.size_above = 5000;
  cr_assert_not(fires(r, f.m()));
  r.size_above = 4999;
  cr_assert(fires(r, f.m()));
}

Test(rules_conditions, received_on_names_connectors) {
  fixture f;
  rule_spec r = tag("conn");
  r.received_on = {"Client", "Default"};
  cr_assert(fires(r, f.m()));
  r.received_on = {"Client"};
  cr_assert_not(fires(r, f.m()));
  message_view m = f.m();
  m.receive_connector = "";
  r.received_on = {"Default"};
  cr_assert_not(fires(r, m), "pickup messages have no receive connector");
}

Test(rules_conditions, header_glob_over_unfolded_value) {
  fixture f;
  rule_spec r = tag("h");
  r.header = header_condition{"subject", header_condition::kind::glob, "*INVOICE*"};
  cr_assert(fires(r, f.m()), "field name and value case-insensitive");
  r.header->pattern = "your invoice number 42 is due";
  cr_assert(fires(r, f.m()), "the folded line joins with its leading blank kept");
  r.header->pattern = "your invoice";
  cr_assert_not(fires(r, f.m()), "a glob is anchored at both ends");
  r.header->pattern = "*not a header*";
  cr_assert_not(fires(r, f.m()), "the body is never looked at");
  r.header = header_condition{"X-Spam", header_condition::kind::glob, "n?"};
  cr_assert(fires(r, f.m()));
  r.header = header_condition{"X-Missing", header_condition::kind::glob, "*"};
  cr_assert_not(fires(r, f.m()), "an absent field matches nothing, not even *");
}

Test(rules_conditions, header_contains_is_literal) {
  fixture f;
  rule_spec r = tag("c");
  r.header = header_condition{"Subject", header_condition::kind::contains, "NUMBER 42"};
  cr_assert(fires(r, f.m()));
  r.header->pattern = "number*42";
  cr_assert_not(fires(r, f.m()), "'*' is literal in contains");
}

Test(rules_conditions, header_any_occurrence_and_lf_endings) {
  std::string h = "Received: from x\nReceived: from evil.test\n  by y\nSubject: s\n\nbody";
  std::vector<std::string_view> rc{"a@b.test"};
  message_view m;
  m.recipients = rc;
  m.headers = h;
  rule_spec r = tag("rx");
  r.header = header_condition{"received", header_condition::kind::glob, "from evil.test  by y"};
  cr_assert(fires(r, m));
}

Test(rules_conditions, all_conditions_must_hold) {
  fixture f;
  rule_spec r = tag("and");
  r.sender_domain = {"contoso.com"};
  r.recipient_domain = {"example.org"};
  r.size_above = 100;
  r.received_on = {"Default"};
  r.header = header_condition{"X-Spam", header_condition::kind::glob, "no"};
  cr_assert(fires(r, f.m()));
  r.header->pattern = "yes";
  cr_assert_not(fires(r, f.m()));
  r.header->pattern = "no";
  r.size_above = 100000;
  cr_assert_not(fires(r, f.m()));
}

Test(rules_glob, edge_cases) {
  cr_assert(glob_match("", ""));
  cr_assert_not(glob_match("", "a"));
  cr_assert(glob_match("*", ""));
  cr_assert(glob_match("***", "abc"));
  cr_assert(glob_match("a*c", "abbbc"));
  cr_assert(glob_match("a*c", "ac"));
  cr_assert_not(glob_match("a*c", "abcd"));
  cr_assert(glob_match("*c", "cccc"));
  cr_assert(glob_match("?", "x"));
  cr_assert_not(glob_match("?", ""));
  cr_assert_not(glob_match("??", "x"));
  cr_assert(glob_match("a\\*b", "a*b"));
  cr_assert_not(glob_match("a\\*b", "axb"));
  cr_assert(glob_match("a\\?", "a?"));
  cr_assert_not(glob_match("a\\?", "ab"));
  cr_assert(glob_match("x\\", "x\\"), "a trailing backslash is itself");
  cr_assert(glob_match("*[ext]*", "re: [EXT] hi"), "brackets are literal");
  cr_assert(glob_match("ÉTÉ*", "ÉTÉ 2026"), "non-ASCII bytes compare exactly");
  cr_assert(glob_match("?t?", "été"), "'?' is one UTF-8 character");
  cr_assert(glob_match("a?c", "a\xF0\x9F\x98\x80" "c"), "four-byte sequences too");
  cr_assert_not(glob_match("a??c", "a\xC3\xA9" "c"));
}

Test(rules_glob, pathological_patterns_run_in_polynomial_time) {
  // (a*)^k b against a^n: exponential for a backtracking matcher, n×k steps here.
  std::string text(100000, 'a');
  std::string pat;
  for (int i = 0; i < 30; ++i) pat += "a*";
  pat += "b";
  for (int i = 0; i < 20; ++i) cr_assert_not(glob_match(pat, text));
  std::string pat2 = "*" + std::string(50, '?') + "b";
  cr_assert_not(glob_match(pat2, text));
  text.back() = 'b';
  cr_assert(glob_match(pat, text));
  cr_assert(glob_match(pat2, text));
}

Test(rules_glob, domain_and_address_match) {
  cr_assert(domain_match("example.org", "EXAMPLE.org."));
  cr_assert_not(domain_match("example.org", ""));
  cr_assert_not(domain_match("*.example.org", "example.org"));
  cr_assert(domain_match("*.example.org", "a.example.org"));
  cr_assert_not(domain_match("*.example.org", "aexample.org"));
  cr_assert(address_match("*@example.org", "x@Example.Org"));
  cr_assert_not(address_match("*@example.org", "example.org"));
  cr_assert_not(address_match("bob@example.org", "bobby@example.org"));
  cr_assert(address_match("\"a@b\"@example.org", "\"a@b\"@example.org"), "split at the last @");
}

Test(rules_engine, disabled_rules_never_fire) {
  fixture f;
  rule_spec r = tag("off");
  r.enabled = false;
  r.header = header_condition{"Subject", header_condition::kind::glob, "*"};
  rule_set set({r, tag("on")});
  cr_assert_eq(set.size(), 1u);
  cr_assert_not(set.needs_headers(), "only the disabled rule looks at headers");
  r.enabled = true;
  cr_assert(rule_set({tag("on"), r}).needs_headers());
  outcome out;
  cr_assert(set.evaluate(f.m(), out));
  cr_assert_eq(out.fired.size(), 1u);
  cr_assert(out.fired[0].name == "on");
}

Test(rules_engine, rules_run_in_order_and_stop_ends_evaluation) {
  fixture f;
  rule_spec a = tag("a"), b = tag("b"), c = tag("c");
  outcome out = run({a, b, c}, f.m());
  cr_assert_eq(out.fired.size(), 3u);
  cr_assert(out.fired[0].name == "a" && out.fired[1].name == "b" && out.fired[2].name == "c");
  cr_assert(out.header_edits[1].value == "b");
  b.stop = true;
  out = run({a, b, c}, f.m());
  cr_assert_eq(out.fired.size(), 2u);
  cr_assert(out.fired[1].name == "b");
  // stop only counts when the rule fires.
  b.sender = {"nobody@x.test"};
  out = run({a, b, c}, f.m());
  cr_assert_eq(out.fired.size(), 2u);
  cr_assert(out.fired[1].name == "c");
}

Test(rules_engine, no_rule_fires_leaves_outcome_empty) {
  fixture f;
  rule_spec r = tag("x");
  r.sender_domain = {"nowhere.test"};
  rule_set set({r});
  outcome out;
  cr_assert_not(set.evaluate(f.m(), out));
  cr_assert(out.empty() && out.header_edits.empty() && !out.reject);
}

Test(rules_actions, redirect_applies_to_matched_recipients_only) {
  fixture f;
  rule_spec r;
  r.name = "redir";
  r.recipient_domain = {"*.example.org", "other.test"};
  r.redirect_to = "archive@contoso.com";
  outcome out = run({r}, f.m());
  cr_assert(out.redirect_for(0).empty());
  cr_assert(out.redirect_for(1) == "archive@contoso.com");
  cr_assert(out.redirect_for(2) == "archive@contoso.com");
  cr_assert_eq(out.redirects.size(), 2u);
}

Test(rules_actions, redirect_without_recipient_condition_applies_to_all_and_later_wins) {
  fixture f;
  rule_spec a, b;
  a.name = "a";
  a.redirect_to = "one@x.test";
  b.name = "b";
  b.recipient = {"bob@example.org"};
  b.redirect_to = "two@x.test";
  outcome out = run({a, b}, f.m());
  cr_assert_eq(out.redirects.size(), 3u);
  cr_assert(out.redirect_for(0) == "two@x.test");
  cr_assert(out.redirect_for(1) == "one@x.test");
  cr_assert(out.redirect_for(2) == "one@x.test");
}

Test(rules_actions, bcc_is_added_once) {
  fixture f;
  rule_spec a, b;
  a.name = "a";
  a.bcc = "audit@contoso.com";
  b.name = "b";
  b.bcc = "AUDIT@contoso.com";
  outcome out = run({a, b}, f.m());
  cr_assert_eq(out.bcc.size(), 1u);
  cr_assert(out.bcc[0] == "audit@contoso.com");
  cr_assert_eq(out.fired.size(), 2u);
}

Test(rules_actions, route_via_per_matched_recipient) {
  fixture f;
  rule_spec r;
  r.name = "route";
  r.recipient = {"dave@other.test"};
  r.route_via = "Partner";
  outcome out = run({r}, f.m());
  cr_assert(out.route_for(0).empty() && out.route_for(1).empty());
  cr_assert(out.route_for(2) == "Partner");
  r.recipient = {};
  out = run({r}, f.m());
  cr_assert_eq(out.routes.size(), 3u);
}

Test(rules_actions, reject_ends_evaluation) {
  fixture f;
  rule_spec r;
  r.name = "no";
  r.reject = rejection_spec{"5.7.1", "Policy violation"};
  outcome out = run({tag("before"), r, tag("after")}, f.m());
  cr_assert(out.reject.has_value());
  cr_assert(out.reject->status == "5.7.1" && out.reject->text == "Policy violation");
  cr_assert_eq(out.fired.size(), 2u);
  cr_assert(out.fired[1].name == "no");
}

Test(rules_actions, fired_rule_summarizes_actions) {
  fixture f;
  rule_spec r;
  r.name = "many";
  r.add_header = header_field{"X-Tag", "external"};
  r.bcc = "audit@contoso.com";
  r.route_via = "Outbound";
  r.stop = true;
  outcome out = run({r}, f.m());
  cr_assert(out.fired[0].actions == "add_header X-Tag: external; bcc audit@contoso.com; route_via Outbound; stop",
            "%.*s", static_cast<int>(out.fired[0].actions.size()), out.fired[0].actions.data());
}

Test(rules_actions, outcome_clear_resets_everything) {
  fixture f;
  rule_spec r = tag("t");
  r.reject = rejection_spec{"4.7.0", "later"};
  rule_set set({r});
  outcome out;
  set.evaluate(f.m(), out);
  cr_assert(!out.empty() && out.reject);
  out.clear();
  cr_assert(out.empty() && !out.reject && out.header_edits.empty());
}
