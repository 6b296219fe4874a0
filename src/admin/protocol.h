// protocol.h: the admin socket protocol shared by sluiced and sluicectl: requests, responses, command table.
// Untrusted input: request lines from local clients of the admin socket (any bytes, any length).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/queue_id.h"
#include "config/config.h"
#include "route/route.h"

namespace sluice::store {
enum class control_action : uint8_t;  // store.h: what a control operation does
}

// Wire format (both directions are plain text, so `socat - UNIX:var/admin.sock` works):
//
//   request  = one line, LF-terminated (a CR before the LF is ignored), at most
//              max_request_line bytes. Words are separated by spaces or tabs.
//              "..." groups words, with \" and \\ as escapes inside; '...' groups
//              words literally; outside quotes a backslash escapes the next byte.
//              Control bytes (other than tab) are refused: a request is a command,
//              never data.
//                route test alice@contoso.com --size 1000
//   response = a status line, then zero or more text lines, then a line ".":
//                ok                      |  error <one-line message>
//                <line>                     <line>          (e.g. usage)
//                .                          .
//              A text line starting with "." is sent with one more "." (as in SMTP
//              DATA), so "." alone always ends the response.
//
// A connection may carry any number of requests, answered in order; the client
// closes it when done. Commands are looked up by their leading words ("route test"),
// the rest of the words are arguments: positional ones, then or among them
// "--name value", "--name=value" or a flag "--name"; "--" ends the options.

namespace sluice::admin {

constexpr size_t max_request_line = 4096;
constexpr size_t max_request_words = 64;

// The admin socket lives beside the queue, one per daemon:
// std::filesystem::path(queue_dir).parent_path() / "admin.sock" ("admin.sock" if none).
std::string socket_path_for(std::string_view queue_dir);

// ---- requests ----

struct parse_result {
  std::vector<std::string> words;
  std::string error;  // "" when words is the request
  bool ok() const { return error.empty(); }
};
// Splits one request line (without its LF) into words.
parse_result parse_request(std::string_view line);
// One word written so that parse_request gives it back unchanged.
std::string quote_word(std::string_view word);
// The request line (with LF) for words.
std::string format_request(const std::vector<std::string>& words);

// ---- responses ----

struct response {
  bool ok = true;
  std::string error;               // when !ok: one line
  std::vector<std::string> lines;  // text lines, without line ends

  static response failure(std::string message, std::vector<std::string> lines = {});
  void add(std::string line) { lines.push_back(std::move(line)); }
};

// The framed bytes of r. Embedded LFs split lines, CRs are dropped, and an error
// message is folded onto one line, so nothing in r can break the framing.
std::string encode_response(const response& r);

// Incremental decoder for the client side.
class response_decoder {
 public:
  enum class state { need_more, complete, malformed };
  // Appends bytes; returns complete once the final "." line has arrived. Bytes after
  // it are kept for the next response (pipelined requests).
  state feed(std::string_view bytes);
  // The response decoded by the last feed() that returned complete; resets for the next.
  response take();
  const std::string& problem() const { return problem_; }  // why it is malformed

  static constexpr size_t max_response = 16u << 20;

 private:
  state step();
  std::string buffer_;
  size_t consumed_ = 0;
  bool have_status_ = false;
  response current_;
  state state_ = state::need_more;
  std::string problem_;
};

// ---- the command table ----

// What the daemon is running with. A reload builds a new snapshot and swaps it in;
// a request works on the snapshot it was given, never on a half-updated one.
struct snapshot {
  std::shared_ptr<const config::config> cfg;
  std::shared_ptr<const route::table> routes;
  std::chrono::system_clock::time_point loaded_at{};
};

// What one worker loop's delivery engine does for the queue and message commands, called
// only on that loop's thread (daemon_info::run_on_loop). The worker implements it over its
// engine, so the commands never see a worker or an engine.
struct action_result {
  std::string error;        // "" = done
  bool found = true;        // false: nothing to act on
  uint64_t items = 0;       // items moved or changed
  uint64_t recipients = 0;  // in those items (stored actions)
};
using action_done = std::function<void(const action_result&)>;
class loop_actions {
 public:
  // In memory: waiting items become ready now (retry_hop also lifts the site's failure
  // suspension); how many moved.
  virtual uint64_t retry_hop(const std::string& hop_key) = 0;
  virtual uint64_t retry_message(base::queue_id id) = 0;
  // A durable control operation on this loop's lane, then its effect on this loop's
  // memory; `done` is called once, on this loop, when it has committed or failed.
  virtual void control(store::control_action action, base::queue_id id, const std::string& hop_key, int64_t until_ms,
                       action_done done) = 0;
  // In memory only, after another loop committed a release / a removal: how many items.
  virtual uint64_t unpark(base::queue_id id) = 0;
  virtual uint64_t drop_message(base::queue_id id) = 0;
  // message remove, first on every loop: no attempt of the message starts there any more,
  // and `done` runs once, on that loop, when no attempt of it is in progress there (at once
  // when none is), with how many recipients those attempts delivered; `unfinished` when one
  // was still on the wire after the daemon's longest wait (delivery::engine::removal_wait_ms).
  virtual void settle_removal(base::queue_id id, bool dsn, std::function<void(uint64_t delivered, bool unfinished)> done) = 0;
  // The removal failed: what settle_removal kept back goes back to work.
  virtual void end_removal(base::queue_id id) = 0;
  // Then without a DSN, on one loop: the control operation deleting the message (`done` once
  // committed) and a REMOVE tracking event naming `uid` for the recipients it still had queued
  // (`delivered`: what the attempts in progress delivered); every loop then drop_message.
  // With one (fail_message, every loop): every recipient this loop holds fails so that the
  // sender is sent a failure DSN, and how many items failed now.
  virtual void remove_message(base::queue_id id, int64_t uid, uint64_t delivered, action_done done) = 0;
  virtual uint64_t fail_message(base::queue_id id, int64_t uid) = 0;
  // message bounce: this loop's recipients for `domain` fail (DSN), and with `until_ms`
  // ahead so does what it attempts for the domain until then; how many items failed now.
  virtual uint64_t bounce_domain(const std::string& domain, int64_t until_ms, int64_t uid) = 0;
  virtual void cancel_bounce(const std::string& domain) = 0;

 protected:
  ~loop_actions() = default;
};
using loop_task = std::function<void(loop_actions&)>;

struct daemon_info {
  std::string version;
  unsigned workers = 0;
  long pid = 0;
  std::chrono::system_clock::time_point started_at{};
  // Log lines lost to failed writes since start (any thread may call it); null: not shown.
  std::function<uint64_t()> dropped_log_lines;
  // Reloads the configuration exactly as SIGHUP does. Called on the admin loop; it must
  // not wait for the reload. `done` is called once, on the thread that reloaded, with ""
  // and the new configuration's loaded_at (reloaded), or why the running configuration
  // was kept (one problem per line) and a default time point. Null: this daemon does not
  // offer `reload`.
  using reload_done = std::function<void(std::string error, std::chrono::system_clock::time_point loaded_at)>;
  std::function<void(reload_done done)> reload;
  // Runs `task` soon on worker loop `worker` (0 .. workers-1), with that loop's actions;
  // any thread, never waits. False (task dropped) when there is no such worker or it is
  // stopping. Null: this daemon offers no queue or message actions.
  std::function<bool(unsigned worker, loop_task task)> run_on_loop;
  // The worker loop that owns next hop `hop_key` (its delivery queue and suspension).
  std::function<unsigned(std::string_view hop_key)> owner_of;
};

// The response to a request that is answered after apply() returns. Call it once, from
// any thread. The server sends it once it answers from a snapshot loaded at or after
// `answer_from` (the default: at once), so a request behind a reload on the same
// connection sees the configuration that reload installed.
using reply_fn = std::function<void(response, std::chrono::system_clock::time_point answer_from)>;

// Everything a command's apply step may read. Later commands (queue, message,
// connector, tracking) add what they need here (e.g. a store pointer).
struct context {
  const snapshot& state;
  const daemon_info& daemon;
  std::chrono::system_clock::time_point now;
  // A command whose answer comes later (reload waits for the main thread) calls defer()
  // and answers through the function it returns; the response apply() leaves is then
  // ignored, and the server holds the connection's later requests until the answer has
  // gone out, so answers stay in request order. Null where only immediate answers are
  // possible (such a command then answers at once with an error).
  std::function<reply_fn()> defer;
  // The uid of the client on the admin socket (SO_PEERCRED), for the tracking log of
  // removals and bounces; -1 when unknown.
  int64_t peer_uid = -1;
};

struct arguments {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;  // name without "--", value
  const std::string* option(std::string_view name) const;   // last one given, or null
  bool has(std::string_view name) const { return option(name) != nullptr; }
};

struct option_spec {
  std::string_view name;  // without "--"
  bool takes_value = true;
};

// OpenSMTPD style: check() looks only at the arguments and has no side effects, so a
// bad request is refused before anything happens; apply() does the work.
struct command {
  std::vector<std::string> path;  // {"route", "test"}
  std::string args_usage;         // "<address> [--size N]"
  std::string summary;            // one line for `help`
  size_t min_args = 0, max_args = 0;
  std::vector<option_spec> options;
  std::function<std::string(const arguments&)> check;  // "" = fine, else the error; may be empty
  std::function<void(const arguments&, const context&, response&)> apply;

  std::string usage() const;  // "route test <address> [--size N]"
};

class command_table {
 public:
  void add(command c);
  // Parses, finds, splits arguments, checks and applies: every failure is an error
  // response (unknown command, missing or extra arguments, bad option, check failure).
  response dispatch(std::string_view line, const context& ctx) const;
  response dispatch(const std::vector<std::string>& words, const context& ctx) const;
  // The command whose path is the longest prefix of words (case-insensitive), or null.
  const command* find(const std::vector<std::string>& words) const;
  const std::vector<command>& commands() const { return commands_; }

 private:
  std::vector<command> commands_;
};

// Strict decimal: digits only, no sign, no overflow. Sizes may also carry K/M/G.
std::optional<uint64_t> parse_number(std::string_view text);

}  // namespace sluice::admin
