// ip_range.cc: parsing and printing of addresses, ranges and bindings.
// Untrusted input: range and binding text from the configuration file; peer sockaddrs.
#include "config/ip_range.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace sluice::config {
namespace {

constexpr uint128 v4_mapped_prefix = uint128{0xffff} << 32;
constexpr uint128 all_ones = ~uint128{0};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Mask of the low (host) bits of a prefix in the 128-bit space.
uint128 host_mask(unsigned prefix128) {
  return prefix128 >= 128 ? uint128{0} : (all_ones >> prefix128);
}

// Decimal 0..max with no sign, no leading zeros (except "0") and no trailing junk.
std::optional<unsigned> parse_small_number(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

// An address written in IPv6 notation (contains ':'), even if it is v4-mapped: the
// notation decides what a prefix length means.
bool written_as_v6(std::string_view s) { return s.find(':') != std::string_view::npos; }

}  // namespace

ip_address ip_address::from_v4(uint32_t host_order) {
  return from_value(v4_mapped_prefix | host_order);
}

ip_address ip_address::from_v6(const unsigned char bytes[16]) {
  uint128 v = 0;
  for (int i = 0; i < 16; ++i) v = (v << 8) | bytes[i];
  return from_value(v);
}

std::optional<ip_address> ip_address::parse(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
    if (!written_as_v6(text)) return std::nullopt;  // "[1.2.3.4]" is a domain literal, not here
  }
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (written_as_v6(text)) {
    unsigned char bytes[16];
    if (inet_pton(AF_INET6, buf, bytes) != 1) return std::nullopt;
    return from_v6(bytes);
  }
  // inet_pton(AF_INET) already refuses the inet_aton shorthands ("10.1", "0x0a.0.0.1").
  in_addr a4{};
  if (inet_pton(AF_INET, buf, &a4) != 1) return std::nullopt;
  return from_v4(ntohl(a4.s_addr));
}

std::optional<ip_address> ip_address::from_sockaddr(const sockaddr* sa) {
  if (sa == nullptr) return std::nullopt;
  if (sa->sa_family == AF_INET) {
    sockaddr_in sin;
    std::memcpy(&sin, sa, sizeof sin);
    return from_v4(ntohl(sin.sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, sa, sizeof sin6);
    return from_v6(sin6.sin6_addr.s6_addr);
  }
  return std::nullopt;
}

bool ip_address::is_v4() const { return (value_ >> 32) == 0xffff; }

bool ip_address::is_unspecified() const { return value_ == 0 || value_ == v4_mapped_prefix; }

bool ip_address::is_loopback() const {
  if (is_v4()) return (v4() >> 24) == 127;
  return value_ == 1;
}

std::string ip_address::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4()) {
    in_addr a4{};
    a4.s_addr = htonl(v4());
    inet_ntop(AF_INET, &a4, buf, sizeof buf);
  } else {
    unsigned char bytes[16];
    uint128 v = value_;
    for (int i = 15; i >= 0; --i) {
      bytes[i] = static_cast<unsigned char>(v & 0xff);
      v >>= 8;
    }
    inet_ntop(AF_INET6, bytes, buf, sizeof buf);
  }
  return buf;
}

std::optional<ip_range> ip_range::parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<ip_range> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  text = trim(text);
  if (text.empty()) return fail("empty range");

  // low-high. IPv6 addresses never contain '-', so the first '-' splits.
  if (auto dash = text.find('-'); dash != std::string_view::npos) {
    std::string_view a = trim(text.substr(0, dash)), b = trim(text.substr(dash + 1));
    auto lo = ip_address::parse(a), hi = ip_address::parse(b);
    if (!lo) return fail("'" + std::string(a) + "' is not an IP address");
    if (!hi) return fail("'" + std::string(b) + "' is not an IP address");
    if (lo->is_v4() != hi->is_v4()) return fail("both ends of a range must be the same IP version");
    if (*hi < *lo) return fail("the first address is greater than the second");
    return ip_range{*lo, *hi};
  }

  // address(netmask), the notation Exchange uses for IPv4 subnets.
  if (auto paren = text.find('('); paren != std::string_view::npos) {
    if (text.back() != ')') return fail("a netmask must be written as address(mask)");
    std::string_view a = trim(text.substr(0, paren));
    std::string_view m = trim(text.substr(paren + 1, text.size() - paren - 2));
    auto addr = ip_address::parse(a);
    auto mask = ip_address::parse(m);
    if (!addr || written_as_v6(a)) return fail("'" + std::string(a) + "' is not an IPv4 address");
    if (!mask || written_as_v6(m)) return fail("'" + std::string(m) + "' is not an IPv4 netmask");
    uint32_t mv = mask->v4();
    if ((~mv & (~mv + 1)) != 0) return fail("netmask " + std::string(m) + " is not contiguous");
    if ((addr->v4() & ~mv) != 0) {
      return fail("host bits are set (did you mean " +
                  ip_address::from_v4(addr->v4() & mv).to_string() + "(" + std::string(m) + ")?)");
    }
    return ip_range{*addr, ip_address::from_v4(addr->v4() | ~mv)};
  }

  // CIDR.
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view a = trim(text.substr(0, slash)), p = trim(text.substr(slash + 1));
    auto addr = ip_address::parse(a);
    if (!addr) return fail("'" + std::string(a) + "' is not an IP address");
    bool v6 = written_as_v6(a);
    auto prefix = parse_small_number(p, v6 ? 128 : 32);
    if (!prefix) return fail(v6 ? "prefix length must be 0-128 for IPv6" : "prefix length must be 0-32 for IPv4");
    unsigned prefix128 = v6 ? *prefix : *prefix + 96;
    uint128 hm = host_mask(prefix128);
    if ((addr->value() & hm) != 0) {
      ip_range fixed{ip_address::from_value(addr->value() & ~hm), ip_address{}};
      std::string net = fixed.low.to_string();
      if (v6 && fixed.low.is_v4()) net = "::ffff:" + net;
      return fail("host bits are set (did you mean " + net + "/" + std::string(p) + "?)");
    }
    return ip_range{*addr, ip_address::from_value(addr->value() | hm)};
  }

  auto addr = ip_address::parse(text);
  if (!addr) return fail("'" + std::string(text) + "' is not an IP address");
  return single(*addr);
}

std::string ip_range::to_string() const {
  if (low == high) return low.to_string();
  uint128 s = span();
  // A CIDR block: span is 2^k-1 and low is aligned to it.
  if ((s & (s + 1)) == 0 && (low.value() & s) == 0) {
    unsigned host_bits = 0;
    for (uint128 t = s; t != 0; t >>= 1) ++host_bits;
    unsigned prefix128 = 128 - host_bits;
    if (low.is_v4() && prefix128 >= 96) return low.to_string() + "/" + std::to_string(prefix128 - 96);
    return low.to_string() + "/" + std::to_string(prefix128);
  }
  return low.to_string() + "-" + high.to_string();
}

std::optional<binding> binding::parse(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(0, close + 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    if (written_as_v6(host)) return std::nullopt;  // unbracketed IPv6 is ambiguous
    port = text.substr(colon + 1);
  }
  auto addr = ip_address::parse(host);
  auto p = parse_small_number(port, 65535);
  if (!addr || !p || *p == 0) return std::nullopt;
  return binding{*addr, static_cast<uint16_t>(*p)};
}

std::string binding::to_string() const {
  if (address.is_v4()) return address.to_string() + ":" + std::to_string(port);
  return "[" + address.to_string() + "]:" + std::to_string(port);
}

bool binding::matches(const ip_address& local, uint16_t local_port) const {
  if (local_port != port) return false;
  if (address == local) return true;
  if (!address.is_unspecified()) return false;
  return address.is_v4() ? local.is_v4() : true;
}

unsigned binding::to_sockaddr(sockaddr_storage* out) const {
  std::memset(out, 0, sizeof *out);
  if (address.is_v4()) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(address.v4());
    std::memcpy(out, &sin, sizeof sin);
    return sizeof sin;
  }
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  uint128 v = address.value();
  for (int i = 15; i >= 0; --i) {
    sin6.sin6_addr.s6_addr[i] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
  std::memcpy(out, &sin6, sizeof sin6);
  return sizeof sin6;
}

}  // namespace sluice::config
