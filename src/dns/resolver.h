// resolver.h: c-ares on a libuv loop: the mail domain's MX hosts and their addresses (RFC 5321 section 5), cached by TTL.
// Untrusted input: DNS responses from the configured name servers (parsed in resolver.cc and message.cc).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dns/mx.h"
#include "net/loop.h"
#include "net/poll.h"

namespace sluice::dns {

struct resolver_settings {
  std::vector<std::string> servers;  // "127.0.0.1:5353", "127.0.0.1" (port 53), "[::1]:5353"; empty = /etc/resolv.conf
  uint32_t timeout_ms = 5000;        // per try
  uint32_t tries = 2;
  uint32_t negative_ttl_s = 60;      // cap on caching NXDOMAIN/NODATA (the SOA minimum when smaller); failures: never
  uint32_t max_ttl_s = 86400;        // cap on positive TTLs
  uint32_t max_addresses = 5;        // per destination, over all hosts (Postfix: smtp_mx_address_limit); 0 = no limit
  bool ipv6 = true;                  // ask AAAA as well as A
  std::vector<std::string> self_names;  // this host's names for the loops-to-self check (lower-case)
  uint32_t cache_entries = 4096;     // bound on cached (name, type) answers; 0 = no cache

  bool operator==(const resolver_settings&) const = default;
};

struct destination {
  lookup_status status = lookup_status::ok;
  std::string detail;        // human text for DEFER/FAIL logs: "MX lookup for x.example: SERVFAIL"
  bool implicit_mx = false;  // no MX records: the domain's own A/AAAA
  // In try order; hosts whose address lookups all failed are dropped (if one failed
  // temporarily and no host has addresses, the status is temporary, not no_addresses).
  std::vector<mx_host> hosts;
  // site_key() of the whole MX set after the loops-to-self cut (not only the hosts that
  // got addresses), so one site keeps one key while a host's A lookup flaps. Set when ok.
  std::string site_key;
  uint32_t ttl_s = 0;        // smallest TTL that went into this answer
};

struct resolver_stats {
  uint64_t lookups = 0;       // resolve_mail_domain and resolve_host calls
  uint64_t cache_hits = 0;    // per (name, type) question answered from the cache
  uint64_t cache_misses = 0;  // per (name, type) question that went to the network
  uint64_t failures = 0;      // lookups answered temporary
};

// One per loop thread; every member function is for that thread only.
// Callbacks: each lookup's `done` is called exactly once, on the loop thread, from a
// later loop turn than the call that asked (never from inside resolve_*), unless the
// resolver is destroyed first. A callback may start new lookups or destroy the resolver.
class resolver {
 public:
  // `error` is set (and every lookup answers temporary) if c-ares could not be
  // initialised or a server string is bad; validate servers first with parse_server().
  resolver(net::loop& l, resolver_settings settings, std::string& error);
  ~resolver();  // cancels every pending lookup: their callbacks are not called after destruction begins
  resolver(const resolver&) = delete;
  resolver& operator=(const resolver&) = delete;

  // MX of `domain` (IDNA A-label; lower-cased here), then A (and AAAA) of each host in
  // plan order, stopping once max_addresses addresses are collected. No MX records
  // (NODATA) means implicit MX: the domain itself at preference 0. NXDOMAIN and failures
  // of the MX query never fall back to A/AAAA.
  void resolve_mail_domain(std::string domain, std::function<void(destination&&)> done);
  // A and AAAA of one host (smart hosts); an IP literal ("192.0.2.1", "[192.0.2.1]",
  // "[IPv6:2001:db8::1]", "::1") answers ok with itself. NXDOMAIN for every family is
  // nxdomain, a name without addresses is no_addresses.
  void resolve_host(std::string name, std::function<void(lookup_status, std::vector<std::string> addresses,
                                                         std::string detail)> done);
  const resolver_stats& stats() const;
  // Lookups asked and not yet answered (on the wire, or answered and waiting for their
  // callback's loop turn). A resolver replaced by a reload lives until this is false, so
  // every lookup it took still gets its answer.
  bool busy() const;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

// "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:5353".
// The address is returned without brackets; the port defaults to 53.
bool parse_server(std::string_view text, std::string& address, uint16_t& port, std::string& error);

}  // namespace sluice::dns
