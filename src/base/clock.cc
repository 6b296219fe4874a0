// clock.cc: RFC 5322 and ISO 8601 time formatting.
#include "base/clock.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace sluice::base {

std::string rfc5322_date(std::time_t when) {
  static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  localtime_r(&when, &tm);
  long off = tm.tm_gmtoff / 60;
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday],
                tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec, sign, off / 60, off % 60);
  return buf;
}

// Every message's Received: line and every log line ask for the time: the text changes
// once a second, so each thread formats it once a second (snprintf and the time-zone
// conversion were a per-message cost).
std::string rfc5322_now() {
  thread_local std::time_t cached_at = -1;
  thread_local std::string cached;
  const std::time_t now = std::time(nullptr);
  if (now != cached_at) {
    cached = rfc5322_date(now);
    cached_at = now;
  }
  return cached;
}

std::string iso8601_now_utc() {
  using namespace std::chrono;
  auto now = system_clock::now();
  const int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  const std::time_t t = system_clock::to_time_t(now);
  // "YYYY-MM-DDTHH:MM:SS." formatted once a second per thread; the milliseconds each time.
  thread_local std::time_t cached_at = -1;
  thread_local char seconds[32];
  thread_local size_t seconds_len = 0;
  if (t != cached_at) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    const int n = std::snprintf(seconds, sizeof seconds, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    seconds_len = n > 0 ? std::min(static_cast<size_t>(n), sizeof seconds - 1) : 0;
    cached_at = t;
  }
  std::string out;
  out.reserve(seconds_len + 4);
  out.append(seconds, seconds_len);
  out.push_back(static_cast<char>('0' + ms / 100));
  out.push_back(static_cast<char>('0' + ms / 10 % 10));
  out.push_back(static_cast<char>('0' + ms % 10));
  out.push_back('Z');
  return out;
}

}  // namespace sluice::base
