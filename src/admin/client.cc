// client.cc: connect, send one request line, read one framed response, with an overall deadline.
// Untrusted input: response bytes from the socket (decoded with size limits by response_decoder).
#include "admin/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace sluice::admin {

namespace {

// Closes the descriptor on every path out of call().
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

call_result call(const std::string& socket_path, const std::vector<std::string>& words, int timeout_ms) {
  call_result out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    out.error = "socket path too long: " + socket_path;
    return out;
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());

  fd_guard g;
  g.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (g.fd < 0) {
    out.error = std::string("socket: ") + std::strerror(errno);
    return out;
  }
  if (::connect(g.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR) {
      out.status = call_status::not_running;
      out.error = "sluiced is not running (no socket at " + socket_path + ")";
    } else {
      out.error = "cannot connect to " + socket_path + ": " + std::strerror(err);
    }
    return out;
  }

  const std::string request = format_request(words);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(g.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      out.error = std::string("sending to ") + socket_path + ": " + std::strerror(errno);
      return out;
    }
    sent += static_cast<size_t>(n);
  }

  response_decoder decoder;
  char buf[16 * 1024];
  for (;;) {
    pollfd p{g.fd, POLLIN, 0};
    int rc = ::poll(&p, 1, remaining_ms(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      out.error = "no answer from sluiced on " + socket_path + " within " + std::to_string(timeout_ms) + " ms";
      return out;
    }
    ssize_t n = ::recv(g.fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.error = std::string("reading from ") + socket_path + ": " + std::strerror(errno);
      return out;
    }
    if (n == 0) {
      out.error = "sluiced closed the admin connection before answering";
      return out;
    }
    auto st = decoder.feed(std::string_view(buf, static_cast<size_t>(n)));
    if (st == response_decoder::state::malformed) {
      out.error = "malformed answer on " + socket_path + ": " + decoder.problem();
      return out;
    }
    if (st == response_decoder::state::complete) {
      out.status = call_status::ok;
      out.reply = decoder.take();
      return out;
    }
  }
}

}  // namespace sluice::admin
