// record.h: the versioned binary encoding of a stored message's envelope and metadata.
// Untrusted input: records read back from the LMDB file (validated, never trusted).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/envelope.h"

namespace sluice::store {

// What the receiving side knew about a message besides its SMTP envelope.
struct message_metadata {
  int64_t received_at_ms = 0;   // unix time in milliseconds
  std::string connector;        // receive connector name
  std::string client_address;   // peer IP address as text
  std::string client_helo;      // HELO/EHLO argument as given
  std::string auth_user;        // authenticated user, "" if none
  uint64_t body_size = 0;       // bytes
  uint32_t body_chunks = 0;     // entries in the `bodies` database
};

inline constexpr uint8_t record_version = 1;

std::string encode_record(const smtp::envelope& env, const message_metadata& meta);

// False, with `error` set, for any record that is not a complete, well-formed version 1
// record (truncated, trailing bytes, unknown version, out-of-range enum values). The
// outputs are unspecified on failure.
bool decode_record(std::string_view bytes, smtp::envelope& env, message_metadata& meta,
                   std::string& error);

// ---- categorizer records (schema.h: hops, delivery, reports) ----

// What a delivery queue is doing, as `sluicectl queue list` shows it.
enum class hop_status : uint8_t {
  active,     // a delivery to this hop is in progress
  ready,      // items waiting, nothing in the way
  retry,      // the last attempt failed temporarily; waiting for next_retry_ms
  suspended,  // held by the administrator
};
std::string_view to_string(hop_status s) noexcept;

struct hop_record {
  std::string key;               // route::table::hop_key text
  hop_status status = hop_status::ready;
  uint64_t items = 0;            // delivery items queued (messages for this hop)
  uint64_t recipients = 0;       // recipients in those items
  int64_t oldest_ms = 0;         // received_at of the oldest item's message; 0 if empty
  int64_t next_retry_ms = 0;     // 0 = none scheduled
  std::string last_error;        // "" = none
  // With status suspended: when the administrator's suspension ends by itself (unix ms);
  // 0 = until resumed. Version 2 added it; version 1 records decode with 0.
  int64_t suspended_until_ms = 0;
};
// Whether the hop is held by the administrator at `now_ms` (a suspension whose time has
// passed no longer holds anything, whatever the record's status still says).
bool suspended_at(const hop_record& h, int64_t now_ms) noexcept;

enum class item_state : uint8_t { queued, in_flight, deferred };

// Version 2 added last_error and last_attempt_ms, version 3 delay_reported, version 4 held;
// older records decode with them empty (false).
struct delivery_item_record {
  item_state state = item_state::queued;
  uint32_t attempts = 0;
  int64_t received_at_ms = 0;    // the message's, so the hop's oldest age needs no lookup
  int64_t next_attempt_ms = 0;   // 0 = as soon as possible
  std::vector<uint32_t> recipients;  // indices into the message's envelope recipients
  std::string last_error;        // the last temporary failure, "451 4.4.1 mx.example[1.2.3.4]: ..."
  int64_t last_attempt_ms = 0;   // unix ms of the last attempt; 0 = never tried
  // A delay report for this item is already pending or sent: the engine asks for one once.
  bool delay_reported = false;
  // Held by the administrator (`sluicectl message hold`): not delivered until released.
  bool held = false;
};

// What a pending report says happened to a recipient: the RFC 3464 Action values that a
// DSN generator reports (expanded is not one: sluice does not expand lists).
enum class report_action : uint8_t { failed, delayed, delivered, relayed };
std::string_view to_string(report_action a) noexcept;  // "failed", "delayed", ...

// One pending delivery-status report entry of a message (schema.h: reports), waiting for
// the DSN generator. A message's list holds each (recipient, action) pair at most once.
// Version 2 added remote_mta, diagnostic and at_ms, version 3 action and
// will_retry_until_ms; older records decode with them empty (action failed).
struct report_entry {
  uint32_t recipient = 0;  // index into the envelope's recipients
  std::string status;      // enhanced status code, "5.1.1"
  std::string reason;      // "unknown recipient"
  std::string remote_mta;  // who answered, "mx.example[1.2.3.4]"; "" for sluice itself
  std::string diagnostic;  // the full reply, "550 5.1.1 <x@y>: no such user", or sluice's own text
  int64_t at_ms = 0;       // unix ms of the outcome; 0 = unknown (version 1 records)
  report_action action = report_action::failed;
  int64_t will_retry_until_ms = 0;  // delayed only: when the message expires (Will-Retry-Until)
};

std::string encode_hop(const hop_record& h);
bool decode_hop(std::string_view bytes, hop_record& out, std::string& error);
std::string encode_item(const delivery_item_record& item);
void encode_item(const delivery_item_record& item, std::string& out);  // reuses out's capacity
bool decode_item(std::string_view bytes, delivery_item_record& out, std::string& error);
std::string encode_reports(const std::vector<report_entry>& entries);
bool decode_reports(std::string_view bytes, std::vector<report_entry>& out, std::string& error);

}  // namespace sluice::store
