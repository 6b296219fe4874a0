// dsn.h: RFC 3464 delivery status notifications: who gets one (RFC 3461 NOTIFY) and the report itself
// (RFC 6522 multipart/report, RFC 3463 codes, RFC 3834 Auto-Submitted, RFC 6533 for SMTPUTF8 originals).
// Untrusted input: remote replies, envelope addresses, ENVID/ORCPT and the original message's content.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "smtp/envelope.h"

namespace sluice::dsn {

enum class action : uint8_t { failed, delayed, delivered, relayed };  // RFC 3464 2.3.3 Action values

struct recipient_report {
  std::string final_recipient;     // the envelope recipient address, e.g. "user@example.com"
  std::string original_recipient;  // the stored ORCPT, "rfc822;User@Example.com" (smtp::recipient::orcpt), "" if none
  action what = action::failed;
  std::string status;               // RFC 3463 "5.1.1"; malformed or empty becomes the action's x.0.0
  std::string remote_mta;           // "mx1.example.net[192.0.2.1]:25" or "" (sluice itself)
  std::string diagnostic;           // the reply as given, "550 5.1.1 <x@y>: no such user" (untrusted text);
                                    // text that is no SMTP reply (sluice's own) is typed "X-Sluice;", not "smtp;"
  int64_t last_attempt_ms = 0;      // unix ms, 0 = unknown
  int64_t will_retry_until_ms = 0;  // delayed only
};

struct original_message {
  const smtp::envelope* envelope = nullptr;  // the original's envelope (sender, RET, ENVID, SMTPUTF8, recipients)
  std::string queue_id;                      // the original's queue id text
  int64_t received_at_ms = 0;
  std::span<const std::string_view> body;  // the original content (headers + body), as chunks, dot-unstuffed
  uint64_t body_size = 0;                  // its size; the chunks' total counts when larger
};

struct settings {
  std::string reporting_mta;               // this host's name
  uint64_t return_content_limit = 50'000;  // larger originals are returned as headers only
};

struct report {
  std::string content;     // the whole DSN message (RFC 5322, CRLF line ends)
  std::string recipient;   // the envelope recipient: the original's sender
  bool eight_bit = false;  // content has 8-bit bytes (send with BODY=8BITMIME)
  bool smtputf8 = false;   // needs SMTPUTF8 (non-ASCII addresses)
};

// One report for one event of one message: all `recipients` given, at least one (the caller groups them:
// failures in one report, delays in one, delivered/relayed in one). `dsn_id` names the DSN itself (its
// Message-ID's left part; it also seeds the MIME boundary, which is changed if the content holds it).
// The kind (subject, text, what is returned) is a failure if any recipient failed, else a delay if any is
// delayed, else a success. The original is returned whole (message/rfc822) for RET=FULL, or for a failure
// without RET; otherwise, or when it is larger than the limit or has lines SMTP cannot carry (over 998
// octets, NUL), only its header section (text/rfc822-headers). Line ends of the returned copy become CRLF.
// Pure and synchronous: nothing is kept; `m.body` is only read during the call.
report compose(const original_message& m, std::span<const recipient_report> recipients, const settings& s,
               int64_t now_ms, std::string_view dsn_id);

// Whether recipient `index` of `env` gets a report of kind `a`: never for the null sender (a DSN's own sender is
// <>, so this also means never a DSN about a DSN); never with NOTIFY=NEVER; failed: NOTIFY absent or including
// FAILURE; delayed: NOTIFY including DELAY, or NOTIFY absent and `delay_without_notify`; delivered/relayed:
// NOTIFY including SUCCESS only. An index past the recipients gets none.
bool wanted(const smtp::envelope& env, std::size_t index, action a, bool delay_without_notify);

}  // namespace sluice::dsn
