// record.cc: formatting and parsing of the sent/received log lines.
// Untrusted input: log lines read back from files.
#include "record.h"

#include <array>
#include <optional>

namespace sluice::blaster {

namespace {

std::string_view field_text(std::string_view s) { return s.empty() ? std::string_view("-") : s; }

void append_rcpts(std::string& out, const std::vector<std::string>& rcpts) {
  for (size_t i = 0; i < rcpts.size(); ++i) {
    if (i) out += ',';
    out += rcpts[i];
  }
}

// Splits off five tab-separated fields; `rest` gets what follows a sixth tab, if any.
bool split5(std::string_view line, std::array<std::string_view, 5>& f, std::optional<std::string_view>* rest = nullptr) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  for (size_t i = 0; i < 4; ++i) {
    size_t t = line.find('\t');
    if (t == std::string_view::npos) return false;
    f[i] = line.substr(0, t);
    line.remove_prefix(t + 1);
  }
  size_t t = line.find('\t');
  f[4] = line.substr(0, t);
  if (rest != nullptr && t != std::string_view::npos) *rest = line.substr(t + 1);
  return !f[0].empty();
}

std::string unfield(std::string_view s) { return s == "-" ? std::string() : std::string(s); }

std::vector<std::string> split_rcpts(std::string_view s) {
  std::vector<std::string> v;
  while (!s.empty()) {
    size_t c = s.find(',');
    if (c != 0) v.emplace_back(s.substr(0, c));
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return v;
}

}  // namespace

void append_record(std::string& out, const sent_record& r) {
  out += field_text(r.id);
  out += '\t';
  out += field_text(r.digest);
  out += '\t';
  out += field_text(r.queue_id);
  out += '\t';
  out += field_text(r.from);
  out += '\t';
  append_rcpts(out, r.rcpts);
  out += '\n';
}

void append_record(std::string& out, const received_record& r) {
  out += field_text(r.id);
  out += '\t';
  out += field_text(r.check);
  out += '\t';
  out += field_text(r.digest);
  out += '\t';
  out += field_text(r.from);
  out += '\t';
  append_rcpts(out, r.rcpts);
  if (r.dsn) {
    out += '\t';
    out += field_text(*r.dsn);
  }
  out += '\n';
}

bool parse_record(std::string_view line, sent_record& r) {
  std::array<std::string_view, 5> f;
  if (!split5(line, f)) return false;
  r.id = unfield(f[0]);
  r.digest = unfield(f[1]);
  r.queue_id = unfield(f[2]);
  r.from = unfield(f[3]);
  r.rcpts = split_rcpts(f[4]);
  return true;
}

bool parse_record(std::string_view line, received_record& r) {
  std::array<std::string_view, 5> f;
  std::optional<std::string_view> rest;
  if (!split5(line, f, &rest)) return false;
  r.dsn.reset();
  if (rest) r.dsn = unfield(rest->substr(0, rest->find('\t')));
  r.id = unfield(f[0]);
  r.check = unfield(f[1]);
  r.digest = unfield(f[2]);
  r.from = unfield(f[3]);
  r.rcpts = split_rcpts(f[4]);
  return true;
}

std::string queue_id_from_reply(std::string_view text) {
  size_t nl = text.rfind('\n');
  if (nl != std::string_view::npos) text.remove_prefix(nl + 1);
  size_t q = text.find("queued as ");
  if (q != std::string_view::npos) text.remove_prefix(q + 10);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  size_t end = text.find_first_of(" \t,;");
  std::string_view id = text.substr(0, end);
  if (id.size() >= 2 && id.front() == '<' && id.back() == '>') id = id.substr(1, id.size() - 2);
  return std::string(id);
}

}  // namespace sluice::blaster
