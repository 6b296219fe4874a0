// notify.h: the sd_notify datagram protocol, written by hand: tells a service manager when sluiced is ready, reloading or stopping.
// Untrusted input: the NOTIFY_SOCKET environment variable (whoever started the daemon sets it),
// and status texts that quote configuration errors (kept from adding lines of their own).
#pragma once
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::main {

// One datagram per message, newline-separated KEY=VALUE assignments, to the socket named by
// NOTIFY_SOCKET: an absolute path, or "@name" for a name in the abstract namespace. No
// variable, or a value that names no Unix socket (relative, too long, vsock:...): every call
// is a no-op, so sluiced started by hand or by another supervisor behaves as before.
//
// Sends never block and never fail the caller: a manager that is gone or not reading costs
// a lost status line, not mail (the socket is non-blocking and errors are only counted).
// Used from the main thread only (it is not synchronised); a moved-from notifier is disabled.
class notifier {
 public:
  notifier() = default;  // disabled
  // `socket_name` as NOTIFY_SOCKET spells it; "" disables.
  explicit notifier(std::string_view socket_name);
  // Reads NOTIFY_SOCKET and removes it from the environment, so nothing the daemon might
  // start later speaks to the manager in its name.
  static notifier from_environment();
  ~notifier();
  notifier(notifier&& other) noexcept;
  notifier& operator=(notifier&& other) noexcept;
  notifier(const notifier&) = delete;
  notifier& operator=(const notifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  // Datagrams the kernel refused (manager gone, queue full); for the log, never an error.
  uint64_t failed_sends() const { return failed_; }

  // "READY=1" + STATUS: startup is complete (every worker listens), or a reload is done.
  void ready(std::string_view status);
  // "RELOADING=1" + "MONOTONIC_USEC=" (CLOCK_MONOTONIC now, in µs, as systemd 253's
  // Type=notify-reload requires) + STATUS: a reload has started; ready() ends it.
  void reloading(std::string_view status);
  // "STOPPING=1" + STATUS: shutdown has begun.
  void stopping(std::string_view status);
  // STATUS alone: what `systemctl status` shows between the events above.
  void status(std::string_view status);

  // Sends `message` as it is (already KEY=VALUE lines); false if not sent.
  bool send(std::string_view message);

 private:
  int fd_ = -1;  // owned: AF_UNIX SOCK_DGRAM, non-blocking, close-on-exec
  sockaddr_un address_{};
  socklen_t address_length_ = 0;
  uint64_t failed_ = 0;
};

// "STATUS=" + the first `max_bytes` of text on one line: a newline (which would start an
// assignment of its own) becomes "; ", other control characters a space, and non-ASCII
// bytes '?' (systemd ignores a STATUS that is not UTF-8, and a cut may split a character).
std::string status_assignment(std::string_view text, std::size_t max_bytes = 1024);

}  // namespace sluice::main
