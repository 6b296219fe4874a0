// tracking_log.cc: CSV formatting of message tracking events.
// Untrusted input: addresses and texts that came from remote clients and servers.
#include "log/tracking_log.h"

#include "base/clock.h"
#include "log/protocol_log.h"

namespace sluice::log {

std::string_view to_string(tracking_event e) {
  switch (e) {
    case tracking_event::receive: return "RECEIVE";
    case tracking_event::submit: return "SUBMIT";
    case tracking_event::route: return "ROUTE";
    case tracking_event::deliver: return "DELIVER";
    case tracking_event::defer: return "DEFER";
    case tracking_event::fail: return "FAIL";
    case tracking_event::dsn: return "DSN";
    case tracking_event::expire: return "EXPIRE";
    case tracking_event::rule: return "RULE";
    case tracking_event::remove: return "REMOVE";
    case tracking_event::bounce: return "BOUNCE";
  }
  return "UNKNOWN";
}

void append_tracking_event(std::string& out, std::string_view time, const tracking_record& r) {
  out += time;
  out.push_back(',');
  out += to_string(r.event);
  out.push_back(',');
  append_csv_field(out, r.queue_id);
  out.push_back(',');
  append_csv_field(out, r.sender.empty() ? std::string_view("<>") : r.sender);
  out.push_back(',');
  // Joined first so that quoting covers the whole list: a ';' inside a (quoted) local part
  // stays inside the field, and the field count never changes.
  std::string joined;
  for (size_t i = 0; i < r.recipients.size(); ++i) {
    if (i) joined.push_back(';');
    joined += r.recipients[i];
  }
  append_csv_field(out, joined);
  out.push_back(',');
  append_csv_field(out, r.connector);
  out.push_back(',');
  append_csv_field(out, r.detail);
  out.push_back('\n');
}

void append_tracking_event(std::string& out, const tracking_record& r) {
  append_tracking_event(out, base::iso8601_now_utc(), r);
}

const char* tracking_log_header() { return "date-time,event,queue-id,sender,recipients,connector,detail\n"; }

}  // namespace sluice::log
