// clock.h: wall-clock formatting for SMTP banners, Received: headers and logs.
#pragma once
#include <ctime>
#include <string>

namespace sluice::base {

// "Sat, 28 Nov 2026 10:08:41 +0000" (RFC 5322 date-time), in local time.
std::string rfc5322_date(std::time_t when);
std::string rfc5322_now();
// "2026-11-28T10:08:41.123Z" (UTC, milliseconds), for CSV logs.
std::string iso8601_now_utc();

}  // namespace sluice::base
