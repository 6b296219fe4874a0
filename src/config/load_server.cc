// load_server.cc: the [server] section (host name, workers, directories, store and size limits, user, drain) and [metrics].
// Untrusted input: the configuration file (admin-written, but typos must be reported with
// file, line, column and key, never silently ignored).
#include <algorithm>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "base/queue_id.h"
#include "config/ip_range.h"
#include "config/reader.h"

namespace sluice::config::detail {
namespace {

namespace fs = std::filesystem;

constexpr unsigned max_workers = base::issuer::max_loops;  // queue ids name their issuer in 8 bits

std::string system_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return lower(buf);
}

}  // namespace

void read_server(table_reader& top, config& c) {
  server_settings& s = c.server;
  s.hostname = system_hostname();
  s.workers = std::clamp(std::thread::hardware_concurrency(), 1u, max_workers);
  if (const toml::table* t = top.read_table("server")) {
    table_reader r(top.ctx(), *t, "server");
    if (r.read_string("hostname", s.hostname)) {
      const toml::node* n = t->get("hostname");
      if (!is_hostname(s.hostname)) {
        r.value_error("hostname", *n, squote(s.hostname) + " is not a valid host name" + idn_hint(s.hostname));
      }
      s.hostname = lower(s.hostname);
    }
    if (const toml::node* n = r.get("workers")) {
      if (auto str = n->as_string(); str && str->get() == "auto") {
        // already resolved above
      } else if (auto i = n->as_integer()) {
        if (i->get() < 1 || i->get() > static_cast<int64_t>(max_workers)) {
          r.value_error("workers", *n, "must be \"auto\" or between 1 and " + std::to_string(max_workers));
        } else {
          s.workers = static_cast<unsigned>(i->get());
        }
      } else {
        r.type_error("workers", *n, "\"auto\" or an integer");
      }
    }
    auto read_dir = [&](std::string_view key, std::string& out, bool may_be_empty) {
      if (r.read_string(key, out) && out.empty() && !may_be_empty) {
        r.value_error(key, *t->get(key), "must not be empty");
      }
    };
    read_dir("queue_dir", s.queue_dir, false);
    read_dir("log_dir", s.log_dir, false);
    read_dir("pickup_dir", s.pickup_dir, true);
    r.read_size("max_message_size", s.max_message_size);
    if (r.read_size("map_size", s.map_size) && s.map_size < (1ull << 20)) {
      r.value_error("map_size", *t->get("map_size"), "must be at least 1MB");
    }
    // The largest message must fit, or its client would get 452 for it forever.
    if (!r.read_size("max_in_flight_bytes", s.max_in_flight_bytes)) {
      s.max_in_flight_bytes = std::max(s.max_in_flight_bytes, s.max_message_size);
    } else if (s.max_in_flight_bytes < s.max_message_size) {
      r.value_error("max_in_flight_bytes", *t->get("max_in_flight_bytes"),
                    "must be at least max_message_size (" + std::to_string(s.max_message_size) + " bytes)");
    }
    r.read_uint("pickup_interval_ms", s.pickup_interval_ms, 10, 86'400'000);
    r.read_uint("max_received_headers", s.max_received_headers, 1, 1000);
    // Below a kilobyte a file would hold a line or two: a typo, not a policy.
    if (r.read_size("log_max_size", s.log_max_size) && s.log_max_size != 0 && s.log_max_size < 1024) {
      r.value_error("log_max_size", *t->get("log_max_size"), "must be 0 (no size limit) or at least 1KB");
    }
    r.read_uint("log_keep", s.log_keep, 1, 100'000);
    r.read_uint("log_max_age_days", s.log_max_age_days, 0, 36'500);
    r.read_bool("log_rotate_daily", s.log_rotate_daily);
    // Names are checked against the system's user database at start, not here: a file
    // checked on another host (sluicectl config check) may name a user made at install.
    for (auto [key, out] : {std::pair<std::string_view, std::string*>{"user", &s.user}, {"group", &s.group}}) {
      if (r.read_string(key, *out) && (out->empty() || out->find_first_of(":/\n") != std::string::npos))
        r.value_error(key, *t->get(key), "must be a user or group name");
    }
    r.read_bool("allow_root", s.allow_root);
    r.read_duration("drain_timeout", s.drain_timeout_s, 0, 3600);
    r.finish();
  }
  std::string q = s.queue_dir;
  while (q.size() > 1 && q.back() == '/') q.pop_back();
  fs::path parent = fs::path(q).parent_path();
  s.auto_tls_dir = (parent.empty() ? fs::path("tls") : parent / "tls").string();

  // [metrics] lives here because it is one key of daemon-wide plumbing like [server]'s.
  if (const toml::table* t = top.read_table("metrics")) {
    table_reader r(top.ctx(), *t, "metrics");
    metrics_settings& m = c.metrics;
    if (r.read_string("listen", m.listen) && !m.listen.empty()) {
      if (auto b = binding::parse(m.listen)) {
        m.non_loopback = !b->address.is_loopback();
      } else {
        r.value_error("listen", *t->get("listen"),
                      squote(m.listen) + " is not an IP:port (\"127.0.0.1:9925\", \"[::1]:9925\"; \"\" turns the endpoint off)");
      }
    }
    r.finish();
  }
}

}  // namespace sluice::config::detail
