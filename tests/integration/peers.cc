// peers.cc: blaster sink, send and verify as processes for the delivery tests.
#include "peers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "child.h"
#include "harness.h"

namespace sluice::testing {

namespace {

pid_t spawn_to(const std::vector<std::string>& args, const std::string& out_file) {
  std::string bin = blaster_path();
  std::vector<std::string> copy = args;
  std::vector<char*> argv{bin.data()};
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    sluice_test::end_with_parent(parent);
    int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open((out_file + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) std::_Exit(126);
    ::execv(bin.c_str(), argv.data());
    std::_Exit(127);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

std::string blaster_path() { return build_root() + "/tools/blaster/blaster"; }

std::string slurp_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t count_lines(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line))
    if (!line.empty()) ++n;
  return n;
}

long long json_number(const std::string& json, const std::string& key) {
  const std::string needle = "\"" + key + "\":";
  const auto at = json.find(needle);
  if (at == std::string::npos) return -1;
  return std::atoll(json.c_str() + at + needle.size());
}

bool wait_listening(const std::string& address, uint16_t port, int timeout_ms) {
  return eventually(
      [&] {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
        const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
      },
      timeout_ms);
}

sink_process::sink_process(const std::string& dir, const std::string& name, const std::string& address, uint16_t port,
                           std::vector<std::string> extra) {
  out_ = dir + "/" + name + ".json";
  record_ = dir + "/" + name + ".rcv";
  std::vector<std::string> args{"sink", "--listen", address + ":" + std::to_string(port), "--json", "--threads", "1",
                                "--record", record_};
  args.insert(args.end(), extra.begin(), extra.end());
  pid_ = spawn_to(args, out_);
  if (!wait_listening(address, port)) {
    ::kill(pid_, SIGKILL);
    wait_status(pid_);
    pid_ = -1;
  }
}

sink_process::~sink_process() { kill9(); }

std::string sink_process::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    wait_status(pid_);
    pid_ = -1;
    summary_ = slurp_file(out_);
  }
  return summary_;
}

void sink_process::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_status(pid_);
  pid_ = -1;
}

std::size_t sink_process::received() const { return count_lines(record_); }

send_result blaster_send(const std::string& dir, const std::string& name, uint16_t port, std::vector<std::string> extra) {
  send_result r;
  r.record = dir + "/" + name + ".sent";
  std::vector<std::string> args{"send", "--target", "127.0.0.1:" + std::to_string(port), "--json", "--no-progress",
                                "--threads", "1", "--record", r.record};
  args.insert(args.end(), extra.begin(), extra.end());
  const std::string out = dir + "/" + name + ".send.json";
  r.status = wait_status(spawn_to(args, out));
  r.json = slurp_file(out);
  return r;
}

verify_result blaster_verify(const std::vector<std::string>& sent, const std::vector<std::string>& received) {
  verify_result v;
  std::vector<std::string> args{"verify", "--json", "--sent"};
  args.insert(args.end(), sent.begin(), sent.end());
  args.push_back("--received");
  args.insert(args.end(), received.begin(), received.end());
  char tmpl[] = "/tmp/sluice-verify-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  if (fd >= 0) ::close(fd);
  v.status = wait_status(spawn_to(args, tmpl));
  v.json = slurp_file(tmpl);
  ::unlink(tmpl);
  ::unlink((std::string(tmpl) + ".err").c_str());
  v.delivered = json_number(v.json, "delivered");
  v.lost = json_number(v.json, "lost");
  v.duplicated = json_number(v.json, "duplicated");
  v.corrupted = json_number(v.json, "corrupted");
  return v;
}

}  // namespace sluice::testing
