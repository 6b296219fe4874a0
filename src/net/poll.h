// poll.h: RAII over uv_poll_t: readiness of a socket someone else reads and writes (c-ares's sockets).
// Untrusted input: none (it reports readiness; the owner of the socket reads the bytes).
#pragma once
#include <functional>

#include "net/loop.h"

namespace sluice::net {

// Watches one socket file descriptor for readability/writability on a loop. The
// descriptor stays owned by the caller: this never reads, writes or closes it, and the
// caller must stop() (or destroy) the poll before closing the descriptor, or the loop
// may watch a recycled descriptor. The callback runs on the loop thread only, after
// start() and until stop() or destruction; destruction cancels every pending event, so
// no callback runs afterwards. The handle memory is freed in its close callback.
class poll {
 public:
  static constexpr int readable = UV_READABLE;
  static constexpr int writable = UV_WRITABLE;

  // `status` is 0 or a negative libuv error (the socket failed: read or write it to learn
  // why); `events` is a mask of readable | writable.
  using callback = std::function<void(int status, int events)>;

  poll(loop& l, int fd);
  ~poll();
  poll(const poll&) = delete;
  poll& operator=(const poll&) = delete;

  int init_error() const { return init_error_; }  // 0, or why libuv refused the descriptor
  // Starts or changes the watched events (a mask of readable | writable; 0 stops).
  // Replaces any previous callback. Returns 0 or a negative libuv error.
  int start(int events, callback cb);
  void stop();
  int fd() const { return fd_; }
  void fire(int status, int events) { callback_(status, events); }  // called by the uv callback

 private:
  uv_poll_t* handle_;
  int fd_;
  int init_error_ = 0;
  callback callback_;
};

}  // namespace sluice::net
