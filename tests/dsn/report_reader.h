// report_reader.h: runs parse_report.py on a composed DSN and reads its JSON answer (a small JSON reader,
// enough for what Python's json module writes), so the tests assert on what a real MIME parser saw.
// Untrusted input: none (the helper's own output).
#pragma once
#include <criterion/criterion.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsn_test {

struct json {
  enum class kind { null, boolean, number, string, array, object } k = kind::null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<json> a;
  std::vector<std::pair<std::string, json>> o;

  const json& operator[](std::string_view key) const {
    for (const auto& [name, value] : o)
      if (name == key) return value;
    return none();
  }
  const json& operator[](size_t i) const { return i < a.size() ? a[i] : none(); }
  size_t size() const { return k == kind::array ? a.size() : o.size(); }
  bool has(std::string_view key) const {
    for (const auto& [name, value] : o)
      if (name == key) return true;
    return false;
  }
  static const json& none() {
    static const json n;
    return n;
  }
};

class json_reader {
 public:
  explicit json_reader(std::string_view text) : t_(text) {}
  bool read(json& out) {
    if (!value(out)) return false;
    blanks();
    return i_ == t_.size();
  }

 private:
  void blanks() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t')) ++i_;
  }
  bool literal(std::string_view w) {
    if (t_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  bool hex4(unsigned& cp) {
    if (i_ + 4 > t_.size()) return false;
    cp = static_cast<unsigned>(std::strtoul(std::string(t_.substr(i_, 4)).c_str(), nullptr, 16));
    i_ += 4;
    return true;
  }
  bool string(std::string& out) {
    if (!literal("\"")) return false;
    while (i_ < t_.size() && t_[i_] != '"') {
      if (t_[i_] != '\\') {
        out.push_back(t_[i_++]);
        continue;
      }
      if (++i_ >= t_.size()) return false;
      const char e = t_[i_++];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && literal("\\u")) {
            unsigned low = 0;
            if (!hex4(low)) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: out.push_back(e);  // \" \\ \/
      }
    }
    return literal("\"");
  }
  bool value(json& out) {
    blanks();
    if (i_ >= t_.size()) return false;
    const char c = t_[i_];
    if (c == '"') {
      out.k = json::kind::string;
      return string(out.s);
    }
    if (c == '{' || c == '[') {
      const bool object = c == '{';
      out.k = object ? json::kind::object : json::kind::array;
      ++i_;
      blanks();
      if (literal(object ? "}" : "]")) return true;
      for (;;) {
        json v;
        if (object) {
          std::string key;
          blanks();
          if (!string(key)) return false;
          blanks();
          if (!literal(":") || !value(v)) return false;
          out.o.emplace_back(std::move(key), std::move(v));
        } else {
          if (!value(v)) return false;
          out.a.push_back(std::move(v));
        }
        blanks();
        if (literal(",")) continue;
        return literal(object ? "}" : "]");
      }
    }
    if (literal("true") || literal("false")) {
      out.k = json::kind::boolean;
      out.b = t_[i_ - 1] == 'e' && t_[i_ - 2] == 'u';
      return true;
    }
    if (literal("null")) return true;
    char* end = nullptr;
    const std::string rest(t_.substr(i_, 32));
    out.n = std::strtod(rest.c_str(), &end);
    if (end == rest.c_str()) return false;
    out.k = json::kind::number;
    i_ += static_cast<size_t>(end - rest.c_str());
    return true;
  }

  std::string_view t_;
  size_t i_ = 0;
};

// Writes `content` to a temporary file, runs the Python helper on it and returns its parsed answer;
// the calling test fails if the helper fails or its output is not JSON.
inline json parse_report(const std::string& content) {
  char path[] = "/tmp/sluice-dsn-XXXXXX";
  const int fd = mkstemp(path);
  cr_assert_geq(fd, 0, "mkstemp");
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    cr_assert_gt(n, 0, "write report");
    done += static_cast<size_t>(n);
  }
  close(fd);
  const std::string cmd = std::string("python3 ") + SLUICE_SOURCE_ROOT + "/tests/dsn/parse_report.py " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  cr_assert_not_null(p, "popen python3");
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  unlink(path);
  cr_assert_eq(status, 0, "parse_report.py failed: %s", out.c_str());
  json j;
  cr_assert(json_reader(out).read(j), "not JSON: %s", out.c_str());
  return j;
}

// The first value of field `name` (lower case) in a block of fields, "" if absent.
inline std::string field(const json& block, std::string_view name) {
  return block[name][0].s;
}
inline size_t count(const json& block, std::string_view name) {
  return block[name].size();
}

}  // namespace dsn_test
