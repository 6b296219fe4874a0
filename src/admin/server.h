// server.h: the admin socket server: serves the command table on one worker loop.
// Untrusted input: request bytes from local clients of the admin socket.
#pragma once
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admin/protocol.h"
#include "net/loop.h"
#include "net/session.h"
#include "net/unix_listener.h"

namespace sluice::admin {

// What a worker needs to serve the admin socket (see server's constructor).
struct server_settings {
  std::string socket_path;
  daemon_info info;
};

class server {
 public:
  // Requests work on an empty snapshot (no config, no table) until set_state().
  server(net::loop& l, std::string socket_path, daemon_info info, command_table commands = default_table());
  server(net::loop& l, server_settings s) : server(l, std::move(s.socket_path), std::move(s.info)) {}
  ~server();  // close()
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Creates the socket (mode 0600) and starts accepting. "" or an error message.
  std::string listen();
  // Stops accepting, drops open admin sessions and removes the socket file.
  void close();
  // Loop thread: requests from now on answer from `s` (the worker gives the server the
  // admin view of each configuration generation its loop takes).
  // Answers held until this snapshot (a reload's, see reply_fn) go out now.
  void set_state(snapshot s);

  const std::string& socket_path() const { return path_; }
  size_t session_count() const { return sessions_.size(); }

  // Idle sessions are dropped after this long (a forgotten `socat` must not hold a
  // descriptor forever).
  static constexpr uint64_t idle_timeout_ms = 60'000;
  // A request line must be complete this long after its first byte: a client that
  // trickles bytes does not extend it (slowloris), the idle timeout above is not reset by them.
  static constexpr uint64_t request_timeout_ms = 10'000;

  static command_table default_table();

 private:
  class session;
  friend class session;
  void accept(std::unique_ptr<net::connection> c);
  // The response to send now, or none when the command answers later (then `s` waits).
  std::optional<response> answer(std::string_view line, session& s);
  // Loop thread: hands answers that came back from other threads to their sessions.
  void deliver_later_answers();
  struct later_answer {
    uint64_t ticket = 0;
    response reply;
    std::chrono::system_clock::time_point answer_from{};
  };

  // Later answers come back here from any thread. Shared with the reply functions, so
  // one that arrives after the server is gone finds wake == null and is dropped.
  struct inbox {
    std::mutex mutex;
    net::async_signal* wake = nullptr;
    std::vector<later_answer> ready;
  };

  net::loop& loop_;
  std::string path_;
  snapshot state_;
  daemon_info info_;
  command_table commands_;
  net::unix_listener listener_;
  // No cap: only root and the daemon's user get in (server::accept), each session bounded
  // in time by its clocks.
  net::session_set<session> sessions_;
  uint64_t next_ticket_ = 1;
  std::vector<later_answer> held_;  // come back, waiting for a newer snapshot than state_
  std::shared_ptr<inbox> inbox_;
  net::async_signal inbox_wake_;
};

}  // namespace sluice::admin
