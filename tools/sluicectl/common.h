// common.h: what every sluicectl command group shares: global options, queue dir lookup, formatting.
// Untrusted input: the TOML configuration file named by --config.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace sluice::ctl {

// Options accepted before or after any subcommand.
struct global_options {
  std::string queue_dir;    // --queue-dir
  std::string config_file;  // --config
  bool json = false;        // --json
};

// Raised by commands for a clean "sluicectl: <message>" and exit status 1.
struct command_error {
  std::string message;
};

// --queue-dir, else `[server] queue_dir` from --config, else ./var/queue.
// Throws command_error when the config cannot be read.
std::string resolve_queue_dir(const global_options& g);

std::string format_age(int64_t seconds);      // "42s", "5m07s", "3h02m", "2d04h"
std::string format_bytes(uint64_t bytes);     // "812 B", "14.2 KiB", "1.5 GiB"
std::string json_string(std::string_view s);  // quoted and escaped JSON string
int64_t now_ms();

// One registration function per command group, each in its own file.
void add_queue_commands(CLI::App& app, global_options& g);
void add_route_commands(CLI::App& app, global_options& g);  // route_cmd.cc

}  // namespace sluice::ctl
