// data_segments.h: the DATA transmission of a chunked body as pointers into the chunks, for zero-copy sending.
// Untrusted input: the body bytes (a remote sender's message, as stored); they are pointed at, never parsed beyond line ends.
#pragma once
#include <cstddef>
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

}  // namespace sluice::smtp
