// credentials.h: the SMTP AUTH user file (user:crypt-hash per line) and password verification.
// Untrusted input: user names and passwords supplied by remote clients through AUTH.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::auth {

// The credentials file, one entry per line:
//
//   # comment
//   alice:$y$j9T$...          (yescrypt, preferred)
//   bob:$6$rounds=5000$...    (SHA-512 crypt, accepted)
//
// Blank lines and lines starting with '#' are ignored. Other crypt(3) methods (DES,
// MD5, bcrypt) are refused at load time so that a weak hash cannot slip in.
//
// Verification costs one full hash computation (yescrypt: milliseconds of CPU and a
// few MB of memory), also for unknown users, so that timing does not reveal which
// names exist. Callers on an event loop should run verify() off the loop (uv_queue_work).
// A loaded object is immutable and may be shared between threads.
class credentials {
 public:
  // nullopt on error, with `error` as "<path>:<line>: <reason>".
  static std::optional<credentials> load(const std::string& path, std::string& error);
  // The same from text in memory; `origin` names it in errors.
  static std::optional<credentials> parse(std::string_view text, std::string_view origin, std::string& error);

  // True when `user` exists and `password` hashes to its entry.
  bool verify(std::string_view user, std::string_view password) const;
  bool contains(std::string_view user) const { return users_.count(std::string(user)) != 0; }
  size_t size() const { return users_.size(); }

 private:
  std::unordered_map<std::string, std::string> users_;  // user → hash
  std::string dummy_;  // a hash of the same kind, spent on unknown users
};

// A new yescrypt hash ("$y$...") of `password` with a random salt; "" on failure
// (no OS randomness, or a password containing NUL).
std::string hash_password(std::string_view password);

// `sluiced --hash-password` / `sluicectl hash-password`: reads a password from standard
// input (prompting twice on stderr without echo when stdin is a terminal, otherwise
// the first line) and prints its hash on standard output. Returns the exit status.
int hash_password_command();

// Constant-time equality for equal-length secrets; different lengths compare unequal.
bool equal_constant_time(std::string_view a, std::string_view b);

}  // namespace sluice::auth
