// address.cc: RFC 5321 path grammar (Mailbox, Dot-string, Quoted-string, address
// literals, source routes) with the RFC 6531 UTF-8 extensions.
// Untrusted input: MAIL FROM:/RCPT TO: arguments from a remote client.
#include "smtp/address.h"
#include "base/ascii.h"

#include <cstdint>

namespace sluice::smtp {

namespace {

constexpr size_t max_local_part = 64;   // RFC 5321 4.5.3.1.1
constexpr size_t max_domain = 255;      // RFC 5321 4.5.3.1.2
constexpr size_t max_path = 256;        // RFC 5321 4.5.3.1.3, brackets included
constexpr size_t max_label = 63;        // RFC 1035 2.3.4

bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool is_atext(unsigned char c, bool utf8) {
  if (c >= 0x80) return utf8;  // RFC 6531 3.3: UTF8-non-ascii joins atext
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '/': case '=': case '?': case '^': case '_': case '`': case '{':
    case '|': case '}': case '~':
      return true;
    default:
      return false;
  }
}

// Length of the local part at the start of `s` (up to, not including, the '@'),
// or npos if it is not a valid Dot-string / Quoted-string.
size_t scan_local_part(std::string_view s, bool utf8) {
  if (s.empty()) return std::string_view::npos;
  if (s[0] == '"') {
    size_t i = 1;
    while (i < s.size()) {
      auto c = static_cast<unsigned char>(s[i]);
      if (c == '\\') {
        if (i + 1 >= s.size()) return std::string_view::npos;
        auto e = static_cast<unsigned char>(s[i + 1]);
        if (!((e >= 32 && e <= 126) || (utf8 && e >= 0x80))) return std::string_view::npos;
        i += 2;
      } else if (c == '"') {
        return i + 1;
      } else if ((c >= 32 && c <= 126) || (utf8 && c >= 0x80)) {
        ++i;
      } else {
        return std::string_view::npos;
      }
    }
    return std::string_view::npos;
  }
  size_t i = 0;
  bool atom_open = false;
  for (; i < s.size() && s[i] != '@'; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '.') {
      if (!atom_open) return std::string_view::npos;  // leading or doubled dot
      atom_open = false;
    } else if (is_atext(c, utf8)) {
      atom_open = true;
    } else {
      return std::string_view::npos;
    }
  }
  if (!atom_open) return std::string_view::npos;  // empty or trailing dot
  return i;
}

bool valid_ipv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    unsigned value = 0;
    while (i < s.size() && is_digit(static_cast<unsigned char>(s[i])) && i - start < 3) {
      value = value * 10 + unsigned(s[i] - '0');
      ++i;
    }
    if (i == start || value > 255) return false;
    ++parts;
    if (i == s.size()) break;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
  return parts == 4;
}

bool valid_ipv6(std::string_view s) {
  size_t n = s.size(), i = 0;
  int groups = 0;
  bool compressed = false;
  if (s.starts_with("::")) {
    compressed = true;
    i = 2;
    if (i == n) return true;
  } else if (s.starts_with(":")) {
    return false;
  }
  while (true) {
    size_t j = s.find(':', i);
    if (j == std::string_view::npos) j = n;
    std::string_view piece = s.substr(i, j - i);
    if (piece.find('.') != std::string_view::npos) {
      if (j != n || !valid_ipv4(piece)) return false;  // embedded IPv4 only at the end
      groups += 2;
      break;
    }
    if (piece.empty() || piece.size() > 4) return false;
    for (char c : piece)
      if (!is_hex(static_cast<unsigned char>(c))) return false;
    ++groups;
    if (j == n) break;
    if (j + 1 < n && s[j + 1] == ':') {
      if (compressed) return false;
      compressed = true;
      i = j + 2;
      if (i == n) break;
    } else {
      i = j + 1;
      if (i == n) return false;
    }
  }
  return compressed ? groups <= 7 : groups == 8;
}

// "[...]" including the brackets.
bool valid_address_literal(std::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  std::string_view in = s.substr(1, s.size() - 2);
  if (valid_ipv4(in)) return true;
  size_t colon = in.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view tag = in.substr(0, colon), content = in.substr(colon + 1);
  bool is_v6 = tag.size() == 4 && (tag[0] == 'I' || tag[0] == 'i') && (tag[1] == 'P' || tag[1] == 'p') &&
               (tag[2] == 'v' || tag[2] == 'V') && tag[3] == '6';
  if (is_v6) return valid_ipv6(content);
  // General-address-literal: Standardized-tag ":" 1*dcontent.
  for (char ch : tag) {
    auto c = static_cast<unsigned char>(ch);
    if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
  }
  if (tag.back() == '-' || content.empty()) return false;
  for (char ch : content) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']') return false;
  }
  return true;
}

bool valid_domain_name(std::string_view s, bool utf8) {
  if (s.empty() || s.size() > max_domain) return false;
  size_t i = 0;
  while (true) {
    size_t j = s.find('.', i);
    if (j == std::string_view::npos) j = s.size();
    std::string_view label = s.substr(i, j - i);
    if (label.empty() || label.size() > max_label) return false;
    for (size_t k = 0; k < label.size(); ++k) {
      auto c = static_cast<unsigned char>(label[k]);
      bool letdig = is_alpha(c) || is_digit(c) || (utf8 && c >= 0x80);
      if (!letdig && !(c == '-' && k != 0 && k + 1 != label.size())) return false;
    }
    if (j == s.size()) return true;
    i = j + 1;
  }
}

bool valid_domain(std::string_view s, bool utf8) {
  if (!s.empty() && s.front() == '[') return valid_address_literal(s);
  return valid_domain_name(s, utf8);
}

using base::iequals;

// End of the path token that starts at s[0] (scanning past quoted strings so a
// quoted local part may hold spaces or '>'); npos if unterminated.
size_t scan_token(std::string_view s, char stop) {
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == stop) {
      return i;
    }
  }
  return stop == ' ' && !quoted ? s.size() : std::string_view::npos;
}

}  // namespace

bool valid_utf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

bool valid_mailbox(std::string_view address, bool utf8) {
  size_t local = scan_local_part(address, utf8);
  if (local == std::string_view::npos || local > max_local_part) return false;
  if (local >= address.size() || address[local] != '@') return false;
  if (!valid_domain(address.substr(local + 1), utf8)) return false;
  return !utf8 || valid_utf8(address);
}

std::string_view local_part_of(std::string_view address) {
  size_t from = 0;
  if (!address.empty() && address[0] == '"') {
    size_t end = scan_local_part(address, true);
    if (end != std::string_view::npos) from = end;
  }
  size_t at = address.find('@', from);
  return address.substr(0, at);
}

std::string domain_of(std::string_view address) {
  std::string_view local = local_part_of(address);
  if (local.size() >= address.size()) return {};
  std::string out(address.substr(local.size() + 1));
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

std::optional<reply> parse_path(std::string_view arg, path_kind kind, bool utf8, parsed_path& out) {
  const bool rev = kind == path_kind::reverse;
  auto syntax = [&] {
    return rev ? reply{501, "5.1.7", "Bad sender address syntax"}
               : reply{501, "5.1.3", "Bad recipient address syntax"};
  };
  auto too_long = [&](const char* what) {
    return reply{501, rev ? "5.1.7" : "5.1.3", what};
  };
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  std::string_view path, rest;
  bool bracketed = !arg.empty() && arg.front() == '<';
  if (bracketed) {
    size_t end = scan_token(arg.substr(1), '>');
    if (end == std::string_view::npos) return syntax();
    path = arg.substr(1, end);
    rest = arg.substr(end + 2);
    if (!rest.empty() && rest.front() != ' ') return syntax();
  } else {
    size_t end = scan_token(arg, ' ');
    if (end == std::string_view::npos) return syntax();
    path = arg.substr(0, end);
    rest = arg.substr(end);
    if (path.empty()) return syntax();
  }
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (path.size() + 2 > max_path) return too_long("Path too long");

  bool non_ascii = false;
  for (char c : path)
    if (static_cast<unsigned char>(c) >= 0x80) non_ascii = true;
  if (non_ascii) {
    if (!utf8) return reply{553, "5.6.7", "Non-ASCII address requires SMTPUTF8"};
    if (!valid_utf8(path)) return syntax();
  }

  if (path.empty()) {
    if (!rev) return syntax();
    out.address.clear();
    out.params = rest;
    return std::nullopt;
  }
  // RFC 5321 4.1.2 / C: a source route is accepted and ignored.
  if (path.front() == '@') {
    size_t colon = path.find(':');
    if (colon == std::string_view::npos) return syntax();
    std::string_view adl = path.substr(0, colon);
    while (!adl.empty()) {
      if (adl.front() != '@') return syntax();
      size_t comma = adl.find(',');
      std::string_view dom = adl.substr(1, comma == std::string_view::npos ? adl.size() - 1 : comma - 1);
      if (!valid_domain_name(dom, utf8)) return syntax();
      adl = comma == std::string_view::npos ? std::string_view{} : adl.substr(comma + 1);
      if (comma != std::string_view::npos && adl.empty()) return syntax();
    }
    path = path.substr(colon + 1);
  }
  if (!rev && iequals(path, "postmaster")) {
    out.address.assign(path);
    out.params = rest;
    return std::nullopt;
  }
  size_t local = scan_local_part(path, utf8);
  if (local == std::string_view::npos) return syntax();
  if (local > max_local_part) return too_long("Local part too long");
  if (local >= path.size() || path[local] != '@') return syntax();
  std::string_view domain = path.substr(local + 1);
  if (domain.size() > max_domain) return too_long("Domain too long");
  if (!valid_domain(domain, utf8)) return syntax();
  out.address.assign(path);
  out.params = rest;
  return std::nullopt;
}

}  // namespace sluice::smtp
