// dovecot.h: test fixture that runs Debian's Dovecot as a private LMTP server (TCP on loopback and a Unix socket) with Maildir users.
// Untrusted input: none (Dovecot's log and the Maildir files it writes are read back by the tests).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice_test {

// Starts `dovecot -F` with a configuration of its own in a private temp directory: base_dir,
// state_dir and log there, `protocols = lmtp` with an inet_listener on 127.0.0.1:<free port>
// and a unix_listener at <dir>/lmtp, no TLS, a passwd-file userdb/passdb holding `users`
// (local parts: "alice" takes alice@any.domain) with homes and Maildirs under <dir>/home.
// No system user is needed: run as root, Dovecot's internal processes stay root and mail is
// written as an unprivileged uid that needs no passwd entry (Dovecot refuses to deliver as
// root); run as another user, everything is that user. The constructor waits until both
// listeners accept. Dovecot and its children run in their own process group; the master
// dies with the test's thread (PR_SET_PDEATHSIG, its children follow it), and stop() or
// the destructor ends the whole group. The directory is removed unless
// SLUICE_KEEP_TEST_DIRS is set.
class dovecot {
 public:
  explicit dovecot(const std::vector<std::string>& users);
  ~dovecot();
  dovecot(const dovecot&) = delete;
  dovecot& operator=(const dovecot&) = delete;

  bool ok() const { return pid_ > 0; }
  // Why it did not start, with Dovecot's own words (its stderr and log); also printed to
  // stderr when the start fails.
  const std::string& error() const { return error_; }
  uint16_t port() const { return port_; }
  std::string lmtp_socket() const { return dir_ + "/lmtp"; }
  const std::string& dir() const { return dir_; }
  std::string log() const;
  // <dir>/home/<user>/Maildir
  std::string maildir(const std::string& user) const;
  // The messages delivered to `user`'s INBOX (Maildir new/ and cur/), oldest first by
  // delivery time as Dovecot names the files.
  std::vector<std::string> messages(const std::string& user) const;
  // SIGTERM to the master (which ends its children), a bounded wait, then SIGKILL to
  // whatever of the group is left. Safe to call twice.
  void stop();
  // SIGKILL to the whole group at once, as a crash: no client hears a 421 first.
  void kill();

 private:
  bool start_once(const std::vector<std::string>& users);

  std::string dir_, error_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace sluice_test
