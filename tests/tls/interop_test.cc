// interop_test.cc: a tls::session server speaks STARTTLS with the openssl command-line client over loopback.
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "tls_fixture.h"

using namespace tls_test;

namespace {

// Reads one CRLF-terminated line byte by byte, so no TLS bytes are consumed early.
std::string read_line(int fd) {
  std::string line;
  char c;
  while (line.size() < 1000) {
    pollfd p{fd, POLLIN, 0};
    cr_assert_gt(poll(&p, 1, 10000), 0, "timed out waiting for a line");
    if (read(fd, &c, 1) != 1) break;
    line += c;
    if (line.ends_with("\r\n")) break;
  }
  return line;
}

void send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    cr_assert_gt(n, 0);
    off += static_cast<size_t>(n);
  }
}

}  // namespace

Test(tls_interop, openssl_s_client_starttls, .timeout = 30) {
  if (system("openssl version >/dev/null 2>&1") != 0) cr_skip_test("no openssl command");
  temp_dir dir;
  server_options so;
  so.pair = store(dir, "srv", issue("mx.example.test", {"mx.example.test"}, nullptr, false, -3600, 86400,
                                    key_type::rsa2048));
  auto server = server_ctx(so);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  cr_assert_eq(listen(lfd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string port = std::to_string(ntohs(addr.sin_port));
  std::string input = dir.file("input", "HELLO OVER TLS\n");

  pid_t child = fork();
  if (child == 0) {
    int in = open(input.c_str(), O_RDONLY), null = open("/dev/null", O_WRONLY);
    dup2(in, 0);
    dup2(null, 1);
    dup2(null, 2);
    std::string target = "127.0.0.1:" + port;
    execlp("openssl", "openssl", "s_client", "-connect", target.c_str(), "-starttls", "smtp",
           "-servername", "mx.example.test", "-quiet", "-crlf", static_cast<char*>(nullptr));
    _exit(127);
  }
  int fd = accept(lfd, nullptr, nullptr);
  cr_assert_geq(fd, 0);
  send_all(fd, "220 mx.example.test ESMTP test\r\n");
  std::string ehlo = read_line(fd);
  cr_assert(ehlo.starts_with("EHLO "), "%s", ehlo.c_str());
  send_all(fd, "250-mx.example.test\r\n250 STARTTLS\r\n");
  std::string starttls = read_line(fd);
  cr_assert_str_eq(starttls.c_str(), "STARTTLS\r\n");
  send_all(fd, "220 2.0.0 Ready to start TLS\r\n");

  session s(server);
  std::string plain, out;
  char buf[16384];
  while (plain.find("\r\n") == std::string::npos && !s.failed()) {
    pollfd p{fd, POLLIN, 0};
    cr_assert_gt(poll(&p, 1, 10000), 0, "timed out during TLS");
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    s.feed_ciphertext(std::string_view(buf, static_cast<size_t>(n)));
    s.read_plaintext(plain);
    out.clear();
    s.take_ciphertext(out);
    if (!out.empty()) send_all(fd, out);
  }
  cr_assert(s.handshake_done(), "%s", s.error_text().c_str());
  cr_assert_str_eq(plain.c_str(), "HELLO OVER TLS\r\n");
  std::string sni = s.sni();
  cr_assert_str_eq(sni.c_str(), "mx.example.test");
  s.write_plaintext("221 2.0.0 Bye\r\n");
  s.close_notify();
  out.clear();
  s.take_ciphertext(out);
  send_all(fd, out);
  close(fd);
  close(lfd);
  int status = 0;
  bool reaped = false;
  for (int i = 0; i < 100 && !reaped; ++i) {
    reaped = waitpid(child, &status, WNOHANG) == child;
    if (!reaped) usleep(50000);
  }
  if (!reaped) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
  }
}
