// delivery_peer_test.cc: sluiced delivers to a private Postfix smtpd found by MX, which relays on to a blaster sink.
// Untrusted input: none (Postfix's maillog is read back only for the assertions' messages).
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "child.h"
#include "delivery_env.h"

using namespace sluice::testing;
namespace fs = std::filesystem;

namespace {

// A Postfix of its own: config, queue and data directories under one temporary directory,
// smtpd on listen:port accepting mail for `domain` from 127.0.0.0/8, and relaying all of it to
// [relay]:relay_port. The system's Postfix, if any, is not touched.
//
// Its master runs in the foreground as our child (not `postfix start`, which detaches it),
// so PR_SET_PDEATHSIG ends it if the test process dies; Postfix's own daemons exit when they
// lose their master. A failed assertion longjmps past destructors, so the test also stops it
// from its .fini (stop_postfix below), which Criterion runs after a failure too.
class postfix_peer {
 public:
  postfix_peer(const std::string& listen, uint16_t port, const std::string& relay, uint16_t relay_port,
               const std::string& domain);
  ~postfix_peer();
  postfix_peer(const postfix_peer&) = delete;
  postfix_peer& operator=(const postfix_peer&) = delete;

  bool ok() const { return pid_ > 0; }
  // What is missing or what went wrong, in Postfix's own words where it gave any.
  const std::string& error() const { return error_; }
  std::string maillog() const { return slurp_file(dir_ + "/maillog"); }
  // Recipients Postfix logged as handed on ("status=sent").
  std::size_t sent() const;
  // SIGTERM to the master (it passes the signal on to its daemons), then waits until no
  // process is left working in the queue directory. Safe to call twice.
  void stop();

 private:
  bool prepare(const std::string& relay, uint16_t relay_port, const std::string& domain);
  void run_master();
  bool processes_left() const;

  std::string dir_, error_, daemon_directory_, listen_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

postfix_peer::postfix_peer(const std::string& listen, uint16_t port, const std::string& relay, uint16_t relay_port,
                           const std::string& domain)
    : listen_(listen), port_(port) {
  if (prepare(relay, relay_port, domain)) run_master();
}

postfix_peer::~postfix_peer() {
  stop();
  if (!dir_.empty() && std::getenv("SLUICE_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

bool postfix_peer::prepare(const std::string& relay, uint16_t relay_port, const std::string& domain) {
  const auto version = run("postconf -d -h mail_version || /usr/sbin/postconf -d -h mail_version");
  if (version.status != 0) {
    error_ = "postfix is not installed (apt-get install postfix; third_party/packages.txt, test peers): " + version.output;
    return false;
  }
  // The daemons drop to the mail_owner; only root can start them as that user.
  if (::geteuid() != 0) {
    error_ = "a private Postfix needs root (its master starts daemons as the postfix user); running as uid " +
             std::to_string(::geteuid());
    return false;
  }
  const passwd* owner = ::getpwnam("postfix");
  if (owner == nullptr) {
    error_ = "no 'postfix' user (the postfix package creates it)";
    return false;
  }
  daemon_directory_ = run("postconf -d -h daemon_directory || /usr/sbin/postconf -d -h daemon_directory").output;
  while (!daemon_directory_.empty() && daemon_directory_.back() == '\n') daemon_directory_.pop_back();

  char tmpl[] = "/tmp/sluice-postfix-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    error_ = "mkdtemp failed";
    return false;
  }
  dir_ = tmpl;
  // The daemons, as the postfix user, must reach the queue and data directories.
  ::chmod(dir_.c_str(), 0755);
  fs::create_directories(dir_ + "/etc");
  fs::create_directories(dir_ + "/queue");
  fs::create_directories(dir_ + "/data");
  if (::chown((dir_ + "/data").c_str(), owner->pw_uid, owner->pw_gid) != 0) {
    error_ = "chown of the data directory failed";
    return false;
  }
  // inet_interfaces must name a real interface address: 127.0.0.8 is not one (lo carries
  // 127.0.0.1/8), so smtpd's own address comes from master.cf instead. relay_domains and
  // mynetworks make it accept `domain` from sluiced; no DNS: the relay host is a literal.
  std::ofstream(dir_ + "/etc/main.cf")
      << "compatibility_level = 3.6\n"
      << "queue_directory = " << dir_ << "/queue\n"
      << "data_directory = " << dir_ << "/data\n"
      << "mail_owner = postfix\nsetgid_group = postdrop\n"
      << "myhostname = mx." << domain << "\nmydomain = " << domain << "\nmyorigin = " << domain << "\n"
      << "mydestination =\nrelay_domains = " << domain << "\n"
      << "inet_interfaces = loopback-only\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n"
      << "smtpd_relay_restrictions = permit_mynetworks, reject\n"
      << "relayhost = [" << relay << "]:" << relay_port << "\n"
      << "smtpd_peername_lookup = no\nlocal_header_rewrite_clients =\ndisable_mime_output_conversion = yes\n"
      << "alias_maps =\nalias_database =\nlocal_recipient_maps =\n"
      << "smtp_tls_security_level = none\nsmtpd_tls_security_level = none\n"
      << "maillog_file = " << dir_ << "/maillog\nmaillog_file_prefixes = " << dir_ << "\n";
  // Only the services a relay uses, none chrooted (a chroot would need copies of system
  // files in the queue directory).
  std::ofstream(dir_ + "/etc/master.cf") << listen_ << ":" << port_ << " inet n - n - - smtpd\n"
                                         << R"(cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
)";
  // `postfix check` creates the queue's subdirectories with their owners and modes.
  const auto check = run("PATH=$PATH:/usr/sbin postfix -c " + dir_ + "/etc check");
  if (check.status != 0) {
    error_ = "postfix check failed: " + check.output + maillog();
    return false;
  }
  return true;
}

void postfix_peer::run_master() {
  const std::string master = daemon_directory_ + "/master";
  const std::string config = dir_ + "/etc";
  const std::string out = dir_ + "/master.out";
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    sluice_test::end_with_parent(parent);
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) std::_Exit(126);
    // Without -w the master neither forks nor detaches: it stays our child.
    ::execl(master.c_str(), "master", "-c", config.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  if (pid_ < 0) {
    error_ = "fork failed";
    return;
  }
  const bool up = eventually(
      [&] {
        int status = 0;
        if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;
        return pid_ <= 0 || wait_listening(listen_, port_, 100);
      },
      20'000);
  if (pid_ <= 0 || !up) {
    error_ = std::string(pid_ <= 0 ? "the Postfix master exited" : "Postfix's smtpd did not answer within 20 s") +
             ": " + slurp_file(out) + maillog();
    stop();
  }
}

bool postfix_peer::processes_left() const {
  // Postfix's daemons run with the queue directory as their working directory.
  const std::string queue = dir_ + "/queue";
  std::error_code ec;
  for (const auto& p : fs::directory_iterator("/proc", ec)) {
    std::error_code e2;
    const auto cwd = fs::read_symlink(p.path() / "cwd", e2);
    if (!e2 && cwd.string().rfind(queue, 0) == 0) return true;
  }
  return false;
}

void postfix_peer::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    if (!eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 10'000)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  if (!dir_.empty()) eventually([&] { return !processes_left(); }, 10'000);
}

std::size_t postfix_peer::sent() const {
  std::ifstream in(dir_ + "/maillog");
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line))
    if (line.find(" status=sent ") != std::string::npos) ++n;
  return n;
}

std::unique_ptr<postfix_peer> the_postfix;

void stop_postfix() { the_postfix.reset(); }

}  // namespace

Test(delivery_peer, delivers_through_a_real_postfix_smtpd, .fini = stop_postfix, .timeout = 90) {
  // sluiced -> MX mx.peer.test (Postfix on 127.0.0.8) -> Postfix's relayhost (a sink on 127.0.0.9).
  // The Internet connector sends to every MX host on sink_port, so Postfix listens there too.
  delivery_env env("mx-host=peer.test,mx.peer.test,10\nhost-record=mx.peer.test,127.0.0.8\n");
  cr_assert(env.dns.ok(), "%s", env.dns.error().c_str());
  auto& sink = env.sink("127.0.0.9");
  cr_assert(sink.started(), "the sink on 127.0.0.9 did not start");
  the_postfix = std::make_unique<postfix_peer>("127.0.0.8", env.sink_port, "127.0.0.9", env.sink_port, "peer.test");
  cr_assert(the_postfix->ok(), "Postfix cannot run here: %s", the_postfix->error().c_str());
  env.configure();
  cr_assert(env.start(), "%s", env.daemon.log().c_str());

  // Two recipients a message and bodies from 1 to 32 KiB: several chunks, dot-stuffing.
  const int messages = 30;
  const auto sent = env.send("s", messages, {"--domain", "peer.test", "--rcpts", "2", "--size", "1k-32k"});
  cr_assert_eq(sent.status, 0, "blaster send: %s", sent.json.c_str());
  cr_assert_eq(json_number(sent.json, "accepted"), messages, "%s", sent.json.c_str());
  cr_assert(eventually([&] { return env.queued_items() == 0; }, 30'000), "sluiced did not drain: %s\n%s",
            env.daemon.ctl("queue list").output.c_str(), env.daemon.log().c_str());
  // Postfix relays on its own schedule: wait until it has handed every recipient on.
  cr_assert(eventually([&] { return the_postfix->sent() == 2u * messages; }, 30'000), "Postfix sent %zu of %d:\n%s",
            the_postfix->sent(), 2 * messages, the_postfix->maillog().c_str());
  const auto v = env.verify(sent);
  cr_assert(v.lost == 0 && v.corrupted == 0 && v.duplicated == 0 && v.delivered == 2 * messages, "verify: %s",
            v.json.c_str());

  // Every recipient was delivered to Postfix, which said so in its own words: Postfix offers
  // CHUNKING, so the messages went with BDAT, whose LAST it answers with "Ok: N bytes queued as".
  cr_assert(eventually([&] { return env.tracked_recipients("DELIVER") == 2u * messages; }, 5000), "%zu DELIVER",
            env.tracked_recipients("DELIVER"));
  for (const auto& line : env.tracking("DELIVER")) {
    cr_assert(line.find("mx.peer.test[127.0.0.8]") != std::string::npos, "%s", line.c_str());
    cr_assert(line.find("250 2.0.0 Ok: ") != std::string::npos && line.find(" bytes queued as ") != std::string::npos,
              "%s", line.c_str());
  }
  cr_assert_eq(env.tracked_recipients("DEFER"), 0u, "%s", env.daemon.log().c_str());
}
