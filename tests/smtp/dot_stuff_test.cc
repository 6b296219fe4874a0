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

// A NUL would be a forged end of data for a hop that reads C strings: it never goes out,
// and the dot behind it is doubled as a line-start dot.
Test(smtp_dot_stuff, leaves_out_nul_so_no_smuggling) {
  using namespace std::literals;
  std::string s = stuffed("a\r\n\0.\r\nb\r\n.\0\r\nc\0d\0"s);
  cr_assert(s == "a\r\n..\r\nb\r\n..\r\ncd\r\n.\r\n", "%s", s.c_str());
}

Test(smtp_dot_stuff, appends_to_existing_output) {
  std::string out = "DATA\r\n";
  dot_stuff(".x", out);
  cr_assert_str_eq(out.c_str(), "DATA\r\n..x\r\n.\r\n");
}
