// text.h: the text hygiene of DSN composition: untrusted text made safe for one header line, wrapping and
// folding within SMTP's line limit, UTC dates, and the original's content copied back with CRLF line ends.
// Untrusted input: remote replies, addresses, ENVID/ORCPT and the original message's content.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sluice::dsn::text {

// Longest line we ever write, CRLF excluded (RFC 5322 2.1.1 allows 998).
constexpr size_t max_line = 998;

bool is_ascii(std::string_view s) noexcept;

// Every byte kept in place except those that could break a line or a field: controls (C0, DEL and, in
// UTF-8, C1) become spaces, so CR LF can never start a new field; non-ASCII is kept only when `utf8`
// allows it and it is well-formed UTF-8, otherwise each bad sequence becomes one '?'.
std::string clean(std::string_view in, bool utf8);

// clean(), then runs of blanks collapsed to one space and the ends trimmed: for free text (replies).
std::string one_line(std::string_view in, bool utf8);

// The text as is when every byte is printable (and, with `utf8`, well-formed UTF-8), otherwise its
// xtext form (RFC 3461 4): for ENVID and ORCPT, which may decode to anything, so the report carries them
// recoverably instead of cleaning them beyond recognition.
std::string xtext_if_needed(std::string_view in, bool utf8);

// Cuts `s` to at most `max` bytes on a UTF-8 character boundary, marking the cut with "...".
void cut(std::string& s, size_t max);

// Appends `first` + `value` as lines no wider than `width` where a space allows a break, each break
// replacing one space of `value` by CRLF + `next`; a word too long for an SMTP line is cut into pieces.
// `value` must hold no CR or LF (pass it through clean() first). With next = " " this is RFC 5322
// folding: unfolding gives back `value` exactly, cuts aside.
void append_wrapped(std::string& out, std::string_view first, std::string_view value, std::string_view next,
                    size_t width = 78);

// "Name: value" folded, plus CRLF.
inline void append_field(std::string& out, std::string_view name, std::string_view value) {
  std::string first(name);
  first += ": ";
  append_wrapped(out, first, value, " ");
}

// RFC 5322 date-time in UTC, "Tue, 01 Dec 2026 13:56:39 +0000".
std::string utc_date(int64_t unix_ms);

// A copy of (part of) the original, line ends made CRLF (bare LF and bare CR included) and every line,
// the last too, ending in CRLF.
struct original_copy {
  std::string text;
  bool complete = true;  // header_section: not cut at the limit; whole_content: SMTP can carry every line
};

// The header section: every line up to the blank line (left out), or everything when there is none.
// At most `limit` input octets are read; a longer section is cut after its last whole line within them.
// A line longer than max_line is cut to it and NUL becomes a space, so the copy is always sendable.
original_copy header_section(std::span<const std::string_view> chunks, uint64_t limit);

// The whole content; complete = false (and text partial) when a line is longer than max_line or holds
// NUL, which 8BITMIME cannot carry.
original_copy whole_content(std::span<const std::string_view> chunks);

}  // namespace sluice::dsn::text
