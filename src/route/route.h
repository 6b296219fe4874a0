// route.h: accepted domains, send connectors and the per-recipient next-hop decision.
// Untrusted input: recipient addresses from RCPT TO / the submission queue (any bytes).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "route/kinds.h"

// Domain names are compared after ASCII lower-casing and removal of one trailing
// dot. Bytes >= 0x80 (UTF-8 U-labels) are compared as they are: this module does
// no IDNA. Whoever feeds it (the config adapter for patterns, smtpd for SMTPUTF8
// recipients) converts U-labels to A-labels first if it wants "bücher.example" and
// "xn--bcher-kva.example" to meet; libidn2 (idn2_to_ascii_8z) is installed for that.
// Local parts are compared ASCII case-insensitively too, as administrators expect.

namespace sluice::route {

// ---- inputs (built once from the configuration by an adapter) ----

struct accepted_domain_spec {
  std::string name;  // "contoso.com" or "*.contoso.com" (subdomains only, not the bare name)
  domain_kind kind = domain_kind::authoritative;
  // Entries are "local@domain" or, for a non-wildcard name, a bare local part.
  //  authoritative:  the addresses that exist; nullopt = every address exists.
  //  internal_relay: the addresses hosted here (delivered locally); every other
  //                  address is routed through a send connector; nullopt = none here.
  //  external_relay: ignored; everything goes through a send connector.
  std::optional<std::vector<std::string>> recipients;
};

struct address_space {
  std::string pattern;  // "contoso.com", "*.contoso.com" (subdomains only) or "*"
  uint32_t cost = 1;    // 1..100, lower wins among equally specific patterns
};

struct smart_host {
  std::string host;
  uint16_t port = 25;
};

struct send_connector_spec {
  std::string name;  // unique; the final tie-break (byte order)
  bool enabled = true;
  std::vector<address_space> address_spaces;
  routing_method routing = routing_method::dns;
  std::vector<smart_host> smart_hosts;  // smart_host routing: balanced, the others on failure
  uint16_t port = 25;                   // dns routing: the port used on the MX hosts
  uint64_t max_message_size = 0;        // 0 = no limit of its own
  tls_policy tls = tls_policy::opportunistic;
  // Servers allowed to use this connector; empty = every server. Only consulted
  // when build_options::local_server is set.
  std::vector<std::string> source_servers;
};

struct limits {
  uint64_t organisation_max_size = 0;  // 0 = none
};

struct build_options {
  std::string local_server;  // this server's name for source_servers; empty = ignore them
};

// ---- the decision ----

enum class outcome : uint8_t {
  local_delivery,     // accepted domain, recipient hosted here
  relay_internal,     // internal relay domain, recipient not here: via a send connector
  relay_external,     // external relay domain: via a send connector
  remote,             // not an accepted domain: via a send connector (needs relay permission)
  no_route,           // no enabled send connector matches          (5.4.4)
  unknown_recipient,  // authoritative domain, no such recipient     (5.1.1)
  too_big,            // over the lowest size limit on the path      (5.3.4)
  bad_address,        // no domain, empty label, too long            (5.1.3)
};

bool deliverable(outcome o) noexcept;  // local_delivery, relay_internal, relay_external, remote
std::string_view enhanced_status(outcome o) noexcept;  // "5.3.4" etc.; "" when deliverable
std::string_view reason(outcome o) noexcept;           // "no route" etc., for DSNs and replies
std::string_view to_string(outcome o) noexcept;
std::string_view to_string(domain_kind k) noexcept;
std::string_view to_string(tls_policy t) noexcept;

enum class hop_kind : uint8_t { none, local, smart_host, dns };

// Identifies one delivery queue. Two recipients with equal hops travel together.
struct next_hop {
  hop_kind kind = hop_kind::none;
  uint32_t index = 0;       // local: accepted domain index; smart_host, dns: connector index
  std::string_view domain;  // dns only: the recipient's domain as written (trailing dot
                            // removed); a view into the address given to route_recipient,
                            // valid as long as that string is. Compared case-insensitively.
  uint64_t hash = 0;        // of kind, index and lower-cased domain; equal hops, equal hash
  bool operator==(const next_hop& other) const noexcept;
};

enum class limit_source : uint8_t { none, receive_connector, organisation, send_connector };

struct decision {
  outcome result = outcome::bad_address;
  const accepted_domain_spec* domain = nullptr;    // matched accepted domain, if any
  const send_connector_spec* connector = nullptr;  // chosen send connector, if any
  std::string_view matched;  // address space that won (normalised); points into the table
  uint32_t cost = 0;
  next_hop hop;              // kind none unless a route was found
  uint64_t size_limit = 0;   // effective (lowest non-zero) limit; 0 = none
  limit_source size_limit_from = limit_source::none;
  tls_policy tls = tls_policy::none;  // the connector's; none for local delivery

  // RCPT-time check for smtpd: a recipient outside every accepted domain is only
  // accepted when the receive connector permits relaying.
  bool needs_relay_permission() const noexcept { return domain == nullptr; }
};

// ---- the table ----

class table {
 public:
  struct build_result {
    std::shared_ptr<const table> routes;  // null when errors is not empty
    std::vector<std::string> errors;      // one line per configuration problem
  };
  // Immutable once built, so every loop may read one table concurrently without
  // locks; a reload builds a new table and swaps the shared_ptr.
  static build_result build(std::vector<accepted_domain_spec> domains,
                            std::vector<send_connector_spec> connectors, limits lim,
                            build_options options = {});

  // Hot path: a few hash probes, no allocation, no exceptions. message_size and
  // receive_connector_max may be 0 (unknown / no limit). The decision points into
  // this table and, for DNS hops, into `address`: keep both alive while using it.
  decision route_recipient(std::string_view address, uint64_t message_size,
                           uint64_t receive_connector_max) const noexcept;

  // Slow path for `sluicectl route test`: the decision, and why every other
  // matching accepted domain or send connector lost.
  std::vector<std::string> explain(std::string_view address, uint64_t message_size,
                                   uint64_t receive_connector_max = 0) const;

  // Stable text naming a next hop (delivery queue key): "local:contoso.com",
  // "smarthost:Outbound", "dns:Internet:fabrikam.com".
  std::string hop_key(const next_hop& hop) const;

  std::span<const accepted_domain_spec> accepted_domains() const noexcept { return domains_; }
  std::span<const send_connector_spec> send_connectors() const noexcept { return connectors_; }
  const limits& size_limits() const noexcept { return limits_; }

  table(const table&) = delete;
  table& operator=(const table&) = delete;
  ~table();

  struct impl;  // defined in table_impl.h, shared by table.cc and explain.cc

 private:
  struct build_key {
    explicit build_key() = default;
  };

 public:
  explicit table(build_key);  // only build() can name the key

 private:
  std::vector<accepted_domain_spec> domains_;  // normalised copies; decisions point here
  std::vector<send_connector_spec> connectors_;
  limits limits_;
  build_options options_;
  std::unique_ptr<impl> impl_;
};

// ---- bifurcation ----

struct hop_group {
  next_hop hop;
  uint32_t first = 0;  // slice of grouping::order
  uint32_t count = 0;
};

// Reusable between messages: clearing keeps the capacity, so a warm grouping
// does not allocate.
struct grouping {
  std::vector<hop_group> groups;  // in order of first appearance
  std::vector<uint32_t> order;    // recipient indices, group by group, input order within
  std::vector<uint32_t> failed;   // recipients whose outcome is not deliverable, input order
  std::span<const uint32_t> recipients(const hop_group& g) const noexcept {
    return std::span<const uint32_t>(order).subspan(g.first, g.count);
  }
  // scratch
  std::vector<uint32_t> group_of;
  std::vector<uint32_t> slots;
};

// One group per distinct next hop among deliverable decisions (index = position
// in `decisions`); the categorizer makes one delivery item per group.
void group_by_next_hop(std::span<const decision> decisions, grouping& out);

}  // namespace sluice::route
