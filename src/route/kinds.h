// kinds.h: the kinds an administrator chooses for accepted domains and send connectors.
// Untrusted input: none (type definitions only).
#pragma once
#include <cstdint>

// Apart from route.h so that config can name these types in its structs without
// depending on the routing table: this header includes nothing of sluice.

namespace sluice::route {

enum class domain_kind : uint8_t { authoritative, internal_relay, external_relay };

enum class routing_method : uint8_t { dns, smart_host };
enum class tls_policy : uint8_t { none, opportunistic, mandatory, partner };

}  // namespace sluice::route
