// connection.h: a TCP or Unix-domain stream connection, outbound connects and SO_REUSEPORT listeners on a libuv loop.
// Untrusted input: bytes read from remote peers are handed to the owner unexamined.
#pragma once
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "net/loop.h"

namespace sluice::net {

// A socket address with its text form, for logs and connector matching.
struct endpoint {
  sockaddr_storage addr{};
  std::string text() const;        // "127.0.0.1:2525" or "[::1]:2525"
  std::string host() const;        // address only
  uint16_t port() const;
  static bool parse(std::string_view text, endpoint& out);  // "1.2.3.4:25", "[::1]:25"
};

// Who is on the other end of a Unix-domain connection (SO_PEERCRED, taken at accept).
struct peer_credentials {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

// The owner's side of a connection. Callbacks run on the loop thread.
class connection_handler {
 public:
  virtual ~connection_handler() = default;
  // Bytes read from the peer. `data` is valid only during the call (it points into
  // the loop's shared read buffer).
  virtual void on_read(std::string_view data) = 0;
  // The peer closed (status UV_EOF) or the socket failed; the owner should close().
  virtual void on_read_end(int status) = 0;
  // All queued writes have reached the kernel (write_queue_size() is 0 again).
  virtual void on_drained() {}
};

// One stream connection: TCP, or a Unix-domain socket (admin). The connection object
// may be destroyed at any time; the uv handle and in-flight write requests outlive it
// and are freed by their callbacks, which no longer reach the handler once it is detached.
class connection {
 public:
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();  // closes the socket if still open

  void start_reading(connection_handler* handler);
  void pause_reading();
  void resume_reading();

  // Queue bytes for the peer. The connection takes ownership of `data` until the
  // write completes; the caller keeps nothing.
  void write(std::string&& data);
  // Queue bytes the caller keeps alive until on_drained() (or close): zero-copy writes
  // from memory the caller pins, such as an LMDB read transaction.
  void write_borrowed(const char* data, size_t size);
  // The same for several pieces in one write (one writev): the caller keeps every piece
  // alive until on_drained() (or close); the span itself may go when this returns.
  void write_borrowed(std::span<const std::string_view> pieces);
  size_t write_queue_size() const;

  // Stop reading, let queued writes finish, then close. Safe to call twice. The close
  // is bounded: writes still queued after the close deadline (a peer that stopped
  // reading, a zero window) are dropped and the socket is reset (SO_LINGER 0), so a
  // peer cannot keep a descriptor of ours alive after we have finished with it.
  void close();
  // Closes the descriptor now: writes libuv still queues are dropped, bytes the kernel has
  // already taken are still sent, then a FIN. For connections refused on arrival: a flood
  // of them must not hold descriptors for a loop turn or a close deadline. A write made
  // just before on a fresh socket has gone to the kernel (libuv writes at once when its
  // queue is empty), so a short refusal such as a 421 still reaches the peer.
  void close_now();
  // How long close() waits for queued writes; set before close(). Default 5000 ms.
  void set_close_deadline(uint32_t ms);
  static constexpr uint32_t default_close_deadline_ms = 5000;
  // `fn` runs once on the loop thread when the socket descriptor is really closed, which
  // may be after this object is gone (close() can be waiting for queued writes). The
  // connection owns `fn` until then. Owners that count sockets against limits release
  // them here rather than when they drop the connection. Not run if the loop is torn
  // down with the socket still open.
  void on_socket_closed(std::function<void()> fn);
  bool closed() const { return state_ == nullptr; }

  // TCP only (empty for Unix-domain sockets).
  const endpoint& local() const { return local_; }
  const endpoint& peer() const { return peer_; }
  // Unix-domain sockets only.
  const peer_credentials& credentials() const { return credentials_; }
  uv_loop_t* uv_loop() const;

  // For listeners: accepts the pending connection of `server` (a TCP or pipe listener)
  // into a new connection; nullptr if the accept failed.
  static std::unique_ptr<connection> accept_from(uv_stream_t* server);

  struct state;
  explicit connection(state* s);  // wraps a connected handle (listeners and connect())

 private:
  state* state_;  // owned by the uv handle's data; freed in the close callback
  endpoint local_, peer_;
  peer_credentials credentials_;
};

// Listens on one address on one loop with SO_REUSEPORT, so every worker loop can
// listen on the same binding and the kernel spreads connections across them.
class listener {
 public:
  using accept_fn = std::function<void(std::unique_ptr<connection>)>;
  listener(loop& l, accept_fn on_accept);
  ~listener();
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  // Returns 0 or a negative errno / uv error code; error_text() explains it.
  int listen(const endpoint& where, int backlog = 1024);
  std::string error_text(int code) const;
  endpoint bound() const;  // the actual address (port 0 resolves here)
  void close();

 private:
  uv_tcp_t* handle_ = nullptr;
  accept_fn on_accept_;
  uv_loop_t* loop_;
};

// A read or connect status (a negative uv error code) as text, and whether a read status
// is the peer's orderly close rather than a failure.
std::string status_text(int status);
bool is_end_of_stream(int status);

// Outbound connection. The callback gets the connection, or nullptr and the uv error.
// Ownership: the pending request owns `done` and the socket until the callback, which runs
// once on the loop thread (on a later turn, or before connect() returns when the request
// cannot even be made); the connection is then the callback's. A loop torn down before
// the connect completes never calls `done`.
void connect(loop& l, const endpoint& to, std::function<void(std::unique_ptr<connection>, int)> done);
// The same towards a Unix-domain stream socket at `path` (an LMTP server's socket): the
// connection carries a byte_stream exactly as a TCP one does; its local() and peer() are
// empty and credentials() names the listening process. `path` is copied before this
// returns. A path that does not fit a sockaddr_un (107 bytes) is refused with
// UV_ENAMETOOLONG before connect_unix returns; a missing socket file or nobody listening
// (UV_ENOENT, UV_ECONNREFUSED) comes on a later turn. Ownership as for connect().
void connect_unix(loop& l, const std::string& path, std::function<void(std::unique_ptr<connection>, int)> done);

}  // namespace sluice::net
