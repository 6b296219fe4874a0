// unix_listener.cc: libuv pipe listener on a Unix-domain socket path, and accepted pipe connections.
// Untrusted input: peer bytes pass through to the handler; nothing here parses them.
#include "net/unix_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace sluice::net {

struct pipe_connection::state {
  uv_pipe_t pipe{};
  connection_handler* handler = nullptr;  // null once the connection object is gone
  size_t queued_bytes = 0;
  bool closing = false;
};

namespace {

using state = pipe_connection::state;

// Admin requests are short; a small per-thread buffer is plenty and, as in
// connection.cc, handlers consume it synchronously.
thread_local char pipe_read_buffer[16 * 1024];

uv_stream_t* stream_of(state* s) { return reinterpret_cast<uv_stream_t*>(&s->pipe); }

void on_alloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = pipe_read_buffer;
  buf->len = sizeof pipe_read_buffer;
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* s = static_cast<state*>(stream->data);
  if (s == nullptr || s->handler == nullptr || s->closing) return;
  if (nread > 0) {
    s->handler->on_read(std::string_view(buf->base, static_cast<size_t>(nread)));
  } else if (nread < 0) {
    uv_read_stop(stream);
    s->handler->on_read_end(static_cast<int>(nread));
  }
}

void on_closed(uv_handle_t* handle) { std::unique_ptr<state> owned(static_cast<state*>(handle->data)); }

struct write_request {
  uv_write_t req{};
  std::string owned;
};

void on_written(uv_write_t* req, int) {
  std::unique_ptr<write_request> owned(static_cast<write_request*>(req->data));
  auto* s = static_cast<state*>(req->handle->data);
  if (s == nullptr) return;
  s->queued_bytes -= owned->owned.size();
  if (s->queued_bytes == 0 && s->handler != nullptr && !s->closing) s->handler->on_drained();
}

void begin_close(state* s) {
  if (s->closing) return;
  s->closing = true;
  s->handler = nullptr;
  uv_read_stop(stream_of(s));
  // Let a queued response reach the peer before the close, as connection.cc does.
  auto shutdown = std::make_unique<uv_shutdown_t>();
  int rc = uv_shutdown(shutdown.get(), stream_of(s), [](uv_shutdown_t* req, int) {
    std::unique_ptr<uv_shutdown_t> owned(req);
    auto* handle = reinterpret_cast<uv_handle_t*>(req->handle);
    if (!uv_is_closing(handle)) uv_close(handle, on_closed);
  });
  if (rc == 0) {
    shutdown.release();
  } else {
    uv_close(reinterpret_cast<uv_handle_t*>(&s->pipe), on_closed);
  }
}

bool fill_path(const std::string& path, sockaddr_un& addr) {
  addr = sockaddr_un{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

// Whether something accepts connections on path right now.
bool someone_listens(const sockaddr_un& addr) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return live;
}

}  // namespace

pipe_connection::pipe_connection(state* s) : state_(s) {
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&s->pipe), &fd) == 0) {
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      peer_.pid = cred.pid;
      peer_.uid = cred.uid;
      peer_.gid = cred.gid;
    }
  }
}

pipe_connection::~pipe_connection() { close(); }

void pipe_connection::start_reading(connection_handler* handler) {
  if (state_ == nullptr) return;
  state_->handler = handler;
  uv_read_start(stream_of(state_), on_alloc, on_read);
}

void pipe_connection::pause_reading() {
  if (state_ != nullptr && !state_->closing) uv_read_stop(stream_of(state_));
}

void pipe_connection::resume_reading() {
  if (state_ != nullptr && !state_->closing) uv_read_start(stream_of(state_), on_alloc, on_read);
}

void pipe_connection::write(std::string&& data) {
  if (state_ == nullptr || state_->closing || data.empty()) return;
  auto req = std::make_unique<write_request>();
  req->owned = std::move(data);
  uv_buf_t buf = uv_buf_init(req->owned.data(), static_cast<unsigned>(req->owned.size()));
  req->req.data = req.get();
  if (uv_write(&req->req, stream_of(state_), &buf, 1, on_written) == 0) {
    state_->queued_bytes += req->owned.size();
    req.release();
  }
}

size_t pipe_connection::write_queue_size() const { return state_ == nullptr ? 0 : state_->queued_bytes; }

void pipe_connection::close() {
  if (state_ == nullptr) return;
  begin_close(state_);
  state_ = nullptr;
}

unix_listener::unix_listener(loop& l, accept_fn on_accept) : on_accept_(std::move(on_accept)), loop_(l.get()) {}

unix_listener::~unix_listener() { close(); }

std::string unix_listener::error_text(int code) const {
  if (code == UV_EADDRINUSE) return "another process is listening on " + path_;
  if (code == UV_EEXIST) return path_ + " exists and is not a socket";
  if (code == UV_ENAMETOOLONG) return "socket path too long (at most 107 bytes): " + path_;
  return path_ + ": " + uv_strerror(code);
}

int unix_listener::listen(const std::string& path, unsigned mode, int backlog) {
  close();
  path_ = path;
  sockaddr_un addr;
  if (!fill_path(path, addr)) return UV_ENAMETOOLONG;

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return UV_EEXIST;
    if (someone_listens(addr)) return UV_EADDRINUSE;
    // Left by a daemon that died without cleaning up: nobody can reach it any more.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return uv_translate_sys_error(errno);
  }

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  // On Linux the socket file takes the socket inode's mode (less the umask) at bind
  // time, so setting it first leaves no moment in which others could connect.
  ::fchmod(fd, static_cast<mode_t>(mode));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    return uv_translate_sys_error(err);
  }
  created_ = true;
  // The umask may only have removed bits; make the result exact.
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    int err = errno;
    ::close(fd);
    close();
    return uv_translate_sys_error(err);
  }

  handle_ = static_cast<uv_pipe_t*>(std::calloc(1, sizeof(uv_pipe_t)));
  uv_pipe_init(loop_, handle_, 0);
  handle_->data = this;
  int rc = uv_pipe_open(handle_, fd);
  if (rc != 0) {
    ::close(fd);
  } else {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(handle_), backlog, [](uv_stream_t* server, int status) {
      auto* self = static_cast<unix_listener*>(server->data);
      if (self == nullptr || status < 0) return;
      auto s = std::make_unique<pipe_connection::state>();
      uv_pipe_init(server->loop, &s->pipe, 0);
      if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&s->pipe)) != 0) {
        s->pipe.data = s.get();
        uv_close(reinterpret_cast<uv_handle_t*>(&s.release()->pipe), on_closed);
        return;
      }
      s->pipe.data = s.get();
      self->on_accept_(std::make_unique<pipe_connection>(s.release()));
    });
  }
  if (rc != 0) close();
  return rc;
}

void unix_listener::close() {
  close_and_free(reinterpret_cast<uv_handle_t*>(handle_));
  handle_ = nullptr;
  if (created_) {
    ::unlink(path_.c_str());
    created_ = false;
  }
}

}  // namespace sluice::net
