// integration_test.cc: the built blaster binary: send against sink (counts, LMTP, injected faults) and verify.
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../integration/child.h"
#include "digest.h"
#include "message.h"


using namespace sluice::blaster;

namespace {

std::string blaster_bin() { return std::string(SLUICE_BUILD_ROOT) + "/tools/blaster/blaster"; }

std::string temp_dir() {
  char tmpl[] = "/tmp/blaster-test-XXXXXX";
  cr_assert_not_null(mkdtemp(tmpl));
  return tmpl;
}

// Removes a test's directory when the test passes; a failed assertion leaves the
// test early (longjmp) and so keeps the logs for a look.
struct scratch {
  std::string path = temp_dir();
  ~scratch() { std::filesystem::remove_all(path); }
};

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Runs `bin` with `args`, stdout to out_file and stderr to out_file + ".err".
pid_t spawn_bin(const std::string& bin, const std::vector<std::string>& args, const std::string& out_file,
                const std::string& cwd = "") {
  struct stat st{};
  cr_assert_eq(stat(bin.c_str(), &st), 0, "build %s first", bin.c_str());
  std::string path = bin;
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  argv.push_back(path.data());
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string err_file = out_file + ".err";
  const pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork failed");
  if (pid == 0) {
    // fork + exec rather than posix_spawn: only a forked child can be tied to this test.
    sluice_test::end_with_parent(parent);
    int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) std::_Exit(126);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) std::_Exit(126);
    execv(path.c_str(), argv.data());
    std::_Exit(127);
  }
  return pid;
}

pid_t spawn(const std::vector<std::string>& args, const std::string& out_file) {
  return spawn_bin(blaster_bin(), args, out_file);
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run(const std::vector<std::string>& args, const std::string& out_file) { return wait_exit(spawn(args, out_file)); }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long long json_num(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\":");
  cr_assert_neq(at, std::string::npos, "no %s in %s", key.c_str(), json.c_str());
  return std::atoll(json.c_str() + at + key.size() + 3);
}

void wait_port(int port) {
  for (int i = 0; i < 500; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (ok) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  cr_assert_fail("nothing listens on port %d", port);
}

struct sink_proc {
  pid_t pid;
  std::string out;
  std::string stop() {
    kill(pid, SIGTERM);
    int rc = wait_exit(pid);
    cr_assert_eq(rc, 0, "sink exit %d: %s", rc, slurp(out + ".err").c_str());
    return slurp(out);
  }
};

sink_proc start_sink(const std::string& dir, int port, std::vector<std::string> extra) {
  std::vector<std::string> args = {"sink", "--listen", "127.0.0.1:" + std::to_string(port), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  sink_proc s{spawn(args, dir + "/sink.json"), dir + "/sink.json"};
  wait_port(port);
  return s;
}

// A minimal blocking SMTP exchange, for sending a hand-made (corrupted) message.
bool read_until(int fd, std::string& buf, const std::string& needle) {
  for (int i = 0; i < 500 && buf.find(needle) == std::string::npos; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10) <= 0) continue;
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0) break;
    buf.append(tmp, size_t(n));
  }
  return buf.find(needle) != std::string::npos;
}

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
    cfg << "[server]\nhostname = \"blaster.sluice.test\"\nworkers = 2\nqueue_dir = \"" << dir
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
