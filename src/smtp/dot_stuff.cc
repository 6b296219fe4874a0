// dot_stuff.cc: dot-stuffing and line-end normalisation of outgoing DATA content.
#include "smtp/dot_stuff.h"

namespace sluice::smtp {

void dot_stuff(std::string_view body, std::string& out) {
  out.reserve(out.size() + body.size() + body.size() / 64 + 5);
  bool line_start = true;
  size_t i = 0, n = body.size();
  while (i < n) {
    if (line_start && body[i] == '.') out.push_back('.');
    // Copy the run of ordinary bytes in one append.
    size_t j = i;
    while (j < n && body[j] != '\r' && body[j] != '\n' && body[j] != '\0') ++j;
    out.append(body.substr(i, j - i));
    if (j == n) {
      line_start = false;
      i = j;
      break;
    }
    if (body[j] == '\0') {
      // Left out, the line going on: a '.' behind it at a line start is still doubled.
      if (j > i) line_start = false;
      i = j + 1;
      continue;
    }
    if (body[j] == '\r' && j + 1 < n && body[j + 1] == '\n') ++j;
    out.append("\r\n");
    line_start = true;
    i = j + 1;
  }
  if (!line_start) out.append("\r\n");
  out.append(".\r\n");
}

}  // namespace sluice::smtp
