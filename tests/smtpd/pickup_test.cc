// pickup_test.cc: the pickup directory scan on a real directory: queued files, .bad quarantine, the hop count,
// claimed files, symlinks, FIFOs, foreign owners and reads off the loop thread.
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "net/loop.h"
#include "smtpd/pickup.h"
#include "store/store.h"

using namespace sluice;
namespace fs = std::filesystem;

namespace {

struct pickup_dir {
  fs::path path;
  pickup_dir() {
    char tmpl[] = "/tmp/sluice-pickup-test-XXXXXX";
    cr_assert(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~pickup_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void drop(const std::string& name, const std::string& content) const {
    std::ofstream(path / name, std::ios::binary) << content;
  }
  // Names in the directory that start with `prefix`.
  std::vector<std::string> names_starting(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path))
      if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().filename().string());
    return out;
  }
};

std::string message_with_hops(int hops) {
  std::string m;
  for (int i = 0; i < hops; ++i) m += "Received: from hop" + std::to_string(i) + ".example by relay.example; x\n";
  return m + "From: robot@example.org\nTo: someone@example.net\nSubject: s\n\nbody\n";
}

// Runs the loop until `done` holds or 10 s pass (the caller's assertions then fail).
void run_until(net::loop& l, const std::function<bool()>& done) {
  if (done()) return;
  net::timer guard(l), poll(l);
  guard.start(10000, 0, [&l] { l.halt(); });
  poll.start(2, 2, [&l, &done] {
    if (done()) l.halt();
  });
  l.run();
}

// A pickup over `dir` whose submissions are recorded, not stored.
struct harness {
  net::loop l;
  std::vector<store::submit_request*> submitted;
  smtpd::pickup p;
  explicit harness(const pickup_dir& dir, unsigned max_received = 100)
      : p(l, settings(dir, max_received), [this](store::submit_request* r) {
          submitted.push_back(r);
          return true;
        }) {}
  static smtpd::pickup_settings settings(const pickup_dir& dir, unsigned max_received) {
    smtpd::pickup_settings ps;
    ps.dir = dir.path.string();
    ps.hostname = "mx.sluice.test";
    ps.max_received_headers = max_received;
    return ps;
  }
  // One scan, run until it has finished and its files are submitted (or nothing came).
  void scan_and_wait() {
    size_t before = submitted.size();
    p.scan();
    run_until(l, [&] { return p.idle() || submitted.size() > before; });
  }
  // Tells the pickup the store holds `r` durably and waits until it has acted on that.
  void make_durable(store::submit_request* r) {
    r->result = store::submit_status::ok;
    p.submitted(r);
    run_until(l, [&] { return p.idle(); });
  }
};

bool set_immutable(const fs::path& p, bool on) {
  std::string cmd = std::string("chattr ") + (on ? "+i " : "-i ") + p.string() + " 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

Test(smtpd_pickup_dir, looping_file_is_renamed_bad_and_good_one_is_queued) {
  pickup_dir dir;
  dir.drop("a-good.eml", message_with_hops(1));
  dir.drop("b-loop.eml", message_with_hops(4));
  harness h(dir, 3);
  h.scan_and_wait();
  cr_assert(fs::exists(dir.path / "b-loop.bad"), "a looping message is quarantined");
  cr_assert_not(fs::exists(dir.path / "b-loop.eml"));
  cr_assert_eq(h.submitted.size(), 1u);
  const std::string& body = h.submitted[0]->body;
  cr_assert(body.rfind("Received: from pickup directory\r\n\tby mx.sluice.test (sluice) with pickup id " +
                           h.submitted[0]->id.text() + "; ",
                       0) == 0,
            "%s", body.c_str());
  cr_assert(body.find("\r\nReceived: from hop0.example") != std::string::npos);

  // The good file's data stays (claimed) until the store has it durably, then goes.
  cr_assert_eq(dir.names_starting("a-good.eml").size(), 1u);
  h.make_durable(h.submitted[0]);
  cr_assert(dir.names_starting("a-good").empty());
  cr_assert(h.p.idle());
}

// A file whose deletion fails after its message is durable must not be queued again on
// every scan. As root, chmod does not stop unlink; an immutable directory does.
Test(smtpd_pickup_dir, undeletable_file_is_queued_once) {
  pickup_dir dir;
  if (!set_immutable(dir.path, false)) cr_skip_test("chattr does not work on %s", dir.path.c_str());
  dir.drop("stuck.eml", message_with_hops(0));
  harness h(dir);
  h.scan_and_wait();
  cr_assert_eq(h.submitted.size(), 1u);
  bool immutable = set_immutable(dir.path, true);
  if (immutable) {
    h.make_durable(h.submitted[0]);
    for (int i = 0; i < 4; ++i) h.scan_and_wait();
    set_immutable(dir.path, false);
  }
  if (!immutable) cr_skip_test("chattr +i refused on %s", dir.path.c_str());
  cr_assert_eq(h.submitted.size(), 1u, "queued %zu times", h.submitted.size());
  cr_assert(h.p.idle());
  // Once deletion works again, a later scan removes the leftover without queuing it.
  h.scan_and_wait();
  cr_assert_eq(h.submitted.size(), 1u);
  cr_assert(dir.names_starting("stuck").empty());
}

// A claimed file left by a crash between submission and deletion is queued again at
// start: a duplicate, never a loss.
Test(smtpd_pickup_dir, leftover_claimed_file_is_queued_at_start) {
  pickup_dir dir;
  dir.drop("left.eml.1a2b-3.queued", message_with_hops(0));
  harness h(dir);
  h.scan_and_wait();
  cr_assert_eq(h.submitted.size(), 1u);
  h.make_durable(h.submitted[0]);
  cr_assert(dir.names_starting("left").empty());
}

Test(smtpd_pickup_dir, symlink_to_outside_file_is_not_read) {
  pickup_dir dir, outside;
  outside.drop("hostname", message_with_hops(0));
  fs::create_symlink(outside.path / "hostname", dir.path / "link.eml");
  dir.drop("z-good.eml", message_with_hops(0));
  harness h(dir);
  h.scan_and_wait();
  cr_assert_eq(h.submitted.size(), 1u, "only the regular file is queued");
  cr_assert(h.submitted[0]->body.find("From: robot@example.org") != std::string::npos);
  h.make_durable(h.submitted[0]);
  cr_assert(fs::exists(outside.path / "hostname"), "the symlink's target is untouched");
  cr_assert(fs::is_symlink(dir.path / "link.bad"), "the link itself is quarantined");
}

Test(smtpd_pickup_dir, fifo_does_not_block_the_scan) {
  pickup_dir dir;
  cr_assert_eq(mkfifo((dir.path / "pipe.eml").c_str(), 0600), 0);
  dir.drop("z-good.eml", message_with_hops(0));
  harness h(dir);
  h.scan_and_wait();
  cr_assert_eq(h.submitted.size(), 1u);
  cr_assert(h.submitted[0]->body.find("From: robot@example.org") != std::string::npos);
  h.make_durable(h.submitted[0]);
  cr_assert(h.p.idle(), "the scan finished");
  cr_assert(fs::exists(dir.path / "pipe.bad"), "the FIFO is quarantined");
}

// Only the daemon's own user or root may drop files: the owner is the only authentication
// the directory has.
Test(smtpd_pickup_dir, file_of_another_owner_is_refused) {
  pickup_dir dir;
  dir.drop("foreign.eml", message_with_hops(0));
  uid_t other = geteuid() == 4242 ? 4243 : 4242;
  if (chown((dir.path / "foreign.eml").c_str(), other, static_cast<gid_t>(-1)) != 0)
    cr_skip_test("cannot chown (not root)");
  harness h(dir);
  h.scan_and_wait();
  run_until(h.l, [&] { return h.p.idle(); });
  cr_assert_eq(h.submitted.size(), 0u);
  cr_assert(fs::exists(dir.path / "foreign.bad"));
}

// A hard link to a file elsewhere (say, one only root may read) is not a dropped message.
Test(smtpd_pickup_dir, hard_link_is_refused) {
  pickup_dir dir;
  dir.drop("secret", message_with_hops(0));
  fs::create_hard_link(dir.path / "secret", dir.path / "linked.eml");
  harness h(dir);
  h.scan_and_wait();
  run_until(h.l, [&] { return h.p.idle(); });
  cr_assert_eq(h.submitted.size(), 0u);
  cr_assert(fs::exists(dir.path / "linked.bad"));
  cr_assert(fs::exists(dir.path / "secret"));
}

// The file is read and parsed off the loop: scan() returns before anything is submitted,
// and the loop keeps running timers (as it would serve SMTP) while the 30 MB file is read.
Test(smtpd_pickup_dir, large_file_is_read_off_the_loop_thread) {
  pickup_dir dir;
  std::string big = "From: robot@example.org\nTo: someone@example.net\nSubject: big\n\n";
  std::string line(998, 'x');
  line += '\n';
  while (big.size() < (30u << 20)) big += line;
  dir.drop("big.eml", big);
  harness h(dir);
  int ticks = 0, ticks_at_submit = -1;
  bool inside_scan = false, submitted_inside_scan = false;
  smtpd::pickup_settings ps = harness::settings(dir, 100);
  smtpd::pickup p(h.l, ps, [&](store::submit_request*) {
    submitted_inside_scan |= inside_scan;
    ticks_at_submit = ticks;
    return true;
  });
  net::timer tick(h.l);
  tick.start(1, 1, [&] { ++ticks; });
  inside_scan = true;
  p.scan();
  inside_scan = false;
  run_until(h.l, [&] { return ticks_at_submit >= 0; });
  tick.stop();
  cr_assert_not(submitted_inside_scan, "the file was read and submitted on the loop thread, inside scan()");
  cr_assert_geq(ticks_at_submit, 1, "the loop ran no timer while the file was read");
}
