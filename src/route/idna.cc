// idna.cc: libidn2 wrapper converting U-labels to A-labels; see idna.h.
// Untrusted input: domains and addresses (any bytes, any length).
#include "route/idna.h"

#include <idn2.h>

#include <memory>

namespace sluice::route {

namespace {

struct idn2_deleter {
  void operator()(char* p) const noexcept { idn2_free(p); }
};

}  // namespace

bool has_non_ascii(std::string_view s) noexcept {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  return false;
}

std::optional<std::string> domain_to_ascii(std::string_view domain) {
  std::string in(domain);
  if (!has_non_ascii(in)) {
    for (char& c : in)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
    return in;
  }
  // The library needs a NUL-terminated string; an embedded NUL would silently
  // truncate the name, so refuse it.
  if (in.find('\0') != std::string::npos) return std::nullopt;
  char* raw = nullptr;
  int rc = idn2_to_ascii_8z(in.c_str(), &raw, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  std::unique_ptr<char, idn2_deleter> out(raw);
  if (rc != IDN2_OK || !out) return std::nullopt;
  return std::string(out.get());
}

std::optional<std::string> address_to_ascii(std::string_view address) {
  const size_t at = address.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  auto domain = domain_to_ascii(address.substr(at + 1));
  if (!domain) return std::nullopt;
  return std::string(address.substr(0, at + 1)) + *domain;
}

}  // namespace sluice::route
