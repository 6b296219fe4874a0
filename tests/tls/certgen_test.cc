// certgen_test.cc: self-signed certificate generation for `certificate = "auto"`.
#include <criterion/criterion.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tls_fixture.h"

using namespace tls_test;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Test(tls_self_signed, generates_a_loadable_pair_once) {
  temp_dir dir;
  cert_files files;
  std::string error;
  cr_assert(make_self_signed(dir.path, "mail.example.test", files, error, key_type::p256), "%s", error.c_str());
  cr_assert(files.created);
  struct stat st;
  cr_assert_eq(stat(files.key_file.c_str(), &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600u);
  std::string cert = slurp(files.cert_file), key = slurp(files.key_file);
  cr_assert(cert.find("BEGIN CERTIFICATE") != std::string::npos);

  server_options so;
  so.pair = {files.cert_file, files.key_file};
  auto server = server_ctx(so);
  auto client = client_ctx({});
  session c(client, "mail.example.test"), s(server);
  pump(c, s);
  cr_assert(c.handshake_done());
  std::string subject = c.peer_subject();
  cr_assert_str_eq(subject.c_str(), "CN=mail.example.test");

  // Trusting the certificate itself makes the SAN check meaningful.
  client_options co;
  co.policy = verify_policy::verified;
  co.ca_file = files.cert_file;
  session v(client_ctx(co), "mail.example.test"), s2(server);
  pump(v, s2);
  cr_assert(v.peer_verified(), "%s", v.error_text().c_str());

  cert_files again;
  cr_assert(make_self_signed(dir.path, "mail.example.test", again, error, key_type::p256));
  cr_assert(!again.created);
  cr_assert(slurp(again.cert_file) == cert);
  cr_assert(slurp(again.key_file) == key);
}

Test(tls_self_signed, rsa_default_and_regenerates_a_half_pair) {
  temp_dir dir;
  cert_files files;
  std::string error;
  cr_assert(make_self_signed(dir.path, "mx.test", files, error), "%s", error.c_str());
  std::string key = slurp(files.key_file);
  cr_assert(key.find("BEGIN PRIVATE KEY") != std::string::npos);
  std::remove(files.cert_file.c_str());
  cert_files again;
  cr_assert(make_self_signed(dir.path, "mx.test", again, error), "%s", error.c_str());
  cr_assert(again.created);
  cr_assert(slurp(again.key_file) != key);
  server_options so;
  so.pair = {again.cert_file, again.key_file};
  server_ctx(so);
}

Test(tls_self_signed, creates_a_missing_directory_privately) {
  temp_dir dir;
  std::string sub = dir.path + "/var/tls";
  cert_files files;
  std::string error;
  cr_assert(make_self_signed(sub, "mx.test", files, error, key_type::p256), "%s", error.c_str());
  struct stat st;
  cr_assert_eq(stat(sub.c_str(), &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0700u);
  cr_assert(files.created);
}

Test(tls_self_signed, unusable_directory_is_an_error) {
  temp_dir dir;
  std::string blocker = dir.file("plain-file", "x");
  cert_files files;
  std::string error;
  cr_assert(!make_self_signed(blocker + "/tls", "mx.test", files, error, key_type::p256));
  cr_assert(error.find("plain-file") != std::string::npos, "%s", error.c_str());
}
