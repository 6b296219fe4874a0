// address_test.cc: RFC 5321 path parsing, UTF-8 rules, limits and domain helpers.
#include <criterion/criterion.h>

#include <string>

#include "smtp/address.h"

using namespace sluice::smtp;

namespace {
// Parses and returns the address, or "ERR <code> <enhanced>" on refusal.
std::string parse(std::string_view arg, path_kind kind = path_kind::forward, bool utf8 = false,
                  std::string* params = nullptr) {
  parsed_path p;
  if (auto r = parse_path(arg, kind, utf8, p)) return "ERR " + std::to_string(r->code) + " " + r->enhanced;
  if (params) params->assign(p.params);
  return p.address;
}
void expect(std::string_view arg, const char* want, path_kind kind = path_kind::forward, bool utf8 = false) {
  std::string got = parse(arg, kind, utf8);
  cr_assert_str_eq(got.c_str(), want, "parsing [%.*s]", int(arg.size()), arg.data());
}
}  // namespace

Test(smtp_address, bracketed_and_bare_forms) {
  expect("<user@example.com>", "user@example.com");
  expect("user@example.com", "user@example.com");
  expect(" <user@example.com>", "user@example.com");  // space after the colon
  std::string params;
  std::string a = parse("guy@yourplace.com NOTIFY=success,failure", path_kind::forward, false, &params);
  cr_assert_str_eq(a.c_str(), "guy@yourplace.com");
  cr_assert_str_eq(params.c_str(), "NOTIFY=success,failure");
  a = parse("<a@b.c>   SIZE=10 BODY=8BITMIME", path_kind::reverse, false, &params);
  cr_assert_str_eq(params.c_str(), "SIZE=10 BODY=8BITMIME");
}

Test(smtp_address, null_sender_only_for_mail) {
  expect("<>", "", path_kind::reverse);
  expect("<>", "ERR 501 5.1.3", path_kind::forward);
  expect("", "ERR 501 5.1.7", path_kind::reverse);
}

Test(smtp_address, postmaster_only_for_rcpt) {
  expect("<postmaster>", "postmaster");
  expect("<PostMaster>", "PostMaster");
  expect("<postmaster>", "ERR 501 5.1.7", path_kind::reverse);
  expect("<root>", "ERR 501 5.1.3");
}

Test(smtp_address, source_route_stripped) {
  expect("<@a.example,@b.example:user@d.example>", "user@d.example");
  expect("<@a.example:user@d.example>", "user@d.example");
  expect("<@a.example,:user@d.example>", "ERR 501 5.1.3");
  expect("<@:user@d.example>", "ERR 501 5.1.3");
}

Test(smtp_address, quoted_local_parts) {
  expect("<\"john doe\"@example.com>", "\"john doe\"@example.com");
  expect("<\"a\\\"b>c\"@example.com> SIZE=1", "\"a\\\"b>c\"@example.com");
  expect("\"john doe\"@example.com", "\"john doe\"@example.com");
  expect("<\"unterminated@example.com>", "ERR 501 5.1.3");
}

Test(smtp_address, domain_literals) {
  expect("<u@[192.0.2.1]>", "u@[192.0.2.1]");
  expect("<u@[IPv6:2001:db8::1]>", "u@[IPv6:2001:db8::1]");
  expect("<u@[IPv6:::1]>", "u@[IPv6:::1]");
  expect("<u@[IPv6:1:2:3:4:5:6:7:8]>", "u@[IPv6:1:2:3:4:5:6:7:8]");
  expect("<u@[IPv6:::ffff:192.0.2.1]>", "u@[IPv6:::ffff:192.0.2.1]");
  expect("<u@[256.0.0.1]>", "ERR 501 5.1.3");
  expect("<u@[1.2.3]>", "ERR 501 5.1.3");
  expect("<u@[IPv6:1::2::3]>", "ERR 501 5.1.3");
  expect("<u@[IPv6:1:2:3:4:5:6:7:8:9]>", "ERR 501 5.1.3");
  expect("<u@[IPv6:12345::1]>", "ERR 501 5.1.3");
}

Test(smtp_address, rejects_bad_syntax) {
  expect("<user>", "ERR 501 5.1.3");
  expect("<user@>", "ERR 501 5.1.3");
  expect("<@example.com>", "ERR 501 5.1.3");
  expect("<.user@example.com>", "ERR 501 5.1.3");
  expect("<us..er@example.com>", "ERR 501 5.1.3");
  expect("<user.@example.com>", "ERR 501 5.1.3");
  expect("<user@-example.com>", "ERR 501 5.1.3");
  expect("<user@example-.com>", "ERR 501 5.1.3");
  expect("<user@example..com>", "ERR 501 5.1.3");
  expect("<user@example.com.>", "ERR 501 5.1.3");
  expect("<user@example.com", "ERR 501 5.1.3");
  expect("<user@example.com>SIZE=1", "ERR 501 5.1.3");
  expect("<us er@example.com>", "ERR 501 5.1.3");
  expect("<user>", "ERR 501 5.1.7", path_kind::reverse);
}

Test(smtp_address, length_limits) {
  std::string local64(64, 'a'), local65(65, 'a');
  expect("<" + local64 + "@example.com>", (local64 + "@example.com").c_str());
  expect("<" + local65 + "@example.com>", "ERR 501 5.1.3");
  std::string label(63, 'b'), label64(64, 'b');
  expect("<u@" + label + ".com>", ("u@" + label + ".com").c_str());
  expect("<u@" + label64 + ".com>", "ERR 501 5.1.3");
  // 254 octets of mailbox plus brackets is the 256-octet path limit.
  std::string dom = label + "." + label + "." + label + "." + std::string(58, 'c');
  std::string box = "u@" + dom;
  cr_assert_eq(box.size(), 252u);
  expect("<" + box + "ab>", ("u@" + dom + "ab").c_str());
  expect("<" + box + "abc>", "ERR 501 5.1.3");
  expect("<" + box + "abc>", "ERR 501 5.1.7", path_kind::reverse);
}

Test(smtp_address, utf8_needs_smtputf8) {
  expect("<josé@example.com>", "ERR 553 5.6.7");
  expect("<user@bücher.example>", "ERR 553 5.6.7");
  expect("<josé@example.com>", "josé@example.com", path_kind::forward, true);
  expect("<user@bücher.example>", "user@bücher.example", path_kind::forward, true);
  expect("<\"jo sé\"@example.com>", "\"jo sé\"@example.com", path_kind::forward, true);
  expect("<jos\xC3@example.com>", "ERR 501 5.1.3", path_kind::forward, true);   // truncated sequence
  expect("<jos\xC0\xAF@example.com>", "ERR 501 5.1.3", path_kind::forward, true);  // overlong
}

Test(smtp_address, domain_and_local_part_helpers) {
  std::string d = domain_of("User@Example.COM");
  cr_assert_str_eq(d.c_str(), "example.com");
  d = domain_of("\"a@b\"@Host.Example");
  cr_assert_str_eq(d.c_str(), "host.example");
  d = domain_of("");
  cr_assert_str_eq(d.c_str(), "");
  d = domain_of("postmaster");
  cr_assert_str_eq(d.c_str(), "");
  d = domain_of("u@[192.0.2.1]");
  cr_assert_str_eq(d.c_str(), "[192.0.2.1]");
  std::string l(local_part_of("\"a@b\"@host"));
  cr_assert_str_eq(l.c_str(), "\"a@b\"");
  cr_assert(valid_mailbox("a.b+tag@example.com", false));
  cr_assert(!valid_mailbox("a@", false));
  cr_assert(!valid_mailbox("jos\xC3\xA9@example.com", false));
  cr_assert(valid_mailbox("jos\xC3\xA9@example.com", true));
}

Test(smtp_address, utf8_validator) {
  cr_assert(valid_utf8("plain"));
  cr_assert(valid_utf8("\xE2\x80\x99"));
  cr_assert(valid_utf8("\xF0\x9F\x98\x80"));
  cr_assert(!valid_utf8("\xED\xA0\x80"));   // surrogate
  cr_assert(!valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  cr_assert(!valid_utf8("\xE0\x80\xAF"));   // overlong
  cr_assert(!valid_utf8("\x80"));
}
