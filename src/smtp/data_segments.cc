// data_segments.cc: dot-stuffing and line-end repair by reference (DATA), BDAT chunking: segments into the body chunks plus inserted bytes.
// Untrusted input: body bytes (only CR, LF, NUL and a leading '.' are looked at).
#include "smtp/data_segments.h"

#include <algorithm>

namespace sluice::smtp {

namespace {

// The inserted bytes live in static storage so a segment may point at them for as long
// as the transmission lasts.
constexpr std::string_view dot = ".";
constexpr std::string_view cr = "\r";
constexpr std::string_view lf = "\n";
constexpr std::string_view crlf = "\r\n";
constexpr std::string_view end_of_data = ".\r\n";

class builder {
 public:
  // stuffing: DATA (dots doubled, ".\r\n" at the end); otherwise only line ends repaired.
  builder(std::vector<std::string_view>& out, bool stuffing) : out_(out), stuffing_(stuffing) {}

  void chunk(std::string_view c) {
    if (c.empty()) return;  // an empty chunk changes nothing, not even a pending CR
    size_t i = 0;
    if (pending_cr_) {
      pending_cr_ = false;
      line_start_ = true;
      if (c[0] == '\n') {
        i = 1;  // the LF completing the previous chunk's CR: sent as it is
      } else {
        emit(lf);
      }
    }
    size_t run = 0;  // start of the bytes of `c` not yet emitted
    while (i < c.size()) {
      if (stuffing_ && line_start_ && c[i] == '.') {
        emit(c.substr(run, i - run));
        emit(dot);
        run = i;  // the body's own dot follows the inserted one
      }
      const bool at_start = line_start_;
      line_start_ = false;
      size_t j = i;
      while (j < c.size() && c[j] != '\r' && c[j] != '\n' && c[j] != '\0') ++j;
      if (j == c.size()) break;
      if (c[j] == '\0') {  // left out, the line going on (see dot_stuff)
        emit(c.substr(run, j - run));
        run = j + 1;
        line_start_ = at_start && j == i;
        i = j + 1;
        continue;
      }
      if (c[j] == '\n') {  // a bare LF: its CR is missing
        emit(c.substr(run, j - run));
        emit(cr);
        run = j;
        i = j + 1;
      } else if (j + 1 == c.size()) {  // a CR at the chunk's end: the next chunk decides
        pending_cr_ = true;
        i = j + 1;
        break;
      } else if (c[j + 1] == '\n') {
        i = j + 2;
      } else {  // a bare CR: its LF is missing
        emit(c.substr(run, j + 1 - run));
        emit(lf);
        run = j + 1;
        i = j + 1;
      }
      line_start_ = true;
    }
    emit(c.substr(run));
  }

  size_t finish() {
    if (pending_cr_) {
      emit(lf);
    } else if (!line_start_) {
      emit(crlf);
    }
    if (stuffing_) emit(end_of_data);
    return total_;
  }

 private:
  void emit(std::string_view s) {
    if (s.empty()) return;
    out_.push_back(s);
    total_ += s.size();
  }

  std::vector<std::string_view>& out_;
  const bool stuffing_;
  size_t total_ = 0;
  bool line_start_ = true;
  bool pending_cr_ = false;
};

}  // namespace

size_t data_segments(std::span<const std::string_view> chunks, std::vector<std::string_view>& out) {
  builder b(out, true);
  for (std::string_view c : chunks) b.chunk(c);
  return b.finish();
}

std::span<const std::string_view> bdat_plan::chunk(size_t i) const {
  const size_t first = i == 0 ? 0 : chunk_end[i - 1];
  return std::span<const std::string_view>(segments).subspan(first, chunk_end[i] - first);
}

uint64_t bdat_plan::total() const {
  uint64_t n = 0;
  for (uint64_t s : chunk_size) n += s;
  return n;
}

void plan_bdat(std::span<const std::string_view> body, bool binary, uint64_t max_chunk, bdat_plan& out) {
  out.segments.clear();
  out.chunk_end.clear();
  out.chunk_size.clear();
  if (max_chunk == 0) max_chunk = 1;
  std::vector<std::string_view> content;
  if (binary) {
    for (std::string_view c : body)
      if (!c.empty()) content.push_back(c);
  } else {
    builder b(content, false);
    for (std::string_view c : body) b.chunk(c);
    b.finish();
  }
  // Cut the content at every max_chunk octets, splitting a segment where a cut falls in it.
  uint64_t in_chunk = 0;
  for (std::string_view s : content) {
    while (!s.empty()) {
      const size_t take = size_t(std::min<uint64_t>(s.size(), max_chunk - in_chunk));
      out.segments.push_back(s.substr(0, take));
      s.remove_prefix(take);
      in_chunk += take;
      if (in_chunk == max_chunk) {
        out.chunk_end.push_back(out.segments.size());
        out.chunk_size.push_back(in_chunk);
        in_chunk = 0;
      }
    }
  }
  // The last chunk: what is left (when the content fills its chunks exactly, the last full
  // one is the LAST), or for empty content one of 0 octets ("BDAT 0 LAST").
  if (in_chunk > 0 || out.chunk_size.empty()) {
    out.chunk_end.push_back(out.segments.size());
    out.chunk_size.push_back(in_chunk);
  }
}

}  // namespace sluice::smtp
