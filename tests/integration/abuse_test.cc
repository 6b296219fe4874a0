// abuse_test.cc: the built sluiced against clients that abuse its resources: idle floods, floods from many
// addresses, tricklers, endless lines, huge headers and recipient lists, slow admin and metrics clients.
// Untrusted input: none (the test plays every abusive client itself).
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../metrics/loopback_client.h"
#include "assertions.h"
#include "harness.h"

using namespace sluice::testing;
using namespace std::literals;
using steady = std::chrono::steady_clock;

namespace {

// default_config() with each `from` replaced by its `to` (the test fails if one is missing).
std::string config_with(std::initializer_list<std::pair<std::string, std::string>> edits) {
  std::string c = sluiced_process::default_config();
  for (const auto& [from, to] : edits) {
    auto pos = c.find(from);
    cr_assert(pos != std::string::npos, "default_config() lacks %s", from.c_str());
    c.replace(pos, from.size(), to);
  }
  return c;
}

double seconds_since(steady::time_point t) { return std::chrono::duration<double>(steady::now() - t).count(); }

// The daemon grows by less than 64 MB (peak and after, from before) while it refuses input
// many times larger.
void expect_bounded_memory(long before, long peak, long after) {
  constexpr long bound_kib = 64 * 1024;
  cr_log_info("RSS %ld KiB before, %ld after, peak %ld", before, after, peak);
  cr_assert_lt(peak - before, bound_kib, "the daemon grew from %ld to %ld KiB", before, peak);
  cr_assert_lt(after - before, bound_kib, "the daemon grew from %ld to %ld KiB", before, after);
}

// One message to alice from a new client: the reply to its end of data.
std::string send_message(uint16_t port, const std::string& content) {
  smtp_client c(port);
  c.start_transaction();
  c.cmd("RCPT TO:<alice@sluice.test>");
  c.cmd("DATA");
  return c.cmd(content + "\r\n.");
}

int unix_connect(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True once the peer has closed `fd` (end of stream or reset) within `limit`; what it sends
// before that is read and dropped.
bool closes_within(int fd, std::chrono::milliseconds limit) {
  const auto deadline = steady::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[4096];
    if (::recv(fd, buf, sizeof buf, 0) <= 0) return true;
  }
}

// Clients that each send a request a byte every half second and never finish it. A thread
// keeps them going and notes when the server cuts each one off (its end of stream, or a
// send that fails); whatever the server says before that is read and dropped.
class tricklers {
 public:
  tricklers(std::vector<int> fds, std::string pattern)
      : fds_(std::move(fds)), pattern_(std::move(pattern)), cut_after_(fds_.size(), -1) {
    thread_ = std::thread([this] { run(); });
  }
  ~tricklers() {
    stop();
    for (int fd : fds_) ::close(fd);
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  size_t cut_so_far() const { return cut_count_.load(); }
  // After stop(): how long the last one cut lasted (seconds after the start), -1 if one never was.
  double last_cut_s() const {
    double last = 0;
    for (double t : cut_after_) last = t < 0 ? -1 : std::max(last, t);
    return last;
  }

 private:
  void run() {
    const auto start = steady::now();
    for (size_t i = 0; !stop_.load(); ++i) {
      for (size_t k = 0; k < fds_.size(); ++k) {
        if (cut_after_[k] >= 0) continue;
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fds_[k], buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        }
        const bool gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
                          ::send(fds_[k], &pattern_[i % pattern_.size()], 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0;
        if (gone) {
          cut_after_[k] = seconds_since(start);
          ++cut_count_;
        }
      }
      std::this_thread::sleep_for(500ms);
    }
  }

  std::vector<int> fds_;
  std::string pattern_;
  std::vector<double> cut_after_;  // the thread's until stop()
  std::atomic<size_t> cut_count_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What one SMTP trickler got: the server's reply that ended it, and after how long.
struct trickle_result {
  std::string reply;
  double after_s = 0;
};

// Sends `bytes` one at a time, `gap` apart, from the reply read last until the server says
// something (or `give_up`).
trickle_result trickle(smtp_client& c, const std::string& bytes, std::chrono::milliseconds gap,
                       std::chrono::seconds give_up) {
  trickle_result out;
  const auto start = steady::now();
  for (size_t i = 0; out.reply.empty() && steady::now() - start < give_up; ++i) {
    c.send_raw(std::string(1, bytes[i % bytes.size()]));
    out.reply = c.reply(static_cast<int>(gap.count()));
  }
  out.after_s = seconds_since(start);
  return out;
}

}  // namespace

// 1,000 connections that say nothing, from ten addresses (100 each, the per-address default),
// held open by a daemon started under the usual soft limit of 1,024 descriptors: it must raise
// its own limit to hold them, and a new client still gets its 220 and its message queued.
Test(integration_abuse, thousand_idle_connections_leave_room_for_a_new_client, .timeout = 120) {
  constexpr int idle_count = 1000;
  rlimit files{};
  cr_assert_eq(::getrlimit(RLIMIT_NOFILE, &files), 0);
  if (files.rlim_max != RLIM_INFINITY && files.rlim_max < 2 * idle_count + 256)
    cr_skip_test("the hard limit on open files (%lu) is too low for this test", static_cast<unsigned long>(files.rlim_max));
  sluiced_process d;
  // The connector's own cap is not what is tested here (its default is exactly 1,000).
  d.write_config(config_with({{"max_recipients = 5", "max_recipients = 5\nmax_connections = 1500"},
                              {"command_s = 30", "command_s = 120"}}));
  rlimit low = files;
  low.rlim_cur = std::min<rlim_t>(1024, files.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &low);
  const bool started = d.start();
  rlimit high = files;
  high.rlim_cur = files.rlim_max;  // the test itself holds 1,000 sockets too
  ::setrlimit(RLIMIT_NOFILE, &high);
  cr_assert(started, "sluiced did not start: %s", d.log().c_str());

  std::vector<std::unique_ptr<smtp_client>> idle;
  for (int i = 0; i < idle_count; ++i) {
    idle.push_back(std::make_unique<smtp_client>(d.port(), "127.0.0." + std::to_string(10 + i / 100)));
    cr_assert(idle.back()->connected(), "connection %d was refused", i);
  }
  for (int i = 0; i < idle_count; ++i) {
    std::string r = idle[i]->reply(3000);
    cr_assert_eq(code_of(r), 220, "idle connection %d got: %s", i, r.c_str());
  }
  std::string r = send_message(d.port(), "Subject: past the idle crowd\r\n\r\nbody");
  cr_assert(r.starts_with("250 2.6.0 "), "a new client among the idle ones: %s", r.c_str());
  // None of the idle ones was dropped to make room.
  for (int i = 0; i < idle_count; i += 99) EXPECT_CODE(idle[i]->cmd("NOOP"), 250);
}

// Eight addresses open six connections each, all at once, against a cap of three per
// address: each address gets exactly three, the rest 421 4.7.0, and neither another address
// nor a slot given back is affected by the others being full.
Test(integration_abuse, per_address_cap_holds_for_many_addresses_at_once, .timeout = 60) {
  constexpr int per_ip = 3, addresses = 8, attempts = 6;
  sluiced_process d;
  d.write_config(config_with({{"max_recipients = 5", "max_recipients = 5\nmax_connections_per_ip = 3"}}));
  START(d);
  auto source = [](int a) { return "127.0.0." + std::to_string(30 + a); };
  // Connection i comes from address i % addresses; every one races every other, on both loops.
  std::vector<std::unique_ptr<smtp_client>> clients(addresses * attempts);
  std::vector<std::string> greetings(clients.size());
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < clients.size(); ++i)
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      clients[i] = std::make_unique<smtp_client>(d.port(), source(static_cast<int>(i % addresses)));
      greetings[i] = clients[i]->reply(5000);
    });
  go = true;
  for (auto& t : threads) t.join();
  size_t first_of_zero = clients.size();
  for (int a = 0; a < addresses; ++a) {
    int served = 0, refused = 0;
    for (size_t i = a; i < clients.size(); i += addresses) {
      if (code_of(greetings[i]) == 220) {
        ++served;
        if (a == 0 && first_of_zero == clients.size()) first_of_zero = i;
      } else {
        cr_assert(greetings[i].starts_with("421 4.7.0 "), "%s: %s", source(a).c_str(), greetings[i].c_str());
        ++refused;
      }
    }
    cr_assert_eq(served, per_ip, "%s: %d connections served", source(a).c_str(), served);
    cr_assert_eq(refused, attempts - per_ip);
  }
  smtp_client other(d.port(), "127.0.0.50");
  EXPECT_CODE(other.reply(), 220);

  EXPECT_CODE(clients[first_of_zero]->cmd("QUIT"), 221);
  // The slot comes back once the daemon has seen the socket close.
  std::unique_ptr<smtp_client> again;
  for (auto until = steady::now() + 3s; !again && steady::now() < until;) {
    again = std::make_unique<smtp_client>(d.port(), source(0));
    if (code_of(again->reply()) != 220) {
      again.reset();
      std::this_thread::sleep_for(50ms);
    }
  }
  cr_assert(again != nullptr, "the slot %s gave back never came back", source(0).c_str());
  for (int a : {0, 1}) {
    smtp_client over(d.port(), source(a));
    std::string r = over.reply();
    cr_assert(r.starts_with("421 4.7.0 "), "%s over its cap: %s", source(a).c_str(), r.c_str());
  }
}

// A client that sends a byte every 0.7 s never lets a 2 s idle timeout expire; the command
// and content deadlines end it all the same. Clients that complete commands, or send content
// steadily within the content deadline, are not cut.
Test(integration_abuse, a_byte_at_a_time_does_not_hold_a_session, .timeout = 60) {
  sluiced_process d;
  d.write_config(config_with({{"timeouts = { command_s = 30, data_s = 30, connection_s = 60 }",
                               "timeouts = { command_s = 2, data_s = 2, content_s = 4, connection_s = 60 }"}}));
  START(d);
  trickle_result command, content;
  std::vector<std::string> steady_replies;
  std::thread command_trickler([&] {
    smtp_client c(d.port());
    c.reply();
    command = trickle(c, "EHLO trickle.example", 700ms, 15s);
  });
  std::thread content_trickler([&] {
    smtp_client c(d.port());
    c.start_transaction();
    c.cmd("RCPT TO:<alice@sluice.test>");
    if (code_of(c.cmd("DATA")) == 354) content = trickle(c, "Subject: slow\r\n", 700ms, 15s);
  });
  std::thread steady_client([&] {
    smtp_client c(d.port());
    c.reply();
    for (int i = 0; i < 8; ++i) {  // 4 s of commands: twice command_s
      c.send_raw("NO");
      std::this_thread::sleep_for(250ms);
      steady_replies.push_back(c.cmd("OP"));
      std::this_thread::sleep_for(250ms);
    }
    steady_replies.push_back(c.cmd("MAIL FROM:<sender@example.org>"));
    steady_replies.push_back(c.cmd("RCPT TO:<alice@sluice.test>"));
    steady_replies.push_back(c.cmd("DATA"));
    for (int i = 0; i < 5; ++i) {  // 2.5 s of content, within content_s
      c.send("line " + std::to_string(i));
      std::this_thread::sleep_for(500ms);
    }
    steady_replies.push_back(c.cmd("."));
  });
  command_trickler.join();
  content_trickler.join();
  steady_client.join();
  cr_assert(command.reply.starts_with("421 4.4.2 "), "command trickler after %.1f s: '%s'", command.after_s,
            command.reply.c_str());
  cr_assert_lt(command.after_s, 8.0, "command deadline of 2 s took %.1f s", command.after_s);
  cr_assert(content.reply.starts_with("421 4.4.2 "), "content trickler after %.1f s: '%s'", content.after_s,
            content.reply.c_str());
  cr_assert_lt(content.after_s, 10.0, "content deadline of 4 s took %.1f s", content.after_s);
  cr_assert_eq(steady_replies.size(), 12u);
  for (size_t i = 0; i < 10; ++i) EXPECT_CODE(steady_replies[i], 250);
  EXPECT_CODE(steady_replies[10], 354);
  EXPECT_CODE(steady_replies[11], 250);
}

// max_errors error replies, with good commands between them, and the session ends with 421.
Test(integration_abuse, a_client_that_keeps_erring_is_disconnected) {
  sluiced_process d;
  d.write_config(config_with({{"max_recipients = 5", "max_recipients = 5\nmax_errors = 3"}}));
  START(d);
  smtp_client c(d.port());
  EXPECT_CODE(c.reply(), 220);
  EXPECT_CODE(c.cmd("BOGUS"), 500);
  EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 503);
  // Good commands do not wipe the slate.
  EXPECT_CODE(c.cmd("NOOP"), 250);
  EXPECT_CODE(c.cmd("EHLO erring.example"), 250);
  std::string third = c.cmd("MAIL FROM:<sender@example.org");
  cr_assert_eq(code_of(third) / 100, 5, "%s", third.c_str());
  std::string last = c.reply();
  cr_assert(last.starts_with("421 4.7.0 ") && last.find("too many errors") != std::string::npos, "%s", last.c_str());
  cr_assert(c.closed_by_peer(), "the session is closed after the 421");
  smtp_client next(d.port());
  EXPECT_CODE(next.start_transaction(), 250);
}

// 1 MB command lines get 500 5.5.2 and cost nothing; a line that never ends is dropped as
// it comes and cut by the command deadline while it is still arriving.
Test(integration_abuse, endless_command_lines_are_refused_and_cut, .timeout = 90) {
  sluiced_process d;
  d.write_config(config_with({{"command_s = 30", "command_s = 3"}}));
  START(d);
  const long before = d.rss_kib();
  long peak = before;
  const std::string megabyte_line = "NOOP " + std::string(1 << 20, 'x') + "\r\n";
  for (int session = 0; session < 4; ++session) {
    smtp_client c(d.port());
    EXPECT_CODE(c.reply(), 220);
    for (int i = 0; i < 8; ++i) {  // each is an error: fewer than max_errors (10)
      c.send_raw(megabyte_line);
      std::string r = c.reply();
      cr_assert(r.starts_with("500 5.5.2 ") && r.find("Line too long") != std::string::npos, "%s", r.c_str());
    }
    EXPECT_CODE(c.cmd("NOOP"), 250);
    peak = std::max(peak, d.rss_kib());
  }

  int fd = metrics_test::connect_to(d.port());
  cr_assert_geq(fd, 0);
  cr_assert(metrics_test::read_all(fd, 300).starts_with("220 "));
  std::atomic<bool> cut_by_daemon{false};
  std::atomic<size_t> streamed{0};
  std::atomic<long> stream_peak{before};
  std::thread pump([&] {
    const std::string block(1 << 20, 'y');
    for (const auto until = steady::now() + 20s; steady::now() < until;) {
      ssize_t n = ::send(fd, block.data(), block.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        cut_by_daemon = true;
        return;
      }
      if ((streamed += size_t(n)) % (32u << 20) < size_t(n)) stream_peak = std::max(stream_peak.load(), d.rss_kib());
    }
  });
  // Read while the pump runs: everything until the daemon closes.
  std::string said = metrics_test::read_all(fd, 30000);
  pump.join();
  ::close(fd);
  peak = std::max(peak, stream_peak.load());
  cr_log_info("%zu MB streamed into one line", streamed.load() >> 20);
  cr_assert(said.find("421 4.4.2 ") != std::string::npos, "the endless line got: %.200s", said.c_str());
  cr_assert(cut_by_daemon, "the daemon let the line run for 20 s");
  expect_bounded_memory(before, peak, d.rss_kib());
}

// Twelve 10 MB single header lines and twelve messages of 10 MB of short headers, within the
// message size limit: all refused, none queued, the daemon no bigger; ordinary headers pass,
// and so does a long body that follows its headers without the empty line.
Test(integration_abuse, huge_headers_are_refused_without_memory_growth, .timeout = 90) {
  sluiced_process d;
  d.write_config(config_with({{"max_message_size = \"1M\"", "max_message_size = \"32M\""}}));
  START(d);
  const long before = d.rss_kib();
  long peak = before;
  constexpr size_t ten_mb = 10u << 20;
  const std::string one_line = "X-Huge: " + std::string(ten_mb, 'h') + "\r\n\r\nbody\r\n";
  std::string many;
  for (int i = 0; many.size() < ten_mb; ++i) many += "X-Filler-" + std::to_string(i) + ": " + std::string(60, 'f') + "\r\n";
  many += "\r\nbody\r\n";
  for (int session = 0; session < 3; ++session) {
    smtp_client c(d.port());
    EXPECT_CODE(c.start_transaction(), 250);
    for (int i = 0; i < 8; ++i) {  // each refusal is an error: fewer than max_errors (10)
      if (i > 0) EXPECT_CODE(c.cmd("MAIL FROM:<sender@example.org>"), 250);
      EXPECT_CODE(c.cmd("RCPT TO:<alice@sluice.test>"), 250);
      EXPECT_CODE(c.cmd("DATA"), 354);
      const bool single = i % 2 == 0;
      c.send_raw(single ? one_line : many);
      std::string r = c.cmd(".");
      // A line longer than RFC 5321's 1,000 octets; a header section over max_header_size.
      cr_assert(r.starts_with(single ? "552 5.6.0 " : "552 5.3.4 "), "%s headers: %s", single ? "one line of" : "many",
                r.c_str());
      peak = std::max(peak, d.rss_kib());
    }
    EXPECT_CODE(c.cmd("QUIT"), 221);
  }
  expect_bounded_memory(before, peak, d.rss_kib());
  auto none = d.ctl("queue list");
  cr_assert(none.output.starts_with("0 messages queued"), "%s", none.output.c_str());

  std::string ordinary;
  for (int i = 0; i < 500; ++i) ordinary += "X-Ordinary-" + std::to_string(i) + ": " + std::string(100, 'o') + "\r\n";
  std::string r = send_message(d.port(), ordinary + "\r\nbody");
  cr_assert(r.starts_with("250 2.6.0 "), "60 KB of headers: %s", r.c_str());
  // A body nobody separated from its headers begins at the first line that is no field.
  std::string unseparated = "Subject: no empty line\r\n";
  while (unseparated.size() < (256u << 10)) unseparated += "a line of text that is not a header field\r\n";
  r = send_message(d.port(), unseparated);
  cr_assert(r.starts_with("250 2.6.0 "), "256 KB without an empty line: %s", r.c_str());
}

// One transaction with 10,000 pipelined recipients against a limit of 100: the excess gets
// 452 4.5.3 one by one (not counted as errors, so the session survives), and the message is
// queued for the 100 accepted.
Test(integration_abuse, ten_thousand_recipients_get_452_for_the_excess, .timeout = 90) {
  constexpr int limit = 100, total = 10000;
  sluiced_process d;
  // Every address exists, so each RCPT is a real lookup; the local hop keeps the message
  // queued (no mailbox configured), where its recipients can be counted.
  auto address = [](int i) { return "recipient-" + std::to_string(i) + "-" + std::string(40, 'r') + "@sluice.test"; };
  std::string known = "alice@sluice.test\nbob@sluice.test\npostmaster@sluice.test\n";
  for (int i = 0; i < total; ++i) known += address(i) + "\n";
  d.write_file("recipients.txt", known);
  d.write_config(config_with({{"max_recipients = 5", "max_recipients = 100"}}));
  START(d);
  const long before = d.rss_kib();
  smtp_client c(d.port());
  c.reply();
  EXPECT_CODE(c.cmd("EHLO many.example"), 250);
  std::string batch = "MAIL FROM:<sender@example.org>\r\n";
  for (int i = 0; i < total; ++i) batch += "RCPT TO:<" + address(i) + ">\r\n";
  batch += "DATA\r\n";
  // Written while the replies are read: the daemon stops reading a client that does not read.
  std::thread writer([&] { c.send_raw(batch); });
  std::vector<std::string> replies;
  for (int i = 0; i < total + 2; ++i) {
    replies.push_back(c.reply());
    if (replies.back().empty()) break;
  }
  writer.join();
  cr_assert_eq(replies.size(), size_t(total + 2), "reply %zu: '%s' (%s)", replies.size(), replies.back().c_str(),
               replies.size() > 1 ? replies[replies.size() - 2].c_str() : "");
  EXPECT_CODE(replies.front(), 250);
  int accepted = 0, excess = 0;
  for (int i = 1; i <= total; ++i) {
    if (code_of(replies[i]) == 250) {
      ++accepted;
    } else {
      cr_assert(replies[i].starts_with("452 4.5.3 "), "recipient %d: %s", i, replies[i].c_str());
      ++excess;
    }
  }
  cr_assert_eq(accepted, limit);
  cr_assert_eq(excess, total - limit);
  EXPECT_CODE(replies.back(), 354);
  std::string r = c.cmd("Subject: many recipients\r\n\r\nbody\r\n.");
  std::string id = queue_id_of(r);
  cr_assert(!id.empty(), "%s", r.c_str());
  const long after = d.rss_kib();
  expect_bounded_memory(before, after, after);
  auto list = d.ctl("queue list --json");
  std::smatch m;
  const std::regex entry("\"id\":\"" + id + "\"[^}]*\"recipients\":(\\d+)");
  cr_assert(std::regex_search(list.output, m, entry), "%s", list.output.c_str());
  cr_assert_eq(std::stoi(m[1]), limit, "queued with %s recipients", m[1].str().c_str());
}

// 100 admin clients trickling a request a byte at a time and 100 that send nothing: sluicectl
// is answered as usual meanwhile, and the tricklers are cut at the request deadline (10 s).
Test(integration_abuse, slow_admin_clients_do_not_block_sluicectl, .timeout = 90) {
  sluiced_process d;
  START(d);
  const std::string socket = d.dir() + "/admin.sock";
  std::vector<int> trickling, silent;
  for (int i = 0; i < 100; ++i) {
    trickling.push_back(unix_connect(socket));
    silent.push_back(unix_connect(socket));
    cr_assert(trickling.back() >= 0 && silent.back() >= 0, "admin connection %d: %s", i, std::strerror(errno));
  }
  const auto start = steady::now();
  tricklers slow(trickling, "route test " + std::string(100, 'x'));
  std::this_thread::sleep_for(1s);  // every trickler has begun its request
  std::vector<command_result> answers;
  std::vector<double> took;
  for (int i = 0; i < 3; ++i) {
    const auto t = steady::now();
    answers.push_back(d.ctl("route test alice@sluice.test"));
    took.push_back(seconds_since(t));
  }
  const size_t cut_while_asking = slow.cut_so_far();
  size_t silent_open = 0;
  for (int fd : silent) silent_open += metrics_test::still_waiting(fd);
  // Until well past the deadline.
  std::this_thread::sleep_for(start + 14s - steady::now());
  slow.stop();
  for (int fd : silent) ::close(fd);
  for (size_t i = 0; i < answers.size(); ++i) {
    cr_assert_eq(answers[i].status, 0, "%s", answers[i].output.c_str());
    EXPECT_HAS(answers[i], "local:sluice.test");
    cr_assert_lt(took[i], 5.0, "sluicectl took %.1f s", took[i]);
  }
  cr_assert_eq(cut_while_asking, 0u, "tricklers cut before their deadline");
  cr_assert_eq(silent_open, silent.size(), "silent clients cut before their idle timeout");
  cr_assert_geq(slow.last_cut_s(), 0.0, "a trickler was still connected after 14 s");
}

// 100 clients trickling a request head and 100 silent ones on the metrics endpoint (64
// connections at most): scrapes are answered meanwhile, and every slow client is cut by the
// read timeout (10 s), if a newer connection did not push it out first.
Test(integration_abuse, slow_metrics_clients_do_not_block_scrapes, .timeout = 90) {
  using namespace metrics_test;
  sluiced_process d;
  const uint16_t port = free_port();
  d.write_config(sluiced_process::default_config() + "\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n");
  START(d);
  std::vector<int> trickling, silent;
  for (int i = 0; i < 100; ++i) {
    trickling.push_back(connect_to(port));
    silent.push_back(connect_to(port));
    cr_assert(trickling.back() >= 0 && silent.back() >= 0);
  }
  const auto start = steady::now();
  tricklers slow(trickling, "GET /metrics HTTP/1.1\r\nX-Slow: " + std::string(100, 's'));
  std::this_thread::sleep_for(1s);
  std::vector<std::string> scrapes;
  for (int i = 0; i < 3; ++i) {
    int fd = connect_to(port);
    send_all(fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    scrapes.push_back(read_all(fd, 5000));
    ::close(fd);
  }
  std::this_thread::sleep_for(start + 14s - steady::now());
  slow.stop();
  size_t silent_cut = 0;
  for (int fd : silent) {
    silent_cut += closes_within(fd, 1000ms);
    ::close(fd);
  }
  for (const auto& s : scrapes) {
    cr_assert(s.starts_with("HTTP/1.1 200 "), "scrape among slow clients: %.200s", s.c_str());
    cr_assert(s.find("sluice_messages_received") != std::string::npos, "%.300s", s.c_str());
  }
  cr_assert_geq(slow.last_cut_s(), 0.0, "a trickler was still connected after 14 s");
  cr_assert_eq(silent_cut, silent.size(), "%zu of %zu silent clients still connected after 14 s", silent.size() - silent_cut,
               silent.size());
}
