// poll.cc: uv_poll_t lifetime and readiness callbacks.
// Untrusted input: none.
#include "net/poll.h"

#include <cstdlib>

namespace sluice::net {

poll::poll(loop& l, int fd)
    : handle_(static_cast<uv_poll_t*>(std::calloc(1, sizeof(uv_poll_t)))), fd_(fd) {
  init_error_ = uv_poll_init_socket(l.get(), handle_, fd);
  if (init_error_ != 0) {
    // Never initialised, so never known to the loop: free it here, not on close.
    std::free(handle_);
    handle_ = nullptr;
    return;
  }
  handle_->data = this;
}

poll::~poll() { close_and_free(reinterpret_cast<uv_handle_t*>(handle_)); }

int poll::start(int events, callback cb) {
  if (handle_ == nullptr) return init_error_;
  if (events == 0) {
    stop();
    return 0;
  }
  callback_ = std::move(cb);
  return uv_poll_start(handle_, events, [](uv_poll_t* h, int status, int ev) {
    if (auto* self = static_cast<poll*>(h->data)) self->fire(status, ev);
  });
}

void poll::stop() {
  if (handle_ != nullptr) uv_poll_stop(handle_);
}

}  // namespace sluice::net
