// protocol_log_test.cc: protocol log lines are well-formed CSV whatever the client sends.
#include <criterion/criterion.h>

#include <chrono>
#include <filesystem>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <regex>
#include <string>

#include "log/protocol_log.h"

using namespace sluice::log;

Test(log_protocol, event_line_has_eight_fields) {
  std::string out;
  append_event(out, "Default", 42, 7, "127.0.0.1:25", "192.0.2.1:40000", event::received, "MAIL FROM:<a@b.test>");
  static const std::regex re(
      "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z,\"Default\",42,7,127\\.0\\.0\\.1:25,192\\.0\\.2\\.1:40000,<,"
      "\"MAIL FROM:<a@b\\.test>\"\n$");
  cr_assert(std::regex_match(out, re), "%s", out.c_str());
}

Test(log_protocol, hostile_data_cannot_break_or_forge_lines) {
  std::string out;
  append_event(out, "Default", 1, 0, "l", "r", event::received, "x\",\"forged\r\n2026-01-01,\"other\"\x7f");
  cr_assert_eq(std::count(out.begin(), out.end(), '\n'), 1, "exactly one line: %s", out.c_str());
  cr_assert(out.find("\"x\"\",\"\"forged\\x0D\\x0A2026-01-01,\"\"other\"\"\\x7F\"\n") != std::string::npos, "%s",
            out.c_str());
}

Test(log_protocol, append_file_writes_header_once) {
  char tmpl[] = "/tmp/sluice-log-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/p.csv", error;
  {
    auto f = append_file::open(path, protocol_log_header(), error);
    cr_assert(f, "%s", error.c_str());
    f->append("a\n");
  }
  {
    auto f = append_file::open(path, protocol_log_header(), error);
    cr_assert(f, "%s", error.c_str());
    f->append("b\n");
  }
  FILE* in = fopen(path.c_str(), "r");
  char buf[512] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, in);
  fclose(in);
  std::string text(buf, n);
  cr_assert_eq(text, std::string(protocol_log_header()) + "a\nb\n");
  cr_assert(!append_file::open(dir + "/missing/p.csv", nullptr, error));
  cr_assert(error.find("cannot open") != std::string::npos);
  unlink(path.c_str());
  rmdir(dir.c_str());
}

Test(log_protocol, append_file_rotates_at_max_size_and_keeps_the_newest) {
  char tmpl[] = "/tmp/sluice-log-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/p.csv", error;
  auto f = append_file::open(path, "h\n", error, rotation{.max_size = 100, .keep = 2, .max_age_days = 30});
  cr_assert(f, "%s", error.c_str());
  const std::string line(39, 'x');
  for (int i = 0; i < 20; ++i) f->append(line + "\n");  // 40 bytes a line: two per file
  size_t rotated = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    cr_assert_leq(std::filesystem::file_size(e.path()), 100u, "%s over the cap", e.path().c_str());
    if (e.path().filename() != "p.csv") {
      ++rotated;
      cr_assert(e.path().filename().string().starts_with("p."), "%s", e.path().c_str());
    }
  }
  cr_assert_eq(rotated, 2u, "keep = 2");
  std::filesystem::remove_all(dir);
}

Test(log_protocol, append_file_counts_lines_it_cannot_write) {
  char tmpl[] = "/tmp/sluice-log-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/full.csv", error;
  std::filesystem::create_symlink("/dev/full", path);
  auto f = append_file::open(path, nullptr, error);
  cr_assert(f, "%s", error.c_str());
  uint64_t before = dropped_lines();
  f->append("one\ntwo\n");
  cr_assert_eq(dropped_lines() - before, 2u);
  std::filesystem::remove_all(dir);
}

Test(log_protocol, append_file_starts_a_new_file_on_a_new_day) {
  char tmpl[] = "/tmp/sluice-log-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/d.csv", error;
  auto f = append_file::open(path, "h\n", error);
  cr_assert(f, "%s", error.c_str());
  f->append("yesterday\n");
  auto when = std::filesystem::last_write_time(path) - std::chrono::hours(48);
  std::filesystem::last_write_time(path, when);
  f->append("today\n");
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) ++files, (void)e;
  cr_assert_eq(files, 2u, "the old day's file was rotated");
  FILE* in = fopen(path.c_str(), "r");
  char buf[64] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, in);
  fclose(in);
  cr_assert_eq(std::string(buf, n), "h\ntoday\n");
  std::filesystem::remove_all(dir);
}
