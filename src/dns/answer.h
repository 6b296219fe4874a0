// answer.h: a DNS response as c-ares hands it to the answer callback, made into the resolver's answer.
// Untrusted input: the raw response from a name server (c-ares parses the records; message.h reads the TTLs).
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "dns/cache.h"

namespace sluice::dns {

// What one question's response comes to: records (MX hosts normalized, or address texts in
// answer order) with the smallest TTL capped at max_ttl_s; NODATA or NXDOMAIN with the RFC 2308
// negative TTL capped at negative_ttl_s; anything else (malformed included) failed, never
// cached. `type` is ns_t_mx, ns_t_a or ns_t_aaaa; `status` the callback's c-ares status.
// Pure: the resolver calls it on the loop thread, the fuzz driver on raw bytes.
answer make_answer(int type, int status, std::span<const uint8_t> message, uint32_t max_ttl_s,
                   uint32_t negative_ttl_s);

// The text form of an IPv4 or IPv6 address ("192.0.2.1", "2001:db8::1"); "" if it has none.
std::string address_text(int family, const void* addr);

}  // namespace sluice::dns
