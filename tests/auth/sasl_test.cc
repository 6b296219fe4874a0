// sasl_test.cc: SASL PLAIN parsing edge cases.
#include <criterion/criterion.h>

#include <string>

#include "auth/sasl.h"
#include "smtp/base64.h"

using sluice::auth::decode_plain;
using sluice::auth::parse_plain;

namespace {
std::string b64(std::string_view raw) { return sluice::smtp::base64_encode(raw); }
}  // namespace

Test(auth_sasl, plain_with_and_without_authzid) {
  using namespace std::string_literals;
  auto p = decode_plain(b64("\0alice\0secret"s));
  cr_assert(p.has_value());
  cr_assert_str_eq(p->authzid.c_str(), "");
  cr_assert_str_eq(p->user.c_str(), "alice");
  cr_assert_str_eq(p->password.c_str(), "secret");
  auto q = decode_plain(b64("admin\0alice\0pass word\xc3\xa9"s) + "\r\n");
  cr_assert(q.has_value());
  cr_assert_str_eq(q->authzid.c_str(), "admin");
  cr_assert_str_eq(q->password.c_str(), "pass word\xc3\xa9");
}

Test(auth_sasl, plain_rejects_malformed_messages) {
  using namespace std::string_literals;
  const std::string bad[] = {
      "alice secret"s,          // no NULs
      "\0alice"s,               // one NUL
      "\0alice\0"s,             // empty password
      "\0\0secret"s,            // empty user
      "a\0b\0c\0d"s,            // three NULs
      ""s,
      "\0"s + std::string(256, 'u') + "\0p"s,  // oversized user
  };
  for (const auto& m : bad) {
    cr_assert(!parse_plain(m).has_value(), "accepted %zu-byte message", m.size());
    cr_assert(!decode_plain(b64(m)).has_value());
  }
  cr_assert(!decode_plain("=").has_value());
  cr_assert(!decode_plain("").has_value());
  cr_assert(!decode_plain("AGFsaWNlAHNlY3JldA").has_value(), "missing padding");
  cr_assert(!decode_plain("AGFsaWNl*HNlY3JldA==").has_value(), "bad alphabet");
  cr_assert(!decode_plain(std::string(2000, 'A')).has_value(), "too long");
  cr_assert(decode_plain("AGFsaWNlAHNlY3JldA==").has_value());
}
