// dot_stuff.h: RFC 5321 4.5.2 transparency for sending a message with DATA.
#pragma once
#include <string>
#include <string_view>

namespace sluice::smtp {

// Appends to `out` the DATA payload for `body`: line ends normalised to CRLF (a bare
// LF or bare CR becomes CRLF, so a peer can never see an ambiguous end of data), a
// '.' doubled at the start of every line, a final CRLF added if the body lacks one,
// and the terminating ".\r\n". An empty body yields just ".\r\n".
void dot_stuff(std::string_view body, std::string& out);

}  // namespace sluice::smtp
