// unix_listener.cc: libuv pipe listener on a Unix-domain socket path.
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

namespace {

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
      if (auto c = connection::accept_from(server)) self->on_accept_(std::move(c));
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
