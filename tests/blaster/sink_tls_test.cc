// sink_tls_test.cc: the built blaster sink's certificates (generated for a chosen name, or
// given files) and its broken STARTTLS, seen by openssl s_client and a plain client.
// Untrusted input: none (the tests' own input; what the sink sends back is checked, not trusted).
#include <criterion/criterion.h>

#include <cstdio>
#include <string>

#include "harness.h"

using namespace blaster_test;

namespace {

// Runs a shell command line, returning its stdout and stderr together and its status.
std::string shell(const std::string& cmd, int* status = nullptr) {
  std::string out;
  std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  cr_assert_not_null(p);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (status != nullptr) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  return out;
}

// The certificate the sink presents after STARTTLS, as `openssl x509 -text` prints it.
std::string presented_certificate(int port, const std::string& dir) {
  std::string pem = dir + "/presented.pem";
  shell("openssl s_client -starttls smtp -connect 127.0.0.1:" + std::to_string(port) +
        " -servername localhost </dev/null 2>/dev/null | openssl x509 -out " + pem);
  return shell("openssl x509 -in " + pem + " -noout -subject -ext subjectAltName");
}

}  // namespace

Test(blaster_sink_tls, generated_certificate_carries_the_chosen_name, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--tls-cert-name", "mx.partner.test"});
  smtp_peer c(port);
  cr_assert_eq(c.reply().substr(0, 4), "220 ");
  std::string r = c.command("EHLO client.test");
  cr_assert(r.find("STARTTLS") != std::string::npos, "--tls-cert-name offers STARTTLS: %s", r.c_str());
  std::string cert = presented_certificate(port, d.path);
  cr_assert(cert.find("CN = mx.partner.test") != std::string::npos || cert.find("CN=mx.partner.test") != std::string::npos,
            "%s", cert.c_str());
  cr_assert(cert.find("DNS:mx.partner.test") != std::string::npos, "%s", cert.c_str());
  cr_assert(cert.find("localhost") == std::string::npos, "only the chosen name: %s", cert.c_str());
  sink.stop();

  // Without it: the --hostname, and the loopback names for convenience.
  port = free_port();
  auto plain = start_sink(d.path, port, {"--threads", "1", "--starttls", "--hostname", "sink.example.test"});
  cert = presented_certificate(port, d.path);
  cr_assert(cert.find("DNS:sink.example.test") != std::string::npos && cert.find("DNS:localhost") != std::string::npos,
            "%s", cert.c_str());
  plain.stop();
}

Test(blaster_sink_tls, given_certificate_files_are_presented, .timeout = 60) {
  scratch d;
  int status = 0;
  std::string out = shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=given.test"
                          " -keyout " + d.path + "/key.pem -out " + d.path + "/cert.pem",
                          &status);
  cr_assert_eq(status, 0, "%s", out.c_str());
  int port = free_port();
  auto sink = start_sink(d.path, port,
                         {"--threads", "1", "--tls-cert", d.path + "/cert.pem", "--tls-key", d.path + "/key.pem"});
  std::string cert = presented_certificate(port, d.path);
  cr_assert(cert.find("given.test") != std::string::npos, "%s", cert.c_str());
  // And blaster send gets its messages through that TLS.
  int rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port), "--starttls", "--sessions", "1", "--threads",
                "1", "--messages", "5", "--json", "--no-progress"},
               d.path + "/send.json");
  std::string sent = slurp(d.path + "/send.json");
  cr_assert_eq(rc, 0, "%s", sent.c_str());
  cr_assert_eq(json_num(sent, "accepted"), 5);
  sink.stop();
}

Test(blaster_sink_tls, broken_tls_answers_220_then_garbage, .timeout = 60) {
  scratch d;
  int port = free_port();
  auto sink = start_sink(d.path, port, {"--threads", "1", "--tls-broken"});
  {
    smtp_peer c(port);
    cr_assert_eq(c.reply().substr(0, 4), "220 ");
    std::string r = c.command("EHLO client.test");
    cr_assert(r.find("STARTTLS") != std::string::npos, "%s", r.c_str());
    r = c.command("STARTTLS");
    cr_assert_eq(r.substr(0, 4), "220 ", "%s", r.c_str());
    c.send(std::string("\x16\x03\x01\x00\x05hello", 10));  // the start of a ClientHello
    std::string rest;
    cr_assert(c.wait_closed(5000, &rest));
    cr_assert(!rest.empty() && rest[0] != '\x16', "no TLS handshake record comes back: %s", rest.c_str());
  }
  int status = 0;
  std::string out = shell("openssl s_client -starttls smtp -connect 127.0.0.1:" + std::to_string(port) + " </dev/null",
                          &status);
  cr_assert_neq(status, 0, "the handshake must fail: %s", out.c_str());
  int rc = run({"send", "--target", "127.0.0.1:" + std::to_string(port), "--starttls", "--sessions", "1", "--threads",
                "1", "--messages", "3", "--json", "--no-progress", "--timeout", "5s"},
               d.path + "/send.json");
  std::string sent = slurp(d.path + "/send.json");
  cr_assert_eq(rc, 1, "%s", sent.c_str());
  cr_assert_eq(json_num(sent, "accepted"), 0);
  std::string got = sink.stop();
  cr_assert_eq(json_num(got, "messages"), 0);
}
