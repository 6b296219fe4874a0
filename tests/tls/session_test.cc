// session_test.cc: in-memory handshakes and record exchange between a client and a server session.
#include <criterion/criterion.h>

#include <string>

#include "tls_fixture.h"

using namespace tls_test;

namespace {

struct pair_setup {
  temp_dir dir;
  std::shared_ptr<const context> server;
  std::shared_ptr<const context> client;
  explicit pair_setup(key_type key = key_type::p256, protocol server_min = protocol::tls1_2) {
    server_options so;
    so.pair = store(dir, "server", issue("mx.example.test", {"mx.example.test"}, nullptr, false, -3600,
                                         86400, key));
    so.minimum = server_min;
    server = server_ctx(so);
    client = client_ctx({});
  }
};

}  // namespace

Test(tls_session, handshake_and_data_both_ways) {
  pair_setup p;
  session c(p.client, "mx.example.test"), s(p.server);
  pump(c, s);
  cr_assert(c.handshake_done() && s.handshake_done(), "c: %s s: %s", c.error_text().c_str(),
            s.error_text().c_str());
  cr_assert(!c.failed() && !s.failed());
  std::string v = s.version(), cv = c.version();
  cr_assert_str_eq(v.c_str(), "TLSv1.3");
  cr_assert_str_eq(cv.c_str(), "TLSv1.3");
  cr_assert(!s.cipher().empty());
  cr_assert_eq(s.cipher_bits(), 256);
  std::string summary = s.summary();
  cr_assert_str_eq(summary.c_str(), "version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256");
  std::string subject = c.peer_subject();
  cr_assert_str_eq(subject.c_str(), "CN=mx.example.test");
  std::string sni = s.sni();
  cr_assert_str_eq(sni.c_str(), "mx.example.test");

  c.write_plaintext("EHLO client.test\r\n");
  pump(c, s);
  std::string got;
  cr_assert_eq(s.read_plaintext(got), 18u);
  cr_assert_str_eq(got.c_str(), "EHLO client.test\r\n");

  s.write_plaintext("250 mx.example.test\r\n");
  pump(c, s);
  std::string back;
  c.read_plaintext(back);
  cr_assert_str_eq(back.c_str(), "250 mx.example.test\r\n");
}

Test(tls_session, rsa_certificate_and_tls12) {
  temp_dir dir;
  server_options so;
  so.pair = store(dir, "rsa", issue("rsa.test", {"rsa.test"}, nullptr, false, -3600, 86400, key_type::rsa2048));
  auto server = server_ctx(so);
  client_options co;
  co.maximum = protocol::tls1_2;
  auto client = client_ctx(co);
  session c(client, "rsa.test"), s(server);
  pump(c, s);
  cr_assert(c.handshake_done() && s.handshake_done(), "%s / %s", c.error_text().c_str(), s.error_text().c_str());
  std::string v = s.version();
  cr_assert_str_eq(v.c_str(), "TLSv1.2");
}

Test(tls_session, plaintext_written_during_handshake_is_sent_after_it) {
  pair_setup p;
  session c(p.client, "mx.example.test"), s(p.server);
  c.write_plaintext("early ");
  c.write_plaintext("words");
  cr_assert(!c.handshake_done());
  pump(c, s);
  std::string got;
  s.read_plaintext(got);
  cr_assert_str_eq(got.c_str(), "early words");
}

Test(tls_session, large_transfer_arrives_intact) {
  pair_setup p;
  session c(p.client, "mx.example.test"), s(p.server);
  pump(c, s);
  std::string big(3u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919u) >> 3);
  s.write_plaintext(big);
  std::string wire;
  s.take_ciphertext(wire);
  cr_assert_gt(wire.size(), big.size());
  // Deliver in odd-sized pieces, as a socket would.
  std::string got;
  for (size_t off = 0; off < wire.size(); off += 1453) {
    c.feed_ciphertext(std::string_view(wire).substr(off, 1453));
    c.read_plaintext(got);
  }
  cr_assert_eq(got.size(), big.size());
  cr_assert(got == big);
}

Test(tls_session, close_notify_reaches_the_peer) {
  pair_setup p;
  session c(p.client, "mx.example.test"), s(p.server);
  pump(c, s);
  s.write_plaintext("221 bye\r\n");
  s.close_notify();
  s.close_notify();
  pump(c, s);
  std::string got;
  c.read_plaintext(got);
  cr_assert_str_eq(got.c_str(), "221 bye\r\n");
  cr_assert(c.peer_closed());
  cr_assert(!c.failed());
}

Test(tls_session, garbage_from_peer_fails_with_reason) {
  pair_setup p;
  session s(p.server);
  s.feed_ciphertext("EHLO this is not TLS\r\n");
  cr_assert(s.failed());
  cr_assert(!s.error_text().empty());
  cr_assert(s.error_text().find("handshake") != std::string::npos, "%s", s.error_text().c_str());
  std::string alert;
  s.take_ciphertext(alert);
  std::string more;
  cr_assert_eq(s.read_plaintext(more), 0u);
}

Test(tls_session, tls13_minimum_refuses_tls12_only_client) {
  pair_setup p(key_type::p256, protocol::tls1_3);
  client_options co;
  co.maximum = protocol::tls1_2;
  auto client = client_ctx(co);
  session c(client, "mx.example.test"), s(p.server);
  pump(c, s);
  cr_assert(s.failed());
  cr_assert(c.failed());
  cr_assert(!s.handshake_done());
  cr_assert(s.error_text().find("protocol") != std::string::npos, "%s", s.error_text().c_str());
}

Test(tls_session, tls13_minimum_accepts_tls13_client) {
  pair_setup p(key_type::p256, protocol::tls1_3);
  session c(p.client, "mx.example.test"), s(p.server);
  pump(c, s);
  cr_assert(s.handshake_done() && c.handshake_done());
}

Test(tls_session, ciphersuite_setting_is_applied) {
  temp_dir dir;
  server_options so;
  so.pair = store(dir, "s", issue("s.test", {"s.test"}));
  so.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
  auto server = server_ctx(so);
  auto client = client_ctx({});
  session c(client, "s.test"), s(server);
  pump(c, s);
  std::string name = s.cipher();
  cr_assert_str_eq(name.c_str(), "TLS_CHACHA20_POLY1305_SHA256");
}

Test(tls_session, client_resumes_a_saved_session) {
  for (protocol version : {protocol::tls1_3, protocol::tls1_2}) {
    pair_setup p;
    client_options co;
    co.maximum = version;
    auto client = client_ctx(co);
    saved_session saved;
    {
      session c(client, "mx.example.test"), s(p.server);
      pump(c, s);
      s.write_plaintext("220 ok\r\n");
      pump(c, s);
      std::string got;
      c.read_plaintext(got);
      cr_assert(!c.resumed());
      saved = c.save();
      cr_assert(static_cast<bool>(saved));
    }
    session c(client, "mx.example.test", saved), s(p.server);
    pump(c, s);
    cr_assert(c.handshake_done() && s.handshake_done());
    cr_assert(c.resumed(), "version %d", static_cast<int>(version));
    cr_assert(s.resumed(), "version %d", static_cast<int>(version));
    std::string subject = c.peer_subject();
    cr_assert_str_eq(subject.c_str(), "CN=mx.example.test");
  }
}

Test(tls_session, tampered_record_fails_the_session) {
  pair_setup p;
  session c(p.client, "mx.example.test"), s(p.server);
  pump(c, s);
  c.write_plaintext("MAIL FROM:<a@example.test>\r\n");
  std::string wire;
  c.take_ciphertext(wire);
  wire[wire.size() - 3] ^= 0x40;  // inside the AEAD tag
  s.feed_ciphertext(wire);
  std::string got;
  cr_assert_eq(s.read_plaintext(got), 0u);
  cr_assert(s.failed());
  cr_assert(s.error_text().find("read failed") != std::string::npos, "%s", s.error_text().c_str());
  s.write_plaintext("250 ok\r\n");  // ignored once failed
  std::string alert;
  s.take_ciphertext(alert);
  cr_assert_lt(alert.size(), 64u, "only an alert, no application data");
}
