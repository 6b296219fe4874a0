// rules.h: transport rules: compiled rule sets evaluated per message by the categorizer.
// Untrusted input: the message (sender, recipients, header block) comes from remote
// clients; matching is bounded (no regex, no recursion) and never allocates unless a rule fires.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rules/spec.h"
#include "smtp/header.h"

namespace sluice::rules {

// Where it runs: in the categorizer, per message, before routing. The shard keeps one
// rule_set per config snapshot and one outcome (cleared per message), then:
//   reject set      → every recipient fails with reject->status/text (DSN), no routing;
//   redirects, bcc  → the recipient list is rewritten (redirect_for(i)) and extended
//                     (bcc) before routing; routes → route_for(i) replaces the
//                     address-space choice for that recipient;
//   header_edits    → apply_header_edits() on the stored body before it is shared;
//   fired           → one RULE tracking log line each.

// What evaluate() looks at. Every view is borrowed for the duration of the call only.
struct message_view {
  std::string_view sender;                       // reverse-path; "" = null sender
  std::span<const std::string_view> recipients;  // forward-paths, in envelope order
  std::string_view headers;  // the stored body, or just its header block: parsing stops at the blank line
  uint64_t size = 0;         // body size in bytes
  std::string_view receive_connector;  // name of the connector it arrived on; "" = pickup
};

struct fired_rule {
  std::string_view name;
  std::string_view actions;  // "add_header X-Tag; bcc audit@contoso.com", for the tracking log
};

struct header_edit {
  enum class kind : uint8_t { add, replace };
  kind what = kind::add;
  std::string_view name;
  std::string_view value;
};

struct recipient_override {
  uint32_t index = 0;          // into message_view::recipients
  std::string_view value;      // redirect: the new address; route: the send connector name
};

struct rejection {
  std::string_view status;  // "5.7.1"
  std::string_view text;
};

// The result of evaluate(). Every string_view points into the rule_set, so an outcome is
// valid as long as the rule_set (i.e. the config snapshot) that produced it. Reuse one
// outcome per shard: clear() keeps capacity, so steady state does not allocate.
struct outcome {
  std::vector<fired_rule> fired;            // in evaluation order, one per rule that fired
  std::vector<header_edit> header_edits;    // in order; apply with apply_header_edits()
  std::vector<recipient_override> redirects;  // at most one per index; a later rule overrides
  std::vector<std::string_view> bcc;        // recipients to add, without duplicates
  std::vector<recipient_override> routes;   // forced send connector per index; later overrides
  std::optional<rejection> reject;          // set: fail every recipient with this status

  void clear();
  bool empty() const { return fired.empty(); }
  // The redirect / forced send connector for recipient i, or "" if none.
  std::string_view redirect_for(size_t i) const;
  std::string_view route_for(size_t i) const;
};

// An immutable, compiled list of rules (lower-cased patterns, action summaries). Built once
// per configuration snapshot; evaluate() is const and may run on many threads at once.
class rule_set {
 public:
  rule_set() = default;
  explicit rule_set(std::vector<rule_spec> specs);

  // Runs the enabled rules in order against m, appending to out (clear it first).
  // Rules see the message as received: a redirect made by one rule does not change what a
  // later rule's recipient condition sees. A rule that rejects ends evaluation, as does one
  // with stop = true. A recipient condition selects recipients: redirect_to and route_via
  // apply to the recipients it matched; without one they apply to every recipient.
  // Returns whether any rule fired.
  bool evaluate(const message_view& m, outcome& out) const;

  // Whether any enabled rule has a header condition: when false, message_view::headers
  // may be left empty and the body need not be read to evaluate.
  bool needs_headers() const { return needs_headers_; }
  size_t size() const { return rules_.size(); }  // enabled rules
  bool empty() const { return rules_.empty(); }

 private:
  struct compiled {
    rule_spec spec;
    std::string header_glob;  // the header condition as a lower-cased glob
    std::string actions;      // summary for fired_rule::actions
  };
  bool message_conditions_hold(const compiled& r, const message_view& m) const;
  std::vector<compiled> rules_;
  bool needs_headers_ = false;
};

// Rewrites the header block of body (everything before the first empty line) with edits:
// adds go to the top of the header block, in order (so a trace-style add sits above the
// Received: lines, as a new hop's fields would); a replace gives the first occurrence of
// the field the new value and removes any later occurrences, so the field appears exactly
// once (added at the top when absent). Bytes from the empty line on are never touched.
// Lines are written with the body's own line ending (CRLF, or LF if the first line uses LF).
void apply_header_edits(std::string& body, std::span<const header_edit> edits);
inline void apply_header_edits(std::string& body, const outcome& o) { apply_header_edits(body, o.header_edits); }

// Matching primitives, exposed for the config loader's tests and for benchmarks.
// Case-insensitive (ASCII) glob: '*', '?' (one UTF-8 character), '\' escape; O(|pattern| × |text|), no allocation.
bool glob_match(std::string_view pattern, std::string_view text);
// "example.org" exact, "*.example.org" subdomains only; a trailing dot on domain is ignored.
bool domain_match(std::string_view pattern, std::string_view domain);
// "user@example.org", "*@example.org", "*@*.example.org".
bool address_match(std::string_view pattern, std::string_view address);

// The header block scanner is shared with smtpd and pickup (smtp/header.h).
using smtp::header_cursor;

}  // namespace sluice::rules
