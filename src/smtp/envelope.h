// envelope.h: the SMTP envelope of one message as received (RFC 5321, RFC 3461, RFC 6531).
// Untrusted input: every field comes from a remote client and is validated by the parser.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::smtp {

enum class body_type : uint8_t { unspecified, seven_bit, eight_bit_mime, binary_mime };
enum class dsn_ret : uint8_t { unspecified, full, headers };

// RFC 3461 NOTIFY as a bit set; `never` excludes the others.
enum notify_flags : uint8_t {
  notify_unspecified = 0,
  notify_never = 1,
  notify_success = 2,
  notify_failure = 4,
  notify_delay = 8,
};

struct recipient {
  std::string address;       // forward-path without angle brackets, e.g. "user@example.com"
  uint8_t notify = notify_unspecified;
  std::string orcpt;         // RFC 3461 ORCPT as "addr-type;address", xtext decoded; "" if absent
};

struct envelope {
  std::string helo;          // HELO/EHLO argument; "" if the client never greeted
  bool esmtp = false;        // greeted with EHLO
  std::string mail_from;     // reverse-path without angle brackets; "" is the null sender <>
  body_type body = body_type::unspecified;
  bool smtputf8 = false;
  std::optional<uint64_t> declared_size;  // SIZE= parameter
  dsn_ret ret = dsn_ret::unspecified;
  std::string envid;         // RFC 3461 ENVID, xtext decoded
  std::string auth_submitter;  // RFC 4954 MAIL FROM AUTH= parameter, "" if absent
  std::vector<recipient> recipients;
};

}  // namespace sluice::smtp
