// delivery_env.h: one delivery test's world: a real dnsmasq, sluiced relaying through it, blaster sinks as destinations.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dnsmasq.h"
#include "harness.h"
#include "peers.h"

namespace sluice::testing {

// The daemon relays everything from 127.0.0.0/8 (one enterprise connector) through one
// send connector, "Internet" (DNS MX routing on `sink_port`), unless the test writes its
// own connectors; DNS is the test's dnsmasq; retries and timeouts are short.
struct delivery_env {
  // `zone`: dnsmasq lines (mx-host=, host-record=...); `local=/test/` is added, so unknown
  // names under .test are NXDOMAIN.
  explicit delivery_env(const std::string& zone);

  // The daemon's config: the defaults above plus `connectors` (TOML [[send_connector]]
  // tables; "" = the default Internet connector) and `extra` (more TOML, e.g. [delivery] keys
  // go in `delivery_keys`, written under the [delivery] table).
  void configure(const std::string& connectors = "", const std::string& delivery_keys = "",
                 const std::string& extra = "");
  bool start();  // sluiced
  // More TOML keys for the "Relay" receive connector (e.g. max_recipients), set before configure().
  std::string relay_keys;

  sink_process& sink(const std::string& address, std::vector<std::string> extra = {});
  // blaster send of `messages` messages, one recipient each unless `extra` says otherwise.
  send_result send(const std::string& name, int messages, std::vector<std::string> extra);
  // Every sink's record file.
  std::vector<std::string> received_logs() const;
  // Stops every sink (so that its record is complete), then blaster verify of `sent` against them.
  verify_result verify(const send_result& sent);

  // Tracking log lines with `event` ("DELIVER", "DEFER", "FAIL", "EXPIRE", "DSN") about the
  // test's own messages; the daemon's reports (sender <>) are in report_tracking().
  std::vector<std::string> tracking(const std::string& event) const;
  std::vector<std::string> report_tracking(const std::string& event) const;
  // Recipients named by `event` lines (a line may list several, ';'-separated).
  std::size_t tracked_recipients(const std::string& event) const;
  // Delivery items left in the store, and messages still to categorize (sluicectl queue list).
  long long queued_items() const;

  sluice_test::dnsmasq dns;
  sluiced_process daemon;
  uint16_t sink_port;
  std::map<std::string, std::unique_ptr<sink_process>> sinks;
};

}  // namespace sluice::testing
