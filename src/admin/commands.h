// commands.h: the admin commands sluiced answers on its socket (route test, status, config, reload, help).
// Untrusted input: command arguments from admin socket clients (checked before use).
#pragma once
#include <chrono>
#include <string>

#include "admin/protocol.h"

namespace sluice::admin {

// The table sluiced serves. Each command group registers itself here; a new group
// (queue, message, connector, tracking) adds an add_*_commands(table) call.
command_table default_commands();

void add_route_commands(command_table& t);   // route test <address> [--size N] [--receive-connector NAME]
void add_server_commands(command_table& t);  // status, config, help (help lists t itself)
void add_reload_commands(command_table& t);  // reload (needs daemon_info::reload and context::defer)
void add_metrics_commands(command_table& t);  // metrics [--json] (metrics_commands.cc)
// queue retry|suspend|resume, message retry|hold|release|remove|bounce (queue_commands.cc; need
// daemon_info::run_on_loop and owner_of, and context::defer)
void add_queue_commands(command_table& t);

// The version sluiced and sluicectl were built as (the meson project version).
std::string_view version();

// "2026-11-28T10:46:17Z"
std::string format_utc(std::chrono::system_clock::time_point t);
// "42s", "5m07s", "3h02m", "2d04h"
std::string format_duration(std::chrono::seconds s);

}  // namespace sluice::admin
