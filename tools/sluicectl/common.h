// common.h: what every sluicectl command group shares: global options, queue dir lookup, formatting.
// Untrusted input: the TOML configuration file named by --config.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}
namespace sluice::config {
struct load_result;
}
namespace sluice::admin {
struct call_result;
}
namespace sluice::store {
class queue_store;
}

namespace sluice::ctl {

// Options accepted before or after any subcommand.
struct global_options {
  std::string queue_dir;    // --queue-dir
  std::string config_file;  // --config
  bool json = false;        // --json
};

// True when `text` is 1 to `max_length` ASCII digits.
bool all_digits(std::string_view text, std::size_t max_length = std::string_view::npos);

// Raised by commands for a clean "sluicectl: <message>" and exit status 1.
struct command_error {
  std::string message;
};

// --queue-dir, else `[server] queue_dir` from --config, else ./var/queue.
// Throws command_error when the config cannot be read.
std::string resolve_queue_dir(const global_options& g);
// Where the tracking log is: `explicit_dir` (--log-dir), else `[server] log_dir` from
// --config (default ./var/log), else "log" beside --queue-dir, else ./var/log.
std::string resolve_log_dir(const global_options& g, const std::string& explicit_dir);

std::string format_age(int64_t seconds);      // "42s", "5m07s", "3h02m", "2d04h"
std::string format_bytes(uint64_t bytes);     // "812 B", "14.2 KiB", "1.5 GiB"
// Quoted and escaped JSON string. Control characters (C0, DEL, C1) and bytes that are
// not valid UTF-8 become \u00XX escapes, so the output is valid UTF-8 and safe to view.
std::string json_string(std::string_view s);
// Stored data made safe for the operator's terminal: control characters (C0, DEL, C1)
// and bytes that are not valid UTF-8 become \xNN, so a message cannot send escape
// sequences. Tab is kept; with `lines`, so are CRLF and LF (a lone CR is escaped: it
// would let a line overwrite what the terminal shows before it).
std::string terminal_text(std::string_view s, bool lines = false);
int64_t now_ms();
// The queue store opened read-only (LMDB's lock file lets it run beside sluiced); throws command_error.
void open_store(store::queue_store& s, const global_options& g);  // queue_cmd.cc
// Sends `words` to the running sluiced's admin socket (beside the queue directory) and prints the
// answer: its lines as terminal text, or with --json one object of its "name: value" lines
// (numbers as numbers). Throws command_error when the daemon refuses or cannot be reached, or
// gives no answer within timeout_ms.
void ask_daemon(const global_options& g, const std::vector<std::string>& words, int timeout_ms = 10'000);  // message_cmd.cc

// One registration function per command group, each in its own file.
void add_queue_commands(CLI::App& app, global_options& g);
void add_route_commands(CLI::App& app, global_options& g);  // route_cmd.cc
void add_track_commands(CLI::App& app, global_options& g);  // track_cmd.cc
void add_mailq_command(CLI::App& app, global_options& g);   // queue_cmd.cc
void add_reload_commands(CLI::App& app, global_options& g);   // reload_cmd.cc
void add_config_commands(CLI::App& app, global_options& g);   // config_cmd.cc
void add_connector_commands(CLI::App& app, global_options& g);  // connector_cmd.cc

// Every problem sluiced would refuse `loaded` (read as `file`) for: the loader's errors, routes,
// certificates, credentials (config_cmd.cc, shared with the connector verbs).
std::vector<std::string> config_problems(const std::string& file, const config::load_result& loaded);
// Asks the sluiced at `socket` (else admin.sock beside the queue directory) to reload, and
// waits for its answer (reload_cmd.cc, shared with the connector verbs).
admin::call_result ask_reload(const global_options& g, const std::string& socket);
void add_stats_command(CLI::App& app, global_options& g);     // stats_cmd.cc
void add_message_commands(CLI::App& app, global_options& g);  // message_cmd.cc

}  // namespace sluice::ctl
