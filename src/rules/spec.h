// spec.h: what one transport rule says, as loaded from [[transport_rule]] (plain data).
// Untrusted input: none; the config loader fills these from the admin's file after
// validating every field (patterns, addresses, connector names, no CR/LF in values).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::rules {

// A header condition. The value compared is the field's unfolded value (line breaks of
// folded lines removed, leading and trailing blanks trimmed), case-insensitively; the
// condition holds if any occurrence of the field matches.
//   glob:     anchored at both ends; '*' any run, '?' one character (a whole UTF-8
//             sequence), '\' makes the next byte literal. Case folding is ASCII only, and
//             RFC 2047 encoded words (=?utf-8?...?=) are matched as written, not decoded.
//   contains: a plain substring.
// Not regular expressions: std::regex backtracks exponentially on patterns like (a+)+b and
// allocates on every match; a glob is matched in O(value × pattern) time and no memory,
// which a transport rule run on every message can afford.
struct header_condition {
  enum class kind : uint8_t { glob, contains };
  std::string name;  // field name, matched case-insensitively
  kind how = kind::glob;
  std::string pattern;
};

struct header_field {
  std::string name;
  std::string value;  // no CR or LF (refused at load: header injection)
};

struct rejection_spec {
  std::string status;  // enhanced status code "5.7.1" or "4.x.x"
  std::string text;    // the DSN / reply text
};

struct rule_spec {
  std::string name;
  bool enabled = true;

  // Conditions: every one given must hold; each list holds if any entry matches.
  // Address patterns: "user@example.org" (exact), "*@example.org", "*@*.example.org".
  // Domain patterns: "example.org" (exact), "*.example.org" (subdomains only).
  // All comparisons ignore ASCII case.
  std::vector<std::string> sender;
  std::vector<std::string> sender_domain;
  std::vector<std::string> recipient;         // a recipient matches if it satisfies both
  std::vector<std::string> recipient_domain;  // recipient lists (when given)
  std::optional<header_condition> header;
  std::optional<uint64_t> size_above;         // bytes; holds when size > this
  std::vector<std::string> received_on;       // receive connector names, exact

  // Actions.
  std::optional<header_field> add_header;      // inserted at the top of the header block
  std::optional<header_field> replace_header;  // the field ends up once, with this value
  std::string redirect_to;                     // "" = none
  std::string bcc;                             // "" = none
  std::string route_via;                       // send connector name, "" = none
  std::optional<rejection_spec> reject;
  bool stop = false;                           // later rules are skipped once this fires

  int line = 0;  // where it is defined in the config file, for messages

  bool has_action() const {
    return add_header || replace_header || !redirect_to.empty() || !bcc.empty() || !route_via.empty() || reject;
  }
  bool has_recipient_condition() const { return !recipient.empty() || !recipient_domain.empty(); }
};

}  // namespace sluice::rules
