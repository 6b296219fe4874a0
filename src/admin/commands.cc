// commands.cc: the check and apply steps of each admin command.
// Untrusted input: command arguments from admin socket clients; addresses are only routed and quoted back.
#include "admin/commands.h"

#include <time.h>

#include <cstdio>
#include <memory>

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

namespace sluice::admin {

namespace {

// --size takes bytes ("1000") or a size with a unit ("2MB") as the config does; 0 = unknown.
std::optional<uint64_t> parse_size_arg(std::string_view text) {
  if (auto n = parse_number(text)) return n;
  return config::parse_size(text);
}

void route_commands(command_table& t) {
  command c;
  c.path = {"route", "test"};
  c.args_usage = "<address> [--size N] [--receive-connector NAME]";
  c.summary = "how a recipient would be routed, and why the other routes lost";
  c.min_args = 1;
  c.max_args = 1;
  c.options = {{"size", true}, {"receive-connector", true}};
  c.check = [](const arguments& a) -> std::string {
    if (a.positional[0].empty()) return "the address is empty";
    if (const std::string* s = a.option("size"); s && !parse_size_arg(*s))
      return "--size: '" + *s + "' is not a size in bytes";
    if (const std::string* n = a.option("receive-connector"); n && n->empty())
      return "--receive-connector: empty name";
    return "";
  };
  c.apply = [](const arguments& a, const context& ctx, response& r) {
    if (!ctx.state.routes) {
      r = response::failure("no routing table is loaded");
      return;
    }
    uint64_t size = 0;
    if (const std::string* s = a.option("size")) size = *parse_size_arg(*s);
    uint64_t receive_max = 0;
    if (const std::string* name = a.option("receive-connector")) {
      const config::receive_connector* rc = ctx.state.cfg ? ctx.state.cfg->find_receive_connector(*name) : nullptr;
      if (rc == nullptr) {
        r = response::failure("no receive connector named '" + *name + "'");
        return;
      }
      receive_max = rc->max_message_size;
    }
    for (auto& line : ctx.state.routes->explain(a.positional[0], size, receive_max)) r.add(std::move(line));
  };
  t.add(std::move(c));
}

void server_commands(command_table& t) {
  command status;
  status.path = {"status"};
  status.summary = "version, uptime and workers of the running daemon";
  status.apply = [](const arguments&, const context& ctx, response& r) {
    auto up = std::chrono::duration_cast<std::chrono::seconds>(ctx.now - ctx.daemon.started_at);
    if (up.count() < 0) up = std::chrono::seconds(0);
    r.add("version: " + ctx.daemon.version);
    if (ctx.state.cfg) r.add("hostname: " + ctx.state.cfg->server.hostname);
    r.add("pid: " + std::to_string(ctx.daemon.pid));
    r.add("started: " + format_utc(ctx.daemon.started_at));
    r.add("uptime: " + format_duration(up) + " (" + std::to_string(up.count()) + "s)");
    r.add("workers: " + std::to_string(ctx.daemon.workers));
    if (ctx.daemon.dropped_log_lines) r.add("log lines dropped: " + std::to_string(ctx.daemon.dropped_log_lines()));
  };
  t.add(std::move(status));

  command cfg;
  cfg.path = {"config"};
  cfg.summary = "the configuration file in use and when it was loaded";
  cfg.apply = [](const arguments&, const context& ctx, response& r) {
    if (!ctx.state.cfg) {
      r = response::failure("no configuration is loaded");
      return;
    }
    const config::config& c = *ctx.state.cfg;
    auto age = std::chrono::duration_cast<std::chrono::seconds>(ctx.now - ctx.state.loaded_at);
    if (age.count() < 0) age = std::chrono::seconds(0);
    r.add("file: " + (c.source.empty() ? std::string("(none)") : c.source));
    r.add("loaded: " + format_utc(ctx.state.loaded_at) + " (" + format_duration(age) + " ago)");
    r.add("queue dir: " + c.server.queue_dir);
    r.add("accepted domains: " + std::to_string(c.accepted_domains.size()));
    r.add("receive connectors: " + std::to_string(c.receive_connectors.size()));
    r.add("send connectors: " + std::to_string(c.send_connectors.size()));
  };
  t.add(std::move(cfg));
}

// What `reload` answers for a result of daemon_info::reload.
response reload_response(const std::string& error) {
  response r;
  if (error.empty()) {
    r.add("configuration reloaded");
    return r;
  }
  r = response::failure("reload failed, the running configuration stays in force");
  size_t start = 0;
  while (start < error.size()) {
    size_t nl = error.find('\n', start);
    if (nl == std::string::npos) nl = error.size();
    if (nl > start) r.add(error.substr(start, nl - start));
    start = nl + 1;
  }
  return r;
}

void reload_commands(command_table& t) {
  command c;
  c.path = {"reload"};
  c.summary = "reload the configuration file as SIGHUP does, and wait for the result";
  c.apply = [](const arguments&, const context& ctx, response& r) {
    if (!ctx.daemon.reload || !ctx.defer) {
      r = response::failure("this daemon cannot reload from the admin socket");
      return;
    }
    reply_fn reply = ctx.defer();
    ctx.daemon.reload([reply = std::move(reply)](std::string error, std::chrono::system_clock::time_point loaded_at) {
      reply(reload_response(error), loaded_at);
    });
  };
  t.add(std::move(c));
}

}  // namespace

void add_reload_commands(command_table& t) { reload_commands(t); }
void add_route_commands(command_table& t) { route_commands(t); }
void add_server_commands(command_table& t) { server_commands(t); }

command_table default_commands() {
  command_table t;
  add_server_commands(t);
  add_route_commands(t);
  add_reload_commands(t);
  add_metrics_commands(t);
  add_queue_commands(t);
  // help describes the table as built, so it is added last and holds a copy of the
  // other commands' usage lines (the table is immutable once the server has it).
  std::vector<std::string> lines;
  for (const auto& c : t.commands()) lines.push_back(c.usage() + "  -- " + c.summary);
  lines.push_back("help  -- this list");
  command help;
  help.path = {"help"};
  help.summary = "this list";
  help.apply = [lines](const arguments&, const context&, response& r) {
    for (const auto& l : lines) r.add(l);
  };
  t.add(std::move(help));
  return t;
}

std::string_view version() { return SLUICE_VERSION; }

std::string format_utc(std::chrono::system_clock::time_point t) {
  time_t secs = std::chrono::system_clock::to_time_t(t);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string format_duration(std::chrono::seconds s) {
  long long v = s.count() < 0 ? 0 : s.count();
  char buf[32];
  if (v < 60)
    std::snprintf(buf, sizeof buf, "%llds", v);
  else if (v < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", v / 60, v % 60);
  else if (v < 86400)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", v / 3600, (v % 3600) / 60);
  else
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", v / 86400, (v % 86400) / 3600);
  return buf;
}

}  // namespace sluice::admin
