// notify.cc: sd_notify datagrams to NOTIFY_SOCKET (a path or an abstract name), without libsystemd.
// Untrusted input: the NOTIFY_SOCKET environment variable, and status texts quoting configuration errors.
#include "main/notify.h"

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace sluice::main {

notifier::notifier(std::string_view socket_name) {
  // Only the two forms of AF_UNIX address the protocol defines; anything else (a relative
  // path, systemd 254's vsock:) is treated as no manager rather than guessed at.
  if (socket_name.size() < 2 || (socket_name[0] != '/' && socket_name[0] != '@')) return;
  if (socket_name.size() > sizeof address_.sun_path) return;
  if (socket_name.find('\0') != std::string_view::npos) return;
  address_.sun_family = AF_UNIX;
  std::memcpy(address_.sun_path, socket_name.data(), socket_name.size());
  // An abstract name has a leading NUL instead of '@' and no terminating NUL: its length
  // is part of the name, so the address length must be exact for either form.
  if (address_.sun_path[0] == '@') address_.sun_path[0] = '\0';
  address_length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_name.size());
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

notifier notifier::from_environment() {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (name == nullptr) return notifier();
  notifier n{std::string_view(name)};
  ::unsetenv("NOTIFY_SOCKET");
  return n;
}

notifier::~notifier() {
  if (fd_ >= 0) ::close(fd_);
}

notifier::notifier(notifier&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      address_(other.address_),
      address_length_(other.address_length_),
      failed_(other.failed_) {}

notifier& notifier::operator=(notifier&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    address_ = other.address_;
    address_length_ = other.address_length_;
    failed_ = other.failed_;
  }
  return *this;
}

bool notifier::send(std::string_view message) {
  if (fd_ < 0) return false;
  // Connectionless: each datagram is addressed, so a manager that re-creates its socket
  // (systemd after daemon-reexec) is reached again without reopening ours.
  const ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&address_), address_length_);
  if (n == static_cast<ssize_t>(message.size())) return true;
  ++failed_;
  return false;
}

std::string status_assignment(std::string_view text, std::size_t max_bytes) {
  std::string out = "STATUS=";
  std::size_t length = text.size() < max_bytes ? text.size() : max_bytes;
  out.reserve(out.size() + length);
  // Multi-line texts (a configuration's error list) stay readable on one line.
  while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == '\r')) --length;
  for (std::size_t i = 0; i < length; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n')
      out += "; ";
    else if (c < 0x20 || c == 0x7f)
      out += ' ';
    else if (c >= 0x80)
      out += '?';
    else
      out += static_cast<char>(c);
  }
  return out;
}

void notifier::ready(std::string_view status) {
  if (enabled()) send("READY=1\n" + status_assignment(status));
}

void notifier::reloading(std::string_view status) {
  if (!enabled()) return;
  // Type=notify-reload managers take a RELOADING=1 as the answer to their SIGHUP only if
  // this time is later than the signal: read it when the reload starts, not before.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t usec = static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\n" + status_assignment(status));
}

void notifier::stopping(std::string_view status) {
  if (enabled()) send("STOPPING=1\n" + status_assignment(status));
}

void notifier::status(std::string_view status) {
  if (enabled()) send(status_assignment(status));
}

}  // namespace sluice::main
