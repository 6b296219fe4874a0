// reply_test.cc: wire form of SMTP replies, base64 coding.
#include <criterion/criterion.h>

#include <string>

#include "smtp/base64.h"
#include "smtp/reply.h"

using namespace sluice::smtp;

Test(smtp_reply, single_line_with_enhanced_code) {
  std::string w = reply{250, "2.1.0", "Sender OK"}.wire();
  cr_assert_str_eq(w.c_str(), "250 2.1.0 Sender OK\r\n");
}

Test(smtp_reply, single_line_without_enhanced_code) {
  std::string w = reply{220, "", "mx.test ESMTP"}.wire();
  cr_assert_str_eq(w.c_str(), "220 mx.test ESMTP\r\n");
}

Test(smtp_reply, multi_line_repeats_enhanced_code) {
  std::string w = reply{550, "5.7.1", "first\nsecond\nthird"}.wire();
  cr_assert_str_eq(w.c_str(), "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n");
}

Test(smtp_reply, multi_line_without_enhanced_and_trailing_newline) {
  std::string w = reply{250, "", "mx.test\nPIPELINING\n"}.wire();
  cr_assert_str_eq(w.c_str(), "250-mx.test\r\n250 PIPELINING\r\n");
}

Test(smtp_reply, empty_text_keeps_space_for_sasl) {
  std::string w = reply{334, "", ""}.wire();
  cr_assert_str_eq(w.c_str(), "334 \r\n");
  std::string appended = "x";
  reply{250, "2.0.0", ""}.append_wire(appended);
  cr_assert_str_eq(appended.c_str(), "x250 2.0.0\r\n");
}

Test(smtp_reply, classification) {
  reply ok250{250, "", ""}, go354{354, "", ""}, temp{451, "", ""}, perm{550, "", ""};
  cr_assert(ok250.positive());
  cr_assert(go354.positive());
  cr_assert(temp.transient());
  cr_assert(perm.permanent());
  cr_assert(!perm.positive());
  cr_assert(!temp.permanent());
}

Test(smtp_base64, round_trip_and_padding) {
  const char* plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char* coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; ++i) {
    std::string e = base64_encode(plain[i]);
    cr_assert_str_eq(e.c_str(), coded[i]);
    std::string d;
    cr_assert(base64_decode(coded[i], d));
    cr_assert_str_eq(d.c_str(), plain[i]);
  }
  std::string nul;
  cr_assert(base64_decode("AGFsaWNlAHNlY3JldA==", nul));
  cr_assert_eq(nul, std::string("\0alice\0secret", 13));
}

Test(smtp_base64, rejects_malformed) {
  std::string d;
  cr_assert(!base64_decode("Zm9", d));
  cr_assert(!base64_decode("Zm9v!A==", d));
  cr_assert(!base64_decode("Z===", d));
  cr_assert(!base64_decode("Zg==Zg==", d));
  cr_assert(!base64_decode("Zm 9v", d));
}
