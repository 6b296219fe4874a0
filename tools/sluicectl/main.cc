// main.cc: sluicectl, the sluice admin CLI: global options and one command group per file.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common.h"

int main(int argc, char** argv) {
  CLI::App app{"sluicectl: inspect and manage a sluice mail transfer agent"};
  app.require_subcommand(1);
  // Global options may follow the subcommand: `sluicectl queue list --json`.
  app.fallthrough();
  sluice::ctl::global_options g;
  auto* qdir = app.add_option("--queue-dir", g.queue_dir, "queue directory (default ./var/queue)");
  auto* cfg = app.add_option("--config", g.config_file, "read [server] queue_dir from this TOML file");
  qdir->excludes(cfg);
  app.add_flag("--json", g.json, "machine-readable output");

  // Command groups; message, connector, route, tracking and reload slot in here.
  sluice::ctl::add_queue_commands(app, g);
  sluice::ctl::add_route_commands(app, g);
  sluice::ctl::add_track_commands(app, g);
  sluice::ctl::add_mailq_command(app, g);
  sluice::ctl::add_reload_commands(app, g);
  sluice::ctl::add_config_commands(app, g);
  sluice::ctl::add_connector_commands(app, g);
  sluice::ctl::add_stats_command(app, g);
  sluice::ctl::add_message_commands(app, g);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sluice::ctl::command_error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "sluicectl: {}\n", e.message);
    return 1;
  }
  return 0;
}
