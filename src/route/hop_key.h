// hop_key.h: the longest next-hop key a connector or accepted domain can produce, for checks at load.
// Untrusted input: none (names from the validated configuration).
#pragma once
#include <cstddef>
#include <cstdint>
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

// A hop key taken apart again, for the delivery engine: which send connector (or accepted
// domain) and, for DNS hops, which domain. Views into the key given.
enum class hop_key_kind : uint8_t { invalid, local, smart_host, dns };
struct hop_key_parts {
  hop_key_kind kind = hop_key_kind::invalid;
  std::string_view name;    // connector name (smart_host, dns) or accepted domain (local)
  std::string_view domain;  // dns only: the recipient domain
};
// A DNS key is "dns:<connector>:<domain>"; a domain holds no ':', so the last one splits
// them even when the connector's name contains one.
constexpr hop_key_parts parse_hop_key(std::string_view key) noexcept {
  if (key.starts_with(local_hop_prefix)) return {hop_key_kind::local, key.substr(local_hop_prefix.size()), {}};
  if (key.starts_with(smart_host_hop_prefix))
    return {hop_key_kind::smart_host, key.substr(smart_host_hop_prefix.size()), {}};
  if (key.starts_with(dns_hop_prefix)) {
    const std::string_view rest = key.substr(dns_hop_prefix.size());
    const std::size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) return {};
    return {hop_key_kind::dns, rest.substr(0, colon), rest.substr(colon + 1)};
  }
  return {};
}

}  // namespace sluice::route
