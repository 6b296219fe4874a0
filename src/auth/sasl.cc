// sasl.cc: SASL PLAIN parsing.
// Untrusted input: client-supplied SASL responses.
#include "auth/sasl.h"

#include "smtp/base64.h"

namespace sluice::auth {

namespace {
constexpr size_t max_field = 255;
}

std::optional<plain_credentials> parse_plain(std::string_view message) {
  size_t first = message.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  size_t second = message.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  if (message.find('\0', second + 1) != std::string_view::npos) return std::nullopt;
  plain_credentials out;
  out.authzid = message.substr(0, first);
  out.user = message.substr(first + 1, second - first - 1);
  out.password = message.substr(second + 1);
  if (out.user.empty() || out.password.empty()) return std::nullopt;
  if (out.authzid.size() > max_field || out.user.size() > max_field || out.password.size() > max_field)
    return std::nullopt;
  return out;
}

std::optional<plain_credentials> decode_plain(std::string_view base64) {
  while (!base64.empty() && (base64.back() == '\r' || base64.back() == '\n')) base64.remove_suffix(1);
  // Three fields of 255 octets and two NULs fit in 1024 base64 characters.
  if (base64.empty() || base64.size() > 1024) return std::nullopt;
  std::string decoded;
  if (!smtp::base64_decode(base64, decoded)) return std::nullopt;
  return parse_plain(decoded);
}

}  // namespace sluice::auth
