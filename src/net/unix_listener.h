// unix_listener.h: a Unix-domain stream socket listener on a libuv loop, with file permissions.
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

// Listens on a filesystem path. The socket file gets `mode` before it can accept a
// connection (fchmod before bind), so there is no window with looser permissions.
class unix_listener {
 public:
  // Accepted connections are net::connection objects; their credentials() name the peer.
  using accept_fn = std::function<void(std::unique_ptr<connection>)>;
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
