// header.h: RFC 5322 header blocks: field scanning, unfolding, name lookup, Received: trace fields.
// Untrusted input: header blocks from remote clients and pickup files; every scan is bounded by the given bytes.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::smtp {

// Iterates the fields of a header block (CRLF or bare LF line ends). A field is its first
// line plus every following line that starts with a blank (a fold). Nothing is copied or
// unfolded: raw_value() is the value as written, folds included, without the final line
// break. A line without a colon is a field with an empty name and the line as its value,
// so callers decide whether that is an error (pickup) or noise to skip (rules).
class header_cursor {
 public:
  explicit header_cursor(std::string_view block) : block_(block) {}
  // Advances to the next field; false at the blank line or the end of the block.
  bool next();
  std::string_view name() const { return name_; }
  std::string_view raw_value() const { return value_; }
  // Offset of the field's first byte and of the byte after its last line break.
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  // Offset of the empty line ending the header block (or block.size()); valid once next() is false.
  size_t body_offset() const { return pos_; }

 private:
  std::string_view block_;
  size_t pos_ = 0;
  size_t begin_ = 0, end_ = 0;
  std::string_view name_, value_;
};

// ASCII case-insensitive comparison, as header field names compare (RFC 5322 1.2.2).
bool header_name_equal(std::string_view a, std::string_view b);

// The value with its folds undone (RFC 5322 2.2.3: only the line breaks go) and the
// surrounding blanks trimmed.
std::string unfold(std::string_view raw_value);

// The raw value of the first field called `name`, if any.
std::optional<std::string_view> find_header(std::string_view block, std::string_view name);

// How many Received: fields the header block of `message` holds.
unsigned count_received(std::string_view message);

// The mail-loop defence (RFC 5321 6.3): true when the Received: line this hop is about to
// add would make more than `max_received` of them, so a message circling between
// misconfigured hosts is refused instead of travelling forever.
inline bool hop_limit_reached(std::string_view message, unsigned max_received) {
  return count_received(message) >= max_received;
}

// What one hop records about how it received a message. Every field may come from the
// client (helo, recipient, the certificate subject): received_header() neutralizes them.
struct received_fields {
  std::string_view from_helo;    // the client's HELO/EHLO argument; empty for a local source
  std::string_view from_address; // the client's IP address, without brackets
  std::string_view from_text;    // replaces the whole "from" clause when set ("pickup directory")
  std::string_view by_host;      // our host name
  std::string_view with;         // "ESMTPS", "pickup", ...
  std::string_view tls_summary;  // "version=... cipher=... bits=..."; empty without TLS
  std::string_view tls_peer_subject;
  bool tls_peer_verified = false;
  std::string_view id;           // the queue id
  std::string_view for_recipient;  // given only when the message has exactly one recipient
  std::string_view date;         // RFC 5322 date-time
};

// The complete Received: field, folded, ending in CRLF.
std::string received_header(const received_fields& f);

// A HELO argument reduced to what a domain or address literal may hold, so client text
// cannot inject header syntax into Received:; "unknown" when nothing is left.
std::string sanitize_helo(std::string_view helo);

}  // namespace sluice::smtp
