// rules_fuzz.cc: libFuzzer driver for transport rule matching (rules/rules.h) with a fixed
// rule set, plus the glob matcher with fuzzer-chosen patterns.
// Untrusted input: the payload is a message (sender, recipients, header block) from a client.
#include <cstdint>
#include <string>
#include <vector>

#include "rules/rules.h"
#include "fuzz_util.h"

using namespace sluice::rules;

namespace {

rule_set make_rules() {
  std::vector<rule_spec> v;
  rule_spec a;
  a.name = "tag-subject";
  a.header = header_condition{"Subject", header_condition::kind::glob, "*[sp?m]*\\**"};
  a.add_header = header_field{"X-Tag", "spam"};
  v.push_back(a);
  rule_spec b;
  b.name = "audit";
  b.sender_domain = {"*.example.org", "example.com"};
  b.recipient = {"*@*.contoso.com", "ceo@example.com"};
  b.bcc = "audit@example.com";
  b.redirect_to = "legal@example.com";
  b.replace_header = header_field{"X-Audit", "yes"};
  v.push_back(b);
  rule_spec c;
  c.name = "contains";
  c.header = header_condition{"x-mailer", header_condition::kind::contains, "bulk"};
  c.route_via = "smarthost";
  c.size_above = 100;
  v.push_back(c);
  rule_spec d;
  d.name = "block";
  d.header = header_condition{"From", header_condition::kind::glob, "*@*.invalid*"};
  d.reject = rejection_spec{"5.7.1", "blocked"};
  v.push_back(d);
  return rule_set(std::move(v));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const rule_set rules = make_rules();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Layout: sender '\0' recipient '\0' recipient ... '\0\0' header block; also the first
  // line is tried as a glob pattern against the rest.
  auto nl = text.find('\n');
  if (nl != std::string_view::npos) (void)glob_match(text.substr(0, nl), text.substr(nl + 1));
  (void)domain_match(text.substr(0, nl), text);
  (void)address_match(text.substr(0, nl), text);

  std::string_view sender;
  std::vector<std::string_view> rcpts;
  std::string_view headers = text;
  auto cut = text.find(std::string_view("\0\0", 2));
  if (cut != std::string_view::npos) {
    std::string_view env = text.substr(0, cut);
    headers = text.substr(cut + 2);
    size_t z = env.find('\0');
    sender = env.substr(0, z);
    while (z != std::string_view::npos && rcpts.size() < 16) {
      env.remove_prefix(z + 1);
      z = env.find('\0');
      rcpts.push_back(env.substr(0, z));
    }
  }
  message_view m{sender, rcpts, headers, headers.size(), "default"};
  outcome out;
  bool fired = rules.evaluate(m, out);
  FUZZ_CHECK(fired == !out.empty());
  for (const auto& r : out.redirects) FUZZ_CHECK(r.index < rcpts.size());
  for (const auto& r : out.routes) FUZZ_CHECK(r.index < rcpts.size());
  std::string body(headers);
  size_t before = body.size();
  apply_header_edits(body, out);
  FUZZ_CHECK(body.size() <= 2 * before + 1024);

  header_cursor hc(headers);
  size_t fields = 0;
  while (hc.next()) {
    FUZZ_CHECK(hc.begin() <= hc.end() && hc.end() <= headers.size());
    FUZZ_CHECK(++fields <= headers.size());
  }
  FUZZ_CHECK(hc.body_offset() <= headers.size());
  return 0;
}
