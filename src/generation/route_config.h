// route_config.h: builds the routing table (src/route) from a loaded configuration (src/config).
// Untrusted input: none; the configuration has already been validated by config::load_*.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "route/route.h"

namespace sluice::generation {

// Converts cfg's accepted domains and send connectors into route specs and builds
// the table. limits::organisation_max_size is server.max_message_size and
// build_options::local_server is server.hostname, so source_servers restrictions
// take effect. Returns null and appends one line per problem to errors when the
// table cannot be built (e.g. two connectors with the same name). The config is
// only read during the call: the table holds copies, so a reload may drop the old
// config while loops still route with the old table.
std::shared_ptr<const route::table> build_route_table(const config::config& cfg,
                                                      std::vector<std::string>& errors);

// The individual conversions, exposed for tests and for `sluicectl` offline use.
route::accepted_domain_spec to_route_spec(const config::accepted_domain& d);
route::send_connector_spec to_route_spec(const config::send_connector& c);

}  // namespace sluice::generation
