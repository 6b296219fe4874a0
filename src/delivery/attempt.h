// attempt.h: the outcome of one delivery attempt, recipient by recipient: what SMTP, LMTP and Maildir delivery report.
// Untrusted input: reply texts from remote servers (carried as data, escaped where logged).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "smtp/reply.h"

namespace sluice::delivery {

// What became of one recipient in one attempt. Every transport (SMTP, LMTP, Maildir) and
// every synthetic outcome (DNS failure, expiry, a peer's SIZE limit) reports in these terms,
// so the store's deliver transaction and the DSN generator need to know no transport.
enum class recipient_outcome : uint8_t {
  delivered,  // the next hop took responsibility (2xx after the final dot, or written to disk)
  deferred,   // temporary: try again later (4xx, connection lost, DNS SERVFAIL, timeout)
  failed,     // permanent: never retried (5xx, NXDOMAIN, null MX, expiry)
};

// The outcome a reply means for its recipient: 2xx delivered, 5xx failed, anything else
// (4xx, or no reply at all) deferred.
inline recipient_outcome outcome_of(const smtp::reply& r) {
  if (r.code >= 200 && r.code < 300) return recipient_outcome::delivered;
  if (r.code >= 500) return recipient_outcome::failed;
  return recipient_outcome::deferred;
}

struct recipient_result {
  uint32_t recipient = 0;          // index into the message's envelope recipients
  recipient_outcome outcome = recipient_outcome::deferred;
  // The remote reply as given, or one sluice made up (code 451/4.4.1 for a lost connection,
  // 550/5.1.10 for null MX...). reply.enhanced is always set: a remote reply without an
  // enhanced code gets the RFC 3463 default for its class (2.0.0, 4.0.0, 5.0.0).
  smtp::reply reply;
};

struct attempt_result {
  std::vector<recipient_result> recipients;
  // Who answered: "mx1.example.net[192.0.2.1]:25", a Maildir root, an LMTP socket; "" when
  // no connection was made (DNS failure, expiry).
  std::string remote_mta;
  // "TLSv1.3 TLS_AES_256_GCM_SHA384 verified" / "... unverified"; "" for plaintext.
  std::string tls;
  // Delivered recipients who asked for NOTIFY=SUCCESS: written into a mailbox (Maildir, LMTP)
  // is final delivery (a "delivered" report); relayed to a next hop that offers DSN, the
  // request travels on and nothing is reported here; without DSN there, "relayed".
  bool final_delivery = false;
  bool next_hop_dsn = false;
};

}  // namespace sluice::delivery
