// generation.h: one configuration generation: everything a (re)load builds, immutable once built.
// Untrusted input: none; the configuration has been validated by config::load_*, and the
// certificate, key and credentials files it names are the administrator's.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "admin/protocol.h"
#include "auth/limiter.h"
#include "config/config.h"
#include "delivery/send_tls.h"
#include "log/protocol_log.h"
#include "route/route.h"
#include "rules/rules.h"
#include "smtpd/connection_limits.h"
#include "smtpd/policy.h"

namespace sluice::generation {

// Built once per successful load on the daemon's main thread, then shared read-only by
// every worker loop, which hands each of its consumers its part: the receiver the
// connector policies, the categorizer the routes and rules, the loop's tracking batch
// the tracking log, the admin server the admin view. All parts come from one load, so a
// session's RCPT answer and the categorizer's decision on that loop use the same table.
// Whatever a loop still holds of an older generation (a running session's policy, a
// log write in flight) keeps that part alive on its own.
struct generation {
  uint64_t number = 0;  // 1 for the configuration the daemon started with, +1 per reload
  std::chrono::system_clock::time_point loaded_at{};
  std::shared_ptr<const config::config> cfg;
  std::shared_ptr<const route::table> routes;
  std::shared_ptr<const rules::rule_set> rules;  // never null; empty when no transport rules
  // One policy per receive connector, with its TLS context, AUTH credentials and
  // protocol log file; its cfg and routes are the ones above.
  std::shared_ptr<const smtpd::connector_policies> receive;
  std::shared_ptr<const log::append_file> tracking_log;  // log_dir/tracking.csv
  std::shared_ptr<const delivery::send_tls> send_tls;     // outbound TLS contexts
  admin::snapshot admin_view;  // what `sluicectl route test` and `config` answer from
};

// What outlives every generation: one per daemon, owned by main. Connection counts and
// AUTH failures are the daemon's, keyed by connector name, so N workers do not give N
// budgets and a reload neither wipes a blocked source nor lets a flood start over.
struct daemon_state {
  smtpd::connection_registry connections;  // drawn from by every build()
  std::shared_ptr<auth::limiter_registry> auth_limiters = std::make_shared<auth::limiter_registry>();
};

// Why a build failed: the routes (the configuration describes an impossible table; the
// file must be fixed) or a resource it names (a certificate, credentials or log file).
enum class failure { none, routes, resources };

struct build_result {
  std::shared_ptr<const generation> built;  // null on failure
  failure failed = failure::none;
  std::vector<std::string> errors;  // one line per problem, without a prefix
  explicit operator bool() const { return built != nullptr; }
};

// Builds every part from `cfg`. Opens (creating) the tracking log and the protocol logs
// under cfg->server.log_dir, which must exist, and generates "auto" certificates that
// are missing. Nothing is shared with an earlier generation, so a failed build leaves
// the running one untouched, except the connection counts it takes from `shared` (null:
// fresh counts of its own, for tests).
build_result build(std::shared_ptr<const config::config> cfg, uint64_t number,
                   std::chrono::system_clock::time_point loaded_at = std::chrono::system_clock::now(),
                   daemon_state* shared = nullptr);

}  // namespace sluice::generation
