// hop_key.h: the longest next-hop key a connector or accepted domain can produce, for checks at load.
// Untrusted input: none (names from the validated configuration).
#pragma once
#include <cstddef>
#include <string_view>

#include "route/kinds.h"

namespace sluice::route {

// The longest hop key text a delivery queue may be named by. The store keeps hop keys
// as LMDB keys with a limit of its own (store::schema::max_hop_key_size); the
// categorizer asserts at compile time that this one is not larger, so a configuration
// that passes the check below never produces a key the store refuses.
inline constexpr std::size_t max_hop_key_size = 480;
// The longest recipient domain route_recipient accepts (detail::max_domain); a DNS hop
// key carries the recipient's domain, so this is what a DNS connector name must leave room for.
inline constexpr std::size_t max_hop_domain_size = 255;

// table::hop_key's formats: "local:<domain>", "smarthost:<connector>", "dns:<connector>:<domain>".
inline constexpr std::string_view local_hop_prefix = "local:";
inline constexpr std::string_view smart_host_hop_prefix = "smarthost:";
inline constexpr std::string_view dns_hop_prefix = "dns:";

// The longest key a send connector named `name` can produce with `routing`: a DNS
// connector's key grows with the recipient's domain, so the worst case counts the
// longest domain. A transport rule's route_via uses the same formats.
constexpr std::size_t longest_hop_key(routing_method routing, std::string_view name) noexcept {
  if (routing == routing_method::smart_host) return smart_host_hop_prefix.size() + name.size();
  return dns_hop_prefix.size() + name.size() + 1 + max_hop_domain_size;
}
// The key of local delivery to the accepted domain `name`.
constexpr std::size_t longest_local_hop_key(std::string_view name) noexcept {
  return local_hop_prefix.size() + name.size();
}

}  // namespace sluice::route
