// resolver_fail_test.cc: dns::resolver when DNS fails: timeouts, SERVFAIL, REFUSED, bad settings, destruction mid-lookup.
// Untrusted input: none (every server here is the test's own).
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "dns_fixture.h"
#include "net/poll.h"

using namespace dns_test;
using sluice::dns::resolver;
using sluice::net::loop;

namespace {

// A UDP socket bound to a free port on 127.0.0.1.
int bound_udp_socket(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  cr_assert_eq(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// A UDP name server on 127.0.0.1 that answers every query with SERVFAIL.
struct servfail_server {
  uint16_t port = 0;
  int fd = bound_udp_socket(port);
  int answered = 0;
  std::unique_ptr<sluice::net::poll> watch;

  explicit servfail_server(loop& l) {
    watch = std::make_unique<sluice::net::poll>(l, fd);
    watch->start(sluice::net::poll::readable, [this](int, int) {
      unsigned char buf[512];
      sockaddr_in from{};
      socklen_t flen = sizeof from;
      ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 12) return;
      buf[2] |= 0x80;                                       // QR: a response
      buf[3] = static_cast<unsigned char>((buf[3] & 0xF0) | 2);  // RCODE 2: SERVFAIL
      ::sendto(fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), flen);
      ++answered;
    });
  }
  ~servfail_server() {
    watch.reset();
    ::close(fd);
  }
};

std::string dead_server() { return "127.0.0.1:" + std::to_string(sluice_test::unused_udp_port()); }

// A bound UDP socket nobody reads: queries vanish without the ICMP "port unreachable"
// that a closed port sends back, so they can only time out.
struct black_hole {
  uint16_t port = 0;
  int fd = bound_udp_socket(port);
  ~black_hole() { ::close(fd); }
  std::string server() const { return "127.0.0.1:" + std::to_string(port); }
};

}  // namespace

Test(resolver_fail, timeout_is_temporary_and_never_implicit_mx) {
  loop l;
  black_hole hole;
  std::string error;
  auto settings = settings_for(hole.server());
  settings.timeout_ms = 200;
  resolver r(l, settings, error);
  cr_assert(error.empty(), "%s", error.c_str());
  destination d = resolve(r, l, "two.test");
  cr_assert_eq(d.status, lookup_status::temporary, "%s", d.detail.c_str());
  cr_assert(d.hosts.empty());
  cr_assert(!d.implicit_mx);
  cr_assert(d.detail.find("MX lookup for two.test: timed out") != std::string::npos, "%s", d.detail.c_str());
  cr_assert_eq(r.stats().failures, 1u);
  // Failures are never cached: the next lookup asks again.
  resolve(r, l, "two.test");
  cr_assert_eq(r.stats().cache_hits, 0u);
  cr_assert_eq(r.stats().failures, 2u);
}

Test(resolver_fail, closed_port_is_temporary) {
  loop l;
  std::string error;
  resolver r(l, settings_for(dead_server()), error);
  destination d = resolve(r, l, "two.test");
  cr_assert_eq(d.status, lookup_status::temporary, "%s", d.detail.c_str());
  cr_assert(d.hosts.empty());
}

Test(resolver_fail, servfail_is_temporary) {
  loop l;
  servfail_server server(l);
  std::string error;
  resolver r(l, settings_for("127.0.0.1:" + std::to_string(server.port)), error);
  destination d = resolve(r, l, "two.test");
  cr_assert_eq(d.status, lookup_status::temporary);
  cr_assert(d.detail.find("SERVFAIL") != std::string::npos, "%s", d.detail.c_str());
  cr_assert(server.answered >= 1);
  auto h = resolve_host(r, l, "mx.example");
  cr_assert_eq(h.status, lookup_status::temporary);
}

Test(resolver_fail, refused_is_temporary) {
  served s;
  auto r = s.make();
  destination d = resolve(*r, s.l, "x.refused.test");
  cr_assert_eq(d.status, lookup_status::temporary, "%s", d.detail.c_str());
  cr_assert(d.detail.find("REFUSED") != std::string::npos, "%s", d.detail.c_str());
}

Test(resolver_fail, host_failing_temporarily_makes_the_destination_temporary) {
  served s;
  auto r = s.make();
  destination d = resolve(*r, s.l, "tempaddr.test");
  cr_assert_eq(d.status, lookup_status::temporary, "not no_addresses: %s", d.detail.c_str());
  // With another host that has addresses, the failed one is just dropped.
  destination half = resolve(*r, s.l, "halfdead.test");
  cr_assert_eq(half.status, lookup_status::ok, "%s", half.detail.c_str());
  cr_assert_eq(half.hosts.size(), 1u);
  cr_assert_str_eq(half.hosts[0].name.c_str(), "mx2.two.test");
}

Test(resolver_fail, bad_server_sets_error_and_answers_temporary) {
  loop l;
  std::string error;
  resolver r(l, settings_for("dns.example:53"), error);
  cr_assert(!error.empty());
  destination d = resolve(r, l, "two.test");
  cr_assert_eq(d.status, lookup_status::temporary);
  auto h = resolve_host(r, l, "mx.example");
  cr_assert_eq(h.status, lookup_status::temporary);
  auto literal = resolve_host(r, l, "192.0.2.1");
  cr_assert_eq(literal.status, lookup_status::ok, "a literal needs no DNS");
}

Test(resolver_fail, destruction_cancels_lookups_in_flight) {
  loop l;
  black_hole hole;
  std::string error;
  auto settings = settings_for(hole.server());
  settings.timeout_ms = 100;
  auto r = std::make_unique<resolver>(l, settings, error);
  int calls = 0;
  r->resolve_mail_domain("two.test", [&](destination&&) { ++calls; });
  r->resolve_host("mx.example", [&](lookup_status, std::vector<std::string>, std::string) { ++calls; });
  run_for(l, 30);  // the questions are on the wire
  r.reset();
  run_for(l, 300);  // well past the 100 ms timeout
  cr_assert_eq(calls, 0);
}

Test(resolver_fail, destroying_from_a_callback_cancels_the_rest) {
  served s;
  auto r = s.make();
  loop& l = s.l;
  resolve(*r, l, "two.test");  // cached now, so both answers below come in one turn
  int calls = 0;
  for (int i = 0; i < 2; ++i) {
    r->resolve_mail_domain("two.test", [&](destination&&) {
      ++calls;
      r.reset();
    });
  }
  run_for(l, 100);
  cr_assert_eq(calls, 1);
}

Test(resolver_fail, parse_server_forms) {
  std::string address, error;
  uint16_t port = 0;
  cr_assert(sluice::dns::parse_server("127.0.0.1:5353", address, port, error));
  cr_assert_str_eq(address.c_str(), "127.0.0.1");
  cr_assert_eq(port, 5353);
  cr_assert(sluice::dns::parse_server("192.0.2.1", address, port, error));
  cr_assert_eq(port, 53);
  cr_assert(sluice::dns::parse_server("[::1]:5353", address, port, error));
  cr_assert_str_eq(address.c_str(), "::1");
  cr_assert_eq(port, 5353);
  cr_assert(sluice::dns::parse_server("2001:db8::53", address, port, error));
  cr_assert_eq(port, 53);
  cr_assert(sluice::dns::parse_server("[2001:db8::53]", address, port, error));
  for (const char* bad : {"", "dns.example", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:5x",
                          "[::1", "[::1]5353", "[127.0.0.1]:53", "1.2.3:53"}) {
    cr_assert(!sluice::dns::parse_server(bad, address, port, error), "accepted '%s'", bad);
  }
}
