// next_hop.h: clients/next_hop.py as a test's next hop: started on an address, its recorded messages and sessions read back.
// Untrusted input: none (the records are the script's, written for the test).
#pragma once
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "assertions.h"
#include "child.h"
#include "harness.h"
#include "peers.h"

namespace sluice::testing {

// clients/next_hop.py on address:port: a next hop that honours every line end a careless
// MTA honours (so a forged end of data would split a message there into two), optionally
// malicious, recording each message it takes with its exact DATA bytes.
class next_hop {
 public:
  next_hop(const std::string& dir, const std::string& address, uint16_t port, std::vector<std::string> extra = {})
      : dir_(dir + "/hop-" + address) {
    std::filesystem::create_directories(dir_);
    std::vector<std::string> args{"python3", source_root() + "/tests/integration/clients/next_hop.py", "--listen",
                                  address + ":" + std::to_string(port), "--dir", dir_};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = sluice_test::spawn_peer(args, dir_ + "/output.log");
    started_ = pid_ > 0 && eventually([&] { return std::filesystem::exists(dir_ + "/ready"); }, 10'000);
  }
  ~next_hop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  next_hop(const next_hop&) = delete;
  next_hop& operator=(const next_hop&) = delete;

  bool started() const { return started_; }
  std::string output() const { return slurp_file(dir_ + "/output.log"); }
  std::string sessions() const { return slurp_file(dir_ + "/sessions.log"); }

  struct message {
    bool tls = false;
    std::string from, rcpts, data;  // MAIL FROM argument, RCPT TO arguments joined by ',', DATA as received
  };
  std::vector<message> messages() const {
    std::vector<message> out;
    std::istringstream in(slurp_file(dir_ + "/messages.log"));
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string n, tls;
      message m;
      if (!std::getline(fields, n, '\t') || !std::getline(fields, tls, '\t') || !std::getline(fields, m.from, '\t') ||
          !std::getline(fields, m.rcpts))
        continue;
      m.tls = tls == "1";
      m.data = slurp_file(dir_ + "/" + n + ".data");
      out.push_back(std::move(m));
    }
    return out;
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  bool started_ = false;
};

}  // namespace sluice::testing
