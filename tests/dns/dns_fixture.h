// dns_fixture.h: shared helpers for the resolver tests: a dnsmasq zone, settings, and lookups run to completion.
// Untrusted input: none.
#pragma once
#include <criterion/criterion.h>

#include <optional>
#include <string>
#include <vector>

#include "../net/run_until.h"
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

struct host_answer {
  lookup_status status = lookup_status::temporary;
  std::vector<std::string> addresses;
  std::string detail;
};

inline destination resolve(sluice::dns::resolver& r, sluice::net::loop& l, const std::string& domain) {
  std::optional<destination> out;
  int calls = 0;
  r.resolve_mail_domain(domain, [&](destination&& d) {
    out = std::move(d);
    ++calls;
  });
  cr_assert(!out.has_value(), "%s: answered from inside the call", domain.c_str());
  net_test::run_until(l, [&] { return out.has_value(); });
  cr_assert(out.has_value(), "%s: no answer", domain.c_str());
  cr_assert_eq(calls, 1);
  return std::move(*out);
}

inline host_answer resolve_host(sluice::dns::resolver& r, sluice::net::loop& l, const std::string& name) {
  std::optional<host_answer> out;
  r.resolve_host(name, [&](lookup_status s, std::vector<std::string> a, std::string d) {
    out = host_answer{s, std::move(a), std::move(d)};
  });
  cr_assert(!out.has_value(), "%s: answered from inside the call", name.c_str());
  net_test::run_until(l, [&] { return out.has_value(); });
  cr_assert(out.has_value(), "%s: no answer", name.c_str());
  return std::move(*out);
}

// How many queries of `type` for `name` dnsmasq has logged.
inline int queries(const sluice_test::dnsmasq& d, const std::string& type, const std::string& name) {
  std::string log = d.log(), needle = "query[" + type + "] " + name + " ";
  int n = 0;
  for (size_t pos = 0; (pos = log.find(needle, pos)) != std::string::npos; pos += needle.size()) ++n;
  return n;
}

}  // namespace dns_test
