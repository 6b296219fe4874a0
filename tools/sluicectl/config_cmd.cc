// config_cmd.cc: `sluicectl config check FILE`: validates a configuration file with the daemon's own loader, offline.
// Untrusted input: the TOML file named on the command line (parsed by config::load_file, never written).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "config/config.h"
#include "generation/route_config.h"

namespace sluice::ctl {

namespace {

// Every problem sluiced would refuse the file for at start or reload, without touching
// anything: the loader's errors (each with file:line:column), then, for a file that
// loads, the routing table's (route conflicts name their connectors, not a line).
std::vector<std::string> problems_of(const std::string& file) {
  std::vector<std::string> out;
  config::load_result loaded = config::load_file(file);
  if (!loaded) {
    for (const auto& e : loaded.errors) out.push_back(e.to_string());
    return out;
  }
  std::vector<std::string> route_errors;
  if (!generation::build_route_table(*loaded.value, route_errors))
    for (const auto& e : route_errors) out.push_back(file + ": " + e);
  return out;
}

void config_check(const global_options& g, const std::string& file) {
  const std::vector<std::string> problems = problems_of(file);
  if (g.json) {
    std::string list;
    for (const auto& p : problems) list += (list.empty() ? "" : ",") + json_string(p);
    fmt::print("{{\"file\":{},\"ok\":{},\"errors\":[{}]}}\n", json_string(file), problems.empty(), list);
  } else if (problems.empty()) {
    fmt::print("{}: ok\n", terminal_text(file));
  } else {
    for (const auto& p : problems) fmt::print("{}\n", terminal_text(p));
  }
  if (!problems.empty())
    throw command_error{fmt::format("{}: {} error{}", terminal_text(file), problems.size(), problems.size() == 1 ? "" : "s")};
}

}  // namespace

void add_config_commands(CLI::App& app, global_options& g) {
  auto* config = app.add_subcommand("config", "configuration files");
  config->require_subcommand(1);
  auto file = std::make_shared<std::string>();
  auto* check = config->add_subcommand(
      "check", "load and validate FILE as sluiced would (syntax, keys, values, routes); prints FILE: ok or every "
               "error with its line; needs no daemon and writes nothing");
  check->add_option("file", *file, "configuration file (TOML)")->required();
  check->callback([&g, file] { config_check(g, *file); });
}

}  // namespace sluice::ctl
