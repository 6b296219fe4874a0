// reply.cc: the wire form of SMTP replies (RFC 5321 4.2.1 multi-line, RFC 2034 enhanced codes).
#include "smtp/reply.h"

namespace sluice::smtp {

void reply::append_wire(std::string& out) const {
  std::string_view rest = text;
  // A trailing newline would otherwise become an empty last line.
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.remove_suffix(1);
  char code_text[4] = {char('0' + (code / 100) % 10), char('0' + (code / 10) % 10),
                       char('0' + code % 10), 0};
  for (;;) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool last = nl == std::string_view::npos;
    out.append(code_text, 3);
    out.push_back(last ? ' ' : '-');
    if (!enhanced.empty()) {
      out.append(enhanced);
      if (!line.empty()) out.push_back(' ');
    }
    out.append(line);
    out.append("\r\n");
    if (last) break;
    rest.remove_prefix(nl + 1);
  }
}

std::string reply::wire() const {
  std::string out;
  append_wire(out);
  return out;
}

}  // namespace sluice::smtp
