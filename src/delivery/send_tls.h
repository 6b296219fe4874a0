// send_tls.h: the TLS client contexts one configuration generation gives its outbound connections.
// Untrusted input: none (contexts built from the administrator's configuration).
#pragma once
#include <memory>
#include <string>
#include <unordered_map>

#include "tls/context.h"

namespace sluice::delivery {

// The unverified context every opportunistic or mandatory connection uses, and one per
// send connector with partner TLS (its own CA file, chain and name verified). Built with
// the generation, so a CA file that does not load refuses the configuration instead of
// deferring mail later.
struct send_tls {
  std::shared_ptr<const tls::context> unverified;
  std::unordered_map<std::string, std::shared_ptr<const tls::context>> verified;  // by connector name
};

}  // namespace sluice::delivery
