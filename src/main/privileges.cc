// privileges.cc: chooses the daemon's user and group, hands it its directories and drops root.
// Untrusted input: none (names from the admin's configuration; the directories are the daemon's own).
#include "main/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

namespace sluice::main {

namespace {

constexpr const char* default_user = "sluice";

struct user_entry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// One get*_r lookup of the user or group database, with a buffer grown until the entry
// fits (large NSS entries exist); `take` copies what is wanted out of it while the buffer
// its strings point into still lives. `error` is set when the lookup itself failed.
template <typename Entry, typename Lookup, typename Take>
auto look_up(Lookup lookup, Take take, std::string& error) -> std::optional<decltype(take(std::declval<Entry&>()))> {
  std::vector<char> buf(4096);
  for (;;) {
    Entry entry{};
    Entry* found = nullptr;
    const int rc = lookup(&entry, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0) error = std::strerror(rc);
    if (found == nullptr) return std::nullopt;
    return take(entry);
  }
}

std::optional<user_entry> find_user(const std::string& name, std::string& error) {
  return look_up<passwd>([&](passwd* e, char* b, size_t n, passwd** f) { return ::getpwnam_r(name.c_str(), e, b, n, f); },
                         [](const passwd& p) { return user_entry{p.pw_name, p.pw_uid, p.pw_gid}; }, error);
}

std::optional<gid_t> find_group(const std::string& name, std::string& error) {
  return look_up<group>([&](group* e, char* b, size_t n, group** f) { return ::getgrnam_r(name.c_str(), e, b, n, f); },
                        [](const group& g) { return g.gr_gid; }, error);
}

std::string name_of_uid(uid_t uid) {
  std::string ignored;
  auto name = look_up<passwd>([&](passwd* e, char* b, size_t n, passwd** f) { return ::getpwuid_r(uid, e, b, n, f); },
                              [](const passwd& p) { return std::string(p.pw_name); }, ignored);
  return name ? *name : "uid " + std::to_string(uid);
}

std::string name_of_gid(gid_t gid) {
  std::string ignored;
  auto name = look_up<group>([&](group* e, char* b, size_t n, group** f) { return ::getgrgid_r(gid, e, b, n, f); },
                             [](const group& g) { return std::string(g.gr_name); }, ignored);
  return name ? *name : "gid " + std::to_string(gid);
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string errno_text() { return std::strerror(errno); }

// One entry: lchown, so a symbolic link planted in a directory of ours changes only the
// link. A regular file with several links is skipped: a hard link to someone else's file
// (where the kernel's protected_hardlinks is off) must not become ours.
std::string give(const std::filesystem::path& p, uid_t uid, gid_t gid) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return errno == ENOENT ? "" : p.string() + ": " + errno_text();
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) return "";
  if (st.st_uid == uid && st.st_gid == gid) return "";
  if (::lchown(p.c_str(), uid, gid) != 0) return "cannot give " + p.string() + " to uid " + std::to_string(uid) + ": " + errno_text();
  return "";
}

std::string give_tree(const owned_path& o, uid_t uid, gid_t gid) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(o.path, ec))) return "";
  // The top itself is followed: the admin may have made queue_dir a link to another disk.
  if (::chown(o.path.c_str(), uid, gid) != 0)
    return "cannot give " + o.path + " to uid " + std::to_string(uid) + ": " + errno_text();
  if (o.reach == owned_path::scope::self || !fs::is_directory(o.path, ec)) return "";
  if (o.reach == owned_path::scope::entries) {
    fs::directory_iterator it(o.path, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec))
      if (std::string e = give(it->path(), uid, gid); !e.empty()) return e;
    return ec ? o.path + ": " + ec.message() : "";
  }
  // Not following links below the top, so nothing outside the tree is reached.
  fs::recursive_directory_iterator it(o.path, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (std::string e = give(it->path(), uid, gid); !e.empty()) return e;
  return ec ? o.path + ": " + ec.message() : "";
}

}  // namespace

std::optional<identity> choose_identity(const config::server_settings& s, uid_t started_as, std::string& error) {
  identity who;
  std::string lookup_error;
  if (started_as != 0) {
    // Not root: nothing can be switched, so a configured identity must be the current one.
    who.uid = started_as;
    who.gid = ::getegid();
    who.user = name_of_uid(started_as);
    if (!s.user.empty()) {
      auto u = find_user(s.user, lookup_error);
      if (!u || u->uid != started_as) {
        error = "cannot switch to user " + quoted(s.user) + ": not started as root (running as " + who.user + ")";
        return std::nullopt;
      }
    }
    if (!s.group.empty()) {
      auto g = find_group(s.group, lookup_error);
      if (!g || *g != who.gid) {
        error = "cannot switch to group " + quoted(s.group) + ": not started as root (running as " + who.user + ")";
        return std::nullopt;
      }
    }
    return who;
  }
  if (s.user == "root" || (s.user.empty() && s.allow_root)) {
    who.user = "root";
    who.warning = s.user == "root" ? "running as root ([server] user = \"root\"): a flaw in sluiced would give the whole machine away"
                                   : "running as root ([server] allow_root = true or --allow-root): a flaw in sluiced would give the "
                                     "whole machine away; set [server] user to drop to a user of its own";
    return who;
  }
  const std::string name = s.user.empty() ? default_user : s.user;
  auto u = find_user(name, lookup_error);
  if (!u) {
    error = "started as root, sluiced runs as user " + quoted(name) +
            (s.user.empty() ? " (the default of [server] user)" : " ([server] user)") + ", which does not exist" +
            (lookup_error.empty() ? "" : " (" + lookup_error + ")") +
            ": create it with `adduser --system --group --no-create-home " + name +
            "` (third_party/install.sh does for \"sluice\"), name another user in [server] user, or set [server] "
            "allow_root = true to stay root";
    return std::nullopt;
  }
  if (u->uid == 0) {
    error = "[server] user " + quoted(name) + " has uid 0: that is root; write user = \"root\" to mean it";
    return std::nullopt;
  }
  who.drop = true;
  who.user = u->name;
  who.uid = u->uid;
  who.gid = u->gid;
  who.group = name_of_gid(u->gid);
  if (!s.group.empty()) {
    auto g = find_group(s.group, lookup_error);
    if (!g) {
      error = "[server] group " + quoted(s.group) + " does not exist: create it with `addgroup --system " + s.group +
              "`, or leave group unset for the primary group of user " + quoted(name);
      return std::nullopt;
    }
    who.gid = *g;
    who.group = s.group;
  }
  return who;
}

std::string drop_privileges(const identity& who, const std::vector<owned_path>& paths) {
  if (!who.drop) return "";
  for (const auto& p : paths)
    if (std::string e = give_tree(p, who.uid, who.gid); !e.empty()) return e;
  // Groups first: once the uid is not root, neither can be changed any more.
  if (::initgroups(who.user.c_str(), who.gid) != 0) return "initgroups(" + who.user + "): " + errno_text();
  if (::setgid(who.gid) != 0) return "setgid(" + std::to_string(who.gid) + "): " + errno_text();
  if (::setuid(who.uid) != 0) return "setuid(" + std::to_string(who.uid) + "): " + errno_text();
  // setuid() from root sets the real, effective and saved ids; if any were left behind,
  // root could be taken back, and a daemon that believes it dropped must not run.
  if (::setuid(0) == 0 || ::getuid() != who.uid || ::geteuid() != who.uid || ::getgid() != who.gid ||
      ::getegid() != who.gid)
    return "privileges were not dropped: root can still be regained";
  return "";
}

std::string reread_hint(const identity& who) {
  if (!who.drop) return "";
  return "sluiced runs as user " + who.user + " since it started: a reload reads the configuration, recipient lists, "
         "credentials and TLS keys as that user, so they must be readable by it (e.g. group " +
         who.group + ", mode 0640)";
}

}  // namespace sluice::main
