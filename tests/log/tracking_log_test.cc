// tracking_log_test.cc: tracking log lines: seven CSV fields, every event name, hostile addresses.
#include <criterion/criterion.h>

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "log/tracking_log.h"

using namespace sluice::log;

Test(log_tracking, line_has_seven_fields_in_order) {
  std::string_view rcpts[] = {"a@b.test", "c@d.test"};
  tracking_record r{tracking_event::route, "0001ABCD", "s@x.test", rcpts, "Internet", "next hop d.test"};
  std::string out;
  append_tracking_event(out, "2026-11-28T10:00:00.000Z", r);
  std::string want =
      "2026-11-28T10:00:00.000Z,ROUTE,\"0001ABCD\",\"s@x.test\",\"a@b.test;c@d.test\",\"Internet\",\"next hop d.test\"\n";
  cr_assert_str_eq(out.c_str(), want.c_str());
}

Test(log_tracking, every_event_has_its_name) {
  const std::pair<tracking_event, const char*> all[] = {
      {tracking_event::receive, "RECEIVE"}, {tracking_event::submit, "SUBMIT"}, {tracking_event::route, "ROUTE"},
      {tracking_event::deliver, "DELIVER"}, {tracking_event::defer, "DEFER"},   {tracking_event::fail, "FAIL"},
      {tracking_event::dsn, "DSN"},         {tracking_event::expire, "EXPIRE"}, {tracking_event::rule, "RULE"},
      {tracking_event::remove, "REMOVE"},   {tracking_event::bounce, "BOUNCE"}};
  for (const auto& [e, name] : all) {
    std::string out;
    append_tracking_event(out, "T", tracking_record{e, "q", "s", {}, "", ""});
    std::string want = std::string("T,") + name + ",\"q\",\"s\",\"\",\"\",\"\"\n";
    cr_assert_str_eq(out.c_str(), want.c_str());
  }
}

Test(log_tracking, null_sender_is_written_as_angle_brackets) {
  std::string out;
  append_tracking_event(out, "T", tracking_record{tracking_event::dsn, "q", "", {}, "", "5.1.1"});
  cr_assert(out.find(",\"<>\",") != std::string::npos, "%s", out.c_str());
}

Test(log_tracking, hostile_fields_cannot_break_or_forge_lines) {
  std::string_view rcpts[] = {"\"x\r\nT,RULE\"@d.test", "y@d.test"};
  tracking_record r{tracking_event::rule, "q", "a\",\"b@c", rcpts, "C", "tag \"ext\"\n"};
  std::string out;
  append_tracking_event(out, "T", r);
  cr_assert_eq(std::count(out.begin(), out.end(), '\n'), 1, "%s", out.c_str());
  // Quoted CSV: seven fields whatever the content.
  static const std::regex line("^[^,]*,[A-Z]+(,\"([^\"]|\"\")*\"){5}\n$");
  cr_assert(std::regex_match(out, line), "%s", out.c_str());
  cr_assert(out.find("\"a\"\",\"\"b@c\"") != std::string::npos, "%s", out.c_str());
  cr_assert(out.find("\\x0D\\x0A") != std::string::npos, "%s", out.c_str());
}

Test(log_tracking, current_time_overload_writes_iso_stamp) {
  std::string out;
  append_tracking_event(out, tracking_record{tracking_event::submit, "q", "s", {}, "Default", ""});
  static const std::regex re("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z,SUBMIT,.*\n$");
  cr_assert(std::regex_match(out, re), "%s", out.c_str());
  std::string header = tracking_log_header();
  cr_assert_str_eq(header.c_str(), "date-time,event,queue-id,sender,recipients,connector,detail\n");
}
