// verify_test.cc: client verification policies, SNI certificate choice and client certificates.
#include <criterion/criterion.h>

#include <string>

#include "tls_fixture.h"

using namespace tls_test;

namespace {

// A CA, and a server certificate it issued for mx.example.test.
struct pki {
  temp_dir dir;
  key_and_cert ca = issue("Test CA", {}, nullptr, true);
  std::string ca_file = dir.file("ca.crt", ca.cert_pem);

  std::shared_ptr<const context> server(const key_and_cert& leaf) {
    server_options so;
    so.pair = store(dir, "leaf", leaf);
    return server_ctx(so);
  }
  std::shared_ptr<const context> client(verify_policy policy) {
    client_options co;
    co.policy = policy;
    co.ca_file = ca_file;
    return client_ctx(co);
  }
};

}  // namespace

Test(tls_verify, ca_signed_certificate_for_the_right_name_verifies) {
  pki p;
  auto server = p.server(issue("mx.example.test", {"mx.example.test"}, &p.ca));
  session c(p.client(verify_policy::verified), "MX.Example.Test."), s(server);
  pump(c, s);
  cr_assert(c.handshake_done(), "%s", c.error_text().c_str());
  cr_assert(s.handshake_done());
  cr_assert(c.peer_verified());
  std::string r = c.verify_result();
  cr_assert_str_eq(r.c_str(), "ok");
  std::string issuer = c.peer_issuer();
  cr_assert_str_eq(issuer.c_str(), "CN=Test CA");
}

Test(tls_verify, wrong_host_name_fails) {
  pki p;
  auto server = p.server(issue("mx.example.test", {"mx.example.test"}, &p.ca));
  session c(p.client(verify_policy::verified), "other.example.test"), s(server);
  pump(c, s);
  cr_assert(c.failed());
  cr_assert(!c.handshake_done());
  cr_assert(c.error_text().find("hostname mismatch") != std::string::npos, "%s", c.error_text().c_str());
}

Test(tls_verify, wildcard_does_not_cover_two_labels) {
  pki p;
  auto server = p.server(issue("*.example.test", {"*.example.test"}, &p.ca));
  {
    session c(p.client(verify_policy::verified), "mx.example.test"), s(server);
    pump(c, s);
    cr_assert(c.handshake_done(), "%s", c.error_text().c_str());
  }
  session c(p.client(verify_policy::verified), "a.mx.example.test"), s(server);
  pump(c, s);
  cr_assert(c.failed());
}

Test(tls_verify, expired_certificate_fails) {
  pki p;
  auto server = p.server(issue("mx.example.test", {"mx.example.test"}, &p.ca, false, -86400L * 10, -86400L));
  session c(p.client(verify_policy::verified), "mx.example.test"), s(server);
  pump(c, s);
  cr_assert(c.failed());
  cr_assert(c.error_text().find("expired") != std::string::npos, "%s", c.error_text().c_str());
}

Test(tls_verify, untrusted_issuer_fails) {
  pki p;
  key_and_cert other_ca = issue("Other CA", {}, nullptr, true);
  auto server = p.server(issue("mx.example.test", {"mx.example.test"}, &other_ca));
  session c(p.client(verify_policy::verified), "mx.example.test"), s(server);
  pump(c, s);
  cr_assert(c.failed());
}

Test(tls_verify, ip_literal_matches_ip_san) {
  pki p;
  auto server = p.server(issue("127.0.0.1", {"127.0.0.1"}, &p.ca));
  session c(p.client(verify_policy::verified), "127.0.0.1"), s(server);
  pump(c, s);
  cr_assert(c.handshake_done(), "%s", c.error_text().c_str());
  cr_assert(c.peer_verified());
  std::string sni = s.sni();
  cr_assert_str_eq(sni.c_str(), "", "no SNI for address literals");
}

Test(tls_verify, verified_without_host_name_fails_at_once) {
  pki p;
  session c(p.client(verify_policy::verified));
  cr_assert(c.failed());
}

Test(tls_verify, mandatory_accepts_unverifiable_certificate_and_reports_it) {
  pki p;
  auto server = p.server(issue("mx.example.test", {"mx.example.test"}, nullptr, false, -86400L * 10, -86400L));
  session c(p.client(verify_policy::mandatory), "wrong.example.test"), s(server);
  pump(c, s);
  cr_assert(c.handshake_done(), "%s", c.error_text().c_str());
  cr_assert(!c.peer_verified());
  std::string r = c.verify_result();
  cr_assert_str_neq(r.c_str(), "ok");
  cr_assert_str_neq(r.c_str(), "no certificate");
}

Test(tls_verify, opportunistic_records_a_good_verification) {
  pki p;
  auto server = p.server(issue("mx.example.test", {"mx.example.test"}, &p.ca));
  session c(p.client(verify_policy::opportunistic), "mx.example.test"), s(server);
  pump(c, s);
  cr_assert(c.handshake_done());
  cr_assert(c.peer_verified());
}

Test(tls_sni, selects_the_matching_certificate) {
  temp_dir dir;
  server_options so;
  so.pair = store(dir, "default", issue("default.test", {"default.test"}));
  so.sni.push_back({"mail.a.test", store(dir, "a", issue("mail.a.test", {"mail.a.test"}))});
  so.sni.push_back({"*.B.test", store(dir, "b", issue("wild.b.test", {"*.b.test"}))});
  auto server = server_ctx(so);
  auto client = client_ctx({});
  struct { const char* ask; const char* subject; } cases[] = {
      {"mail.a.test", "CN=mail.a.test"},
      {"MAIL.A.TEST", "CN=mail.a.test"},
      {"x.b.test", "CN=wild.b.test"},
      {"y.x.b.test", "CN=default.test"},
      {"unknown.test", "CN=default.test"},
  };
  for (auto& k : cases) {
    session c(client, k.ask), s(server);
    pump(c, s);
    cr_assert(c.handshake_done(), "%s: %s", k.ask, c.error_text().c_str());
    std::string subject = c.peer_subject();
    cr_assert_str_eq(subject.c_str(), k.subject, "asked for %s", k.ask);
    std::string sni = s.sni();
    cr_assert_str_eq(sni.c_str(), k.ask);
  }
  session c(client), s(server);
  pump(c, s);
  std::string subject = c.peer_subject();
  cr_assert_str_eq(subject.c_str(), "CN=default.test");
}

Test(tls_context, reports_bad_files_and_mismatched_keys) {
  temp_dir dir;
  key_and_cert a = issue("a.test", {"a.test"}), b = issue("b.test", {"b.test"});
  std::string error;
  server_options so;
  so.pair = {dir.path + "/missing.crt", dir.path + "/missing.key"};
  cr_assert_null(context::make_server(so, error).get());
  cr_assert(error.find("missing.crt") != std::string::npos, "%s", error.c_str());
  so.pair = {dir.file("a.crt", a.cert_pem), dir.file("b.key", b.key_pem)};
  error.clear();
  cr_assert_null(context::make_server(so, error).get());
  cr_assert(error.find("b.key") != std::string::npos && error.find("mismatch") != std::string::npos, "%s",
            error.c_str());
  so.pair = {dir.file("a.crt", a.cert_pem), dir.file("a.key", a.key_pem)};
  so.ciphersuites = "NOT_A_SUITE";
  error.clear();
  cr_assert_null(context::make_server(so, error).get());
  cr_assert(error.find("ciphersuites") != std::string::npos, "%s", error.c_str());
  so.ciphersuites.clear();
  so.client_auth = client_certs::require;
  so.client_ca_file = dir.path + "/missing-ca.crt";
  error.clear();
  cr_assert_null(context::make_server(so, error).get());
  cr_assert(error.find("missing-ca.crt") != std::string::npos, "%s", error.c_str());
  so.client_ca_file.clear();  // the system store
  cr_assert_not_null(context::make_server(so, error).get(), "%s", error.c_str());
}

Test(tls_context, parses_protocol_names) {
  protocol p = protocol::tls1_2;
  cr_assert(parse_protocol("1.3", p) && p == protocol::tls1_3);
  cr_assert(parse_protocol("TLSv1.2", p) && p == protocol::tls1_2);
  cr_assert(!parse_protocol("1.1", p));
  cr_assert(!parse_protocol("", p));
}

Test(tls_context, reload_gives_new_sessions_the_new_certificate) {
  temp_dir dir;
  server_options so;
  so.pair = store(dir, "cur", issue("old.test", {"old.test"}));
  auto old_ctx = server_ctx(so);
  auto client = client_ctx({});
  session c1(client, "x.test"), s1(old_ctx);
  store(dir, "cur", issue("new.test", {"new.test"}));  // the files change on disk
  auto new_ctx = server_ctx(so);
  old_ctx.reset();  // the configuration drops the old context; s1 keeps it alive
  session c2(client, "x.test"), s2(new_ctx);
  pump(c1, s1);
  pump(c2, s2);
  std::string one = c1.peer_subject(), two = c2.peer_subject();
  cr_assert_str_eq(one.c_str(), "CN=old.test");
  cr_assert_str_eq(two.c_str(), "CN=new.test");
}

namespace {

struct client_cert_setup {
  temp_dir dir;
  key_and_cert ca = issue("Client CA", {}, nullptr, true);
  std::shared_ptr<const context> server;
  explicit client_cert_setup(client_certs mode) {
    server_options so;
    so.pair = store(dir, "srv", issue("mx.example.test", {"mx.example.test"}));
    so.client_auth = mode;
    so.client_ca_file = dir.file("client-ca.crt", ca.cert_pem);
    server = server_ctx(so);
  }
  std::shared_ptr<const context> client_with(const key_and_cert* cert) {
    client_options co;
    if (cert) co.client_cert = store(dir, "client", *cert);
    return client_ctx(co);
  }
};

}  // namespace

Test(tls_client_cert, required_and_missing_fails) {
  client_cert_setup p(client_certs::require);
  session c(p.client_with(nullptr), "mx.example.test"), s(p.server);
  settle(c, s);
  cr_assert(s.failed());
  cr_assert(!s.handshake_done());
  cr_assert(s.error_text().find("certificate") != std::string::npos, "%s", s.error_text().c_str());
}

Test(tls_client_cert, required_and_presented_reports_subject) {
  client_cert_setup p(client_certs::require);
  key_and_cert cert = issue("relay.partner.test", {"relay.partner.test"}, &p.ca);
  session c(p.client_with(&cert), "mx.example.test"), s(p.server);
  settle(c, s);
  cr_assert(s.handshake_done(), "%s", s.error_text().c_str());
  cr_assert(!c.failed());
  cr_assert(s.peer_verified());
  std::string subject = s.peer_subject();
  cr_assert_str_eq(subject.c_str(), "CN=relay.partner.test");
}

Test(tls_client_cert, required_and_untrusted_fails) {
  client_cert_setup p(client_certs::require);
  key_and_cert cert = issue("intruder.test", {"intruder.test"});
  session c(p.client_with(&cert), "mx.example.test"), s(p.server);
  settle(c, s);
  cr_assert(s.failed());
}

Test(tls_client_cert, requested_accepts_none_and_untrusted) {
  client_cert_setup p(client_certs::request);
  {
    session c(p.client_with(nullptr), "mx.example.test"), s(p.server);
    settle(c, s);
    cr_assert(s.handshake_done(), "%s", s.error_text().c_str());
    cr_assert(!s.peer_verified());
    std::string r = s.verify_result();
    cr_assert_str_eq(r.c_str(), "no certificate");
  }
  key_and_cert cert = issue("stranger.test", {"stranger.test"});
  session c(p.client_with(&cert), "mx.example.test"), s(p.server);
  settle(c, s);
  cr_assert(s.handshake_done(), "%s", s.error_text().c_str());
  cr_assert(!s.peer_verified());
  std::string subject = s.peer_subject();
  cr_assert_str_eq(subject.c_str(), "CN=stranger.test");
}
