// ip_range_test.cc: every address, range and binding notation, valid and malformed.
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "config/ip_range.h"

using sluice::config::binding;
using sluice::config::ip_address;
using sluice::config::ip_range;
using sluice::config::uint128;

namespace {

ip_address addr(const char* text) {
  auto a = ip_address::parse(text);
  cr_assert(a.has_value(), "'%s' should parse", text);
  return *a;
}

ip_range range(const char* text) {
  std::string why;
  auto r = ip_range::parse(text, &why);
  cr_assert(r.has_value(), "'%s' should parse: %s", text, why.c_str());
  return *r;
}

std::string range_error(const char* text) {
  std::string why;
  auto r = ip_range::parse(text, &why);
  cr_assert(!r.has_value(), "'%s' should be refused", text);
  cr_assert(!why.empty(), "refusing '%s' should say why", text);
  return why;
}

}  // namespace

Test(config_ip, ipv4_address_round_trip) {
  ip_address a = addr("192.168.1.5");
  cr_assert(a.is_v4());
  cr_assert_eq(a.v4(), 0xC0A80105u);
  std::string text = a.to_string();
  cr_assert_str_eq(text.c_str(), "192.168.1.5");
}

Test(config_ip, ipv6_address_round_trip_and_brackets) {
  ip_address a = addr("2001:DB8:0:0::1");
  cr_assert(!a.is_v4());
  std::string text = a.to_string();
  cr_assert_str_eq(text.c_str(), "2001:db8::1");
  cr_assert(addr("[2001:db8::1]") == a);
  cr_assert(addr("::1").is_loopback());
  cr_assert(addr("127.3.2.1").is_loopback());
  cr_assert(!addr("128.0.0.1").is_loopback());
}

Test(config_ip, v4_mapped_ipv6_is_ipv4) {
  ip_address mapped = addr("::ffff:10.1.2.3");
  cr_assert(mapped.is_v4());
  cr_assert(mapped == addr("10.1.2.3"));
  std::string text = mapped.to_string();
  cr_assert_str_eq(text.c_str(), "10.1.2.3");
}

Test(config_ip, unspecified_addresses) {
  cr_assert(addr("0.0.0.0").is_unspecified());
  cr_assert(addr("::").is_unspecified());
  cr_assert(!addr("0.0.0.1").is_unspecified());
  cr_assert(addr("0.0.0.0").is_v4());
  cr_assert(!addr("::").is_v4());
}

Test(config_ip, malformed_addresses_are_refused) {
  const char* bad[] = {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", "01.2.3.4", "0x0a.0.0.1",
                       "10.1", "::g", "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "[1.2.3.4]", "[::1", "a.b.c.d",
                       "12345::1", ":::"};
  for (const char* b : bad) cr_assert(!ip_address::parse(b).has_value(), "'%s' must not parse", b);
}

Test(config_ip, from_sockaddr_all_families) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(0x0A000001);
  auto a = ip_address::from_sockaddr(reinterpret_cast<sockaddr*>(&sin));
  cr_assert(a.has_value() && *a == addr("10.0.0.1"));

  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
  auto b = ip_address::from_sockaddr(reinterpret_cast<sockaddr*>(&sin6));
  cr_assert(b.has_value() && *b == addr("2001:db8::7"));

  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d: they must match IPv4 ranges.
  inet_pton(AF_INET6, "::ffff:192.0.2.9", &sin6.sin6_addr);
  auto c = ip_address::from_sockaddr(reinterpret_cast<sockaddr*>(&sin6));
  cr_assert(c.has_value() && c->is_v4() && *c == addr("192.0.2.9"));
  cr_assert(range("192.0.2.0/24").contains(*c));

  sockaddr unix_sa{};
  unix_sa.sa_family = AF_UNIX;
  cr_assert(!ip_address::from_sockaddr(&unix_sa).has_value());
  cr_assert(!ip_address::from_sockaddr(nullptr).has_value());
}

Test(config_ip, single_address_range) {
  ip_range r = range("192.168.1.5");
  cr_assert(r.contains(addr("192.168.1.5")));
  cr_assert(!r.contains(addr("192.168.1.6")));
  cr_assert(r.span() == 0);
  cr_assert(r.size() == 1);
}

Test(config_ip, dash_range_with_and_without_spaces) {
  ip_range r = range("10.0.0.1-10.0.0.200");
  cr_assert(r.contains(addr("10.0.0.1")));
  cr_assert(r.contains(addr("10.0.0.200")));
  cr_assert(!r.contains(addr("10.0.0.0")));
  cr_assert(!r.contains(addr("10.0.0.201")));
  cr_assert(r.size() == 200);
  // The seed's own PowerShell example has a space after the dash.
  ip_range all = range("0.0.0.0- 255.255.255.255");
  cr_assert(all.contains(addr("203.0.113.7")));
  cr_assert(!all.contains(addr("2001:db8::1")));
  cr_assert(all.size() == (uint128{1} << 32));
}

Test(config_ip, netmask_range) {
  ip_range r = range("10.10.0.0(255.255.0.0)");
  cr_assert(r.contains(addr("10.10.255.255")));
  cr_assert(r.contains(addr("10.10.0.0")));
  cr_assert(!r.contains(addr("10.11.0.0")));
  cr_assert(r == range("10.10.0.0/16"));
  std::string text = r.to_string();
  cr_assert_str_eq(text.c_str(), "10.10.0.0/16");
}

Test(config_ip, cidr_ranges_v4) {
  ip_range r = range("10.0.0.0/8");
  cr_assert(r.contains(addr("10.255.255.255")));
  cr_assert(!r.contains(addr("11.0.0.0")));
  cr_assert(range("0.0.0.0/0").contains(addr("255.255.255.255")));
  cr_assert(range("192.0.2.1/32").size() == 1);
  cr_assert(range("10.0.0.0/8") == range("10.0.0.0-10.255.255.255"));
}

Test(config_ip, ipv6_single_cidr_and_range) {
  cr_assert(range("2001:db8::1").contains(addr("2001:db8::1")));
  ip_range net = range("2001:db8::/32");
  cr_assert(net.contains(addr("2001:db8:ffff::1")));
  cr_assert(!net.contains(addr("2001:db9::1")));
  ip_range dash = range("2001:db8::1-2001:db8::ff");
  cr_assert(dash.contains(addr("2001:db8::80")));
  cr_assert(!dash.contains(addr("2001:db8::100")));
  cr_assert(dash.size() == 255);
  ip_range all = range("::/0");
  cr_assert(all.contains(addr("2001:db8::1")));
  cr_assert(all.contains(addr("10.0.0.1")));  // v4-mapped space is inside ::/0
  cr_assert(all.span() == ~uint128{0});
  cr_assert(all.size() == ~uint128{0});  // saturates rather than wrapping to 0
  cr_assert(range("::ffff:10.0.0.0/104") == range("10.0.0.0/8"));
}

Test(config_ip, to_string_is_canonical) {
  struct {
    const char* in;
    const char* out;
  } cases[] = {{"10.0.0.1-10.0.0.200", "10.0.0.1-10.0.0.200"},
               {"10.0.0.0-10.0.0.255", "10.0.0.0/24"},
               {"2001:DB8::/32", "2001:db8::/32"},
               {"::/0", "::/0"},
               {"0.0.0.0-255.255.255.255", "0.0.0.0/0"},
               {"::1", "::1"}};
  for (auto& c : cases) {
    std::string text = range(c.in).to_string();
    cr_assert_str_eq(text.c_str(), c.out, "%s", c.in);
  }
}

Test(config_ip, malformed_ranges_are_refused_with_reasons) {
  std::string why = range_error("10.0.0.0/33");
  cr_assert(why.find("0-32") != std::string::npos, "%s", why.c_str());
  why = range_error("2001:db8::/129");
  cr_assert(why.find("0-128") != std::string::npos, "%s", why.c_str());
  why = range_error("10.0.0.5/8");
  cr_assert(why.find("did you mean 10.0.0.0/8") != std::string::npos, "%s", why.c_str());
  why = range_error("10.0.0.200-10.0.0.1");
  cr_assert(why.find("greater") != std::string::npos, "%s", why.c_str());
  why = range_error("10.0.0.1-2001:db8::1");
  cr_assert(why.find("same IP version") != std::string::npos, "%s", why.c_str());
  why = range_error("10.10.0.0(255.0.255.0)");
  cr_assert(why.find("contiguous") != std::string::npos, "%s", why.c_str());
  why = range_error("10.10.1.0(255.255.0.0)");
  cr_assert(why.find("host bits") != std::string::npos, "%s", why.c_str());
  range_error("2001:db8::(ffff::)");
  range_error("10.0.0.0(255.255.0.0");
  range_error("10.0.0.0/");
  range_error("10.0.0.0/08x");
  range_error("10.0.0.0/-1");
  range_error("");
  range_error("example.com");
  range_error("10.0.0.1-");
}

Test(config_ip, binding_parse_and_print) {
  auto b = binding::parse("127.0.0.1:2525");
  cr_assert(b.has_value());
  cr_assert_eq(b->port, 2525);
  std::string text = b->to_string();
  cr_assert_str_eq(text.c_str(), "127.0.0.1:2525");
  auto v6 = binding::parse("[::1]:2525");
  cr_assert(v6.has_value() && v6->address == addr("::1"));
  text = v6->to_string();
  cr_assert_str_eq(text.c_str(), "[::1]:2525");
  auto any = binding::parse("0.0.0.0:25");
  cr_assert(any.has_value() && any->is_wildcard());
  auto any6 = binding::parse("[::]:25");
  cr_assert(any6.has_value() && any6->is_wildcard() && !any6->address.is_v4());
}

Test(config_ip, malformed_bindings_are_refused) {
  const char* bad[] = {"1.2.3.4:99999", "1.2.3.4:0", "1.2.3.4", "1.2.3.4:", "::1:25", "[::1]25", "[::1]",
                       "[::1:25", "localhost:25", "1.2.3.4:25x", "1.2.3.4:-1", ":25", "[1.2.3.4]:25"};
  for (const char* text : bad) cr_assert(!binding::parse(text).has_value(), "'%s' must not parse", text);
}

Test(config_ip, binding_matching) {
  auto exact = *binding::parse("127.0.0.1:2525");
  cr_assert(exact.matches(addr("127.0.0.1"), 2525));
  cr_assert(!exact.matches(addr("127.0.0.1"), 25));
  cr_assert(!exact.matches(addr("127.0.0.2"), 2525));
  auto any4 = *binding::parse("0.0.0.0:25");
  cr_assert(any4.matches(addr("192.0.2.1"), 25));
  cr_assert(!any4.matches(addr("2001:db8::1"), 25));
  cr_assert(!any4.matches(addr("192.0.2.1"), 26));
  auto any6 = *binding::parse("[::]:25");
  cr_assert(any6.matches(addr("2001:db8::1"), 25));
  cr_assert(any6.matches(addr("192.0.2.1"), 25));  // dual-stack socket
}

Test(config_ip, binding_to_sockaddr) {
  sockaddr_storage ss;
  auto b = *binding::parse("192.0.2.1:2525");
  cr_assert_eq(b.to_sockaddr(&ss), sizeof(sockaddr_in));
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  cr_assert_eq(sin->sin_family, AF_INET);
  cr_assert_eq(ntohs(sin->sin_port), 2525);
  cr_assert_eq(ntohl(sin->sin_addr.s_addr), 0xC0000201u);
  auto b6 = *binding::parse("[2001:db8::5]:587");
  cr_assert_eq(b6.to_sockaddr(&ss), sizeof(sockaddr_in6));
  auto back = ip_address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
  cr_assert(back.has_value() && *back == addr("2001:db8::5"));
  cr_assert_eq(ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port), 587);
}
