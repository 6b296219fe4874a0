// tls_test.cc: STARTTLS and AUTH against the built sluiced with swaks, Python smtplib, openssl s_client and raw sockets.
#include <criterion/criterion.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "assertions.h"
#include "harness.h"
#include "pki.h"

using namespace sluice::testing;

namespace {

// The default test config with TLS on the Internet connector and a submission connector
// (AUTH required, relay for authenticated users) on a second port.
struct tls_daemon {
  sluiced_process d;
  uint16_t submission_port = free_port();
  std::string starttls;

  explicit tls_daemon(const std::string& mode = "offered", bool loopback_plain_auth = false) : starttls(mode) {
    std::string hash = run("echo 'correct horse' | " + sluiced_path() + " --hash-password").output;
    while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r')) hash.pop_back();
    d.write_file("credentials", "# test users\nalice:" + hash + "\n");
    std::string cfg = sluiced_process::default_config();
    std::string anchor = "protocol_log = true\ntimeouts";
    cfg.replace(cfg.find(anchor), anchor.size(),
                "protocol_log = true\ntls = { certificate = \"auto\", key = \"auto\", starttls = \"" + mode +
                    "\" }\ntimeouts");
    cfg += R"(
[[receive_connector]]
name = "Submission"
type = "client"
bindings = ["127.0.0.1:)" + std::to_string(submission_port) + R"("]
protocol_log = true
tls = { certificate = "auto", key = "auto", starttls = "offered" }
auth = { credentials = "credentials", allow_plaintext_on_loopback = )" +
           std::string(loopback_plain_auth ? "true" : "false") + R"(, max_failures_per_ip = 3 }
)";
    d.write_config(cfg);
  }
};

std::string swaks(uint16_t port, const std::string& extra) {
  return "swaks --server 127.0.0.1:" + std::to_string(port) +
         " --from sender@example.org --helo client.example --timeout 20 " + extra;
}

}  // namespace

Test(integration_tls, swaks_starttls_and_self_signed_certificate) {
  tls_daemon t;
  START(t.d);
  auto r = run(swaks(t.d.port(), "--to alice@sluice.test --tls"));
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  cr_assert(r.output.find("=== TLS started with cipher TLSv1.") != std::string::npos, "%s", r.output.c_str());
  cr_assert(r.output.find("250 2.6.0 <") != std::string::npos, "%s", r.output.c_str());
  cr_assert(t.d.log().find("generated a self-signed certificate") != std::string::npos, "%s", t.d.log().c_str());
}

Test(integration_tls, python_smtplib_starttls) {
  tls_daemon t;
  START(t.d);
  std::string script =
      "import smtplib, ssl\n"
      "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n"
      "s = smtplib.SMTP('127.0.0.1', " + std::to_string(t.d.port()) + ", timeout=20)\n"
      "s.ehlo('client.example'); assert s.has_extn('starttls')\n"
      "s.starttls(context=ctx); s.ehlo('client.example')\n"
      "assert not s.has_extn('starttls'), 'STARTTLS must not be offered twice'\n"
      "print(s.sock.version())\n"
      "print(s.sendmail('sender@example.org', ['bob@sluice.test'], 'Subject: tls\\r\\n\\r\\nover tls\\r\\n'))\n"
      "s.quit()\n";
  auto r = run("python3 -c \"" + script + "\"");
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  cr_assert(r.output.find("TLSv1.3") != std::string::npos, "%s", r.output.c_str());
}

Test(integration_tls, openssl_s_client_shows_the_chain) {
  tls_daemon t;
  START(t.d);
  auto r = run("echo QUIT | timeout 10 openssl s_client -starttls smtp -connect 127.0.0.1:" +
               std::to_string(t.d.port()) + " -showcerts");
  cr_assert(r.output.find("-----BEGIN CERTIFICATE-----") != std::string::npos, "%s", r.output.c_str());
  cr_assert(r.output.find("CN = mx.sluice.test") != std::string::npos, "%s", r.output.c_str());
}

Test(integration_tls, plaintext_pipelined_after_starttls_is_discarded) {
  tls_daemon t;
  START(t.d);
  smtp_client c(t.d.port());
  c.reply();
  c.cmd("EHLO client.example");
  // The CVE-2011-0411 injection: a command in the same packet as STARTTLS.
  c.send_raw("STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n");
  EXPECT_CODE(c.reply(), 220);
  // If the injected MAIL had been kept, its 250 would follow the 220 in plaintext.
  std::string extra = c.reply(700);
  cr_assert(extra.empty(), "plaintext after STARTTLS must not be executed: %s", extra.c_str());
}

// The same injection with the handshake completed: the injected MAIL is not answered inside
// TLS either, and no transaction was started by it.
Test(integration_tls, command_injected_with_starttls_is_not_answered_after_the_handshake) {
  tls_daemon t;
  START(t.d);
  auto r = run("python3 " + source_root() + "/tests/integration/clients/starttls_injection.py " +
               std::to_string(t.d.port()));
  cr_assert_eq(r.status, 0, "%s", r.output.c_str());
  cr_assert(r.output.find("STARTTLS 220") != std::string::npos, "%s", r.output.c_str());
  cr_assert(r.output.find("HANDSHAKE TLSv1.") != std::string::npos, "%s", r.output.c_str());
  cr_assert(r.output.find("UNSOLICITED none") != std::string::npos, "the injected MAIL was answered: %s",
            r.output.c_str());
  cr_assert(r.output.find("EHLO-TLS 250") != std::string::npos, "%s", r.output.c_str());
  cr_assert(r.output.find("MAIL-TLS 250") != std::string::npos, "a transaction was left open: %s", r.output.c_str());
}

Test(integration_tls, starttls_required_refuses_mail_in_plaintext) {
  tls_daemon t("required");
  START(t.d);
  smtp_client c(t.d.port());
  c.reply();
  c.cmd("EHLO client.example");
  std::string r = c.cmd("MAIL FROM:<sender@example.org>");
  EXPECT_CODE(r, 530);
  cr_assert(r.find("5.7.0 Must issue a STARTTLS command first") != std::string::npos, "%s", r.c_str());
  auto ok = run(swaks(t.d.port(), "--to alice@sluice.test --tls"));
  cr_assert_eq(ok.status, 0, "%s", ok.output.c_str());
}

Test(integration_tls, auth_success_relays_and_failure_refuses) {
  tls_daemon t;
  START(t.d);
  for (const char* mech : {"PLAIN", "LOGIN"}) {
    auto good = run(swaks(t.submission_port, std::string("--to someone@elsewhere.example --tls --auth ") + mech +
                                                 " --auth-user alice --auth-password 'correct horse'"));
    cr_assert_eq(good.status, 0, "%s", good.output.c_str());
    cr_assert(good.output.find("235 2.7.0") != std::string::npos, "%s", good.output.c_str());
    cr_assert(good.output.find("250 2.6.0 <") != std::string::npos, "%s", good.output.c_str());
  }
  auto bad = run(swaks(t.submission_port,
                       "--to someone@elsewhere.example --tls --auth PLAIN --auth-user alice --auth-password wrong"));
  cr_assert_neq(bad.status, 0, "%s", bad.output.c_str());
  cr_assert(bad.output.find("535 5.7.8") != std::string::npos, "%s", bad.output.c_str());
  // The password never reaches the protocol log.
  auto log = run("cat " + t.d.dir() + "/log/protocol/Submission.csv");
  cr_assert(log.output.find("AUTH") != std::string::npos || log.output.find("TLS") != std::string::npos, "%s",
            log.output.c_str());
  cr_assert(log.output.find("correct horse") == std::string::npos, "password leaked into the log");
}

Test(integration_tls, auth_required_and_not_offered_in_plaintext) {
  tls_daemon t;
  START(t.d);
  smtp_client c(t.submission_port);
  c.reply();
  std::string ehlo = c.cmd("EHLO client.example");
  cr_assert(ehlo.find("AUTH") == std::string::npos, "AUTH must not be offered without TLS: %s", ehlo.c_str());
  // The right password in plaintext: refused before it is checked, and nothing authenticated.
  std::string auth = c.cmd("AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=");
  cr_assert(code_of(auth) >= 500 && code_of(auth) < 600, "plaintext AUTH must be refused: %s", auth.c_str());
  std::string r = c.cmd("MAIL FROM:<sender@example.org>");
  EXPECT_CODE(r, 530);
}

Test(integration_tls, auth_failures_are_rate_limited) {
  tls_daemon t("offered", true);
  START(t.d);
  smtp_client c(t.submission_port);
  c.reply();
  std::string ehlo = c.cmd("EHLO client.example");
  cr_assert(ehlo.find("AUTH PLAIN LOGIN") != std::string::npos, "loopback plaintext AUTH configured: %s", ehlo.c_str());
  // "\0alice\0wrong" in base64.
  for (int i = 0; i < 3; ++i) EXPECT_CODE(c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n"), 535);
  std::string r = c.cmd("AUTH PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=");  // right password, but blocked now
  cr_assert(code_of(r) == 454 || code_of(r) == 421, "blocked after 3 failures: %s", r.c_str());
}

Test(integration_tls, reload_swaps_settings_and_certificates_for_new_sessions) {
  tls_daemon t;
  START(t.d);
  auto fingerprint = [&] {
    return run("echo QUIT | timeout 10 openssl s_client -starttls smtp -connect 127.0.0.1:" +
               std::to_string(t.d.port()) + " 2>/dev/null | openssl x509 -noout -fingerprint -sha256").output;
  };
  std::string before = fingerprint();
  cr_assert(before.find("Fingerprint=") != std::string::npos, "%s", before.c_str());
  smtp_client old_session(t.d.port());
  old_session.reply();

  // New certificate ("auto" regenerates a missing pair) and a new banner, then SIGHUP.
  run("rm -f " + t.d.dir() + "/tls/cert.pem " + t.d.dir() + "/tls/key.pem");
  std::string cfg = run("cat " + t.d.dir() + "/sluice.toml").output;
  cfg.replace(cfg.find("max_recipients = 5"), 18, "max_recipients = 5\nbanner = \"reloaded.example ready\"");
  t.d.write_file("sluice.toml", cfg);
  t.d.signal(SIGHUP);
  std::string banner;
  for (int i = 0; i < 50 && banner.find("reloaded") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    smtp_client c(t.d.port());
    banner = c.reply();
  }
  cr_assert(banner.find("220 reloaded.example ready") == 0, "new sessions see the reloaded banner: %s", banner.c_str());
  std::string after = fingerprint();
  cr_assert(after.find("Fingerprint=") != std::string::npos, "%s", after.c_str());
  cr_assert(before != after, "the certificate must change on reload without a restart");
  // A session opened before the reload carries on under its own settings.
  EXPECT_CODE(old_session.cmd("EHLO client.example"), 250);
  cr_assert(t.d.log().find("configuration reloaded") != std::string::npos, "%s", t.d.log().c_str());

  // A broken file leaves the running configuration in force.
  t.d.write_file("sluice.toml", cfg + "\n[[receive_connector]]\nname = 42\n");
  t.d.signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  cr_assert(t.d.log().find("reload failed, configuration unchanged") != std::string::npos, "%s", t.d.log().c_str());
  smtp_client still(t.d.port());
  cr_assert(still.reply().find("220 reloaded.example ready") == 0);
}

Test(integration_tls, partner_connector_requires_a_client_certificate) {
  pki p;
  sluiced_process d;
  std::string cfg = sluiced_process::default_config();
  const std::string relay = "remote_ranges = [\"127.0.0.2\"]\npermissions = { anonymous = true, relay = true }";
  cfg.replace(cfg.find(relay), relay.size(),
              relay + "\ntls = { certificate = \"auto\", key = \"auto\", starttls = \"required\", "
                      "require_client_certificate = true, client_ca = \"" + p.dir + "/ca.pem\" }");
  d.write_config(cfg);
  START(d);
  std::string base = "swaks --server 127.0.0.1:" + std::to_string(d.port()) +
                     " --local-interface 127.0.0.2 --from a@example.org --to alice@sluice.test --timeout 20 --tls";
  auto without = run(base);
  cr_assert_neq(without.status, 0, "no client certificate must fail: %s", without.output.c_str());
  cr_assert(without.output.find("250 2.6.0") == std::string::npos, "%s", without.output.c_str());
  auto with = run(base + " --tls-cert " + p.dir + "/client.pem --tls-key " + p.dir + "/client.key");
  cr_assert_eq(with.status, 0, "%s", with.output.c_str());
  cr_assert(with.output.find("250 2.6.0") != std::string::npos, "%s", with.output.c_str());
  // The verified subject is in the protocol log.
  std::string log;
  for (int i = 0; i < 30 && log.find("partner.client.test") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log = run("cat " + d.dir() + "/log/protocol/Relay.csv").output;
  }
  cr_assert(log.find("client certificate: CN=partner.client.test (verified)") != std::string::npos, "%s", log.c_str());
  // ... and in the message's Received: header, for policy further on.
  std::string id = queue_id_of(with.output.substr(with.output.find("250 2.6.0")));
  auto shown = d.ctl("queue show " + id);
  cr_assert(shown.output.find("(client certificate \"CN=partner.client.test\", verified)") != std::string::npos, "%s",
            shown.output.c_str());
}
