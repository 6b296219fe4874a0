// tls_fixture.h: test helpers: a temporary PKI on disk and a byte pump between two sessions.
#pragma once
#include <criterion/criterion.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tls/certgen.h"
#include "tls/context.h"
#include "tls/session.h"

namespace tls_test {

using namespace sluice::tls;

// A temporary directory removed when the test's process ends the scope.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/sluice-tls-test-XXXXXX";
    char* p = mkdtemp(tmpl);
    cr_assert(p != nullptr, "mkdtemp failed");
    path = p;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name, const std::string& content) const {
    std::string full = path + "/" + name;
    std::ofstream(full, std::ios::binary) << content;
    return full;
  }
};

inline key_and_cert issue(const std::string& cn, std::vector<std::string> names,
                          const key_and_cert* issuer = nullptr, bool is_ca = false,
                          long not_before = -3600, long not_after = 86400L * 30,
                          key_type key = key_type::p256) {
  cert_request req;
  req.common_name = cn;
  req.names = std::move(names);
  req.issuer = issuer;
  req.is_ca = is_ca;
  req.not_before = not_before;
  req.not_after = not_after;
  req.key = key;
  key_and_cert out;
  std::string error;
  cr_assert(issue_certificate(req, out, error), "issue_certificate: %s", error.c_str());
  return out;
}

// Writes a pair as <stem>.crt / <stem>.key and returns the paths.
inline cert_pair store(const temp_dir& dir, const std::string& stem, const key_and_cert& kc) {
  return {dir.file(stem + ".crt", kc.cert_pem), dir.file(stem + ".key", kc.key_pem)};
}

inline std::shared_ptr<const context> server_ctx(const server_options& opts) {
  std::string error;
  auto ctx = context::make_server(opts, error);
  cr_assert(ctx != nullptr, "make_server: %s", error.c_str());
  return ctx;
}

inline std::shared_ptr<const context> client_ctx(const client_options& opts) {
  std::string error;
  auto ctx = context::make_client(opts, error);
  cr_assert(ctx != nullptr, "make_client: %s", error.c_str());
  return ctx;
}

// Moves ciphertext both ways until neither side has anything to send.
inline void pump(session& client, session& server) {
  for (int round = 0; round < 50; ++round) {
    std::string a, b;
    client.take_ciphertext(a);
    if (!a.empty()) server.feed_ciphertext(a);
    server.take_ciphertext(b);
    if (!b.empty()) client.feed_ciphertext(b);
    if (a.empty() && b.empty()) return;
  }
  cr_assert_fail("pump did not settle");
}

// Handshake and then read whatever plaintext arrived on both sides (so that alerts
// sent after the client thought it was done, as with TLS 1.3 client certificates, land).
inline void settle(session& client, session& server) {
  pump(client, server);
  std::string sink;
  client.read_plaintext(sink);
  server.read_plaintext(sink);
  pump(client, server);
  client.read_plaintext(sink);
  server.read_plaintext(sink);
}

}  // namespace tls_test
