// config_test.cc: the [metrics] table: default, off, non-loopback, and refused addresses.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <string>

#include "config/config.h"

using namespace sluice;

namespace {

config::load_result load(const std::string& metrics) { return config::load_string(metrics, "m.toml", "/tmp"); }

}  // namespace

Test(metrics_config, loopback_9925_by_default) {
  auto r = load("");
  cr_assert(r.ok(), "%s", r.error_text().c_str());
  cr_assert_eq(r.value->metrics.listen, "127.0.0.1:9925");
  cr_assert(!r.value->metrics.non_loopback);
}

Test(metrics_config, empty_turns_it_off_and_other_addresses_are_flagged) {
  auto off = load("[metrics]\nlisten = \"\"\n");
  cr_assert(off.ok(), "%s", off.error_text().c_str());
  cr_assert(off.value->metrics.listen.empty());
  auto v6 = load("[metrics]\nlisten = \"[::1]:9100\"\n");
  cr_assert(v6.ok(), "%s", v6.error_text().c_str());
  cr_assert(!v6.value->metrics.non_loopback);
  auto wide = load("[metrics]\nlisten = \"0.0.0.0:9925\"\n");
  cr_assert(wide.ok(), "%s", wide.error_text().c_str());
  cr_assert(wide.value->metrics.non_loopback, "a non-loopback address is allowed, with a warning");
}

Test(metrics_config, bad_addresses_and_unknown_keys_are_refused) {
  auto bad = load("[metrics]\nlisten = \"localhost:9925\"\n");
  cr_assert(!bad.ok());
  cr_assert(bad.error_text().find("m.toml:2:10: metrics.listen: 'localhost:9925' is not an IP:port") != std::string::npos,
            "%s", bad.error_text().c_str());
  auto typo = load("[metrics]\nlsten = \"127.0.0.1:9925\"\n");
  cr_assert(!typo.ok());
  cr_assert(typo.error_text().find("lsten") != std::string::npos, "%s", typo.error_text().c_str());
}
