// table_impl.h: internal to route: the precomputed lookup structures behind route::table.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "route/index.h"
#include "route/route.h"

namespace sluice::route {

// One node per distinct domain name that appears in an accepted domain or an
// address space. "exact" fields answer for the name itself, "wild" fields for
// "*.name" (its proper subdomains). Winners are precomputed at build time among
// usable connectors only, so the hot path never compares costs or names.
struct domain_node {
  int32_t accepted_exact = -1;
  int32_t accepted_wild = -1;
  int32_t conn_exact = -1;
  int32_t conn_wild = -1;
  uint8_t cost_exact = 0;  // 1..100
  uint8_t cost_wild = 0;
  // Copies of the accepted domains' kind and "has a recipient table", so a
  // decision never has to touch the (cold) specs.
  uint8_t flags_exact = 0;
  uint8_t flags_wild = 0;
};

inline constexpr uint8_t flag_has_recipients = 0x80;
inline uint8_t accepted_flags(const accepted_domain_spec& d) {
  return static_cast<uint8_t>(static_cast<uint8_t>(d.kind) |
                              (d.recipients ? flag_has_recipients : 0));
}
inline domain_kind flags_kind(uint8_t f) { return static_cast<domain_kind>(f & 0x7f); }

struct table::impl {
  // Keys are stored as "*." + name in the arena with the slot pointing at name,
  // so the wildcard pattern that matched is a view one step to the left.
  // 64-byte slots: a domain probe that hits costs one cache line.
  detail::string_index<domain_node, 30, 64> domains;
  // Tagged with the owning accepted domain's index; the key is the normalised
  // local part for an exact domain, "local@domain" for a wildcard one (whose
  // subdomains share the tag). Hashed as address_hash(local, domain) either way.
  detail::string_index<uint8_t, 21, 32> recipients;
  int32_t default_conn = -1;  // best usable connector with address space "*"
  uint32_t default_cost = 0;
  std::vector<char> usable;   // per connector: enabled and allowed on this server
};

// Specificity of a normalised pattern against a normalised domain: higher is
// more specific, -1 = no match. Exact beats any wildcard; a longer wildcard
// suffix beats a shorter one; "*" is 0.
inline int pattern_specificity(std::string_view pattern, std::string_view domain) noexcept {
  if (pattern == "*") return 0;
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix = pattern.substr(1);  // ".contoso.com"
    if (domain.size() > suffix.size() && domain.ends_with(suffix))
      return static_cast<int>(2 * (suffix.size() - 1));
    return -1;
  }
  return pattern == domain ? static_cast<int>(2 * pattern.size() + 1) : -1;
}

}  // namespace sluice::route
