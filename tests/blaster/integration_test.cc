// integration_test.cc: the built blaster binary: send against sink (counts, LMTP, injected faults) and verify.
#include <criterion/criterion.h>

#include <fstream>
#include <string>
#include <vector>

#include "digest.h"
#include "harness.h"
#include "message.h"

using namespace sluice::blaster;
using namespace blaster_test;

namespace {

void raw_send(int port, const generated_message& m, const std::string& content) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string in;
  cr_assert(read_until(fd, in, "220 "));
  std::string cmds = "EHLO t\r\nMAIL FROM:<" + m.from + ">\r\nRCPT TO:<" + m.rcpts[0] + ">\r\nDATA\r\n";
  cr_assert_eq(write(fd, cmds.data(), cmds.size()), ssize_t(cmds.size()));
  cr_assert(read_until(fd, in, "354 "), "got %s", in.c_str());
  std::string data = content + ".\r\nQUIT\r\n";
  cr_assert_eq(write(fd, data.data(), data.size()), ssize_t(data.size()));
  cr_assert(read_until(fd, in, "221 "), "got %s", in.c_str());
  close(fd);
}

}  // namespace

Test(blaster_integration, send_and_sink_counts_match_and_verify_passes, .timeout = 120) {
  scratch scratch_dir;
  const std::string& dir = scratch_dir.path;
  int port = free_port();
  auto sink = start_sink(dir, port, {"--threads", "2", "--record", dir + "/recv.log"});
  int rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port), "--sessions", "8", "--threads", "2",
                "--messages", "2000", "--rcpts", "2", "--size", "500-3k", "--record", dir + "/sent.log", "--json",
                "--no-progress"},
               dir + "/send.json");
  std::string sent = slurp(dir + "/send.json");
  cr_assert_eq(rc, 0, "send: %s %s", sent.c_str(), slurp(dir + "/send.json.err").c_str());
  std::string got = sink.stop();
  cr_assert_eq(json_num(sent, "accepted"), 2000);
  cr_assert_eq(json_num(sent, "failed"), 0);
  cr_assert_eq(json_num(sent, "rcpts_accepted"), 4000);
  cr_assert_eq(json_num(got, "accepted"), 2000);
  cr_assert_eq(json_num(got, "rcpts"), 4000);
  cr_assert_eq(json_num(got, "digest_ok"), 2000);
  cr_assert_eq(json_num(got, "digest_bad"), 0);
  cr_assert_gt(json_num(sent, "msg_per_s"), 0);
  rc = run({"verify", "--sent", dir + "/sent.log", "--received", dir + "/recv.log", "--json"}, dir + "/verify.json");
  std::string v = slurp(dir + "/verify.json");
  cr_assert_eq(rc, 0, "verify: %s", v.c_str());
  cr_assert_eq(json_num(v, "delivered"), 4000);
}

Test(blaster_integration, lmtp_lock_step_one_message_per_connection, .timeout = 120) {
  scratch scratch_dir;
  const std::string& dir = scratch_dir.path;
  int port = free_port();
  auto sink = start_sink(dir, port, {"--lmtp", "--threads", "1"});
  int rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port), "--lmtp", "--pipelining", "off",
                "--one-per-connection", "--sessions", "4", "--threads", "1", "--messages", "200", "--rcpts", "3",
                "--json", "--no-progress"},
               dir + "/send.json");
  std::string sent = slurp(dir + "/send.json");
  cr_assert_eq(rc, 0, "send: %s %s", sent.c_str(), slurp(dir + "/send.json.err").c_str());
  std::string got = sink.stop();
  cr_assert_eq(json_num(sent, "accepted"), 200);
  cr_assert_eq(json_num(sent, "rcpts_accepted"), 600, "one LMTP reply per recipient: %s", sent.c_str());
  cr_assert_eq(json_num(sent, "connections"), 200);
  cr_assert_eq(json_num(got, "connections"), 201, "200 and the readiness probe");
  cr_assert_eq(json_num(got, "accepted"), 200);
}

Test(blaster_integration, injected_faults_are_counted_on_both_sides, .timeout = 120) {
  scratch scratch_dir;
  const std::string& dir = scratch_dir.path;
  int port = free_port();
  auto sink = start_sink(dir, port, {"--fail-4xx", "0.2", "--fail-5xx", "0.1", "--threads", "1"});
  int rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port), "--sessions", "5", "--threads", "1",
                "--messages", "2000", "--json", "--no-progress"},
               dir + "/send.json");
  std::string sent = slurp(dir + "/send.json");
  cr_assert_eq(rc, 0, "refusals are not failures: %s", sent.c_str());
  std::string got = sink.stop();
  long long r4 = json_num(got, "refused_4xx"), r5 = json_num(got, "refused_5xx");
  cr_assert(r4 > 250 && r4 < 550, "about 20%% refused with 4xx: %lld", r4);
  cr_assert(r5 > 100 && r5 < 320, "about 10%% refused with 5xx: %lld", r5);
  cr_assert_eq(json_num(sent, "451"), r4);
  cr_assert_eq(json_num(sent, "554"), r5);
  cr_assert_eq(json_num(sent, "refused"), r4 + r5);
  cr_assert_eq(json_num(sent, "accepted"), json_num(got, "accepted"));
  cr_assert_eq(json_num(sent, "accepted") + r4 + r5, 2000);

  // Faults at RCPT: each refused recipient is missing from what the sender counts.
  int port2 = free_port();
  scratch scratch_dir2;
  const std::string& dir2 = scratch_dir2.path;
  auto sink2 = start_sink(dir2, port2, {"--fail-5xx", "0.25", "--fail-at", "rcpt", "--threads", "1"});
  rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port2), "--sessions", "5", "--threads", "1",
            "--messages", "500", "--rcpts", "4", "--json", "--no-progress"},
           dir2 + "/send.json");
  sent = slurp(dir2 + "/send.json");
  cr_assert_eq(rc, 0, "%s", sent.c_str());
  got = sink2.stop();
  long long refused_rcpts = json_num(got, "injected_rcpt");
  cr_assert_gt(refused_rcpts, 300);
  cr_assert_eq(json_num(sent, "rcpts_accepted") + refused_rcpts, 2000, "%s %s", sent.c_str(), got.c_str());
  cr_assert_eq(json_num(got, "rcpts"), json_num(sent, "rcpts_accepted"));
}

Test(blaster_integration, verify_detects_dropped_and_corrupted_messages, .timeout = 120) {
  scratch scratch_dir;
  const std::string& dir = scratch_dir.path;
  int port = free_port();
  auto sink = start_sink(dir, port, {"--threads", "1", "--record", dir + "/recv.log"});
  message_spec spec;
  spec.run_id = "vt";
  spec.size_min = spec.size_max = 2000;
  message_factory f(spec, 1);
  std::ofstream sent(dir + "/sent.log");
  for (uint64_t n = 0; n < 3; ++n) {
    generated_message m;
    f.make(n, m);
    sent << m.id << '\t' << digest_hex(m.digest) << "\tQ" << n << '\t' << m.from << '\t' << m.rcpts[0] << '\n';
    if (n == 0) raw_send(port, m, m.content);  // intact
    if (n == 1) {                               // corrupted in transit
      std::string c = m.content;
      c[c.size() - 20] = c[c.size() - 20] == 'Q' ? 'R' : 'Q';
      raw_send(port, m, c);
    }
    // n == 2: acknowledged but dropped
  }
  sent.close();
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "digest_ok"), 1);
  cr_assert_eq(json_num(got, "digest_bad"), 1);
  int rc = run({"verify", "--sent", dir + "/sent.log", "--received", dir + "/recv.log", "--json"}, dir + "/v.json");
  std::string v = slurp(dir + "/v.json");
  cr_assert_eq(rc, 1, "verify must fail: %s", v.c_str());
  cr_assert_eq(json_num(v, "lost"), 1, "%s", v.c_str());
  cr_assert_eq(json_num(v, "corrupted"), 1, "%s", v.c_str());
  cr_assert_eq(json_num(v, "delivered"), 2, "%s", v.c_str());
}

Test(blaster_integration, send_to_sluiced_is_acknowledged_with_queue_ids, .timeout = 120) {
  std::string sluiced = std::string(SLUICE_BUILD_ROOT) + "/src/main/sluiced";
  scratch scratch_dir;
  const std::string& dir = scratch_dir.path;
  int port = free_port(), sink_port = free_port();
  {
    std::ofstream cfg(dir + "/sluice.toml");
    cfg << "[server]\nallow_root = true\nhostname = \"blaster.sluice.test\"\nworkers = 2\nqueue_dir = \"" << dir
        << "/queue\"\nlog_dir = \"" << dir << "/log\"\npickup_dir = \"\"\n"
        << "[[accepted_domain]]\nname = \"sluice.test\"\ntype = \"authoritative\"\n"
        << "[[receive_connector]]\nname = \"Blaster\"\ntype = \"enterprise\"\nbindings = [\"127.0.0.1:" << port
        << "\"]\nremote_ranges = [\"127.0.0.0/8\"]\npermissions = { anonymous = true, relay = true }\n"
        << "protocol_log = false\n"
        << "[[send_connector]]\nname = \"Sink\"\naddress_spaces = [{ domain = \"*\", cost = 1 }]\n"
        << "routing = \"smarthost\"\nsmart_hosts = [\"127.0.0.1:" << sink_port << "\"]\ntls = \"none\"\n";
  }
  pid_t daemon = spawn_bin(sluiced, {"--config", dir + "/sluice.toml"}, dir + "/sluiced.out", dir);
  wait_port(port);
  int rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port), "--sessions", "10", "--threads", "2",
                "--messages", "500", "--rcpts", "2", "--to", "u{n}.{r}@relay.example", "--record",
                dir + "/sent.log", "--json", "--no-progress"},
               dir + "/send.json");
  kill(daemon, SIGTERM);
  int drc = wait_exit(daemon);
  std::string sent = slurp(dir + "/send.json");
  cr_assert_eq(rc, 0, "send: %s %s", sent.c_str(), slurp(dir + "/send.json.err").c_str());
  cr_assert_eq(drc, 0, "sluiced: %s", slurp(dir + "/sluiced.out.err").c_str());
  cr_assert_eq(json_num(sent, "accepted"), 500, "%s", sent.c_str());
  cr_assert_eq(json_num(sent, "rcpts_accepted"), 1000);
  // Every acknowledged message is logged with the queue id sluiced gave in its 250.
  std::ifstream log(dir + "/sent.log");
  std::string line;
  size_t n = 0;
  while (std::getline(log, line)) {
    size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1), t3 = line.find('\t', t2 + 1);
    std::string qid = line.substr(t2 + 1, t3 - t2 - 1);
    cr_assert_eq(qid.size(), 16u, "queue id in %s", line.c_str());
    cr_assert_eq(qid.find_first_not_of("0123456789ABCDEF"), std::string::npos, "queue id in %s", line.c_str());
    ++n;
  }
  cr_assert_eq(n, 500u);
}

Test(blaster_integration, starttls_sessions_deliver_intact_messages, .timeout = 120) {
  scratch scratch_dir;
  const std::string& dir = scratch_dir.path;
  int port = free_port();
  auto sink = start_sink(dir, port, {"--starttls", "--threads", "1"});
  int rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port), "--starttls", "--sessions", "4",
                "--threads", "1", "--messages", "300", "--json", "--no-progress"},
               dir + "/send.json");
  std::string sent = slurp(dir + "/send.json");
  cr_assert_eq(rc, 0, "send: %s %s", sent.c_str(), slurp(dir + "/send.json.err").c_str());
  std::string got = sink.stop();
  cr_assert_eq(json_num(sent, "accepted"), 300);
  cr_assert_eq(json_num(got, "digest_ok"), 300);

  // A sink that does not offer STARTTLS: every message fails, none is sent in clear.
  int port2 = free_port();
  auto plain = start_sink(dir, port2, {"--threads", "1"});
  rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port2), "--starttls", "--sessions", "2",
            "--threads", "1", "--messages", "20", "--json", "--no-progress", "--timeout", "5s"},
           dir + "/send2.json");
  sent = slurp(dir + "/send2.json");
  got = plain.stop();
  cr_assert_eq(rc, 1, "%s", sent.c_str());
  cr_assert_eq(json_num(sent, "accepted"), 0);
  cr_assert_eq(json_num(got, "messages"), 0);
}

Test(blaster_integration, open_loop_rate_is_held, .timeout = 120) {
  scratch scratch_dir;
  const std::string& dir = scratch_dir.path;
  int port = free_port();
  auto sink = start_sink(dir, port, {"--threads", "1"});
  int rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port), "--rate", "400", "--duration", "3s",
                "--sessions", "8", "--threads", "2", "--json", "--no-progress"},
               dir + "/send.json");
  std::string sent = slurp(dir + "/send.json");
  cr_assert_eq(rc, 0, "%s", sent.c_str());
  sink.stop();
  long long accepted = json_num(sent, "accepted");
  cr_assert(accepted >= 1150 && accepted <= 1210, "about 3 s x 400 msg/s: %lld", accepted);
}
