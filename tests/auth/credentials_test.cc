// credentials_test.cc: the AUTH user file, password hashing and verification.
#include <criterion/criterion.h>
#include <crypt.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "auth/credentials.h"

using sluice::auth::credentials;
using sluice::auth::equal_constant_time;
using sluice::auth::hash_password;

Test(auth_credentials, hash_verify_round_trip) {
  std::string hash = hash_password("correct horse");
  cr_assert(hash.starts_with("$y$"), "%s", hash.c_str());
  std::string other = hash_password("correct horse");
  cr_assert(hash != other, "salts must differ");
  std::string text = "# users\n\nalice:" + hash + "\n  bob : " + other + "  \r\n";
  std::string error;
  auto creds = credentials::parse(text, "users", error);
  cr_assert(creds.has_value(), "%s", error.c_str());
  cr_assert_eq(creds->size(), 2u);
  cr_assert(creds->verify("alice", "correct horse"));
  cr_assert(creds->verify("bob", "correct horse"));
  cr_assert(!creds->verify("alice", "correct horse "));
  cr_assert(!creds->verify("alice", ""));
  cr_assert(!creds->verify("Alice", "correct horse"), "user names are case-sensitive");
  cr_assert(!creds->verify("carol", "correct horse"));
  cr_assert(!creds->verify("alice", std::string_view("correct horse\0x", 15)));
}

Test(auth_credentials, sha512_crypt_is_accepted) {
  // The file may hold older SHA-512 crypt entries (as from `mkpasswd -m sha-512`).
  crypt_data data{};
  const char* hashed = crypt_r("secret", "$6$saltsaltsalt$", &data);
  cr_assert(hashed && std::string(hashed).starts_with("$6$saltsaltsalt$"));
  std::string error;
  auto creds = credentials::parse(std::string("old:") + hashed + "\n", "f", error);
  cr_assert(creds.has_value(), "%s", error.c_str());
  cr_assert(creds->verify("old", "secret"));
  cr_assert(!creds->verify("old", "Secret"));
}

Test(auth_credentials, malformed_lines_name_their_line) {
  std::string hash = hash_password("pw");
  struct { std::string text; const char* expect; } cases[] = {
      {"# c\nalice " + hash + "\n", "users:2: expected user:hash"},
      {"alice:" + hash + "\n\n:" + hash + "\n", "users:3: empty user name"},
      {"alice:\n", "users:1: empty password hash for alice"},
      {"alice:$1$abc$def\n", "users:1: hash for alice is not yescrypt"},
      {"alice:plaintext\n", "users:1: hash for alice is not yescrypt"},
      {"alice:$y$\n", "users:1: malformed password hash for alice"},
      {"alice:" + hash.substr(0, hash.rfind('$') + 1) + "\n", "users:1: malformed password hash"},
      {"alice:$y$j9T$ab!c$def\n", "users:1: malformed password hash"},
      {"al ice:" + hash + "\n", "users:1: user name contains"},
      {"a:" + hash + "\nb:" + hash + "\na:" + hash + "\n", "users:3: duplicate user a"},
  };
  for (auto& k : cases) {
    std::string error;
    auto creds = credentials::parse(k.text, "users", error);
    cr_assert(!creds.has_value(), "accepted: %s", k.text.c_str());
    cr_assert(error.starts_with(k.expect), "got \"%s\", want \"%s\"", error.c_str(), k.expect);
  }
}

Test(auth_credentials, load_from_file_and_missing_file) {
  char path[] = "/tmp/sluice-auth-test-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  std::string content = "u:" + hash_password("p") + "\n";
  cr_assert_eq(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  close(fd);
  std::string error;
  auto creds = credentials::load(path, error);
  unlink(path);
  cr_assert(creds.has_value(), "%s", error.c_str());
  cr_assert(creds->verify("u", "p"));
  auto missing = credentials::load("/nonexistent/users", error);
  cr_assert(!missing.has_value());
  cr_assert(error.find("/nonexistent/users") != std::string::npos);
}

Test(auth_credentials, empty_file_knows_nobody) {
  std::string error;
  auto creds = credentials::parse("# nobody yet\n", "f", error);
  cr_assert(creds.has_value());
  cr_assert_eq(creds->size(), 0u);
  cr_assert(!creds->verify("root", "root"));
}

Test(auth_credentials, constant_time_compare) {
  cr_assert(equal_constant_time("abc", "abc"));
  cr_assert(!equal_constant_time("abc", "abd"));
  cr_assert(!equal_constant_time("abc", "abcd"));
  cr_assert(equal_constant_time("", ""));
}

namespace {

// Runs hash_password_command() with `input` as stdin and returns what it printed.
std::string run_command(const std::string& input, int& status) {
  char in_path[] = "/tmp/sluice-auth-in-XXXXXX", out_path[] = "/tmp/sluice-auth-out-XXXXXX";
  int in = mkstemp(in_path), out = mkstemp(out_path);
  cr_assert(in >= 0 && out >= 0);
  cr_assert_eq(write(in, input.data(), input.size()), static_cast<ssize_t>(input.size()));
  lseek(in, 0, SEEK_SET);
  dup2(in, STDIN_FILENO);
  dup2(out, STDOUT_FILENO);
  int null = open("/dev/null", O_WRONLY);  // keep the command's complaints out of the test log
  dup2(null, STDERR_FILENO);
  status = sluice::auth::hash_password_command();
  std::fflush(stdout);
  std::ifstream f(out_path);
  std::stringstream ss;
  ss << f.rdbuf();
  unlink(in_path);
  unlink(out_path);
  return ss.str();
}

}  // namespace

Test(auth_credentials, hash_password_command_reads_stdin) {
  int status = -1;
  std::string printed = run_command("s3cret\n", status);
  cr_assert_eq(status, 0);
  cr_assert(printed.starts_with("$y$") && printed.ends_with("\n"), "%s", printed.c_str());
  printed.pop_back();
  std::string error;
  auto creds = credentials::parse("me:" + printed, "f", error);
  cr_assert(creds.has_value(), "%s", error.c_str());
  cr_assert(creds->verify("me", "s3cret"));
}

Test(auth_credentials, hash_password_command_refuses_empty_input) {
  int status = -1;
  std::string printed = run_command("", status);
  cr_assert_eq(status, 1);
  cr_assert(printed.empty());
}
