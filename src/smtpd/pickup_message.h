// pickup_message.h: turns a pickup-directory .eml file into an envelope and a body.
// Untrusted input: the file's content (written by any local program with access to the directory).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "smtp/envelope.h"

namespace sluice::smtpd {

struct pickup_result {
  bool ok = false;
  std::string error;        // why the file is unusable (it is renamed *.bad)
  smtp::envelope envelope;
  std::string body;         // CRLF line ends, X-Sender/X-Receiver and Bcc removed
};

// Envelope from X-Sender / X-Receiver when present (as Exchange's pickup directory does),
// else the sender from Sender: or From: and the recipients from To:, Cc: and Bcc:
// (Bcc: is removed from the message). Bare LF line ends are converted to CRLF, since
// scripts commonly write them; no SMTP framing is involved, so this is not a smuggling risk.
// A file whose Received: headers reach `max_received_headers` (counting the one pickup
// adds) is refused as looping, as smtpd refuses such a message (RFC 5321 6.3): a script
// that re-injects delivered mail must not circle it forever.
pickup_result parse_pickup_file(std::string_view content, uint64_t max_size, unsigned max_received_headers);

// The addresses of an RFC 5322 address list ("A <a@x>, b@y, \"Q, R\" <c@z>, group: d@w;").
std::vector<std::string> parse_address_list(std::string_view value);

}  // namespace sluice::smtpd
