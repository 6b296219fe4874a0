// tls_client_test.cc: the outbound TLS engine (tls::session, client side) against a real
// TLS server (openssl s_server) with a good certificate, a wrong name and an expired one.
#include <arpa/inet.h>
#include <fcntl.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "child.h"
#include "harness.h"
#include "pki.h"
#include "tls/context.h"
#include "tls/session.h"

using namespace sluice::testing;

namespace {

// openssl s_server on a free loopback port, serving one certificate.
struct tls_server {
  pid_t pid = -1;
  uint16_t port = free_port();
  tls_server(const std::string& cert, const std::string& key) {
    const pid_t parent = ::getpid();
    pid = ::fork();
    if (pid == 0) {
      sluice_test::end_with_parent(parent);
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      std::string accept = "127.0.0.1:" + std::to_string(port);
      ::execlp("openssl", "openssl", "s_server", "-quiet", "-accept", accept.c_str(), "-cert", cert.c_str(), "-key",
               key.c_str(), nullptr);
      std::_Exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      smtp_client probe(port);
      if (probe.connected()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  }
  ~tls_server() {
    ::kill(pid, SIGTERM);
    int status;
    ::waitpid(pid, &status, 0);
  }
};

// Runs a client handshake over a real socket, pumping bytes until done or failed.
struct handshake_result {
  bool done = false;
  bool failed = false;
  bool verified = false;
  std::string error, verify, version;
};

handshake_result handshake(uint16_t port, sluice::tls::verify_policy policy, const std::string& ca_file,
                           const std::string& peer_name) {
  std::string error;
  sluice::tls::client_options o;
  o.policy = policy;
  o.ca_file = ca_file;
  auto ctx = sluice::tls::context::make_client(o, error);
  cr_assert(ctx, "client context: %s", error.c_str());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  sluice::tls::session s(ctx, peer_name);
  handshake_result r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!s.handshake_done() && !s.failed() && std::chrono::steady_clock::now() < deadline) {
    std::string out;
    s.take_ciphertext(out);
    if (!out.empty()) ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[16384];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    s.feed_ciphertext(std::string_view(buf, static_cast<size_t>(n)));
    std::string plain;
    s.read_plaintext(plain);
  }
  r.done = s.handshake_done() && !s.failed();
  r.failed = s.failed();
  r.error = s.error_text();
  if (r.done) {
    r.verified = s.peer_verified();
    r.verify = s.verify_result();
    r.version = s.version();
  }
  ::close(fd);
  return r;
}

}  // namespace

Test(integration_tls_client, verified_policy_accepts_good_certificate) {
  pki p;
  tls_server srv(p.dir + "/good.pem", p.dir + "/good.key");
  auto r = handshake(srv.port, sluice::tls::verify_policy::verified, p.dir + "/ca.pem", "mx.good.test");
  cr_assert(r.done, "handshake failed: %s", r.error.c_str());
  cr_assert(r.verified, "verify result: %s", r.verify.c_str());
  cr_assert(r.version.rfind("TLSv1.", 0) == 0, "%s", r.version.c_str());
}

Test(integration_tls_client, verified_policy_refuses_wrong_name) {
  pki p;
  tls_server srv(p.dir + "/good.pem", p.dir + "/good.key");
  auto r = handshake(srv.port, sluice::tls::verify_policy::verified, p.dir + "/ca.pem", "mx.other.test");
  cr_assert(r.failed, "a certificate for another name must not verify");
  cr_assert(r.error.find("hostname") != std::string::npos || r.error.find("mismatch") != std::string::npos ||
                r.error.find("verify") != std::string::npos,
            "%s", r.error.c_str());
}

Test(integration_tls_client, verified_policy_refuses_expired_certificate) {
  pki p;
  tls_server srv(p.dir + "/old.pem", p.dir + "/old.key");
  auto r = handshake(srv.port, sluice::tls::verify_policy::verified, p.dir + "/ca.pem", "mx.good.test");
  cr_assert(r.failed, "an expired certificate must not verify");
  cr_assert(r.error.find("expired") != std::string::npos, "%s", r.error.c_str());
}

Test(integration_tls_client, opportunistic_and_mandatory_encrypt_without_verifying) {
  pki p;
  for (auto policy : {sluice::tls::verify_policy::opportunistic, sluice::tls::verify_policy::mandatory}) {
    tls_server srv(p.dir + "/old.pem", p.dir + "/old.key");
    auto r = handshake(srv.port, policy, "", "mx.good.test");
    cr_assert(r.done, "handshake failed: %s", r.error.c_str());
    cr_assert(!r.verified, "an expired, untrusted certificate is not reported as verified");
    cr_assert(r.verify != "ok", "%s", r.verify.c_str());
  }
}
