// exposition.cc: the Prometheus text format 0.0.4 and the JSON variant, and the text reader sluicectl uses.
// Untrusted input: label values from remote parties (escaped, invalid UTF-8 replaced); scraped text (parsed
// defensively: any bytes, bounded by the caller's read).
#include "metrics/exposition.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace sluice::metrics {

namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence at s[i], or 0 (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF).
size_t utf8_length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else return 0;
  if (i + n > s.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  return n;
}

// Walks `v` as UTF-8, handing each ASCII byte to `ascii` and copying valid multi-byte
// sequences (invalid bytes become U+FFFD).
template <class Ascii>
std::string escape_utf8(std::string_view v, Ascii ascii) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size();) {
    const size_t n = utf8_length(v, i);
    if (n == 0) {
      out += replacement;
      ++i;
    } else if (n == 1) {
      ascii(out, v[i++]);
    } else {
      out.append(v.substr(i, n));
      i += n;
    }
  }
  return out;
}

void append_labels(std::string& out, const std::vector<std::pair<std::string, std::string>>& labels,
                   std::string_view le = {}) {
  if (labels.empty() && le.empty()) return;
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out.push_back(',');
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out.push_back('"');
  }
  if (!le.empty()) {
    if (!first) out.push_back(',');
    out += "le=\"";
    out += le;
    out.push_back('"');
  }
  out.push_back('}');
}

void append_json_labels(std::string& out, const std::vector<std::pair<std::string, std::string>>& labels) {
  out += "{\"labels\":{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out.push_back(',');
    out += json_string(labels[i].first);
    out.push_back(':');
    out += json_string(labels[i].second);
  }
  out += "},";
}

std::string json_number(double v) { return std::isfinite(v) ? format_value(v) : "null"; }

}  // namespace

std::string escape_label_value(std::string_view v) {
  return escape_utf8(v, [](std::string& out, char c) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  });
}

std::string escape_help(std::string_view v) {
  return escape_utf8(v, [](std::string& out, char c) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  });
}

std::string json_string(std::string_view v) {
  std::string body = escape_utf8(v, [](std::string& out, char c) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else out.push_back(c);
  });
  return "\"" + body + "\"";
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Counts are integers: print them so, exactly, below 2^53.
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    return buf;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back exactly
  return std::string(buf, r.ptr);
}

std::string render_text(const std::vector<family_snapshot>& families) {
  std::string out;
  for (const auto& f : families) {
    out += "# HELP " + f.name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + f.name + " " + std::string(type_name(f.type)) + "\n";
    for (const auto& s : f.samples) {
      if (f.type != metric_type::histogram) {
        out += f.name;
        append_labels(out, s.labels);
        out += " " + format_value(s.value) + "\n";
        continue;
      }
      for (const auto& [bound, n] : s.buckets) {
        out += f.name + "_bucket";
        append_labels(out, s.labels, format_value(bound));
        out += " " + std::to_string(n) + "\n";
      }
      out += f.name + "_bucket";
      append_labels(out, s.labels, "+Inf");
      out += " " + std::to_string(s.count) + "\n";
      out += f.name + "_sum";
      append_labels(out, s.labels);
      out += " " + format_value(s.sum) + "\n";
      out += f.name + "_count";
      append_labels(out, s.labels);
      out += " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

std::string render_json(const std::vector<family_snapshot>& families) {
  std::string out = "{";
  for (size_t i = 0; i < families.size(); ++i) {
    const auto& f = families[i];
    if (i) out.push_back(',');
    out += json_string(f.name) + ":{\"type\":\"" + std::string(type_name(f.type)) + "\",\"help\":" +
           json_string(f.help) + ",\"samples\":[";
    for (size_t k = 0; k < f.samples.size(); ++k) {
      const auto& s = f.samples[k];
      if (k) out.push_back(',');
      append_json_labels(out, s.labels);
      if (f.type != metric_type::histogram) {
        out += "\"value\":" + json_number(s.value) + "}";
        continue;
      }
      out += "\"buckets\":[";
      for (const auto& [bound, n] : s.buckets) out += "{\"le\":" + json_number(bound) + ",\"count\":" + std::to_string(n) + "},";
      out += "{\"le\":\"+Inf\",\"count\":" + std::to_string(s.count) + "}],\"sum\":" + json_number(s.sum) +
             ",\"count\":" + std::to_string(s.count) + "}";
    }
    out += "]}";
  }
  out += "}";
  return out;
}

std::string_view parsed_sample::label(std::string_view key) const {
  for (const auto& [k, v] : labels)
    if (k == key) return v;
  return {};
}

namespace {

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

// One series line; false with `why` on a malformed one.
bool parse_series(std::string_view line, parsed_sample& out, std::string& why) {
  size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  if (i == 0) return why = "no metric name", false;
  out.name = std::string(line.substr(0, i));
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      while (i < line.size() && line[i] == ' ') ++i;
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t k = i;
      while (i < line.size() && name_char(line[i], i == k)) ++i;
      if (i == k || i >= line.size() || line[i] != '=') return why = "bad label name", false;
      std::string key(line.substr(k, i - k));
      if (++i >= line.size() || line[i] != '"') return why = "label value not quoted", false;
      ++i;
      std::string value;
      for (;; ++i) {
        if (i >= line.size()) return why = "unterminated label value", false;
        if (line[i] == '"') break;
        if (line[i] == '\\') {
          if (++i >= line.size()) return why = "unterminated escape", false;
          value.push_back(line[i] == 'n' ? '\n' : line[i]);
        } else {
          value.push_back(line[i]);
        }
      }
      ++i;
      out.labels.emplace_back(std::move(key), std::move(value));
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  while (i < line.size() && line[i] == ' ') ++i;
  std::string_view rest = line.substr(i);
  if (size_t sp = rest.find(' '); sp != std::string_view::npos) rest = rest.substr(0, sp);  // a timestamp follows
  if (rest == "+Inf" || rest == "Inf") out.value = INFINITY;
  else if (rest == "-Inf") out.value = -INFINITY;
  else if (rest == "NaN") out.value = NAN;
  else {
    std::string num(rest);
    char* end = nullptr;
    out.value = std::strtod(num.c_str(), &end);
    if (num.empty() || end != num.c_str() + num.size()) return why = "bad value", false;
  }
  return true;
}

}  // namespace

parsed_text parse_text(std::string_view text) {
  parsed_text r;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (line.starts_with("# TYPE ")) {
        std::string_view t = line.substr(7);
        size_t sp = t.find(' ');
        if (sp != std::string_view::npos) r.types.emplace_back(std::string(t.substr(0, sp)), std::string(t.substr(sp + 1)));
      }
      continue;
    }
    parsed_sample s;
    std::string why;
    if (!parse_series(line, s, why)) {
      r.error = "line " + std::to_string(line_no) + ": " + why;
      return r;
    }
    r.samples.push_back(std::move(s));
  }
  return r;
}

}  // namespace sluice::metrics
