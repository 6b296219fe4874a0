// tracking_log.h: the message tracking log: one CSV line per message event (pure formatting).
// Untrusted input: sender and recipient addresses and DSN/reply texts from remote hosts are
// logged, so every free-text field is CSV-quoted with control characters escaped.
#pragma once
#include <span>
#include <string>
#include <string_view>

namespace sluice::log {

// remove and bounce are the administrator's (sluicectl message remove / bounce): their
// detail names the admin's uid and whether the sender gets a DSN.
enum class tracking_event : unsigned char { receive, submit, route, deliver, defer, fail, dsn, expire, rule, remove, bounce };

// "RECEIVE", "SUBMIT", ... "RULE", "REMOVE", "BOUNCE".
std::string_view to_string(tracking_event e);

// One event. Views are borrowed for the call only.
struct tracking_record {
  tracking_event event = tracking_event::receive;
  std::string_view queue_id;    // as sluicectl shows it
  std::string_view sender;      // "" (the null sender) is written as <>
  std::span<const std::string_view> recipients;  // joined with ';' into one field
  std::string_view connector;   // receive connector (RECEIVE), send connector or next hop, "" if none
  std::string_view detail;      // reply, DSN status, rule name and actions...
};

// Appends one line: date-time,event,queue-id,sender,recipients,connector,detail.
// `time` is an ISO 8601 UTC stamp (base::iso8601_now_utc()); it is a parameter so that a
// batch of events shares one clock read and tests are deterministic.
void append_tracking_event(std::string& out, std::string_view time, const tracking_record& r);
// The same with the current time.
void append_tracking_event(std::string& out, const tracking_record& r);

// The CSV column names, written once at the top of a new file.
const char* tracking_log_header();

}  // namespace sluice::log
