// header_edit_test.cc: header block rewriting adds and replaces fields, never touching the body.
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "rules/rules.h"

using namespace sluice::rules;

namespace {

std::string edit(std::string body, std::vector<header_edit> edits) {
  apply_header_edits(body, edits);
  return body;
}

header_edit add(std::string_view n, std::string_view v) { return {header_edit::kind::add, n, v}; }
header_edit replace(std::string_view n, std::string_view v) { return {header_edit::kind::replace, n, v}; }

}  // namespace

Test(rules_header_edit, add_goes_on_top_in_order) {
  std::string got = edit("From: a\r\nSubject: s\r\n\r\nbody\r\n", {add("X-A", "1"), add("X-B", "2")});
  cr_assert_str_eq(got.c_str(), "X-A: 1\r\nX-B: 2\r\nFrom: a\r\nSubject: s\r\n\r\nbody\r\n");
}

Test(rules_header_edit, replace_sets_first_and_removes_later_occurrences) {
  std::string got = edit("subject: one\r\n two\r\nFrom: a\r\nSubject: again\r\n\r\nSubject: body\r\n",
                         {replace("Subject", "[EXT] new")});
  cr_assert_str_eq(got.c_str(), "subject: [EXT] new\r\nFrom: a\r\n\r\nSubject: body\r\n");
}

Test(rules_header_edit, replace_of_absent_field_adds_it_and_last_replace_wins) {
  std::string got = edit("From: a\r\n\r\nx", {replace("X-Class", "one"), add("X-T", "t"), replace("x-class", "two")});
  cr_assert_str_eq(got.c_str(), "X-T: t\r\nX-Class: two\r\nFrom: a\r\n\r\nx");
}

Test(rules_header_edit, lf_bodies_keep_lf) {
  std::string got = edit("From: a\nSubject: s\n\nbody\n", {add("X-A", "1"), replace("Subject", "t")});
  cr_assert_str_eq(got.c_str(), "X-A: 1\nFrom: a\nSubject: t\n\nbody\n");
}

Test(rules_header_edit, body_is_preserved_byte_for_byte) {
  std::string body;
  for (int i = 0; i < 256; ++i) body.push_back(static_cast<char>(i));
  body += "\r\nSubject: fake\r\n\r\n\r\n.\r\n";
  std::string msg = "Subject: real\r\nX-Keep: folded\r\n\tline\r\n\r\n" + body;
  std::string got = edit(msg, {replace("Subject", "new"), add("X-Tag", "t"), replace("X-Other", "o")});
  std::string want_head = "X-Tag: t\r\nX-Other: o\r\nSubject: new\r\nX-Keep: folded\r\n\tline\r\n\r\n";
  cr_assert(got.size() == want_head.size() + body.size());
  cr_assert(got.compare(0, want_head.size(), want_head) == 0, "%s", got.c_str());
  cr_assert(got.compare(want_head.size(), std::string::npos, body) == 0, "body changed");
}

Test(rules_header_edit, no_edits_change_nothing_and_headers_only_message) {
  std::string msg = "From: a\r\n\r\nbody";
  cr_assert_eq(edit(msg, {}), msg);
  std::string got = edit("From: a\r\nSubject: s", {replace("Subject", "t")});
  cr_assert_str_eq(got.c_str(), "From: a\r\nSubject: t\r\n");
  got = edit("\r\nbody only", {add("X-A", "1")});
  cr_assert_str_eq(got.c_str(), "X-A: 1\r\n\r\nbody only");
}

Test(rules_header_edit, evaluate_then_apply) {
  rule_spec r;
  r.name = "tag";
  r.add_header = header_field{"X-Tag", "external"};
  r.replace_header = header_field{"Subject", "[EXT] hello"};
  rule_set set({r});
  std::string body = "Subject: hello\r\n\r\nhi\r\n";
  std::vector<std::string_view> rc{"a@b.test"};
  message_view m;
  m.recipients = rc;
  m.headers = body;
  outcome out;
  cr_assert(set.evaluate(m, out));
  apply_header_edits(body, out);
  cr_assert_str_eq(body.c_str(), "X-Tag: external\r\nSubject: [EXT] hello\r\n\r\nhi\r\n");
}

Test(rules_header_cursor, fields_and_folds) {
  std::string_view block = "A: 1\r\nB:2\r\n  more\r\nC : 3\r\n\r\nD: body";
  header_cursor c(block);
  cr_assert(c.next());
  cr_assert(c.name() == "A" && c.raw_value() == " 1");
  cr_assert(c.next());
  cr_assert(c.name() == "B" && c.raw_value() == "2\r\n  more");
  cr_assert(c.next());
  cr_assert(c.name() == "C" && c.raw_value() == " 3");
  cr_assert_not(c.next());
  cr_assert_eq(c.body_offset(), block.find("\r\nD"));
}
