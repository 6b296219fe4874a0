// common.cc: queue directory resolution and output formatting for sluicectl.
// Untrusted input: the TOML configuration file named by --config.
#include "common.h"

#include <fmt/format.h>

#include <chrono>
#include <toml++/toml.h>

namespace sluice::ctl {

std::string resolve_queue_dir(const global_options& g) {
  if (!g.queue_dir.empty()) return g.queue_dir;
  if (!g.config_file.empty()) {
    // Only [server] queue_dir is read here, straight from the file; the rest of the
    // configuration is the config module's business.
    toml::table config;
    try {
      config = toml::parse_file(g.config_file);
    } catch (const toml::parse_error& e) {
      throw command_error{fmt::format("cannot read config {}: {}", g.config_file,
                                      std::string(e.description()))};
    }
    auto dir = config["server"]["queue_dir"].value<std::string>();
    if (!dir || dir->empty())
      throw command_error{fmt::format("{} has no [server] queue_dir", g.config_file)};
    return *dir;
  }
  return "./var/queue";
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

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);  // UTF-8 passes through (SMTPUTF8 addresses)
    }
  }
  out += '"';
  return out;
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace sluice::ctl
