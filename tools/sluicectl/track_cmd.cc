// track_cmd.cc: `sluicectl track search`: filters the message tracking log (tracking.csv and its rotated files).
// Untrusted input: the tracking log's CSV lines, whose addresses and reply texts came from remote hosts.
#include <fmt/format.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common.h"
#include "rules/rules.h"

namespace sluice::ctl {

namespace {

struct search_options {
  std::string sender, recipient, id, event, since, until, log_dir;
};

// One line of the log, taken apart (log/tracking_log.h writes them).
struct tracking_line {
  std::string time;  // as logged, ISO 8601 UTC
  int64_t time_ms = 0;
  std::string event, queue_id, sender;
  std::vector<std::string> recipients;
  std::string connector, detail;
  std::string file;  // which log file it came from
};

// Where an event comes in a message's life: arrival, then rules and routing, then what
// became of each recipient, then the report about it.
int life_stage(std::string_view event) {
  if (event == "RECEIVE" || event == "SUBMIT") return 0;
  if (event == "RULE") return 1;
  if (event == "ROUTE") return 2;
  if (event == "DSN") return 4;
  return 3;
}

// RFC 4180 fields of one line: quoted ("" inside is one quote) or bare. nullopt for a
// line that is not well-formed (an unclosed quote, text after a closing quote).
std::optional<std::vector<std::string>> split_csv(std::string_view line) {
  std::vector<std::string> fields;
  size_t i = 0;
  while (true) {
    std::string field;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) return std::nullopt;
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(line[i++]);
      }
      if (i < line.size() && line[i] != ',') return std::nullopt;
    } else {
      size_t end = line.find(',', i);
      if (end == std::string_view::npos) end = line.size();
      field.assign(line.substr(i, end - i));
      if (field.find('"') != std::string::npos) return std::nullopt;
      i = end;
    }
    fields.push_back(std::move(field));
    if (i >= line.size()) return fields;
    ++i;  // the comma
  }
}

int number(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// ISO 8601 as an operator types it or the log writes it: YYYY-MM-DD, optionally
// [T or space]HH:MM[:SS[.fff]], optionally Z or +HH:MM/-HH:MM. No zone means UTC, as the
// log is written. Unix milliseconds, or nullopt.
std::optional<int64_t> parse_iso8601(std::string_view s) {
  if (s.size() < 10 || s[4] != '-' || s[7] != '-' || !all_digits(s.substr(0, 4)) || !all_digits(s.substr(5, 2)) ||
      !all_digits(s.substr(8, 2)))
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = number(s.substr(0, 4)) - 1900;
  tm.tm_mon = number(s.substr(5, 2)) - 1;
  tm.tm_mday = number(s.substr(8, 2));
  int64_t ms = 0, offset_s = 0;
  s.remove_prefix(10);
  if (!s.empty() && (s[0] == 'T' || s[0] == 't' || s[0] == ' ')) {
    if (s.size() < 6 || s[3] != ':' || !all_digits(s.substr(1, 2)) || !all_digits(s.substr(4, 2))) return std::nullopt;
    tm.tm_hour = number(s.substr(1, 2));
    tm.tm_min = number(s.substr(4, 2));
    s.remove_prefix(6);
    if (!s.empty() && s[0] == ':') {
      if (s.size() < 3 || !all_digits(s.substr(1, 2))) return std::nullopt;
      tm.tm_sec = number(s.substr(1, 2));
      s.remove_prefix(3);
      if (!s.empty() && (s[0] == '.' || s[0] == ',')) {
        size_t n = 1;
        while (n < s.size() && std::isdigit(static_cast<unsigned char>(s[n]))) ++n;
        if (n == 1) return std::nullopt;
        std::string frac(s.substr(1, std::min<size_t>(n - 1, 3)));
        frac.resize(3, '0');
        ms = number(frac);
        s.remove_prefix(n);
      }
    }
    if (s == "Z" || s == "z") {
      s = {};
    } else if (s.size() == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':' && all_digits(s.substr(1, 2)) &&
               all_digits(s.substr(4, 2))) {
      offset_s = (number(s.substr(1, 2)) * 3600 + number(s.substr(4, 2)) * 60) * (s[0] == '-' ? -1 : 1);
      s = {};
    }
  }
  if (!s.empty() || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return std::nullopt;
  return (static_cast<int64_t>(timegm(&tm)) - offset_s) * 1000 + ms;
}

// --since/--until: an ISO 8601 time, or a duration back from now ("90s", "30m", "2h", "3d", "1w").
int64_t parse_time_bound(const std::string& text, const char* option, int64_t now) {
  if (auto t = parse_iso8601(text)) return *t;
  if (text.size() >= 2 && all_digits(std::string_view(text).substr(0, text.size() - 1)) && text.size() <= 12) {
    const int64_t n = std::stoll(text.substr(0, text.size() - 1));
    int64_t unit = 0;
    switch (text.back()) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
    }
    if (unit != 0) return now - n * unit * 1000;
  }
  throw command_error{fmt::format("{} '{}': not an ISO 8601 time (2026-12-01T15:00:00Z) or a duration (2h, 3d)",
                                  option, terminal_text(text))};
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Case-insensitive: a pattern with '*' or '?' is a glob that must match the whole text
// (rules::glob_match, as transport rules match addresses); any other matches anywhere in it.
bool address_matches(std::string_view pattern, std::string_view text) {
  if (pattern.find_first_of("*?") != std::string_view::npos) return rules::glob_match(pattern, text);
  auto it = std::search(text.begin(), text.end(), pattern.begin(), pattern.end(),
                        [](char a, char b) { return lower(a) == lower(b); });
  return it != text.end();
}

const char* const event_names[] = {"RECEIVE", "SUBMIT", "ROUTE",  "DELIVER", "DEFER", "FAIL",
                                   "DSN",     "EXPIRE", "RULE",   "REMOVE",  "BOUNCE"};

// --event: one name or a comma-separated list, any case.
std::vector<std::string> parse_events(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string name = text.substr(start, end - start);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
    if (std::find(std::begin(event_names), std::end(event_names), name) == std::end(event_names))
      throw command_error{fmt::format("--event '{}': not one of RECEIVE, SUBMIT, ROUTE, DELIVER, DEFER, FAIL, DSN, "
                                      "EXPIRE, RULE, REMOVE, BOUNCE",
                                      terminal_text(name))};
    out.push_back(std::move(name));
    start = end + 1;
  }
  return out;
}

// The rotated files (tracking.<YYYYMMDD-HHMMSS-NNNN>.csv, as log::append_file names them),
// oldest first since the names sort by time, then tracking.csv.
std::vector<std::filesystem::path> log_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw command_error{fmt::format("no log directory {}", terminal_text(dir))};
  std::vector<fs::path> rotated;
  const std::string prefix = "tracking.", ext = ".csv";
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != prefix.size() + 20 + ext.size() || !name.starts_with(prefix) || !name.ends_with(ext)) continue;
    const std::string stamp = name.substr(prefix.size(), 20);
    if (stamp[8] != '-' || stamp[15] != '-' || !all_digits(stamp.substr(0, 8)) ||
        !all_digits(stamp.substr(9, 6)) || !all_digits(stamp.substr(16)))
      continue;
    rotated.push_back(entry.path());
  }
  std::sort(rotated.begin(), rotated.end());
  if (fs::exists(fs::path(dir) / "tracking.csv", ec)) rotated.push_back(fs::path(dir) / "tracking.csv");
  if (rotated.empty()) throw command_error{fmt::format("no tracking log in {}", terminal_text(dir))};
  return rotated;
}

std::optional<tracking_line> parse_line(std::string_view text) {
  auto fields = split_csv(text);
  if (!fields || fields->size() != 7) return std::nullopt;
  auto& f = *fields;
  auto ms = parse_iso8601(f[0]);
  if (!ms) return std::nullopt;
  tracking_line l;
  l.time = std::move(f[0]);
  l.time_ms = *ms;
  l.event = std::move(f[1]);
  l.queue_id = std::move(f[2]);
  l.sender = std::move(f[3]);
  for (size_t start = 0; !f[4].empty() && start <= f[4].size();) {
    size_t end = f[4].find(';', start);
    if (end == std::string::npos) end = f[4].size();
    l.recipients.push_back(f[4].substr(start, end - start));
    start = end + 1;
  }
  l.connector = std::move(f[5]);
  l.detail = std::move(f[6]);
  return l;
}

struct filter {
  search_options o;
  std::vector<std::string> events;
  std::optional<int64_t> since, until;

  bool operator()(const tracking_line& l) const {
    if (!o.id.empty() && !std::equal(o.id.begin(), o.id.end(), l.queue_id.begin(), l.queue_id.end(),
                                     [](char a, char b) { return lower(a) == lower(b); }))
      return false;
    if (!events.empty() && std::find(events.begin(), events.end(), l.event) == events.end()) return false;
    if (since && l.time_ms < *since) return false;
    if (until && l.time_ms > *until) return false;
    if (!o.sender.empty() && !address_matches(o.sender, l.sender)) return false;
    if (!o.recipient.empty() &&
        std::none_of(l.recipients.begin(), l.recipients.end(),
                     [&](const std::string& r) { return address_matches(o.recipient, r); }))
      return false;
    return true;
  }
};

std::string or_dash(const std::string& s) { return s.empty() ? std::string("-") : terminal_text(s); }

void print_line(const tracking_line& l, bool json) {
  if (json) {
    std::string rcpts;
    for (const auto& r : l.recipients) rcpts += (rcpts.empty() ? "" : ",") + json_string(r);
    fmt::print("{{\"time\":{},\"time_ms\":{},\"event\":{},\"queue_id\":{},\"sender\":{},\"recipients\":[{}],"
               "\"connector\":{},\"detail\":{},\"file\":{}}}\n",
               json_string(l.time), l.time_ms, json_string(l.event), json_string(l.queue_id), json_string(l.sender),
               rcpts, json_string(l.connector), json_string(l.detail), json_string(l.file));
    return;
  }
  std::string rcpts;
  for (const auto& r : l.recipients) rcpts += (rcpts.empty() ? "" : ",") + terminal_text(r);
  fmt::print("{}  {:<7}  {}  {} -> {}  {}  {}\n", terminal_text(l.time), terminal_text(l.event), or_dash(l.queue_id),
             or_dash(l.sender), rcpts.empty() ? "-" : rcpts, or_dash(l.connector), or_dash(l.detail));
}

void track_search(const global_options& g, const search_options& o) {
  filter f{o, {}, {}, {}};
  const int64_t now = now_ms();
  if (!o.event.empty()) f.events = parse_events(o.event);
  if (!o.since.empty()) f.since = parse_time_bound(o.since, "--since", now);
  if (!o.until.empty()) f.until = parse_time_bound(o.until, "--until", now);
  uint64_t malformed = 0;
  // Each worker loop writes its events in batches, so a file is in time order only to
  // within a flush or so: lines wait here until one a minute newer is read, and a message's
  // life comes out in the order it happened. Within one millisecond the file order is the
  // order in which the loops flushed, not the order of the events (a ROUTE from the
  // categorizing loop can land before the RECEIVE it follows), so equal times go in the
  // order of a message's life, then in file order.
  constexpr int64_t reorder_window_ms = 60'000;
  using sort_key = std::pair<int64_t, int>;
  std::multimap<sort_key, tracking_line> pending;
  auto emit_before = [&](int64_t limit) {
    while (!pending.empty() && pending.begin()->first.first < limit) {
      print_line(pending.begin()->second, g.json);
      pending.erase(pending.begin());
    }
  };
  for (const auto& path : log_files(resolve_log_dir(g, o.log_dir))) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw command_error{fmt::format("cannot read {}", terminal_text(path.string()))};
    std::string text;
    while (std::getline(in, text)) {
      if (!text.empty() && text.back() == '\r') text.pop_back();
      if (text.empty() || text.starts_with("date-time,")) continue;  // the header of each file
      auto l = parse_line(text);
      if (!l) {
        ++malformed;
        continue;
      }
      if (!f(*l)) continue;
      l->file = path.filename().string();
      const sort_key key{l->time_ms, life_stage(l->event)};
      pending.emplace(key, std::move(*l));
      emit_before(pending.rbegin()->first.first - reorder_window_ms);
    }
  }
  emit_before(INT64_MAX);
  std::fflush(stdout);
  if (malformed != 0) fmt::print(stderr, "sluicectl: {} malformed tracking log line{} skipped\n", malformed,
                                 malformed == 1 ? "" : "s");
}

}  // namespace

void add_track_commands(CLI::App& app, global_options& g) {
  auto* track = app.add_subcommand("track", "the message tracking log");
  track->require_subcommand(1);
  track->fallthrough();
  auto o = std::make_shared<search_options>();
  auto* search = track->add_subcommand(
      "search", "tracking events matching every filter given, oldest first, rotated files included");
  search->fallthrough();
  search->add_option("--sender", o->sender, "sender contains this, or matches this * ? glob (any case)");
  search->add_option("--recipient", o->recipient, "a recipient contains this, or matches this * ? glob (any case)");
  search->add_option("--id", o->id, "queue id: a message's whole life");
  search->add_option("--event", o->event, "RECEIVE, SUBMIT, ROUTE, DELIVER, DEFER, FAIL, DSN, EXPIRE, RULE, REMOVE or BOUNCE "
                                          "(comma-separated list)");
  search->add_option("--since", o->since, "not before: ISO 8601 (UTC unless a zone is given) or 2h, 3d ago");
  search->add_option("--until", o->until, "not after: ISO 8601 (UTC unless a zone is given) or 2h, 3d ago");
  search->add_option("--log-dir", o->log_dir, "log directory (default: [server] log_dir, or log beside the queue)");
  search->callback([&g, o] { track_search(g, *o); });
}

}  // namespace sluice::ctl
