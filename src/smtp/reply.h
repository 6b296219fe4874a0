// reply.h: SMTP replies (RFC 5321 section 4.2) with RFC 3463 enhanced status codes.
#pragma once
#include <string>
#include <string_view>

namespace sluice::smtp {

struct reply {
  int code = 250;            // three-digit reply code
  std::string enhanced;      // "2.1.0", or "" where no enhanced code applies (220, 221 may omit)
  std::string text;          // may contain '\n' for a multi-line reply

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }

  // Wire form: "250-first\r\n250 2.1.0 last\r\n"; the enhanced code is repeated on
  // every line as RFC 2034 asks.
  std::string wire() const;
  void append_wire(std::string& out) const;
};

inline reply ok(std::string enhanced, std::string text) { return {250, std::move(enhanced), std::move(text)}; }

}  // namespace sluice::smtp
