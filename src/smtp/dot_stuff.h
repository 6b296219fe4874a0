// dot_stuff.h: RFC 5321 4.5.2 transparency for sending a message with DATA.
#pragma once
#include <string>
#include <string_view>

namespace sluice::smtp {

// Appends to `out` the DATA payload for `body`: line ends normalised to CRLF (a bare
// LF or bare CR becomes CRLF, so a peer can never see an ambiguous end of data), a
// '.' doubled at the start of every line, a final CRLF added if the body lacks one,
// and the terminating ".\r\n". An empty body yields just ".\r\n".
// A NUL is left out: DATA is text (RFC 5321 4.5.2), and a next hop that reads C strings
// would take "\0." or ".\0" at a line start for the end of data (SMTP smuggling). Only
// BINARYMIME content holds NUL legitimately, and it is never sent with DATA. The line
// goes on across the NUL, so a dot behind it at a line start is doubled.
void dot_stuff(std::string_view body, std::string& out);

}  // namespace sluice::smtp
