// resolver_test.cc: dns::resolver against a real dnsmasq on loopback: MX order, shuffling, addresses, implicit MX, NXDOMAIN, null MX, loops, the cache.
// Untrusted input: none (dnsmasq is ours).
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <set>
#include <thread>

#include "dns_fixture.h"

using namespace dns_test;
using sluice::dns::resolver;
using sluice::net::loop;

namespace {

std::vector<std::string> host_names(const destination& d) {
  std::vector<std::string> out;
  for (const auto& h : d.hosts) out.push_back(h.name);
  return out;
}

// The IPv4 addresses dnsmasq logged for its last A answer about `name`, in the order sent.
std::vector<std::string> logged_a_order(const sluice_test::dnsmasq& d, const std::string& name) {
  std::string log = d.log();
  size_t at = log.rfind("query[A] " + name + " ");
  std::vector<std::string> out;
  if (at == std::string::npos) return out;
  const std::string tag = " " + name + " is ";
  for (size_t pos = log.find('\n', at); pos != std::string::npos && pos + 1 < log.size(); pos = log.find('\n', pos + 1)) {
    size_t end = log.find('\n', pos + 1);
    std::string line = log.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
    if (line.find("query[") != std::string::npos) break;
    size_t t = line.find(tag);
    if (t == std::string::npos) continue;
    std::string addr = line.substr(t + tag.size());
    if (addr.find(':') == std::string::npos) out.push_back(addr);
  }
  return out;
}

}  // namespace

Test(resolver, mx_preferences_in_order_with_addresses) {
  served s;
  auto r = s.make();
  destination d = resolve(*r, s.l, "Two.Test.");
  cr_assert_eq(d.status, lookup_status::ok, "%s", d.detail.c_str());
  cr_assert(!d.implicit_mx);
  cr_assert(host_names(d) == (std::vector<std::string>{"mx1.two.test", "mx2.two.test"}));
  cr_assert_eq(d.hosts[0].preference, 10);
  cr_assert_eq(d.hosts[1].preference, 20);
  // mx1: two A records (in the order dnsmasq sent them), then its AAAA.
  const auto& a = d.hosts[0].addresses;
  cr_assert_eq(a.size(), 3u);
  cr_assert(std::vector<std::string>(a.begin(), a.begin() + 2) == logged_a_order(s.dns, "mx1.two.test"));
  cr_assert(std::set<std::string>(a.begin(), a.begin() + 2) == (std::set<std::string>{"127.0.0.11", "127.0.0.13"}));
  cr_assert_str_eq(a[2].c_str(), "::11");
  cr_assert(d.hosts[1].addresses == (std::vector<std::string>{"127.0.0.12"}));
  cr_assert_str_eq(d.site_key.c_str(), "mx:mx1.two.test,mx2.two.test");
  cr_assert(d.ttl_s > 0 && d.ttl_s <= 300, "ttl %u", d.ttl_s);
}

Test(resolver, ipv6_off_asks_only_a) {
  served s;
  auto settings = s.settings();
  settings.ipv6 = false;
  auto r = s.make(settings);
  destination d = resolve(*r, s.l, "two.test");
  cr_assert_eq(d.status, lookup_status::ok);
  cr_assert_eq(d.hosts[0].addresses.size(), 2u);
  cr_assert_eq(queries(s.dns, "AAAA", "mx1.two.test"), 0);
}

Test(resolver, equal_preferences_are_shuffled) {
  served s;
  auto settings = s.settings();
  settings.cache_entries = 0;
  auto r = s.make(settings);
  std::set<std::string> firsts;
  for (int i = 0; i < 40 && firsts.size() < 2; ++i) {
    destination d = resolve(*r, s.l, "eq.test");
    cr_assert_eq(d.status, lookup_status::ok, "%s", d.detail.c_str());
    cr_assert_eq(d.hosts.size(), 2u);
    firsts.insert(d.hosts[0].name);
  }
  cr_assert(firsts == (std::set<std::string>{"a.eq.test", "b.eq.test"}), "both hosts came first at some point");
}

Test(resolver, address_limit_spans_hosts) {
  served s;
  auto settings = s.settings();
  settings.max_addresses = 4;
  auto r = s.make(settings);
  destination d = resolve(*r, s.l, "many.test");
  cr_assert_eq(d.status, lookup_status::ok);
  cr_assert_eq(d.hosts.size(), 2u);
  cr_assert_eq(d.hosts[0].addresses.size(), 3u);
  cr_assert_eq(d.hosts[1].addresses.size(), 1u);
  settings.max_addresses = 3;
  auto r3 = s.make(settings);
  destination d3 = resolve(*r3, s.l, "many.test");
  cr_assert(host_names(d3) == (std::vector<std::string>{"m1.many.test"}), "stops before the next host");
  cr_assert_eq(queries(s.dns, "A", "m2.many.test"), 1, "only the first resolver asked for m2");
  cr_assert_str_eq(d3.site_key.c_str(), "mx:m1.many.test,m2.many.test", "the key names the whole MX set");
}

Test(resolver, implicit_mx_from_nodata) {
  served s;
  auto r = s.make();
  destination d = resolve(*r, s.l, "plain.test");
  cr_assert_eq(d.status, lookup_status::ok, "%s", d.detail.c_str());
  cr_assert(d.implicit_mx);
  cr_assert(host_names(d) == (std::vector<std::string>{"plain.test"}));
  cr_assert(d.hosts[0].addresses == (std::vector<std::string>{"127.0.0.30", "::30"}));
  cr_assert_str_eq(d.site_key.c_str(), "host:plain.test");
}

Test(resolver, nxdomain_is_permanent_without_fallback) {
  served s;
  auto r = s.make();
  destination d = resolve(*r, s.l, "nothere.test");
  cr_assert_eq(d.status, lookup_status::nxdomain, "%s", d.detail.c_str());
  cr_assert(d.hosts.empty());
  cr_assert(d.detail.find("nothere.test") != std::string::npos, "%s", d.detail.c_str());
  cr_assert_eq(queries(s.dns, "A", "nothere.test"), 0, "no A lookup after NXDOMAIN");
}

Test(resolver, null_mx_never_falls_back) {
  served s;
  auto r = s.make();
  destination d = resolve(*r, s.l, "nullmx.test");
  cr_assert_eq(d.status, lookup_status::null_mx, "%s", d.detail.c_str());
  cr_assert(d.hosts.empty());
  cr_assert_eq(queries(s.dns, "A", "nullmx.test"), 0);
}

Test(resolver, mx_hosts_without_addresses) {
  served s;
  auto r = s.make();
  destination d = resolve(*r, s.l, "noaddr.test");
  cr_assert_eq(d.status, lookup_status::no_addresses, "%s", d.detail.c_str());
  cr_assert(d.hosts.empty());
}

Test(resolver, self_cuts_worse_hosts_and_loops) {
  served s;
  auto settings = s.settings();
  settings.self_names = {"mx.self.test"};
  auto r = s.make(settings);
  destination d = resolve(*r, s.l, "self.test");
  cr_assert_eq(d.status, lookup_status::ok, "%s", d.detail.c_str());
  cr_assert(host_names(d) == (std::vector<std::string>{"better.self.test"}));
  cr_assert_str_eq(d.site_key.c_str(), "mx:better.self.test");
  destination l = resolve(*r, s.l, "loop.test");
  cr_assert_eq(l.status, lookup_status::loops_to_self, "%s", l.detail.c_str());
  cr_assert(l.hosts.empty());
}

Test(resolver, second_lookup_is_a_cache_hit) {
  served s;
  auto r = s.make();
  destination first = resolve(*r, s.l, "two.test");
  auto after_first = r->stats();
  cr_assert_eq(after_first.lookups, 1u);
  cr_assert_eq(after_first.cache_hits, 0u);
  cr_assert_eq(after_first.cache_misses, 5u, "MX, then A and AAAA of both hosts");
  destination second = resolve(*r, s.l, "two.test");
  cr_assert_eq(second.status, lookup_status::ok);
  cr_assert_eq(r->stats().lookups, 2u);
  cr_assert_eq(r->stats().cache_hits, 5u);
  cr_assert_eq(r->stats().cache_misses, 5u);
  cr_assert_eq(queries(s.dns, "MX", "two.test"), 1, "dnsmasq was asked once");
  cr_assert(host_names(first) == host_names(second));
  cr_assert(second.ttl_s <= first.ttl_s);
}

Test(resolver, negative_answers_are_cached) {
  served s;
  auto r = s.make();
  resolve(*r, s.l, "nothere.test");
  destination d = resolve(*r, s.l, "nothere.test");
  cr_assert_eq(d.status, lookup_status::nxdomain);
  cr_assert_eq(r->stats().cache_hits, 1u);
  cr_assert_eq(queries(s.dns, "MX", "nothere.test"), 1);
  cr_assert(d.ttl_s > 0 && d.ttl_s <= 60, "capped by negative_ttl_s: %u", d.ttl_s);
}

Test(resolver, cache_entries_expire) {
  served s;
  auto settings = s.settings();
  settings.max_ttl_s = 1;
  settings.negative_ttl_s = 0;
  auto r = s.make(settings);
  resolve(*r, s.l, "plain.test");
  resolve(*r, s.l, "nothere.test");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  resolve(*r, s.l, "plain.test");
  resolve(*r, s.l, "nothere.test");
  cr_assert_eq(r->stats().cache_hits, 0u);
  cr_assert_eq(queries(s.dns, "MX", "plain.test"), 2);
  cr_assert_eq(queries(s.dns, "MX", "nothere.test"), 2, "negative_ttl_s 0 caches no NXDOMAIN");
}

Test(resolver, concurrent_lookups_share_one_question) {
  served s;
  auto r = s.make();
  int answered = 0;
  for (int i = 0; i < 3; ++i) {
    r->resolve_mail_domain("two.test", [&](destination&& d) {
      cr_assert_eq(d.status, lookup_status::ok);
      ++answered;
    });
  }
  net_test::run_until(s.l, [&] { return answered == 3; });
  cr_assert_eq(answered, 3);
  cr_assert_eq(queries(s.dns, "MX", "two.test"), 1);
}

Test(resolver, host_lookups) {
  served s;
  auto r = s.make();
  auto h = resolve_host(*r, s.l, "plain.test");
  cr_assert_eq(h.status, lookup_status::ok, "%s", h.detail.c_str());
  cr_assert(h.addresses == (std::vector<std::string>{"127.0.0.30", "::30"}));
  auto missing = resolve_host(*r, s.l, "ghost.test");
  cr_assert_eq(missing.status, lookup_status::nxdomain);
  auto literal = resolve_host(*r, s.l, "[IPv6:2001:DB8::1]");
  cr_assert_eq(literal.status, lookup_status::ok);
  cr_assert(literal.addresses == (std::vector<std::string>{"2001:db8::1"}));
  auto v4 = resolve_host(*r, s.l, "[192.0.2.7]");
  cr_assert(v4.addresses == (std::vector<std::string>{"192.0.2.7"}));
  cr_assert_eq(queries(s.dns, "A", "192.0.2.7"), 0);
}

Test(resolver, ipv6_server_address) {
  int probe = ::socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 any6{};
  any6.sin6_family = AF_INET6;
  any6.sin6_addr = in6addr_loopback;
  bool have_v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&any6), sizeof any6) == 0;
  if (probe >= 0) ::close(probe);
  if (!have_v6) cr_skip_test("no ::1 on this host");
  sluice_test::dnsmasq dns(zone, {"--listen-address=::1"});
  cr_assert(dns.ok(), "dnsmasq: %s", dns.error().c_str());
  loop l;
  std::string error;
  resolver r(l, settings_for("[::1]:" + std::to_string(dns.port())), error);
  cr_assert(error.empty(), "%s", error.c_str());
  destination d = resolve(r, l, "two.test");
  cr_assert_eq(d.status, lookup_status::ok, "%s", d.detail.c_str());
  cr_assert(dns.log().find("from ::1") != std::string::npos, "asked over IPv6");
}
