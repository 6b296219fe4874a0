// params.h: ESMTP parameters of MAIL and RCPT (RFC 1870 SIZE, RFC 6152 8BITMIME,
// RFC 3030 BINARYMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN, RFC 4954 AUTH) and xtext.
// Untrusted input: the parameter text after the path, from a remote client.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "smtp/envelope.h"
#include "smtp/reply.h"

namespace sluice::smtp {

// Which extensions the session offers; a parameter of an extension not offered is
// unknown (555 5.5.4), as RFC 5321 4.1.1.11 asks.
struct param_extensions {
  bool eightbitmime = true;
  bool binarymime = true;   // RFC 3030, offered with CHUNKING
  bool smtputf8 = true;
  bool dsn = true;
  bool auth = false;
};

struct mail_params {
  std::optional<uint64_t> size;   // saturates at UINT64_MAX rather than overflowing
  body_type body = body_type::unspecified;
  bool smtputf8 = false;
  dsn_ret ret = dsn_ret::unspecified;
  std::string envid;              // xtext decoded
  std::optional<std::string> auth;  // AUTH= value, xtext decoded ("<>" kept as is)
};

struct rcpt_params {
  uint8_t notify = notify_unspecified;
  std::string orcpt;              // "addr-type;decoded address", "" if absent
};

// Replies on failure: 555 5.5.4 unknown, unoffered or repeated keyword;
// 501 5.5.4 a malformed value (SIZE=abc, NOTIFY=NEVER,SUCCESS, bad xtext).
std::optional<reply> parse_mail_params(std::string_view text, const param_extensions& ext, mail_params& out);
std::optional<reply> parse_rcpt_params(std::string_view text, const param_extensions& ext, rcpt_params& out);

// RFC 3461 4: xtext ("+" followed by two hex digits for anything outside 33..126,
// '+' and '='). Decoding accepts lower-case hex; returns false on malformed input.
bool xtext_decode(std::string_view in, std::string& out);
std::string xtext_encode(std::string_view in);

}  // namespace sluice::smtp
