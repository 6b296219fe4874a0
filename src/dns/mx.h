// mx.h: the pure half of mail routing by DNS: RFC 5321 section 5 MX ordering, null MX, loops to self, site keys.
// Untrusted input: MX records from DNS answers (host names are only compared and copied).
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::dns {

enum class lookup_status : uint8_t {
  ok,
  nxdomain,       // the mail domain does not exist: permanent, 5.1.2
  null_mx,        // RFC 7505 "0 .": permanent, 5.1.10 (556 reply), never falls back to A/AAAA
  loops_to_self,  // every usable MX is this host, or worse than it: permanent, 5.4.6
  no_addresses,   // the MX hosts (or the implicit-MX domain) have no A/AAAA at all: permanent, 5.4.4
  temporary,      // SERVFAIL, timeout, refused, any other error: 4.4.3; never turned into implicit MX
};

std::string_view enhanced_status(lookup_status s) noexcept;  // "5.1.2" ... "4.4.3"; "" for ok
int reply_code(lookup_status s) noexcept;                     // 550, 556, 554, 550, 451; 0 for ok
std::string_view status_name(lookup_status s) noexcept;      // "ok", "nxdomain", ... for logs

struct mx_record {
  uint16_t preference = 0;
  std::string host;  // lower-case, no trailing dot; "" for the root (".")
};

struct mx_host {
  std::string name;
  uint16_t preference = 0;
  std::vector<std::string> addresses;  // IP texts, IPv4 first, each family in answer order
};

struct mx_plan {
  lookup_status status = lookup_status::ok;
  std::vector<mx_record> hosts;  // in try order when status is ok
};

// RFC 5321 5.1: sort by preference, shuffle hosts of equal preference (with rng), drop
// duplicate host names (keeping the best preference). If a host is one of self_names
// (case-insensitive), it and every host of equal or worse preference are dropped: mail
// must only move closer to the best MX; nothing left means loops_to_self. A lone record
// whose host is "" or "." is null MX (RFC 7505). Host names are lower-cased and lose a
// trailing dot. No records at all is ok with no hosts (the caller does implicit MX).
mx_plan plan_mx(std::vector<mx_record> records, std::span<const std::string> self_names,
                std::mt19937_64& rng);

// The MX-rollup key: destinations whose sorted, lower-cased, de-duplicated MX host name
// set is identical share one key "mx:a.example,b.example"; an implicit MX gets
// "host:<domain>".
std::string site_key(std::span<const mx_record> hosts, bool implicit_mx, std::string_view domain);

// Lower-cases ASCII and drops the trailing dots: the form every name is compared in.
std::string normalize_name(std::string_view name);

}  // namespace sluice::dns
