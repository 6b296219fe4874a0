// privileges_test.cc: sluiced started as root drops to its [server] user once it listens, and refuses identities it cannot take.
// Untrusted input: none (/proc of the test's own daemon, the daemon's output).
#include <criterion/criterion.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "assertions.h"
#include "harness.h"
#include "peers.h"

using namespace sluice::testing;
namespace fs = std::filesystem;

namespace {

void require_root() {
  if (::geteuid() != 0) cr_skip_test("privilege drop needs the tests to run as root (CI does); running as uid %d", ::geteuid());
}

struct ids {
  uid_t uid;
  gid_t gid;
};

// nobody/nogroup: on every Debian system, and in no supplementary group.
ids nobody() {
  const passwd* pw = ::getpwnam("nobody");
  const group* gr = ::getgrnam("nogroup");
  cr_assert(pw != nullptr && gr != nullptr, "no user nobody or group nogroup on this system");
  return {pw->pw_uid, gr->gr_gid};
}

// default_config() with `keys` added to its [server] table.
std::string with_server_keys(const std::string& keys) {
  std::string c = sluiced_process::default_config();
  c.insert(c.find('\n') + 1, keys);
  return c;
}

// The "Uid:" or "Gid:" line of /proc/<pid>[/task/<tid>]/status: real, effective, saved, fs.
std::string status_line(const std::string& status_file, const std::string& key) {
  std::ifstream in(status_file);
  for (std::string l; std::getline(in, l);)
    if (l.rfind(key, 0) == 0) return l;
  return "";
}

// The line is `key` with all four ids equal to `id`.
void expect_ids(const std::string& status_file, const std::string& key, unsigned id) {
  const std::string n = std::to_string(id), line = status_line(status_file, key),
                    wanted = key + "\t" + n + "\t" + n + "\t" + n + "\t" + n;
  cr_assert(line == wanted, "%s: '%s', not '%s'", status_file.c_str(), line.c_str(), wanted.c_str());
}

uid_t owner_of(const std::string& path) {
  struct stat st {};
  cr_assert(::lstat(path.c_str(), &st) == 0, "%s is missing", path.c_str());
  return st.st_uid;
}

// The daemon run straight from the shell (so its exit status is seen), ended after 10 s
// if it does start: the cases below must refuse at once.
command_result run_daemon(const sluiced_process& d, const std::string& prefix = "") {
  return run("cd " + d.dir() + " && " + prefix + "timeout 10 " + sluiced_path() + " --config " + d.dir() + "/sluice.toml");
}

// The port accepts before the drop (connections wait in the backlog until the workers
// serve); the "ready" line comes after it.
void start_until_ready(sluiced_process& d) {
  START(d);
  cr_assert(eventually([&] { return d.log().find(" ready: ") != std::string::npos; }, 10'000), "never ready:\n%s",
            d.log().c_str());
}

}  // namespace

Test(integration_privileges, root_drops_to_the_configured_user_once_it_listens, .timeout = 60) {
  require_root();
  const ids who = nobody();
  sluiced_process d;
  // The private directory must be passable for the dropped daemon (as /var/lib is).
  ::chmod(d.dir().c_str(), 0755);
  d.write_config(with_server_keys("user = \"nobody\"\ngroup = \"nogroup\"\n"));
  start_until_ready(d);

  // Every thread of the daemon, not only the main one: the workers serve the sessions.
  const std::string proc = "/proc/" + std::to_string(d.pid());
  size_t threads = 0;
  for (const auto& task : fs::directory_iterator(proc + "/task")) {
    const std::string status = task.path().string() + "/status";
    expect_ids(status, "Uid:", who.uid);
    expect_ids(status, "Gid:", who.gid);
    // No supplementary group of root's survives: nobody is in none but its own.
    std::istringstream groups(status_line(status, "Groups:").substr(7));
    for (unsigned g; groups >> g;) cr_assert_eq(g, who.gid, "%s: supplementary group %u kept", status.c_str(), g);
    ++threads;
  }
  cr_assert_geq(threads, 3u, "the main thread and two workers");
  cr_assert(d.log().find("running as nobody") != std::string::npos, "%s", d.log().c_str());

  // It still takes mail, and its queue, logs and admin socket are now its own.
  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
  EXPECT_CODE(c.cmd("DATA"), 354);
  const std::string queued = c.cmd("Subject: after the drop\r\n\r\nbody\r\n.");
  EXPECT_CODE(queued, 250);
  c.cmd("QUIT");
  for (const std::string& path : {d.queue_dir(), d.queue_dir() + "/data.mdb", d.queue_dir() + "/lock.mdb",
                                  d.dir() + "/log", d.dir() + "/log/tracking.csv", d.dir() + "/log/protocol",
                                  d.dir() + "/pickup", d.dir() + "/admin.sock"})
    cr_assert_eq(owner_of(path), who.uid, "%s is not owned by nobody", path.c_str());
  // The directory it was started from, and the configuration, stay root's.
  cr_assert_eq(owner_of(d.dir() + "/sluice.toml"), 0u);

  // The pickup directory works as nobody: the file is claimed and submitted.
  d.write_file("pickup/dropped.eml", "From: a@example.org\r\nTo: bob@sluice.test\r\nSubject: picked\r\n\r\nbody\r\n");
  cr_assert(eventually([&] { return !fs::exists(d.dir() + "/pickup/dropped.eml"); }, 5000), "pickup did not take it:\n%s",
            d.log().c_str());
  // And sluicectl (root) still reads the queue it writes.
  const std::string id = queue_id_of(queued);
  cr_assert(eventually([&] { return d.ctl("queue list --json").output.find(id) != std::string::npos; }, 5000));
  d.stop();
}

Test(integration_privileges, a_user_that_does_not_exist_is_refused_with_how_to_make_it, .timeout = 60) {
  require_root();
  sluiced_process d;
  d.write_config(with_server_keys("user = \"sluice-test-nosuchuser\"\n"));
  const command_result r = run_daemon(d);
  cr_assert_eq(r.status, 78, "status %d: %s", r.status, r.output.c_str());
  cr_assert(r.output.find("user \"sluice-test-nosuchuser\"") != std::string::npos, "%s", r.output.c_str());
  cr_assert(r.output.find("adduser --system --group --no-create-home sluice-test-nosuchuser") != std::string::npos, "%s",
            r.output.c_str());
  // Refused before anything was made.
  cr_assert(!fs::exists(d.queue_dir() + "/data.mdb"));
}

// Nothing said about the user (and no --allow-root): root drops to "sluice" (third_party/install.sh makes it) or,
// where it does not exist, refuses and says how to make it; it never stays root silently.
Test(integration_privileges, root_without_a_user_drops_to_sluice_or_refuses, .timeout = 60) {
  require_root();
  sluiced_process d;
  ::chmod(d.dir().c_str(), 0755);
  d.write_config(sluiced_process::default_config());
  const passwd* pw = ::getpwnam("sluice");
  if (pw == nullptr) {
    const command_result r = run_daemon(d);
    cr_assert_eq(r.status, 78, "status %d: %s", r.status, r.output.c_str());
    cr_assert(r.output.find("user \"sluice\" (the default of [server] user)") != std::string::npos, "%s", r.output.c_str());
    cr_assert(r.output.find("adduser --system --group --no-create-home sluice") != std::string::npos, "%s",
              r.output.c_str());
    cr_assert(r.output.find("allow_root = true") != std::string::npos, "%s", r.output.c_str());
    return;
  }
  // Run as the harness cannot (it keeps the test's user): the ready line names the user.
  const command_result r = run("cd " + d.dir() + " && timeout 3 " + sluiced_path() + " --config " + d.dir() + "/sluice.toml");
  cr_assert(r.output.find(", running as sluice") != std::string::npos, "%s", r.output.c_str());
}

Test(integration_privileges, user_root_keeps_root_with_a_warning, .timeout = 60) {
  require_root();
  sluiced_process d;
  d.write_config(with_server_keys("user = \"root\"\n"));
  start_until_ready(d);
  const std::string status = "/proc/" + std::to_string(d.pid()) + "/status";
  expect_ids(status, "Uid:", 0);
  cr_assert(d.log().find("warning: running as root") != std::string::npos, "%s", d.log().c_str());
  smtp_client c(d.port());
  EXPECT_CODE(c.start_transaction(), 250);
  d.stop();
}

// Started by an ordinary user, the daemon can become nobody else.
Test(integration_privileges, not_started_as_root_another_user_is_an_error, .timeout = 60) {
  require_root();  // to start it as nobody
  sluiced_process d;
  ::chmod(d.dir().c_str(), 0755);
  d.write_config(with_server_keys("user = \"root\"\n"));
  ::chmod((d.dir() + "/sluice.toml").c_str(), 0644);
  const command_result r = run_daemon(d, "setpriv --reuid=nobody --regid=nogroup --clear-groups ");
  cr_assert_eq(r.status, 78, "status %d: %s", r.status, r.output.c_str());
  cr_assert(r.output.find("cannot switch to user \"root\": not started as root (running as nobody)") != std::string::npos,
            "%s", r.output.c_str());
}
