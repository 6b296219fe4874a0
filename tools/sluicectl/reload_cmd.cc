// reload_cmd.cc: `sluicectl reload`: asks the running sluiced over its admin socket to reload as SIGHUP does, and waits.
// Untrusted input: the daemon's response (framing checked by admin::response_decoder; printed as terminal-safe text).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "admin/client.h"
#include "admin/protocol.h"
#include "common.h"

namespace sluice::ctl {

namespace {

// Building a generation may generate certificates: give it more than a query's time.
constexpr int reload_timeout_ms = 120'000;

}  // namespace

admin::call_result ask_reload(const global_options& g, const std::string& socket) {
  const std::string path = socket.empty() ? admin::socket_path_for(resolve_queue_dir(g)) : socket;
  return admin::call(path, {"reload"}, reload_timeout_ms);
}

namespace {

void reload(const global_options& g, const std::string& socket) {
  admin::call_result r = ask_reload(g, socket);
  if (r.status != admin::call_status::ok) throw command_error{r.error};
  const admin::response& a = r.reply;
  if (g.json) {
    std::string lines;
    for (const auto& l : a.lines) lines += (lines.empty() ? "" : ",") + json_string(l);
    fmt::print("{{\"ok\":{},\"error\":{},\"lines\":[{}]}}\n", a.ok, json_string(a.error), lines);
    if (!a.ok) throw command_error{a.error};
    return;
  }
  if (!a.ok) {
    // The reason comes first, then each problem on its own line (file:line: ...).
    std::string text = terminal_text(a.error);
    for (const auto& l : a.lines) text += "\n" + terminal_text(l);
    throw command_error{text};
  }
  for (const auto& l : a.lines) fmt::print("{}\n", terminal_text(l));
}

}  // namespace

void add_reload_commands(CLI::App& app, global_options& g) {
  auto socket = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "reload", "make the running sluiced reload its configuration file, as SIGHUP does, and report the result; a "
                "file that does not load leaves the running configuration in force");
  cmd->add_option("--socket", *socket, "admin socket (default: admin.sock beside the queue directory)");
  cmd->callback([&g, socket] { reload(g, *socket); });
}

}  // namespace sluice::ctl
