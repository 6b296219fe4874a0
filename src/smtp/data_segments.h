// data_segments.h: the DATA or BDAT transmission of a chunked body as pointers into the chunks, for zero-copy sending.
// Untrusted input: the body bytes (a remote sender's message, as stored); they are pointed at, never parsed beyond line ends.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace sluice::smtp {

// Appends to `out` the segments whose concatenation is exactly what dot_stuff() makes of
// the chunks joined: a '.' before every line that starts with one, a bare LF or bare CR
// completed to CRLF, a NUL left out, a final CRLF if the body lacks one, then ".\r\n".
// Each segment points into a chunk or into a static string (the inserted bytes), so no body byte is
// copied: the segments are valid while the chunks are. A CRLF or a line split across
// chunks (empty chunks included) is seen as one. Returns the total size of the
// segments appended (the transmission's size).
size_t data_segments(std::span<const std::string_view> chunks, std::vector<std::string_view>& out);

// The content of a BDAT transmission (RFC 3030), cut into BDAT chunks. The length of a
// chunk delimits it, so nothing is dot-stuffed and nothing terminates it. BINARYMIME content
// is the stored bytes as they are. Other content (7BIT, 8BITMIME) is repaired as for DATA:
// a bare LF or CR completed to CRLF, a NUL left out, a final CRLF added if missing, so a
// next hop that relays it onward with DATA can never find a different end of data in it.
// Segments point into the body chunks or static storage, as data_segments' do.
struct bdat_plan {
  std::vector<std::string_view> segments;
  // BDAT chunk i is segments [i == 0 ? 0 : chunk_end[i - 1], chunk_end[i]), of
  // chunk_size[i] octets. An empty body is one chunk of 0 octets ("BDAT 0 LAST").
  std::vector<size_t> chunk_end;
  std::vector<uint64_t> chunk_size;

  size_t chunks() const { return chunk_size.size(); }
  std::span<const std::string_view> chunk(size_t i) const;
  uint64_t total() const;
};
// Fills `out` (cleared first) for `body`; every chunk but the last holds exactly
// `max_chunk` octets (at least 1).
void plan_bdat(std::span<const std::string_view> body, bool binary, uint64_t max_chunk, bdat_plan& out);

}  // namespace sluice::smtp
