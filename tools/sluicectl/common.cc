// common.cc: queue directory resolution and output formatting for sluicectl.
// Untrusted input: the TOML configuration file named by --config.
#include "common.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <toml++/toml.h>

#include "config/load_guard.h"

namespace sluice::ctl {

bool all_digits(std::string_view text, std::size_t max_length) {
  return !text.empty() && text.size() <= max_length && text.find_first_not_of("0123456789") == std::string_view::npos;
}

namespace {

// One [server] key of the config file, straight from the file (the rest of the
// configuration is the config module's business); nullopt when it is absent or empty.
std::optional<std::string> server_key(const std::string& config_file, const char* key) {
  toml::table config;
  try {
    std::ifstream in(config_file, std::ios::binary);
    if (!in) throw command_error{fmt::format("cannot read config {}: cannot open the file", config_file)};
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    // Text toml++ 3.3 cannot be handed safely is refused first (issue 13).
    if (auto h = config::find_toml_hazard(text))
      throw command_error{fmt::format("cannot read config {}:{}: {}", config_file, h->line, h->message)};
    config = toml::parse(text, config_file);
  } catch (const toml::parse_error& e) {
    throw command_error{fmt::format("cannot read config {}: {}", config_file, std::string(e.description()))};
  }
  auto value = config["server"][key].value<std::string>();
  if (!value || value->empty()) return std::nullopt;
  return value;
}

}  // namespace

std::string resolve_queue_dir(const global_options& g) {
  if (!g.queue_dir.empty()) return g.queue_dir;
  if (!g.config_file.empty()) {
    auto dir = server_key(g.config_file, "queue_dir");
    if (!dir) throw command_error{fmt::format("{} has no [server] queue_dir", g.config_file)};
    return *dir;
  }
  return "./var/queue";
}

std::string resolve_log_dir(const global_options& g, const std::string& explicit_dir) {
  if (!explicit_dir.empty()) return explicit_dir;
  if (!g.config_file.empty()) return server_key(g.config_file, "log_dir").value_or("./var/log");
  if (!g.queue_dir.empty()) {
    // The layout sluiced is given by default (var/queue beside var/log), kept for any root.
    std::filesystem::path q{g.queue_dir};
    if (!q.has_filename()) q = q.parent_path();
    return (q.parent_path() / "log").string();
  }
  return "./var/log";
}

std::string format_age(int64_t s) {
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

std::string format_bytes(uint64_t b) {
  if (b < 1024) return fmt::format("{} B", b);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

namespace {

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 if it is not one.
size_t utf8_sequence(std::string_view s) {
  auto byte = [&](size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0u; };
  auto cont = [&](size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) { return byte(i) >= lo && byte(i) <= hi; };
  unsigned c = byte(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c >= 0xE1 && c <= 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// A C1 control (U+0080..U+009F, e.g. U+009B CSI) as UTF-8: terminals act on these too.
bool is_c1(std::string_view seq) {
  return seq.size() == 2 && static_cast<unsigned char>(seq[0]) == 0xC2 && static_cast<unsigned char>(seq[1]) <= 0x9F;
}

// Calls keep(sequence) for printable text, and escape(bytes, at) for each control
// character (one byte, or the two of a C1 control) and for each byte that is not UTF-8.
template <typename Keep, typename Escape>
void classify(std::string_view s, Keep keep, Escape escape) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence(s.substr(i));
    std::string_view seq = s.substr(i, n == 0 ? 1 : n);
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7F)) || is_c1(seq)) escape(seq, i);
    else keep(seq);
    i += seq.size();
  }
}

}  // namespace

std::string json_string(std::string_view s) {
  std::string out = "\"";
  classify(
      s,
      [&](std::string_view seq) {
        if (seq == "\"") out += "\\\"";
        else if (seq == "\\") out += "\\\\";
        else out += seq;  // UTF-8 passes through (SMTPUTF8 addresses)
      },
      [&](std::string_view bad, size_t) {
        unsigned c = static_cast<unsigned char>(bad[0]);
        if (bad.size() == 2) c = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(bad[1]) & 0x3Fu);  // C1
        switch (c) {
          case '\n': out += "\\n"; break;
          case '\r': out += "\\r"; break;
          case '\t': out += "\\t"; break;
          // A byte that is not UTF-8 is shown as the code point of the same value.
          default: out += fmt::format("\\u{:04x}", c);
        }
      });
  out += '"';
  return out;
}

std::string terminal_text(std::string_view s, bool lines) {
  std::string out;
  out.reserve(s.size());
  classify(
      s, [&](std::string_view seq) { out += seq; },
      [&](std::string_view bad, size_t at) {
        if (bad == "\t") out += '\t';
        else if (lines && bad == "\n") out += '\n';
        else if (lines && bad == "\r" && at + 1 < s.size() && s[at + 1] == '\n') out += '\r';  // CRLF is kept
        else
          for (unsigned char c : bad) out += fmt::format("\\x{:02X}", c);
      });
  return out;
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace sluice::ctl
