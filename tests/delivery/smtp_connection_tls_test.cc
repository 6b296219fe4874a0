// smtp_connection_tls_test.cc: smtp_connection's TLS policies against scripted servers, and delivery to the built blaster sink.
// Untrusted input: the client's bytes, read by the test's scripted server.
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../integration/child.h"
#include "../tls/tls_fixture.h"
#include "digest.h"
#include "script_server.h"
#include "smtp/dot_stuff.h"

using delivery_test::tls_settings;
using sluice::tls::verify_policy;

namespace {

// A CA, a server certificate for mx.y.test signed by it, and contexts for both sides.
struct pki {
  tls_test::temp_dir dir;
  tls_test::key_and_cert ca = tls_test::issue("Test CA", {}, nullptr, true);
  std::shared_ptr<const sluice::tls::context> server_for(const std::string& name) {
    sluice::tls::server_options so;
    so.pair = tls_test::store(dir, name, tls_test::issue(name, {name}, &ca));
    return tls_test::server_ctx(so);
  }
  std::shared_ptr<const sluice::tls::context> client(sluice::tls::verify_policy p) {
    sluice::tls::client_options co;
    co.policy = p;
    co.ca_file = dir.file("ca.pem", ca.cert_pem);
    return tls_test::client_ctx(co);
  }
};

// A body whose dot lines need stuffing, in chunks that split lines.
struct body_chunks {
  std::string bytes;
  std::vector<std::string_view> chunks;
  explicit body_chunks(const std::string& headers = "Subject: t\r\n") {
    std::string text;
    for (int i = 0; i < 400; ++i) text += i % 9 == 0 ? ".dot line " + std::to_string(i) + "\r\n" : "text line\r\n";
    bytes = headers + "\r\n" + text;
    for (size_t at = 0; at < bytes.size(); at += 1500) chunks.push_back(std::string_view(bytes).substr(at, 1500));
  }
  std::string stuffed() const {
    std::string out;
    sluice::smtp::dot_stuff(bytes, out);
    return out;
  }
};

outbound_message message(const body_chunks& b) {
  outbound_message m;
  m.mail_from = "a@x.test";
  m.recipients = {"b@y.test"};
  m.body = b.chunks;
  m.size = b.bytes.size();
  return m;
}

}  // namespace

Test(delivery_tls, mandatory_without_starttls_is_unavailable_before_any_mail) {
  pki p;
  sluice::net::loop l;
  script_server srv(l);  // offers no STARTTLS
  auto at = srv.listen();
  body_chunks body;
  outbound_message m = message(body);
  recorder rec;
  connection_settings s = tls_settings(tls_policy::mandatory, p.client(verify_policy::mandatory));
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.failure.why == connection_end::tls_unavailable, "%s", failure_text(rec).c_str());
  cr_assert_not(rec.failure.was_ready);
  cr_assert_eq(srv.count("MAIL"), 0u);
}

Test(delivery_tls, partner_verifies_the_name) {
  pki p;
  sluice::net::loop l;
  script_server wrong(l);
  wrong.ehlo = "250-mx.test\r\n250 STARTTLS\r\n";
  wrong.tls_ctx = p.server_for("mx.other.test");
  auto at = wrong.listen();
  connection_settings s = tls_settings(tls_policy::partner, p.client(verify_policy::verified));
  recorder rec;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {});
  cr_assert(rec.failure.why == connection_end::tls_failed, "%s", failure_text(rec).c_str());
  cr_assert_eq(wrong.count("MAIL"), 0u);

  // The right name: delivered, and the summary says verified.
  script_server right(l);
  right.ehlo = wrong.ehlo;
  right.tls_ctx = p.server_for("mx.y.test");
  auto at2 = right.listen();
  body_chunks body;
  outbound_message m = message(body);
  recorder rec2;
  smtp_connection conn2(l, s, rec2);
  run_session(l, conn2, rec2, at2, {&m});
  cr_assert(rec2.failure.why == connection_end::quit, "%s", failure_text(rec2).c_str());
  cr_assert_eq(rec2.done.size(), 1u);
  cr_assert_eq(rec2.done[0][0].code, 250);
  std::string summary = conn2.tls_summary();
  cr_assert(summary.rfind("TLSv1.", 0) == 0 && summary.ends_with(" verified"), "%s", summary.c_str());
  cr_assert_eq(right.data.size(), 1u);
  cr_assert(right.data[0] == body.stuffed(), "the body arrived intact through TLS");
  cr_assert_eq(conn2.body_bytes_borrowed(), body.stuffed().size(), "encrypted straight from the chunks");
}

Test(delivery_tls, opportunistic_broken_handshake_then_plaintext_retry) {
  pki p;
  sluice::net::loop l;
  script_server srv(l);
  srv.ehlo = "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
  srv.broken_tls = true;
  auto at = srv.listen();
  body_chunks body;
  outbound_message m = message(body);
  connection_settings s = tls_settings(tls_policy::opportunistic, p.client(verify_policy::opportunistic));
  recorder rec;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.failure.why == connection_end::tls_failed, "%s", failure_text(rec).c_str());
  cr_assert(rec.done.empty());

  // What the engine does next: the same host in plaintext.
  srv.commands.clear();
  s.skip_tls = true;
  recorder rec2;
  smtp_connection conn2(l, s, rec2);
  run_session(l, conn2, rec2, at, {&m});
  cr_assert(rec2.failure.why == connection_end::quit, "%s", failure_text(rec2).c_str());
  cr_assert_eq(rec2.done.size(), 1u);
  cr_assert_eq(rec2.done[0][0].code, 250);
  cr_assert_eq(srv.count("STARTTLS"), 0u, "skip_tls: no STARTTLS even though offered");
  cr_assert(conn2.tls_summary().empty());
  cr_assert(srv.data.size() == 1 && srv.data[0] == body.stuffed());
}

// CVE-2011-0411: a man in the middle appends a forged EHLO reply to the 220 that
// answers STARTTLS; believed, it would stand for the server's reply under TLS.
Test(delivery_tls, reply_pipelined_before_the_tls_handshake_is_not_believed) {
  pki p;
  sluice::net::loop l;
  script_server srv(l);
  srv.ehlo = "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
  srv.tls_ctx = p.server_for("mx.y.test");
  srv.after_starttls = "250-mx.test\r\n250 AUTH PLAIN\r\n";
  auto at = srv.listen();
  body_chunks body;
  outbound_message m = message(body);
  connection_settings s = tls_settings(tls_policy::opportunistic, p.client(verify_policy::opportunistic));
  recorder rec;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.failure.why == connection_end::dropped, "%s", failure_text(rec).c_str());
  cr_assert(rec.failure.detail.find("STARTTLS") != std::string::npos, "%s", rec.failure.detail.c_str());
  cr_assert_eq(rec.ready, 0, "never ready on the strength of a forged reply");
  cr_assert_eq(srv.count("MAIL"), 0u);
}

Test(delivery_tls, opportunistic_tls_then_auth) {
  pki p;
  sluice::net::loop l;
  script_server srv(l);
  srv.ehlo = "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
  srv.ehlo_tls = "250-mx.test\r\n250-PIPELINING\r\n250 AUTH LOGIN PLAIN\r\n";
  srv.tls_ctx = p.server_for("mx.y.test");
  auto at = srv.listen();
  body_chunks body;
  outbound_message m = message(body);
  connection_settings s = tls_settings(tls_policy::opportunistic, p.client(verify_policy::opportunistic));
  s.auth_user = "u";
  s.auth_password = "p";
  recorder rec;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.failure.why == connection_end::quit, "%s", failure_text(rec).c_str());
  cr_assert_eq(srv.count("AUTH PLAIN AHUAcA=="), 1u, "PLAIN preferred, sent over TLS");
  cr_assert_eq(rec.done.size(), 1u);
  cr_assert_eq(rec.done[0][0].code, 250);
  std::string summary = conn.tls_summary();
  cr_assert(summary.ends_with(" unverified") || summary.ends_with(" verified"), "%s", summary.c_str());
}

// ---- against the built blaster sink ----

namespace {

std::string blaster_bin() { return std::string(SLUICE_BUILD_ROOT) + "/tools/blaster/blaster"; }

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

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `blaster sink` on 127.0.0.1:port, tied to this test's process.
struct sink_process {
  pid_t pid = -1;
  std::string dir, out;
  sink_process(int port, std::vector<std::string> extra) {
    struct stat st{};
    cr_assert_eq(stat(blaster_bin().c_str(), &st), 0, "build %s first", blaster_bin().c_str());
    char tmpl[] = "/tmp/sluice-delivery-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    dir = tmpl;
    out = dir + "/sink.json";
    std::vector<std::string> args = {blaster_bin(), "sink", "--listen", "127.0.0.1:" + std::to_string(port),
                                     "--json", "--threads", "1", "--record", dir + "/recv.log"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
      sluice_test::end_with_parent(parent);
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = open((out + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || err < 0 || dup2(fd, 1) < 0 || dup2(err, 2) < 0) std::_Exit(126);
      execv(argv[0], argv.data());
      std::_Exit(127);
    }
    for (int i = 0; i < 500; ++i) {  // until it accepts connections
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(uint16_t(port));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      close(fd);
      if (ok) return;
      usleep(10000);
    }
    cr_assert_fail("blaster sink did not start");
  }
  std::string stop() {
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    return slurp(out);
  }
  ~sink_process() {
    if (!dir.empty()) std::system(("rm -rf " + dir).c_str());
  }
};

void deliver_to_sink(bool starttls) {
  int port = free_port();
  sink_process sink(port, starttls ? std::vector<std::string>{"--starttls"} : std::vector<std::string>{});
  // The sink checks X-Blaster-Digest against the body it received: byte identity.
  std::string text;
  for (int i = 0; i < 3000; ++i) text += i % 7 == 0 ? ".leading dot " + std::to_string(i) + "\r\n" : "body text\r\n";
  std::string bytes = "Subject: to the sink\r\nX-Blaster-Id: t-1\r\nX-Blaster-Digest: " +
                      sluice::blaster::digest_hex(sluice::blaster::digest64(text)) + "\r\n\r\n" + text;
  std::vector<std::string_view> chunks;
  for (size_t at = 0; at < bytes.size(); at += 2048) chunks.push_back(std::string_view(bytes).substr(at, 2048));
  outbound_message m;
  m.mail_from = "a@x.test";
  m.recipients = {"b@y.test", "c@y.test"};
  m.body = chunks;
  m.size = bytes.size();

  sluice::net::loop l;
  connection_settings s = starttls ? tls_settings(tls_policy::mandatory, tls_test::client_ctx({}))
                                    : tls_settings(tls_policy::none, nullptr);
  recorder rec;
  smtp_connection conn(l, s, rec);
  sluice::net::endpoint at;
  cr_assert(sluice::net::endpoint::parse("127.0.0.1:" + std::to_string(port), at));
  run_session(l, conn, rec, at, {&m}, true, "sink.test");
  cr_assert(rec.failure.why == connection_end::quit, "%s", failure_text(rec).c_str());
  cr_assert_eq(rec.done.size(), 1u);
  cr_assert(rec.done[0][0].code == 250 && rec.done[0][1].code == 250);
  std::string stuffed;
  sluice::smtp::dot_stuff(bytes, stuffed);
  cr_assert_eq(conn.body_bytes_borrowed(), stuffed.size(), "zero-copy: every DATA byte from the chunks");
  cr_assert_eq(starttls, !conn.tls_summary().empty());

  std::string got = sink.stop();
  // One record per accepted message; "ok": the digest of the body it received matched.
  std::string rec_log = slurp(sink.dir + "/recv.log");
  cr_assert(rec_log.rfind("t-1\tok\t", 0) == 0, "the sink saw the body byte for byte: %s %s", rec_log.c_str(),
            got.c_str());
  cr_assert_eq(std::count(rec_log.begin(), rec_log.end(), '\n'), 1, "one message: %s", rec_log.c_str());
  cr_assert(rec_log.find("b@y.test,c@y.test") != std::string::npos, "%s", rec_log.c_str());
}

}  // namespace

Test(delivery_sink, plaintext_delivery_to_blaster_sink, .timeout = 60) { deliver_to_sink(false); }

Test(delivery_sink, starttls_delivery_to_blaster_sink, .timeout = 60) { deliver_to_sink(true); }

Test(delivery_tls, opportunistic_starttls_refused_goes_on_in_clear) {
  pki p;
  sluice::net::loop l;
  script_server srv(l);
  srv.ehlo = "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
  srv.reply = [](script_server::session&, const std::string& line, std::string& out) {
    if (line == "STARTTLS") return out = "454 4.7.0 TLS not available\r\n", true;
    return false;
  };
  auto at = srv.listen();
  body_chunks body;
  outbound_message m = message(body);
  connection_settings s = tls_settings(tls_policy::opportunistic, p.client(verify_policy::opportunistic));
  recorder rec;
  smtp_connection conn(l, s, rec);
  run_session(l, conn, rec, at, {&m});
  cr_assert(rec.failure.why == connection_end::quit, "%s", failure_text(rec).c_str());
  cr_assert(rec.done.size() == 1 && rec.done[0][0].code == 250);
  cr_assert(conn.tls_summary().empty());

  // Mandatory: the same refusal is tls_unavailable.
  connection_settings must = tls_settings(tls_policy::mandatory, p.client(verify_policy::mandatory));
  recorder rec2;
  smtp_connection conn2(l, must, rec2);
  run_session(l, conn2, rec2, at, {&m});
  cr_assert(rec2.failure.why == connection_end::tls_unavailable, "%s", failure_text(rec2).c_str());
  cr_assert_eq(rec2.failure.reply.code, 454);
  cr_assert(rec2.done.empty());
}
