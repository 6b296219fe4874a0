// address.h: RFC 5321 4.1.2 reverse-path and forward-path parsing, with RFC 6531 UTF-8.
// Untrusted input: the argument of MAIL FROM: and RCPT TO: from a remote client.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "smtp/reply.h"

namespace sluice::smtp {

enum class path_kind : unsigned char { reverse, forward };

struct parsed_path {
  // Without angle brackets, source route removed; "" is the null reverse-path <>.
  // Quoted local parts keep their quotes and escapes exactly as sent.
  std::string address;
  // Text after the path (the ESMTP parameters), leading spaces removed.
  std::string_view params;
};

// Splits "<path> params" (or "path params" without brackets, as typed in telnet
// sessions) and validates the path. `utf8` says whether non-ASCII is permitted
// (the transaction declared SMTPUTF8). On failure returns the reply to send:
//   501 5.1.7 / 5.1.3  bad sender / recipient syntax, path, local part or domain too long
//   553 5.6.7          non-ASCII address without SMTPUTF8
// "<>" is accepted only as a reverse-path; "<postmaster>" (any case, no domain)
// only as a forward-path.
std::optional<reply> parse_path(std::string_view arg, path_kind kind, bool utf8, parsed_path& out);

// Validates a bare mailbox "local@domain" (no brackets); true if well formed.
bool valid_mailbox(std::string_view address, bool utf8);

// The domain after the last '@' outside a quoted local part, ASCII lower-cased;
// "" for the null sender or an unqualified address such as "postmaster".
// Domain literals are returned as written, e.g. "[192.0.2.1]".
std::string domain_of(std::string_view address);
// The local part (everything before that '@'), unchanged.
std::string_view local_part_of(std::string_view address);

// RFC 3629 well-formedness (no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace sluice::smtp
