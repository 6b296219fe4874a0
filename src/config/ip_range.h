// ip_range.h: IP addresses, remote IP ranges and IP:port bindings as connectors name them.
// Untrusted input: range and binding text from the configuration file; peer sockaddrs.
#pragma once
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;
struct sockaddr_storage;

namespace sluice::config {

__extension__ typedef unsigned __int128 uint128;

// One address in a single 128-bit space. IPv4 is stored v4-mapped (::ffff:a.b.c.d) so
// that ranges, ordering and "most specific" work the same for both families, and so a
// v4-mapped peer on a dual-stack socket is the very same address as its IPv4 form.
class ip_address {
 public:
  ip_address() = default;  // "::"
  static ip_address from_v4(uint32_t host_order);
  static ip_address from_v6(const unsigned char bytes[16]);
  static ip_address from_value(uint128 value) { ip_address a; a.value_ = value; return a; }
  // "192.0.2.1", "2001:db8::1", "[2001:db8::1]"; no zone ids, no leading zeros in IPv4.
  static std::optional<ip_address> parse(std::string_view text);
  // AF_INET or AF_INET6 (a v4-mapped IPv6 peer becomes IPv4); nullopt for anything else.
  static std::optional<ip_address> from_sockaddr(const sockaddr* sa);

  bool is_v4() const;
  bool is_unspecified() const;  // 0.0.0.0 or ::
  bool is_loopback() const;     // 127.0.0.0/8 or ::1
  uint32_t v4() const { return static_cast<uint32_t>(value_); }  // host order; only if is_v4()
  uint128 value() const { return value_; }
  std::string to_string() const;  // "192.0.2.1" or "2001:db8::1" (no brackets)

  auto operator<=>(const ip_address&) const = default;

 private:
  uint128 value_ = 0;
};

// An inclusive range [low, high] of addresses, from any of the notations Exchange accepts
// for RemoteIPRanges plus CIDR:
//   192.168.1.5              single address
//   10.0.0.1-10.0.0.200      range (spaces around '-' allowed)
//   10.10.0.0(255.255.0.0)   address and netmask (IPv4 only)
//   10.0.0.0/8               CIDR
//   2001:db8::1, 2001:db8::/32, 2001:db8::1-2001:db8::ff   the same for IPv6
// Both ends of a range must be the same family. CIDR and netmask forms with host bits set
// (10.0.0.5/8) are refused rather than silently widened: they are usually a typo.
struct ip_range {
  ip_address low;
  ip_address high;

  // On failure returns nullopt and, if error is given, a reason such as
  // "prefix length must be 0-32 for IPv4".
  static std::optional<ip_range> parse(std::string_view text, std::string* error = nullptr);
  static ip_range single(const ip_address& a) { return {a, a}; }

  bool contains(const ip_address& a) const { return low <= a && a <= high; }
  // Number of addresses minus one: exact even for ::/0. Smaller means more specific.
  uint128 span() const { return high.value() - low.value(); }
  // Number of addresses, saturated at 2^128-1 (only ::/0 saturates).
  uint128 size() const { return span() == ~uint128{0} ? span() : span() + 1; }
  // Canonical text: a single address, a CIDR block when the range is one, else "low-high".
  std::string to_string() const;

  bool operator==(const ip_range&) const = default;
};

// A local endpoint to listen on: "127.0.0.1:2525", "[::1]:2525", "0.0.0.0:25", "[::]:25".
struct binding {
  ip_address address;
  uint16_t port = 0;

  // Port must be 1-65535; IPv6 must be bracketed.
  static std::optional<binding> parse(std::string_view text);
  std::string to_string() const;
  bool is_wildcard() const { return address.is_unspecified(); }
  // Whether a connection accepted on local:port arrived through this binding.
  // 0.0.0.0 matches every IPv4 local address; [::] matches every local address, because
  // a dual-stack [::] socket also accepts IPv4 (seen as v4-mapped, i.e. IPv4 here).
  bool matches(const ip_address& local, uint16_t local_port) const;
  // Fills *out (sockaddr_in or sockaddr_in6) for bind(); returns its length.
  unsigned to_sockaddr(sockaddr_storage* out) const;

  auto operator<=>(const binding&) const = default;
};

}  // namespace sluice::config
