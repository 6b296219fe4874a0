// data_segments_test.cc: the zero-copy DATA transmission equals dot_stuff() byte for byte and copies no body byte.
// Untrusted input: none (bodies are made up by the test).
#include <criterion/criterion.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/data_segments.h"
#include "smtp/dot_stuff.h"

using namespace sluice::smtp;

namespace {

struct checked {
  std::string joined;  // the segments concatenated
  size_t total = 0;
};

// Builds the segments of `chunks` and checks that each one points into a chunk or is one
// of the few inserted byte strings (never a copy of body bytes).
checked transmit(const std::vector<std::string_view>& chunks) {
  std::vector<std::string_view> segs;
  checked c;
  c.total = data_segments(chunks, segs);
  for (std::string_view s : segs) {
    cr_assert_gt(s.size(), 0u, "no empty segments");
    bool inside = false;
    for (std::string_view ch : chunks)
      if (!ch.empty() && s.data() >= ch.data() && s.data() + s.size() <= ch.data() + ch.size()) inside = true;
    if (!inside) {
      cr_assert(s == "." || s == "\r" || s == "\n" || s == "\r\n" || s == ".\r\n",
                "segment of %zu bytes is neither in a chunk nor an inserted string", s.size());
    }
    c.joined.append(s);
  }
  cr_assert_eq(c.total, c.joined.size());
  return c;
}

std::string expected(const std::vector<std::string_view>& chunks) {
  std::string body, out;
  for (auto ch : chunks) body.append(ch);
  dot_stuff(body, out);
  return out;
}

void check(const std::vector<std::string_view>& chunks, const char* what) {
  checked c = transmit(chunks);
  std::string want = expected(chunks);
  cr_assert(c.joined == want, "%s: got %zu bytes, dot_stuff gives %zu", what, c.joined.size(), want.size());
}

}  // namespace

Test(smtp_data_segments, edge_cases_match_dot_stuff) {
  check({}, "no chunks");
  check({""}, "one empty chunk");
  check({"", "", ""}, "empty chunks");
  check({"a"}, "no final line end");
  check({".\r\n"}, "a lone dot line");
  check({"x\r", "\n.y\r\n"}, "CRLF split, dot after it");
  check({"x\r", "", "\n", ".", "y"}, "CRLF split by an empty chunk, dot alone in a chunk");
  check({"x\r", "y"}, "bare CR at a chunk end");
  check({"x\r"}, "bare CR at the very end");
  check({"x\n", ".y"}, "bare LF, dot first in the next chunk");
  check({"\n\n\r\r\r\n"}, "line ends only");
  check({".", ".", "\r\n"}, "two dots, each its own chunk");
  check({"a\r\nb\r\n", ".", "\r\n"}, "dot chunk between CRLFs");
  check({"Subject: t\r\n\r\n..hi\r\n.\r\n"}, "dots already doubled stay the body's own");
  using namespace std::literals;
  check({"a\r\n\0.\r\n.\0\r\n"sv}, "NUL before and after a line-start dot");
  check({"a\r\n\0"sv, "\0."sv, "x\0"sv}, "NULs across chunks at a line start");
  check({"x\r"sv, "\0\n\0"sv}, "NUL between CR and LF");
}

Test(smtp_data_segments, clean_body_is_its_chunks_plus_the_terminator) {
  std::string a = "Subject: x\r\n\r\nline one\r\n", b = "line two\r\n";
  std::vector<std::string_view> chunks{a, b};
  std::vector<std::string_view> segs;
  size_t n = data_segments(chunks, segs);
  cr_assert_eq(segs.size(), 3u, "nothing to insert: the chunks themselves, then the end of data");
  cr_assert(segs[0].data() == a.data() && segs[0].size() == a.size());
  cr_assert(segs[1].data() == b.data() && segs[1].size() == b.size());
  cr_assert(segs[2] == ".\r\n");
  cr_assert_eq(n, a.size() + b.size() + 3);
}

// Random bodies over the bytes that matter, cut into random chunks (empty ones too), so
// line ends and dots fall on every kind of boundary.
Test(smtp_data_segments, random_bodies_match_dot_stuff_byte_for_byte) {
  uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  const char alphabet[] = {'a', '.', '\r', '\n', 'b', '.', '\r', '\n', ' ', '\0', char(0xC3)};
  for (int round = 0; round < 20000; ++round) {
    std::string body(next() % 40, 'a');
    for (auto& ch : body) ch = alphabet[next() % sizeof alphabet];
    std::vector<std::string_view> chunks;
    size_t pos = 0;
    while (pos < body.size() || next() % 4 == 0) {
      size_t n = std::min<size_t>(body.size() - pos, next() % 6);
      chunks.push_back(std::string_view(body).substr(pos, n));
      pos += n;
      if (chunks.size() > 64) break;
    }
    if (pos < body.size()) chunks.push_back(std::string_view(body).substr(pos));
    checked c = transmit(chunks);
    std::string want = expected(chunks);
    cr_assert(c.joined == want, "round %d: %zu chunks, %zu body bytes", round, chunks.size(), body.size());
  }
}

Test(smtp_data_segments, large_chunked_body) {
  // ~2 KB chunks as the store keeps them, with a dot line straddling a boundary.
  std::string body;
  for (int i = 0; i < 200; ++i) body += i % 17 == 0 ? ".dotted line\r\n" : "an ordinary line of text here\r\n";
  std::vector<std::string_view> chunks;
  for (size_t at = 0; at < body.size(); at += 2048) chunks.push_back(std::string_view(body).substr(at, 2048));
  check(chunks, "2 KB chunks");
}
