// maildir_fuzz.cc: libFuzzer driver for the Maildir path mapping (delivery::maildir_for) of recipient addresses.
// Untrusted input: the payload is an envelope recipient address (any bytes) and, optionally, a maildir_path
// template of the kind the config loader accepts.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/maildir.h"
#include "fuzz_util.h"

using sluice::fuzz::input_stream;
using namespace sluice::delivery;

namespace {

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == path.npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// What the config loader requires of a template (config/load_routing.cc maildir_template_problem):
// "{root}/" first and {root} nowhere else, only the three placeholders, {local} among them, no control
// characters, no "." or ".." components. Templates that fail are not given to maildir_for.
bool loader_accepts(std::string_view t) {
  if (t.substr(0, 7) != "{root}/") return false;
  bool has_local = false;
  for (size_t i = 0; i < t.size(); ++i) {
    auto ch = static_cast<unsigned char>(t[i]);
    if (ch < 0x20 || ch == 0x7f || ch == '}') return false;
    if (ch != '{') continue;
    size_t close = t.find('}', i);
    if (close == t.npos) return false;
    std::string_view name = t.substr(i + 1, close - i - 1);
    if (name == "root" && i != 0) return false;
    if (name == "local") has_local = true;
    else if (name != "root" && name != "domain") return false;
    i = close;
  }
  if (!has_local) return false;
  for (auto part : components(t))
    if (part == "." || part == "..") return false;
  return true;
}

// Reverses the escaping maildir.h promises; false if the component is not a valid escape.
bool unescape(std::string_view c, std::string& out) {
  out.clear();
  if (c == "%") return true;  // the empty string
  for (size_t i = 0; i < c.size(); ++i) {
    if (c[i] != '%') {
      out += c[i];
      continue;
    }
    auto hex = [](char h) { return h >= '0' && h <= '9' ? h - '0' : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1; };
    if (i + 2 >= c.size()) return false;
    int hi = hex(c[i + 1]), lo = hex(c[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi << 4 | lo);
    i += 2;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

// Input: byte 0 (bit 0-1 the root, bit 2 a template from the payload: its first line), then the recipient
// address, split at its last '@' as deliver_to_maildirs does.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_stream in(data, size);
  const uint8_t flags = in.byte();
  std::string_view rest = in.rest();
  static const char* const roots[] = {"/var/mail/vhosts", "/srv/mail", "/m", "/var/mail/a.b"};
  maildir_target t;
  t.root = roots[flags & 3];
  t.path_template = "{root}/{domain}/{local}/Maildir";
  const bool fixed = !(flags & 4);
  if (!fixed) {
    size_t nl = rest.find('\n');
    if (nl == rest.npos) return 0;
    t.path_template = std::string(rest.substr(0, nl));
    rest.remove_prefix(nl + 1);
    if (!loader_accepts(t.path_template)) return 0;
  }
  const std::string_view address = rest;
  const size_t at = address.rfind('@');
  const std::string_view local = at == address.npos ? address : address.substr(0, at);
  const std::string_view domain = at == address.npos ? std::string_view() : address.substr(at + 1);

  const std::string path = maildir_for(t, local, domain);

  // Always under the root, and the address adds no directory level and no way up.
  FUZZ_CHECK(path.compare(0, t.root.size() + 1, t.root + "/") == 0);
  for (char c : path) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
  std::string expanded;  // the template with only {root} filled in: the directories it names
  for (std::string_view rest_t = t.path_template; !rest_t.empty();) {
    if (rest_t.substr(0, 6) == "{root}") {
      expanded += t.root;
      rest_t.remove_prefix(6);
    } else {
      expanded += rest_t.front();
      rest_t.remove_prefix(1);
    }
  }
  const auto parts = components(path);
  FUZZ_CHECK(parts.size() == components(expanded).size());
  for (auto p : parts) FUZZ_CHECK(p != "." && p != "..");

  if (fixed) {
    // "{root}/{domain}/{local}/Maildir": each escaped part decodes back to what it came from, so
    // distinct recipients never share a Maildir.
    const size_t root_parts = components(t.root).size();
    FUZZ_CHECK(parts.size() == root_parts + 3 && parts.back() == "Maildir");
    std::string d, l;
    FUZZ_CHECK(unescape(parts[root_parts], d) && unescape(parts[root_parts + 1], l));
    FUZZ_CHECK(d == lower(domain));
    FUZZ_CHECK(l == local);
    FUZZ_CHECK(parts[root_parts].front() != '.' && parts[root_parts + 1].front() != '.');
  }
  return 0;
}
