// dot_stuff_test.cc: outgoing DATA transparency and line-end normalisation.
#include <criterion/criterion.h>

#include <string>

#include "smtp/dot_stuff.h"

using sluice::smtp::dot_stuff;

static std::string stuffed(std::string_view body) {
  std::string out;
  dot_stuff(body, out);
  return out;
}

Test(smtp_dot_stuff, doubles_leading_dots) {
  std::string s = stuffed(".hidden\r\nmid.dle\r\n.\r\n..\r\n");
  cr_assert_str_eq(s.c_str(), "..hidden\r\nmid.dle\r\n..\r\n...\r\n.\r\n");
}

Test(smtp_dot_stuff, empty_body_is_just_terminator) {
  std::string s = stuffed("");
  cr_assert_str_eq(s.c_str(), ".\r\n");
}

Test(smtp_dot_stuff, adds_missing_final_crlf) {
  std::string s = stuffed("Subject: x\r\n\r\nno newline");
  cr_assert_str_eq(s.c_str(), "Subject: x\r\n\r\nno newline\r\n.\r\n");
}

Test(smtp_dot_stuff, normalises_bare_line_ends_so_no_smuggling) {
  std::string s = stuffed("a\n.\nb\r.\rc\r\n");
  cr_assert_str_eq(s.c_str(), "a\r\n..\r\nb\r\n..\r\nc\r\n.\r\n");
}

Test(smtp_dot_stuff, appends_to_existing_output) {
  std::string out = "DATA\r\n";
  dot_stuff(".x", out);
  cr_assert_str_eq(out.c_str(), "DATA\r\n..x\r\n.\r\n");
}
