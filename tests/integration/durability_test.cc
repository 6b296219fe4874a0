// durability_test.cc: every 250 sluiced sends follows an fsync, and the queue is never opened without sync.
// kill -9 tests cannot show this: the page cache survives a killed process, so they would
// pass with MDB_NOSYNC. Here durability_shim.so, preloaded into the daemon, sees the LMDB
// flags and counts the fsyncs that finished before each "250 2.6.0" reached the socket.
#include <criterion/criterion.h>
#include <lmdb.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;

namespace {

std::string shim_path() { return build_root() + "/tests/integration/libdurability_shim.so"; }

struct shim_log {
  std::vector<unsigned> open_flags;
  std::vector<std::string> unsafe;  // set_flags turning sync off, NOSYNC transactions
  std::vector<unsigned long> syncs_before_reply;
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

}  // namespace

Test(integration_durability, every_250_follows_an_fsync_and_sync_is_never_off, .timeout = 60) {
  sluiced_process d;
  const std::string log_path = d.dir() + "/shim.log";
  ::setenv("SLUICE_SHIM_LOG", log_path.c_str(), 1);
  ::setenv("LD_PRELOAD", shim_path().c_str(), 1);
  bool started = d.start();
  ::unsetenv("LD_PRELOAD");
  ::unsetenv("SLUICE_SHIM_LOG");
  cr_assert(started, "sluiced did not start: %s", d.log().c_str());

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
