// smtp_syntax_fuzz.cc: libFuzzer driver for MAIL/RCPT path and parameter parsing, xtext,
// base64 and UTF-8 validation (smtp/address.h, smtp/params.h, smtp/base64.h).
// Untrusted input: the payload is the argument text of MAIL FROM:/RCPT TO: or a SASL response.
#include <cstdint>
#include <string>

#include "smtp/address.h"
#include "smtp/base64.h"
#include "smtp/params.h"
#include "fuzz_util.h"

using sluice::fuzz::input_stream;
using namespace sluice::smtp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_stream in(data, size);
  uint8_t flags = in.byte();
  std::string_view text = in.rest();
  bool utf8 = flags & 1;

  parsed_path p;
  auto kind = (flags & 2) ? path_kind::forward : path_kind::reverse;
  if (!parse_path(text, kind, utf8, p)) {
    // Accepted paths are well formed and fit the RFC 5321 limits.
    FUZZ_CHECK(p.address.size() <= 256 + 2);
    if (!p.address.empty() && p.address.find('@') != std::string::npos) {
      FUZZ_CHECK(valid_mailbox(p.address, utf8) || p.address.front() == '"');
    }
    (void)domain_of(p.address);
    (void)local_part_of(p.address);
    if (!utf8) for (unsigned char ch : p.address) FUZZ_CHECK(ch < 0x80);
  }
  (void)valid_mailbox(text, utf8);
  std::string d = domain_of(text);
  FUZZ_CHECK(d.size() <= text.size());
  FUZZ_CHECK(local_part_of(text).size() <= text.size());
  (void)valid_utf8(text);

  param_extensions ext;
  ext.eightbitmime = flags & 4;
  ext.dsn = flags & 8;
  ext.auth = flags & 16;
  ext.smtputf8 = flags & 32;
  mail_params mp;
  (void)parse_mail_params(text, ext, mp);
  rcpt_params rp;
  (void)parse_rcpt_params(text, ext, rp);

  // xtext and base64 round trips: decode(encode(x)) == x, and decoding never grows.
  std::string x;
  if (xtext_decode(text, x)) {
    FUZZ_CHECK(x.size() <= text.size());
    std::string again;
    FUZZ_CHECK(xtext_decode(xtext_encode(x), again) && again == x);
  }
  std::string enc = xtext_encode(text), dec;
  FUZZ_CHECK(xtext_decode(enc, dec) && dec == text);
  std::string b;
  if (base64_decode(text, b)) FUZZ_CHECK(b.size() <= text.size());
  std::string b64 = base64_encode(text), raw;
  FUZZ_CHECK(base64_decode(b64, raw) && raw == text);
  return 0;
}
