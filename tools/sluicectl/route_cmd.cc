// route_cmd.cc: `sluicectl route test`: asks the running sluiced, over its admin socket, how it would route an address.
// Untrusted input: the daemon's response (printed as text; framing checked by admin::response_decoder).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "admin/client.h"
#include "admin/protocol.h"
#include "common.h"

namespace sluice::ctl {

namespace {

struct route_test_options {
  std::string address;
  std::string size;               // passed on as typed: the daemon accepts "1000" or "2MB"
  std::string receive_connector;  // the receive connector whose size limit also applies
  std::string socket;             // --socket, else beside the queue directory
};

// --socket, else <queue dir>/../admin.sock with the queue dir from --queue-dir or --config.
std::string socket_path(const global_options& g, const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  return admin::socket_path_for(resolve_queue_dir(g));
}

// The daemon's answer to words, or command_error (exit 1) when there is none.
admin::response ask(const global_options& g, const std::string& socket, const std::vector<std::string>& words) {
  admin::call_result r = admin::call(socket_path(g, socket), words);
  if (r.status != admin::call_status::ok) throw command_error{r.error};
  return std::move(r.reply);
}

void print(const global_options& g, const admin::response& r) {
  if (g.json) {
    std::string lines;
    for (const auto& l : r.lines) lines += (lines.empty() ? "" : ",") + json_string(l);
    if (r.ok)
      fmt::print("{{\"ok\":true,\"lines\":[{}]}}\n", lines);
    else
      fmt::print("{{\"ok\":false,\"error\":{},\"lines\":[{}]}}\n", json_string(r.error), lines);
    if (!r.ok) throw command_error{r.error};
    return;
  }
  if (!r.ok) {
    std::string text = r.error;
    for (const auto& l : r.lines) text += "\n" + l;
    throw command_error{text};
  }
  for (const auto& l : r.lines) fmt::print("{}\n", l);
}

void route_test(const global_options& g, const route_test_options& o) {
  std::vector<std::string> words = {"route", "test", o.address};
  if (!o.size.empty()) words.insert(words.end(), {"--size", o.size});
  if (!o.receive_connector.empty()) words.insert(words.end(), {"--receive-connector", o.receive_connector});
  print(g, ask(g, o.socket, words));
}

}  // namespace

void add_route_commands(CLI::App& app, global_options& g) {
  auto* route = app.add_subcommand("route", "routing decisions of the running sluiced");
  route->require_subcommand(1);
  auto o = std::make_shared<route_test_options>();
  auto* test = route->add_subcommand(
      "test", "how sluiced would route a recipient: accepted domain or send connector, address space, cost, "
              "next hop, size limit, TLS policy, and why the other candidates lost");
  test->add_option("address", o->address, "recipient address, e.g. user@example.com")->required();
  test->add_option("--size", o->size, "message size in bytes (or 2MB, 512K); checked against the size limits");
  test->add_option("--receive-connector", o->receive_connector,
                   "name of the receive connector the message arrives on (its size limit applies too)");
  test->add_option("--socket", o->socket, "admin socket (default: admin.sock beside the queue directory)");
  test->callback([&g, o] { route_test(g, *o); });
}

}  // namespace sluice::ctl
