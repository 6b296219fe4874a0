// sasl.h: SASL PLAIN (RFC 4616) message parsing for SMTP AUTH.
// Untrusted input: the client's base64 initial response or continuation line.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace sluice::auth {

struct plain_credentials {
  std::string authzid;   // "" when the client acts as itself
  std::string user;      // authcid
  std::string password;
};

// The decoded message: [authzid] NUL authcid NUL passwd, exactly two NULs, a non-empty
// user and password, each field at most 255 octets (RFC 4616 section 2 sets this
// floor for servers; more is refused here as a denial-of-service limit).
std::optional<plain_credentials> parse_plain(std::string_view message);
// The same from the base64 text of an AUTH PLAIN line (strict RFC 4648 decoding,
// via smtp/base64.h). "=" (an empty response, RFC 4954) is refused as malformed.
std::optional<plain_credentials> decode_plain(std::string_view base64);

}  // namespace sluice::auth
