// hop_key_test.cc: send connector names that would make a next-hop key longer than the store holds.
#include <criterion/criterion.h>

#include <string>

#include "config/config.h"
#include "route/hop_key.h"
#include "test_util.h"

using namespace sluice::config;
using sluice::config::test::expect_error;
using sluice::config::test::load_ok;

namespace {

std::string connector(const std::string& name, const char* routing) {
  std::string text = "[[send_connector]]\nname = \"" + name + "\"\naddress_spaces = [\"*\"]\nrouting = \"" + routing + "\"\n";
  if (std::string(routing) == "smarthost") text += "smart_hosts = [\"relay.example.com\"]\n";
  return text;
}

}  // namespace

// "dns:" + name + ":" + a 255-byte domain must fit in 480 bytes: 220 is the longest name.
Test(config_hop_keys, a_dns_connector_name_must_leave_room_for_the_longest_domain) {
  load_ok(connector(std::string(220, 'd'), "dns"));
  auto e = expect_error(connector(std::string(221, 'd'), "dns"), 2, "send_connector[0].name",
                        "221 bytes long: its next-hop key \"dns:<name>:<recipient domain of up to 255 bytes>\" "
                        "must fit in 480 bytes");
  cr_assert_eq(e.column, 8, "column %d: points at the value", e.column);
}

// "smarthost:" + name: 470 bytes of name.
Test(config_hop_keys, a_smart_host_connector_name_must_fit_its_key) {
  load_ok(connector(std::string(470, 's'), "smarthost"));
  expect_error(connector(std::string(471, 's'), "smarthost"), 2, "send_connector[0].name",
               "its next-hop key \"smarthost:<name>\" must fit in 480 bytes");
}

Test(config_hop_keys, the_limit_is_the_stores) {
  cr_assert_eq(sluice::route::longest_hop_key(sluice::route::routing_method::dns, std::string(220, 'd')),
               sluice::route::max_hop_key_size);
}
