// budget_test.cc: the built sluiced under memory pressure (many large DATA transfers) and a SIGTERM amid pipelining.
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;
using namespace std::literals;

namespace {

// default_config() with larger messages, a small in-flight budget, and room for more
// than 100 connections from 127.0.0.1.
std::string budget_config(const char* budget) {
  std::string c = sluiced_process::default_config();
  auto replace = [&c](const std::string& from, const std::string& to) {
    auto pos = c.find(from);
    cr_assert(pos != std::string::npos, "default_config() lacks %s", from.c_str());
    c.replace(pos, from.size(), to);
  };
  replace("max_message_size = \"1M\"", "max_message_size = \"32M\"\nmax_in_flight_bytes = \""s + budget + "\"");
  replace("max_recipients = 5", "max_recipients = 5\nmax_connections_per_ip = 200");
  return c;
}

// Ids in `sluicectl queue list --json`.
std::set<std::string> queued_ids(const sluiced_process& d) {
  auto list = d.ctl("queue list --json");
  std::set<std::string> ids;
  const std::string key = "\"id\":\"";
  for (size_t pos = 0; (pos = list.output.find(key, pos)) != std::string::npos;) {
    pos += key.size();
    ids.insert(list.output.substr(pos, list.output.find('"', pos) - pos));
  }
  return ids;
}

// True once the process has exited (gone, or a zombie waiting for us), within `limit`.
bool exits_within(pid_t pid, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string pid_field, name, state;
    if (!(stat >> pid_field >> name >> state) || state == "Z") return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

// 100 sessions each send 30 MB of DATA and hold it (no final dot): the daemon's memory
// stays near the 64 MB budget instead of 3 GB, the sessions over it are refused with
// 452 4.3.1 at their end of data, and once they are gone mail flows again.
Test(integration_budget, in_flight_bytes_bounded_across_sessions, .timeout = 120) {
  sluiced_process d;
  d.write_config(budget_config("64M"));
  // RSS also counts pages the allocator keeps for reuse after a refused message's buffer
  // is freed (about 30-40 MB more here); this daemon is told to hand them back at once,
  // so that RSS shows what the sessions hold.
  d.set_env("MIMALLOC_PAGE_RESET", "1");
  d.set_env("MIMALLOC_DECOMMIT_DELAY", "0");
  START(d);
  constexpr int sessions = 100;
  constexpr int megabytes_each = 30;
  constexpr long budget_kib = 64 * 1024;
  // Read buffers, LMDB pages, and a body buffer copied while it grows. Not per session.
  constexpr long overhead_kib = 64 * 1024;
  const long idle_kib = d.rss_kib();

  std::vector<std::unique_ptr<smtp_client>> clients;
  for (int i = 0; i < sessions; ++i) {
    auto c = std::make_unique<smtp_client>(d.port());
    cr_assert(c->connected());
    EXPECT_CODE(c->start_transaction(), 250);
    EXPECT_CODE(c->cmd("RCPT TO:<alice@sluice.test>"), 250);
    EXPECT_CODE(c->cmd("DATA"), 354);
    clients.push_back(std::move(c));
  }
  std::string line(78, 'x');
  line += "\r\n";
  std::string megabyte;
  while (megabyte.size() < (1u << 20)) megabyte += line;
  long peak_kib = 0;
  for (int round = 0; round < megabytes_each; ++round) {
    for (auto& c : clients) c->send_raw(megabyte);
    peak_kib = std::max(peak_kib, d.rss_kib());
    // Stop at once when the bound is broken: an unbounded daemon would take gigabytes.
    cr_assert_lt(peak_kib, budget_kib + overhead_kib + idle_kib,
                 "after %d MB per session the daemon holds %ld KiB (idle %ld KiB, budget %ld KiB)", round + 1,
                 peak_kib, idle_kib, budget_kib);
  }
  // Ending the messages now: the few that kept their bytes are queued, the rest were
  // refused for want of memory, and no reply is anything else.
  int refused = 0;
  for (auto& c : clients) {
    std::string r = c->cmd(".");
    cr_assert(code_of(r) == 250 || r.starts_with("452 4.3.1 "), "reply: %s", r.c_str());
    refused += code_of(r) == 452;
  }
  cr_log_info("peak %ld KiB (idle %ld KiB), %d of %d refused", peak_kib, idle_kib, refused, sessions);
  cr_assert_gt(refused, sessions / 2, "only %d of %d sessions over the budget were refused", refused, sessions);
  clients.clear();

  smtp_client fresh(d.port());
  EXPECT_CODE(fresh.start_transaction(), 250);
  EXPECT_CODE(fresh.cmd("RCPT TO:<bob@sluice.test>"), 250);
  EXPECT_CODE(fresh.cmd("DATA"), 354);
  EXPECT_CODE(fresh.cmd("Subject: after the flood\r\n\r\nbody\r\n."), 250);
  EXPECT_CODE(fresh.cmd("QUIT"), 221);
}

// A client that pipelines messages without pause while the daemon gets SIGTERM: the
// daemon answers what is in the store, says 421 and exits within seconds, and every
// message the client saw a 250 for is in the queue after a restart.
Test(integration_budget, sigterm_drains_a_pipelining_client, .timeout = 60) {
  sluiced_process d;
  START(d);
  int fd = connect_loopback(d.port());
  cr_assert_geq(fd, 0);
  std::atomic<bool> stop_writing{false};
  std::thread writer([&] {
    std::string batch = "EHLO pipeliner.example\r\n";
    for (int i = 0; i < 20; ++i)
      batch +=
          "MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@sluice.test>\r\nDATA\r\n"
          "Subject: pipelined\r\n\r\nbody\r\n.\r\n";
    while (!stop_writing.load()) {
      for (size_t off = 0; off < batch.size();) {
        ssize_t n = ::send(fd, batch.data() + off, batch.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;  // the daemon closed: the end this test waits for
        off += size_t(n);
      }
      batch.erase(0, batch.find("MAIL"));  // one EHLO only
    }
  });

  std::set<std::string> acknowledged;
  std::string pending;
  bool saw_shutdown_reply = false, closed = false, signalled = false;
  auto signalled_at = std::chrono::steady_clock::now();
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (!closed && std::chrono::steady_clock::now() < give_up) {
    if (!signalled && acknowledged.size() >= 50) {
      d.signal(SIGTERM);
      signalled = true;
      signalled_at = std::chrono::steady_clock::now();
    }
    if (signalled && std::chrono::steady_clock::now() > signalled_at + 8s) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      closed = true;
      break;
    }
    pending.append(buf, size_t(n));
    for (size_t eol; (eol = pending.find("\r\n")) != std::string::npos; pending.erase(0, eol + 2)) {
      std::string reply = pending.substr(0, eol);
      if (reply.starts_with("250 2.6.0 ")) {
        std::string id = queue_id_of(reply);
        cr_assert(!id.empty(), "no id in %s", reply.c_str());
        acknowledged.insert(id);
      }
      if (reply.starts_with("421 4.3.2 ")) saw_shutdown_reply = true;
    }
  }
  stop_writing = true;
  ::shutdown(fd, SHUT_RDWR);
  writer.join();
  ::close(fd);
  cr_assert(signalled, "only %zu messages acknowledged before the deadline", acknowledged.size());
  cr_assert(closed, "the daemon kept the pipelining session open 8 s after SIGTERM");
  cr_assert(saw_shutdown_reply, "no 421 4.3.2 before the close");
  cr_assert(exits_within(d.pid(), 5s), "sluiced still running 5 s after SIGTERM:\n%s", d.log().c_str());
  d.stop();  // reaps it

  START(d);
  d.stop();
  std::set<std::string> queued = queued_ids(d);
  size_t missing = 0;
  std::string first_missing;
  for (const auto& id : acknowledged)
    if (!queued.count(id) && missing++ == 0) first_missing = id;
  cr_log_info("%zu acknowledged, all queued after the restart", acknowledged.size() - missing);
  cr_assert_eq(missing, 0u, "%zu of %zu acknowledged messages not queued after the restart (first: %s)", missing,
               acknowledged.size(), first_missing.c_str());
}
