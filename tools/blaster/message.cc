// message.cc: message generation for blaster send and the digest check of blaster sink.
// Untrusted input: check_message() parses headers of content received from the network.
#include "message.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>

#include "digest.h"

namespace sluice::blaster {

namespace {

constexpr size_t line_len = 80;  // 78 characters + CRLF
constexpr size_t pool_lines = 1024;

// Filler lines shared by all loops: built once, read-only afterwards.
const std::string& filler_pool() {
  static const std::string pool = [] {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ";
    std::string p;
    p.reserve(pool_lines * line_len);
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t l = 0; l < pool_lines; ++l) {
      for (size_t i = 0; i < line_len - 2; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        char c = alphabet[x % (sizeof(alphabet) - 1)];
        if (i == 0 && c == ' ') c = 'x';
        p += c;
      }
      p += "\r\n";
    }
    return p;
  }();
  return pool;
}

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string expand(std::string_view pattern, uint64_t n, unsigned r, std::string_view domain) {
  std::string out;
  out.reserve(pattern.size() + 16);
  size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] == '{') {
      size_t close = pattern.find('}', i);
      if (close != std::string_view::npos) {
        std::string_view key = pattern.substr(i + 1, close - i - 1);
        if (key == "n") {
          out += std::to_string(n);
          i = close + 1;
          continue;
        }
        if (key == "r") {
          out += std::to_string(r);
          i = close + 1;
          continue;
        }
        if (key == "domain") {
          out += domain;
          i = close + 1;
          continue;
        }
      }
    }
    out += pattern[i++];
  }
  return out;
}

message_factory::message_factory(const message_spec& spec, uint64_t seed) : spec_(spec), rng_(seed) {
  for (const auto& d : spec_.domains) weight_total_ += d.weight;
  char buf[64];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  date_ = buf;
  filler_pool();
}

const std::string& message_factory::pick_domain() {
  static const std::string fallback = "example.test";
  if (weight_total_ == 0) return fallback;
  unsigned x = unsigned(rng_() % weight_total_);
  for (const auto& d : spec_.domains) {
    if (x < d.weight) return d.name;
    x -= d.weight;
  }
  return spec_.domains.back().name;
}

void message_factory::make(uint64_t n, generated_message& m) {
  m.id = spec_.run_id;
  m.id += '-';
  m.id += std::to_string(n);
  m.from = expand(spec_.from_pattern, n, 0, pick_domain());
  m.rcpts.resize(spec_.rcpts);
  for (unsigned r = 0; r < spec_.rcpts; ++r) m.rcpts[r] = expand(spec_.to_pattern, n, r, pick_domain());

  size_t size = spec_.size_min;
  if (spec_.size_max > spec_.size_min) size += size_t(rng_() % (spec_.size_max - spec_.size_min + 1));

  // Headers with a placeholder digest, then the body, then the digest patched in:
  // one buffer per session, reused, and no copy of the body.
  std::string& c = m.content;
  c.clear();
  c += "From: <";
  c += m.from;
  c += ">\r\nTo: <";
  c += m.rcpts.empty() ? std::string() : m.rcpts[0];
  c += ">\r\nSubject: blaster ";
  c += m.id;
  c += "\r\nDate: ";
  c += date_;
  c += "\r\nMessage-ID: <";
  c += m.id;
  c += "@blaster.invalid>\r\nX-Blaster-Id: ";
  c += m.id;
  c += "\r\nX-Blaster-Digest: ";
  size_t digest_at = c.size();
  c += "0000000000000000\r\n\r\n";
  size_t body_at = c.size();
  c += "blaster body ";
  c += m.id;
  c += "\r\n";
  size_t want = size > c.size() ? size - c.size() : 0;
  const std::string& pool = filler_pool();
  size_t line = size_t(n * 7919) % pool_lines;
  while (want >= line_len) {
    size_t lines = std::min(want / line_len, pool_lines - line);
    c.append(pool, line * line_len, lines * line_len);
    want -= lines * line_len;
    line = (line + lines) % pool_lines;
  }
  if (want >= 3) {
    c.append(pool, line * line_len, want - 2);
    c += "\r\n";
  }
  m.digest = digest64(std::string_view(c).substr(body_at));
  std::string hex = digest_hex(m.digest);
  std::memcpy(c.data() + digest_at, hex.data(), 16);
}

message_check check_message(std::string_view content) {
  message_check r;
  size_t pos = 0;
  size_t body = std::string_view::npos;
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) break;
    std::string_view line = content.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.empty()) {
      body = pos;
      break;
    }
    if (iequals_prefix(line, "x-blaster-id:")) r.id = trim(line.substr(13));
    else if (iequals_prefix(line, "x-blaster-digest:")) r.claimed = trim(line.substr(17));
  }
  if (body == std::string_view::npos) body = content.size();
  r.actual = digest_hex(digest64(content.substr(body)));
  return r;
}

}  // namespace sluice::blaster
