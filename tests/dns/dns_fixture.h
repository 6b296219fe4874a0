// dns_fixture.h: shared helpers for the resolver tests: a dnsmasq zone, settings, and lookups run to completion.
// Untrusted input: none.
#pragma once
#include <criterion/criterion.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../net/run_until.h"
#include "net/loop.h"
#include "dns/resolver.h"
#include "dnsmasq.h"

namespace dns_test {

using sluice::dns::destination;
using sluice::dns::lookup_status;

// The zone every resolver test serves. local=/test/ makes dnsmasq answer NXDOMAIN for
// unknown names under test. dnsmasq hands out its addresses round-robin, so address
// order is checked against its query log, not against this file.
inline const char* zone = R"(local=/test/
local-ttl=300
mx-host=two.test,mx2.two.test,20
mx-host=two.test,mx1.two.test,10
host-record=mx1.two.test,127.0.0.11,::11
host-record=mx1.two.test,127.0.0.13
host-record=mx2.two.test,127.0.0.12
mx-host=eq.test,a.eq.test,10
mx-host=eq.test,b.eq.test,10
host-record=a.eq.test,127.0.0.21
host-record=b.eq.test,127.0.0.22
host-record=plain.test,127.0.0.30,::30
mx-host=nullmx.test,.,0
mx-host=self.test,backup.self.test,20
mx-host=self.test,mx.self.test,10
mx-host=self.test,better.self.test,5
host-record=mx.self.test,127.0.0.40
host-record=backup.self.test,127.0.0.41
host-record=better.self.test,127.0.0.42
mx-host=loop.test,mx.self.test,10
mx-host=noaddr.test,ghost.noaddr.test,10
mx-host=many.test,m1.many.test,10
mx-host=many.test,m2.many.test,20
host-record=m1.many.test,127.0.0.51
host-record=m1.many.test,127.0.0.52
host-record=m1.many.test,127.0.0.53
host-record=m2.many.test,127.0.0.54
host-record=m2.many.test,127.0.0.55
server=/refused.test/#
mx-host=tempaddr.test,mx.refused.test,10
mx-host=halfdead.test,mx.refused.test,10
mx-host=halfdead.test,mx2.two.test,20
)";

inline sluice::dns::resolver_settings settings_for(const std::string& server) {
  sluice::dns::resolver_settings s;
  s.servers = {server};
  s.timeout_ms = 1000;
  s.tries = 1;
  return s;
}

// dnsmasq serving the zone, a loop, and resolvers asking that dnsmasq.
struct served {
  sluice_test::dnsmasq dns{zone};
  sluice::net::loop l;
  served() { cr_assert(dns.ok(), "dnsmasq: %s", dns.error().c_str()); }
  sluice::dns::resolver_settings settings() const { return settings_for(dns.server()); }
  std::unique_ptr<sluice::dns::resolver> make(const sluice::dns::resolver_settings& s) {
    std::string error;
    auto r = std::make_unique<sluice::dns::resolver>(l, s, error);
    cr_assert(error.empty(), "%s", error.c_str());
    return r;
  }
  std::unique_ptr<sluice::dns::resolver> make() { return make(settings()); }
};

struct host_answer {
  lookup_status status = lookup_status::temporary;
  std::vector<std::string> addresses;
  std::string detail;
};

// Runs the loop until `ask`'s callback has given a T, checking the callback contract:
// never from inside the call, exactly once.
template <typename T, typename Ask>
T await(sluice::net::loop& l, const std::string& what, Ask ask) {
  std::optional<T> out;
  int calls = 0;
  ask([&](T v) {
    out = std::move(v);
    ++calls;
  });
  cr_assert(!out.has_value(), "%s: answered from inside the call", what.c_str());
  net_test::run_until(l, [&] { return out.has_value(); });
  cr_assert(out.has_value(), "%s: no answer", what.c_str());
  cr_assert_eq(calls, 1);
  return std::move(*out);
}

inline destination resolve(sluice::dns::resolver& r, sluice::net::loop& l, const std::string& domain) {
  return await<destination>(l, domain, [&](auto set) {
    r.resolve_mail_domain(domain, [set](destination&& d) { set(std::move(d)); });
  });
}

inline host_answer resolve_host(sluice::dns::resolver& r, sluice::net::loop& l, const std::string& name) {
  return await<host_answer>(l, name, [&](auto set) {
    r.resolve_host(name, [set](lookup_status s, std::vector<std::string> a, std::string d) {
      set(host_answer{s, std::move(a), std::move(d)});
    });
  });
}

// Runs the loop for `ms` milliseconds, to show that nothing happens meanwhile.
inline void run_for(sluice::net::loop& l, uint64_t ms) {
  bool waited = false;
  sluice::net::timer t(l);
  t.start(ms, 0, [&] { waited = true; });
  net_test::run_until(l, [&] { return waited; });
  cr_assert(waited);
}

// How many queries of `type` for `name` dnsmasq has logged.
inline int queries(const sluice_test::dnsmasq& d, const std::string& type, const std::string& name) {
  std::string log = d.log(), needle = "query[" + type + "] " + name + " ";
  int n = 0;
  for (size_t pos = 0; (pos = log.find(needle, pos)) != std::string::npos; pos += needle.size()) ++n;
  return n;
}

}  // namespace dns_test
