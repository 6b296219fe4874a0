// text.cc: cleaning, wrapping, dates and the CRLF copy of the original for DSN composition.
// Untrusted input: remote replies, addresses, ENVID/ORCPT and the original message's content.
#include "dsn/text.h"

#include <fmt/format.h>

#include <ctime>

#include "smtp/address.h"
#include "smtp/params.h"

namespace sluice::dsn::text {

namespace {

// Length of the UTF-8 sequence starting at s[i] if it is well-formed, else 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const size_t n = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  return smtp::valid_utf8(s.substr(i, n)) ? n : 0;
}

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

// C1 controls (U+0080..U+009F) are C2 80..C2 9F in UTF-8: terminals and some parsers act on them.
bool is_c1(std::string_view s, size_t i) {
  return static_cast<unsigned char>(s[i]) == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0;
}

// Reads the chunks as lines, whatever their line ends and wherever the chunks split them.
class line_reader {
 public:
  explicit line_reader(std::span<const std::string_view> chunks) : chunks_(chunks) {}

  // The next line without its line end (at most max_line + 1 bytes of it kept, so a caller can tell a
  // long line); false at the end. `length` is the whole line's length.
  bool next(std::string& line, size_t& length) {
    line.clear();
    length = 0;
    bool any = false;
    while (ci_ < chunks_.size()) {
      const std::string_view c = chunks_[ci_];
      if (pos_ >= c.size()) {
        ++ci_;
        pos_ = 0;
        continue;
      }
      any = true;
      const char ch = c[pos_++];
      ++consumed_;
      if (ch == '\n') return true;
      if (ch == '\r') {
        if (peek() == '\n') {
          ++pos_;
          ++consumed_;
        }
        return true;
      }
      if (line.size() <= max_line) line.push_back(ch);
      ++length;
    }
    return any;
  }

  uint64_t consumed() const { return consumed_; }

 private:
  // The byte after the current one, across chunk boundaries; 0 at the end.
  char peek() {
    while (ci_ < chunks_.size() && pos_ >= chunks_[ci_].size()) {
      ++ci_;
      pos_ = 0;
    }
    return ci_ < chunks_.size() ? chunks_[ci_][pos_] : 0;
  }

  std::span<const std::string_view> chunks_;
  size_t ci_ = 0, pos_ = 0;
  uint64_t consumed_ = 0;
};

}  // namespace

bool is_ascii(std::string_view s) noexcept {
  for (const char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

std::string clean(std::string_view in, bool utf8) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      out.push_back(is_control(c) ? ' ' : static_cast<char>(c));
      ++i;
      continue;
    }
    const size_t n = utf8_sequence(in, i);
    if (n == 0) {
      out.push_back('?');
      ++i;
    } else if (!utf8) {
      out.push_back('?');
      i += n;
    } else if (n == 2 && is_c1(in, i)) {
      out.push_back(' ');
      i += n;
    } else {
      out.append(in.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string one_line(std::string_view in, bool utf8) {
  const std::string cleaned = clean(in, utf8);
  std::string out;
  out.reserve(cleaned.size());
  for (const char c : cleaned) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(c);
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string xtext_if_needed(std::string_view in, bool utf8) {
  for (size_t i = 0; i < in.size();) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c > 0x20 && c < 0x7f) {
      ++i;
      continue;
    }
    const size_t n = c >= 0x80 && utf8 ? utf8_sequence(in, i) : 0;
    if (n == 0 || (n == 2 && is_c1(in, i))) return smtp::xtext_encode(in);
    i += n;
  }
  return std::string(in);
}

void cut(std::string& s, size_t max) {
  if (s.size() <= max) return;
  size_t end = max >= 3 ? max - 3 : 0;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;  // not inside a character
  s.resize(end);
  s += "...";
}

void append_wrapped(std::string& out, std::string_view first, std::string_view value, std::string_view next,
                    size_t width) {
  // Pieces of an unbreakable word: short enough that any prefix we use still leaves the line legal.
  constexpr size_t max_piece = 900;
  out += first;
  size_t line = first.size();
  bool line_has_word = false;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t space = value.find(' ', pos);
    if (space == std::string_view::npos) space = value.size();
    std::string_view word = value.substr(pos, space - pos);
    const bool first_word = pos == 0;
    pos = space + 1;
    if (!first_word) {
      // Break here only before a real word, so no line is left holding nothing but blanks (unless a run
      // of blanks alone would outgrow the line).
      const bool wide = line_has_word && !word.empty() && line + 1 + word.size() > width;
      if (wide || line >= max_piece) {
        out += "\r\n";
        out += next;
        line = next.size();
      } else {
        out += ' ';
        ++line;
      }
    }
    while (word.size() > max_piece) {
      out += word.substr(0, max_piece);
      out += "\r\n";
      out += next;
      line = next.size();
      word.remove_prefix(max_piece);
    }
    out += word;
    line += word.size();
    line_has_word = line_has_word || !word.empty();
  }
  out += "\r\n";
}

std::string utc_date(int64_t unix_ms) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000 - (unix_ms % 1000 < 0 ? 1 : 0));
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

original_copy header_section(std::span<const std::string_view> chunks, uint64_t limit) {
  original_copy r;
  line_reader lines(chunks);
  std::string line;
  size_t length = 0;
  while (lines.next(line, length)) {
    if (length == 0) break;  // the blank line ending the header section
    if (lines.consumed() > limit) {
      r.complete = false;
      break;
    }
    if (line.size() > max_line) line.resize(max_line);
    for (char& c : line)
      if (c == '\0') c = ' ';
    r.text += line;
    r.text += "\r\n";
  }
  return r;
}

original_copy whole_content(std::span<const std::string_view> chunks) {
  original_copy r;
  line_reader lines(chunks);
  std::string line;
  size_t length = 0;
  while (lines.next(line, length)) {
    if (length > max_line || line.find('\0') != std::string::npos) {
      r.complete = false;
      break;
    }
    r.text += line;
    r.text += "\r\n";
  }
  return r;
}

}  // namespace sluice::dsn::text
