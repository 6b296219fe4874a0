// durability_test.cc: every 250 follows an fsync, the queue is never opened without sync, its directory is synced, ids never repeat.
// kill -9 tests cannot show this: the page cache survives a killed process, so they would
// pass with MDB_NOSYNC. Here durability_shim.so, preloaded into the daemon, sees the LMDB
// flags and counts the fsyncs that finished before each "250 2.6.0" reached the socket.
#include <criterion/criterion.h>
#include <lmdb.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "assertions.h"
#include "base/queue_id.h"
#include "harness.h"

using namespace sluice::testing;

namespace {

std::string shim_path() { return build_root() + "/tests/integration/libdurability_shim.so"; }

struct shim_log {
  std::vector<unsigned> open_flags;
  std::vector<std::string> unsafe;  // set_flags turning sync off, NOSYNC transactions
  std::vector<unsigned long> syncs_before_reply;
  std::vector<std::string> synced_dirs;
};

shim_log read_shim_log(const std::string& path) {
  shim_log out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("open flags=", 0) == 0) {
      out.open_flags.push_back(static_cast<unsigned>(std::stoul(line.substr(11), nullptr, 16)));
    } else if (line.rfind("reply syncs=", 0) == 0) {
      out.syncs_before_reply.push_back(std::stoul(line.substr(12)));
    } else if (line.rfind("dirsync ", 0) == 0) {
      out.synced_dirs.push_back(line.substr(8));
    } else if (line.rfind("txn ", 0) == 0) {
      out.unsafe.push_back(line);
    } else if (line.rfind("set_flags ", 0) == 0) {
      unsigned flags = static_cast<unsigned>(std::stoul(line.substr(line.find('=') + 1), nullptr, 16));
      bool on = line.find("on=0") == std::string::npos;
      if (on && (flags & (MDB_NOSYNC | MDB_NOMETASYNC | MDB_MAPASYNC))) out.unsafe.push_back(line);
    }
  }
  return out;
}

// Starts `d` with the shim preloaded, logging to d.dir()/shim.log; extra_env are more
// NAME=VALUE settings for the daemon alone.
bool start_with_shim(sluiced_process& d, const std::vector<std::pair<std::string, std::string>>& extra_env = {}) {
  d.set_env("SLUICE_SHIM_LOG", d.dir() + "/shim.log");
  d.set_env("LD_PRELOAD", shim_path());
  for (const auto& [name, value] : extra_env) d.set_env(name, value);
  return d.start();
}

// Sends one message and returns the queue id from its 250 2.6.0 reply ("" if refused).
std::string send_one(uint16_t port, const std::string& body = "Subject: id\r\n\r\nbody\r\n") {
  smtp_client c(port);
  c.reply();
  c.cmd("EHLO client.example");
  c.cmd("MAIL FROM:<sender@example.org>");
  c.cmd("RCPT TO:<alice@sluice.test>");
  c.cmd("DATA");
  std::string r = c.cmd(body + ".");
  c.cmd("QUIT");
  size_t open = r.find('<'), close = r.find('>');
  return r.rfind("250", 0) == 0 && open != std::string::npos && close > open ? r.substr(open + 1, close - open - 1)
                                                                              : "";
}

}  // namespace

Test(integration_durability, every_250_follows_an_fsync_and_sync_is_never_off, .timeout = 60) {
  sluiced_process d;
  const std::string log_path = d.dir() + "/shim.log";
  cr_assert(start_with_shim(d), "sluiced did not start: %s", d.log().c_str());

  // Lock-step, one message at a time: each 250 must be preceded by a sync that finished
  // after the previous 250, or the message it acknowledges was not on disk yet.
  constexpr int messages = 20;
  smtp_client c(d.port());
  c.reply();
  EXPECT_CODE(c.cmd("EHLO client.example"), 250);
  for (int i = 0; i < messages; ++i) {
    EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org>"), 250);
    EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
    EXPECT_CODE(c.cmd("DATA"), 354);
    EXPECT_CODE(c.cmd("Subject: durable " + std::to_string(i) + "\r\n\r\nbody\r\n."), 250);
  }
  c.cmd("QUIT");
  d.stop();

  shim_log log = read_shim_log(log_path);
  cr_assert_geq(log.open_flags.size(), 1u, "the shim saw no mdb_env_open: was it preloaded? (%s)", shim_path().c_str());
  for (unsigned flags : log.open_flags) {
    cr_assert_eq(flags & MDB_NOSYNC, 0u, "queue opened with MDB_NOSYNC (flags %x)", flags);
    cr_assert_eq(flags & MDB_NOMETASYNC, 0u, "queue opened with MDB_NOMETASYNC (flags %x)", flags);
    cr_assert_eq(flags & MDB_MAPASYNC, 0u, "queue opened with MDB_MAPASYNC (flags %x)", flags);
  }
  cr_assert(log.unsafe.empty(), "sync turned off later: %s", log.unsafe.empty() ? "" : log.unsafe[0].c_str());
  cr_assert_eq(log.syncs_before_reply.size(), static_cast<size_t>(messages), "one 250 2.6.0 per message, saw %zu",
               log.syncs_before_reply.size());
  for (size_t k = 1; k < log.syncs_before_reply.size(); ++k)
    cr_assert_gt(log.syncs_before_reply[k], log.syncs_before_reply[k - 1],
                 "250 number %zu was sent with no fsync since the previous one", k + 1);
}

// data.mdb is a new directory entry: without a sync of the directory a crash can lose the
// whole file, every fsynced commit in it with it.
Test(integration_durability, a_new_queue_file_is_made_durable_in_its_directory, .timeout = 60) {
  sluiced_process d;
  cr_assert(start_with_shim(d), "sluiced did not start: %s", d.log().c_str());
  d.stop();
  shim_log log = read_shim_log(d.dir() + "/shim.log");
  const std::string queue = std::filesystem::canonical(d.queue_dir()).string();
  bool synced = false;
  for (const auto& dir : log.synced_dirs) synced |= dir == queue;
  cr_assert(synced, "%s was never fsynced (%zu directories were)", queue.c_str(), log.synced_dirs.size());
}

// Ids are time-ordered, so a clock that reads earlier after a restart would issue ids
// the store has already seen; the store's floor keeps every new one above them.
Test(integration_durability, ids_stay_unique_when_the_clock_steps_back_across_a_restart, .timeout = 60) {
  sluiced_process d;
  START(d);
  const std::string before = send_one(d.port());
  cr_assert_neq(before, "", "first message refused: %s", d.log().c_str());
  d.stop();
  cr_assert(start_with_shim(d, {{"SLUICE_SHIM_CLOCK_BACK_S", "86400"}}), "%s", d.log().c_str());
  const std::string after = send_one(d.port());
  cr_assert_neq(after, "", "second message refused: %s", d.log().c_str());
  auto a = sluice::base::queue_id::parse(before), b = sluice::base::queue_id::parse(after);
  cr_assert(a && b);
  cr_assert(*b > *a, "id %s issued a day 'earlier' is not above %s", after.c_str(), before.c_str());
}

// Bigger than the whole map: no amount of waiting makes room, so the answer is 552, not 452.
Test(integration_durability, a_message_larger_than_the_queue_map_gets_552, .timeout = 60) {
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  auto replace = [&cfg](const std::string& from, const std::string& to) { cfg.replace(cfg.find(from), from.size(), to); };
  replace("max_message_size = \"1M\"", "max_message_size = \"8M\"");
  replace("map_size = \"256M\"", "map_size = \"1M\"");
  d.write_config(cfg);
  START(d);
  std::string body = "Subject: big\r\n\r\n";
  const std::string line(998, 'x');
  while (body.size() < (3u << 20)) body += line + "\r\n";
  smtp_client c(d.port());
  c.reply();
  c.cmd("EHLO client.example");
  c.cmd("MAIL FROM:<sender@example.org>");
  c.cmd("RCPT TO:<alice@sluice.test>");
  c.cmd("DATA");
  std::string r = c.cmd(body + ".");
  EXPECT_CODE(r, 552);
  cr_assert(r.find("5.3.4") != std::string::npos, "%s", r.c_str());
  // A message that fits is still taken.
  cr_assert_neq(send_one(d.port()), "", "%s", d.log().c_str());
}
