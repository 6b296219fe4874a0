// privileges.h: who sluiced runs as: the [server] user and group, chosen at start, and the drop from root after binding.
// Untrusted input: none (names from the admin's configuration, looked up in the system's user database).
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace sluice::main {

// The identity sluiced takes once it listens.
struct identity {
  bool drop = false;      // started as root and switching to `user`
  std::string user;       // name, for messages: the target, or whoever started us
  std::string group;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string warning;    // "" or a line for stderr (staying root)
};

// Decides from [server] user, group and allow_root and from who started the daemon
// (`started_as`, the effective uid): started as root, the user (default "sluice") and
// group are looked up now, so a missing one stops the start before anything is opened;
// user = "root" or allow_root with no user keeps root, with a warning. Started as anyone
// else, that user is kept and naming another one is an error. nullopt with `error` set.
std::optional<identity> choose_identity(const config::server_settings& s, uid_t started_as, std::string& error);

// A path the daemon writes after the drop. Only what is the daemon's own is given away:
// a log_dir of "/var/log" must not hand the system's logs to it.
struct owned_path {
  enum class scope : uint8_t {
    self,     // the path alone (a shared directory, a socket)
    entries,  // and what is directly in it (the queue: data.mdb, lock.mdb)
    tree,     // and everything below it (protocol logs, generated TLS keys)
  };
  std::string path;
  scope reach = scope::self;
};

// With who.drop: gives `paths` to the user (missing ones are skipped), then sets the
// user's supplementary groups, the group, the user, and checks that root cannot be taken
// back. Every thread of the process changes (glibc applies set*id to all of them). "" or
// the error; after an error the daemon must exit. Without who.drop: nothing, "".
std::string drop_privileges(const identity& who, const std::vector<owned_path>& paths);

// For errors met reading files after the drop (reload): a sentence saying which user
// must be able to read them; "" when nothing was dropped.
std::string reread_hint(const identity& who);

}  // namespace sluice::main
