// policy.h: what a receive connector grants one inbound session, resolved at accept time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "route/route.h"
#include "smtp/server.h"
#include "smtpd/connection_limits.h"

namespace sluice::log {
class append_file;
}
namespace sluice::tls {
class context;
}
namespace sluice::auth {
class credentials;
}

namespace sluice::smtpd {

// Everything the session needs from its connector, copied out of the config snapshot so
// that a reload never changes a session half-way through.
struct connector_policy {
  std::string name;                   // connector name, for logs and Received:
  smtp::server_settings smtp;         // limits and advertised extensions
  bool anonymous_submit = true;       // may unauthenticated clients submit at all
  bool relay = false;                 // may relay to non-accepted domains
  bool relay_authenticated = false;   // may relay once authenticated
  std::shared_ptr<const log::append_file> protocol_log;  // null: logging off
  uint32_t command_timeout_ms = 300000;
  uint32_t data_timeout_ms = 600000;
  uint32_t content_timeout_ms = 1200000;  // DATA or the BDAT chunks of one message, start to end
  uint32_t connection_timeout_ms = 1800000;
  unsigned max_received_headers = 100;  // mail loop defence (RFC 5321 6.3)
  uint64_t max_header_size = 128u << 10;  // the client's header section; larger: 552 5.3.4
  // STARTTLS: the server context (null when the connector does not offer TLS).
  std::shared_ptr<const tls::context> tls;
  // AUTH: the credentials (null: no AUTH). Offered only under TLS, or in plaintext to
  // loopback peers when auth_plaintext_on_loopback.
  std::shared_ptr<const auth::credentials> credentials;
  bool auth_plaintext_on_loopback = false;
  uint32_t auth_max_failures = 5;
};

// The receive side of one configuration generation: one policy per receive connector,
// shared by the sessions that connector governs. Built with the rest of the generation
// (src/generation), read-only afterwards.
struct connector_policies {
  std::shared_ptr<const config::config> cfg;
  // The routing table of the same generation: RCPT answers what the categorizer will do.
  std::shared_ptr<const route::table> routes;
  std::vector<std::shared_ptr<const connector_policy>> by_connector;  // parallel to cfg->receive_connectors
  // Connection counts of this generation's connectors, shared by every loop and, by
  // connector name, with the generations before and after it (connection_registry).
  std::unique_ptr<connection_limits> limits;
};

}  // namespace sluice::smtpd
