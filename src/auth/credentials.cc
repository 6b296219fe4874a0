// credentials.cc: loading the AUTH user file and verifying passwords with libxcrypt.
// Untrusted input: user names and passwords from remote clients (verify()).
#include "auth/credentials.h"

#include <crypt.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

namespace sluice::auth {
namespace {

// crypt_data is ~32 KB: too big for a worker's stack, so each computation gets one on
// the heap (zeroed, as libxcrypt requires before first use).
std::string crypt_string(std::string_view password, const std::string& setting) {
  if (password.find('\0') != std::string_view::npos) return {};
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  std::string phrase(password);
  const char* out = crypt_rn(phrase.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
  std::string result = out ? out : "";
  explicit_bzero(data.get(), sizeof(crypt_data));
  explicit_bzero(phrase.data(), phrase.size());
  return result;
}

bool accepted_method(std::string_view hash) {
  return hash.starts_with("$y$") || hash.starts_with("$6$");
}

// The shape of a complete hash, not just a setting: "$y$params$salt$hash" or
// "$6$[rounds=N$]salt$hash", in crypt's alphabet. crypt_checksalt() alone accepts a
// bare "$y$", which would turn a truncated line into an account nobody can use.
bool well_formed(std::string_view hash) {
  size_t dollars = 0;
  for (char c : hash) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '/' || c == '$' || c == '=';
    if (!ok) return false;
    if (c == '$') ++dollars;
  }
  size_t needed = hash.starts_with("$y$") ? 4 : 3;
  return dollars >= needed && hash.back() != '$' && crypt_checksalt(std::string(hash).c_str()) == CRYPT_SALT_OK;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

}  // namespace

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  // volatile keeps the compiler from stopping at the first difference.
  for (size_t i = 0; i < a.size(); ++i) diff = static_cast<unsigned char>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

std::optional<credentials> credentials::parse(std::string_view text, std::string_view origin, std::string& error) {
  credentials creds;
  size_t line_no = 0;
  auto fail = [&](const std::string& why) {
    error = std::string(origin) + ":" + std::to_string(line_no) + ": " + why;
    return std::nullopt;
  };
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string line = trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line[0] == '#') continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) return fail("expected user:hash");
    std::string user = trim(std::string_view(line).substr(0, colon));
    std::string hash = trim(std::string_view(line).substr(colon + 1));
    if (user.empty()) return fail("empty user name");
    for (unsigned char c : user)
      if (c <= ' ' || c == 0x7f) return fail("user name contains a space or control character");
    if (hash.empty()) return fail("empty password hash for " + user);
    if (!accepted_method(hash))
      return fail("hash for " + user + " is not yescrypt ($y$) or SHA-512 crypt ($6$)");
    if (!well_formed(hash)) return fail("malformed password hash for " + user);
    if (!creds.users_.emplace(user, hash).second) return fail("duplicate user " + user);
  }
  // The dummy uses the parameters of a real entry so that an unknown user costs what a
  // known one does.
  std::string setting;
  if (!creds.users_.empty()) {
    setting = creds.users_.begin()->second;
  } else {
    char buf[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$y$", 0, nullptr, 0, buf, sizeof buf)) setting = buf;
  }
  if (!setting.empty()) creds.dummy_ = crypt_string("sluice-no-such-user", setting);
  return creds;
}

std::optional<credentials> credentials::load(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path, error);
}

bool credentials::verify(std::string_view user, std::string_view password) const {
  auto it = users_.find(std::string(user));
  if (it == users_.end()) {
    if (!dummy_.empty()) (void)crypt_string(password, dummy_);
    return false;
  }
  std::string computed = crypt_string(password, it->second);
  return !computed.empty() && equal_constant_time(computed, it->second);
}

std::string hash_password(std::string_view password) {
  if (password.find('\0') != std::string_view::npos) return {};
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  // A null random source asks libxcrypt for OS randomness; count 0 takes its default cost.
  if (!crypt_gensalt_rn("$y$", 0, nullptr, 0, setting, sizeof setting)) return {};
  return crypt_string(password, setting);
}

namespace {

bool read_secret_line(const char* prompt, bool tty, std::string& out) {
  termios saved{};
  if (tty) {
    std::fputs(prompt, stderr);
    std::fflush(stderr);
    tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  bool ok = static_cast<bool>(std::getline(std::cin, out));
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::fputs("\n", stderr);
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return ok || !out.empty();
}

}  // namespace

int hash_password_command() {
  bool tty = isatty(STDIN_FILENO) == 1;
  std::string first, second;
  if (!read_secret_line("Password: ", tty, first)) {
    std::fputs("no password given\n", stderr);
    return 1;
  }
  if (tty) {
    read_secret_line("Retype password: ", tty, second);
    bool same = first == second;
    explicit_bzero(second.data(), second.size());
    if (!same) {
      explicit_bzero(first.data(), first.size());
      std::fputs("passwords do not match\n", stderr);
      return 1;
    }
  }
  if (first.empty()) {
    std::fputs("empty password refused\n", stderr);
    return 1;
  }
  std::string hash = hash_password(first);
  explicit_bzero(first.data(), first.size());
  if (hash.empty()) {
    std::fputs("hashing failed\n", stderr);
    return 1;
  }
  std::printf("%s\n", hash.c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace sluice::auth
