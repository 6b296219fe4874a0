// lookup_test.cc: receive connector selection by local endpoint and peer, and the bindings list.
#include <criterion/criterion.h>

#include <string>

#include "config/config.h"
#include "test_util.h"

using namespace sluice::config;
using sluice::config::test::load_ok;

namespace {

ip_address ip(const char* text) {
  auto a = ip_address::parse(text);
  cr_assert(a.has_value(), "%s", text);
  return *a;
}

std::string selected(const config& c, const char* local, uint16_t port, const char* peer) {
  const receive_connector* rc = c.select_receive_connector(ip(local), port, ip(peer));
  return rc ? rc->name : "(none)";
}

const char* connectors = R"toml(
[[receive_connector]]
name = "Internet"
type = "internet"
bindings = ["0.0.0.0:25", "[::]:25"]

[[receive_connector]]
name = "Corp"
type = "enterprise"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.0.0.0/8", "2001:db8::/32"]

[[receive_connector]]
name = "Branch"
type = "enterprise"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.10.0.0(255.255.0.0)"]

[[receive_connector]]
name = "Printer"
type = "custom"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.10.1.5"]

[[receive_connector]]
name = "Scanner range"
type = "custom"
bindings = ["192.0.2.1:25"]
remote_ranges = ["10.10.1.1-10.10.1.9"]

[[receive_connector]]
name = "Submission"
type = "custom"
bindings = ["127.0.0.1:587"]
remote_ranges = ["127.0.0.0/8"]
)toml";

}  // namespace

Test(config_select, most_specific_range_wins) {
  auto c = load_ok(connectors);
  cr_assert(selected(*c, "192.0.2.1", 25, "203.0.113.9") == "Internet");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.200.0.1") == "Corp");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.10.200.1") == "Branch");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.10.1.5") == "Printer");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.10.1.6") == "Scanner range");
}

Test(config_select, binding_must_match_local_endpoint) {
  auto c = load_ok(connectors);
  // "Scanner range" is bound to 192.0.2.1 only: on another local address the peer
  // falls back to the next most specific connector bound to the wildcard.
  cr_assert(selected(*c, "198.51.100.1", 25, "10.10.1.6") == "Branch");
  // Port decides too.
  cr_assert(selected(*c, "127.0.0.1", 587, "127.0.0.1") == "Submission");
  cr_assert(selected(*c, "127.0.0.1", 25, "127.0.0.1") == "Internet");
  // IPv6 local address: only the [::]:25 binding of "Internet" and nothing IPv4-only.
  cr_assert(selected(*c, "2001:db8::25", 25, "2001:db8::1") == "Internet");
}

Test(config_select, v4_mapped_peer_is_treated_as_ipv4) {
  auto c = load_ok(connectors);
  cr_assert(selected(*c, "::ffff:192.0.2.1", 25, "::ffff:10.10.1.5") == "Printer");
}

Test(config_select, no_match_returns_null) {
  auto c = load_ok(connectors);
  cr_assert(selected(*c, "127.0.0.1", 587, "192.0.2.77") == "(none)", "remote range excludes the peer");
  cr_assert(selected(*c, "127.0.0.1", 2525, "127.0.0.1") == "(none)", "no binding on that port");
  cr_assert(selected(*c, "127.0.0.2", 587, "127.0.0.1") == "(none)", "binding is for another local address");
}

Test(config_select, exact_binding_beats_wildcard_on_equal_ranges_then_first_defined) {
  auto c = load_ok(R"toml(
[[receive_connector]]
name = "Wild"
type = "internet"
bindings = ["0.0.0.0:25"]
remote_ranges = ["10.0.0.0/8"]

[[receive_connector]]
name = "Exact"
type = "internet"
bindings = ["192.0.2.1:25"]
remote_ranges = ["10.0.0.0/8"]

[[receive_connector]]
name = "First"
type = "internet"
bindings = ["0.0.0.0:26"]
remote_ranges = ["10.0.0.0/8"]

[[receive_connector]]
name = "Second"
type = "internet"
bindings = ["0.0.0.0:26", "0.0.0.0:27"]
remote_ranges = ["10.0.0.1-11.0.0.0", "0.0.0.0/0"]
)toml");
  cr_assert(selected(*c, "192.0.2.1", 25, "10.1.1.1") == "Exact");
  cr_assert(selected(*c, "192.0.2.2", 25, "10.1.1.1") == "Wild");
  // Equal sizes, both wildcard bindings: the connector defined first.
  cr_assert(selected(*c, "192.0.2.1", 26, "10.1.1.1") == "First");
  cr_assert(selected(*c, "192.0.2.1", 27, "10.1.1.1") == "Second");
}

Test(config_select, all_bindings_are_distinct_in_order) {
  auto c = load_ok(connectors);
  auto b = c->all_bindings();
  cr_assert_eq(b.size(), 4u);
  std::string s0 = b[0].to_string(), s1 = b[1].to_string(), s2 = b[2].to_string(), s3 = b[3].to_string();
  cr_assert_str_eq(s0.c_str(), "0.0.0.0:25");
  cr_assert_str_eq(s1.c_str(), "[::]:25");
  cr_assert_str_eq(s2.c_str(), "192.0.2.1:25");
  cr_assert_str_eq(s3.c_str(), "127.0.0.1:587");
}
