// unix_listener.h: Unix-domain stream sockets on a libuv loop: a listener with file permissions and its connections.
// Untrusted input: bytes read from local peers are handed to the owner unexamined.
#pragma once
#include <sys/types.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "net/connection.h"
#include "net/loop.h"

namespace sluice::net {

// Who is on the other end (SO_PEERCRED, taken at accept time).
struct peer_credentials {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

// One accepted Unix-domain connection, the uv_pipe_t twin of net::connection (which
// is TCP-only): same handler interface, same lifetime rules. The object may be
// destroyed at any time; the handle and in-flight writes outlive it and are freed by
// their callbacks, which no longer reach the handler once it is detached.
class pipe_connection {
 public:
  pipe_connection(const pipe_connection&) = delete;
  pipe_connection& operator=(const pipe_connection&) = delete;
  ~pipe_connection();  // closes the socket if still open

  void start_reading(connection_handler* handler);
  void pause_reading();
  void resume_reading();
  // Queue bytes for the peer. The connection owns `data` until the write completes.
  void write(std::string&& data);
  size_t write_queue_size() const;
  // Stop reading, let queued writes finish, then close. Safe to call twice.
  void close();
  bool closed() const { return state_ == nullptr; }
  const peer_credentials& peer() const { return peer_; }

  struct state;
  explicit pipe_connection(state* s);  // used by unix_listener: an accepted uv_pipe_t

 private:
  state* state_;  // owned by the uv handle's data; freed in the close callback
  peer_credentials peer_;
};

// Listens on a filesystem path. The socket file gets `mode` before it can accept a
// connection (fchmod before bind), so there is no window with looser permissions.
class unix_listener {
 public:
  using accept_fn = std::function<void(std::unique_ptr<pipe_connection>)>;
  unix_listener(loop& l, accept_fn on_accept);
  ~unix_listener();  // close()
  unix_listener(const unix_listener&) = delete;
  unix_listener& operator=(const unix_listener&) = delete;

  // Returns 0 or a negative uv error code; error_text() explains it. A socket file
  // left behind by a dead process (connect refused) is replaced; a live socket
  // (UV_EADDRINUSE) or a file that is not a socket (UV_EEXIST) is left alone.
  int listen(const std::string& path, unsigned mode = 0600, int backlog = 64);
  std::string error_text(int code) const;
  // Stops listening and removes the socket file if this listener created it.
  void close();
  const std::string& path() const { return path_; }

 private:
  uv_pipe_t* handle_ = nullptr;
  accept_fn on_accept_;
  uv_loop_t* loop_;
  std::string path_;
  bool created_ = false;
};

}  // namespace sluice::net
