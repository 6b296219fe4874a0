// message.h: the TTLs a DNS response carries, which c-ares's record parsers do not return (MX TTL, SOA minimum).
// Untrusted input: the raw DNS response from a name server (any bytes: every read is bounds-checked).
#pragma once
#include <cstdint>
#include <optional>
#include <span>

namespace sluice::dns {

// The smallest TTL over the answer section's records (CNAMEs included: the chain is only
// as fresh as its shortest link). Empty if the message is malformed or has no answers.
std::optional<uint32_t> answer_ttl(std::span<const uint8_t> message);

// RFC 2308 section 5: a negative answer may be cached for min(SOA TTL, SOA MINIMUM) of
// the SOA in the authority section. Empty if there is none or the message is malformed.
std::optional<uint32_t> negative_ttl(std::span<const uint8_t> message);

}  // namespace sluice::dns
