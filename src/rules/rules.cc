// rules.cc: transport rule compilation, per-message evaluation and header block rewriting.
// Untrusted input: message sender, recipients and header block (remote clients); every
// scan is a bounded loop over the given bytes, with no recursion and no allocation.
#include "rules/rules.h"

#include <algorithm>

namespace sluice::rules {
namespace {

constexpr char fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Header field names, domains and local parts all compare ASCII case-insensitively.
bool iequal(std::string_view a, std::string_view b) { return smtp::header_name_equal(a, b); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = fold(c);
  return out;
}

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Walks a raw header value as its unfolded form: a fold is CRLF (or LF) followed by a
// blank, and unfolding removes just the line break (RFC 5322 2.2.3). Inside one field's
// value every CR or LF belongs to a fold, so skipping them is exactly unfolding.
class unfolded_iterator {
 public:
  unfolded_iterator(const char* p, const char* end) : p_(p), end_(end) { skip(); }
  char operator*() const { return *p_; }
  unfolded_iterator& operator++() {
    ++p_;
    skip();
    return *this;
  }
  bool at_end() const { return p_ == end_; }

 private:
  void skip() {
    while (p_ != end_ && (*p_ == '\r' || *p_ == '\n')) ++p_;
  }
  const char* p_;
  const char* end_;
};

class plain_iterator {
 public:
  plain_iterator(const char* p, const char* end) : p_(p), end_(end) {}
  char operator*() const { return *p_; }
  plain_iterator& operator++() {
    ++p_;
    return *this;
  }
  bool at_end() const { return p_ == end_; }

 private:
  const char* p_;
  const char* end_;
};

// Iterative glob with one saved star position: when a literal run after a '*' fails, the
// star absorbs one more byte and the run is retried. Earlier stars never need revisiting
// (a later star can absorb anything an earlier one could), so the cost is bounded by
// |pattern| × |text| even for "*a*a*a*a*b" against "aaaa…", where a backtracking regex
// would be exponential.
template <typename It>
bool glob_impl(std::string_view pat, It t) {
  size_t p = 0;
  size_t star = std::string_view::npos;
  It star_t = t;
  while (!t.at_end()) {
    if (p < pat.size()) {
      char pc = pat[p];
      if (pc == '*') {
        star = ++p;
        star_t = t;
        continue;
      }
      size_t width = 1;
      bool any = pc == '?';
      if (pc == '\\' && p + 1 < pat.size()) {
        pc = pat[p + 1];
        width = 2;
      }
      if (any || fold(pc) == fold(*t)) {
        p += width;
        ++t;
        // '?' is one character: it takes a UTF-8 sequence's continuation bytes along.
        while (any && !t.at_end() && (static_cast<unsigned char>(*t) & 0xC0) == 0x80) ++t;
        continue;
      }
    }
    if (star == std::string_view::npos) return false;
    p = star;
    ++star_t;
    t = star_t;
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

std::string_view domain_of(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

// Keeps one entry per recipient index; a later rule's value replaces an earlier one.
void set_override(std::vector<recipient_override>& v, uint32_t index, std::string_view value) {
  for (auto& o : v) {
    if (o.index == index) {
      o.value = value;
      return;
    }
  }
  v.push_back({index, value});
}

std::string_view lookup(const std::vector<recipient_override>& v, size_t index) {
  for (const auto& o : v) {
    if (o.index == index) return o.value;
  }
  return {};
}

bool recipient_matches(const rule_spec& r, std::string_view rcpt) {
  if (!r.recipient.empty() &&
      std::none_of(r.recipient.begin(), r.recipient.end(), [&](const std::string& p) { return address_match(p, rcpt); })) {
    return false;
  }
  if (!r.recipient_domain.empty()) {
    std::string_view d = domain_of(rcpt);
    if (std::none_of(r.recipient_domain.begin(), r.recipient_domain.end(),
                     [&](const std::string& p) { return domain_match(p, d); })) {
      return false;
    }
  }
  return true;
}

std::string escape_glob(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string summarize(const rule_spec& r) {
  std::string s;
  auto add = [&](std::string_view part) {
    if (!s.empty()) s += "; ";
    s += part;
  };
  if (r.add_header) add("add_header " + r.add_header->name + ": " + r.add_header->value);
  if (r.replace_header) add("replace_header " + r.replace_header->name + ": " + r.replace_header->value);
  if (!r.redirect_to.empty()) add("redirect_to " + r.redirect_to);
  if (!r.bcc.empty()) add("bcc " + r.bcc);
  if (!r.route_via.empty()) add("route_via " + r.route_via);
  if (r.reject) add("reject " + r.reject->status + " " + r.reject->text);
  if (r.stop) add("stop");
  return s;
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) {
  return glob_impl(pattern, plain_iterator(text.data(), text.data() + text.size()));
}

bool domain_match(std::string_view pattern, std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty()) return false;
  if (pattern == "*") return true;
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix = pattern.substr(1);  // ".example.org": subdomains only
    return domain.size() > suffix.size() && iequal(domain.substr(domain.size() - suffix.size()), suffix);
  }
  return iequal(pattern, domain);
}

bool address_match(std::string_view pattern, std::string_view address) {
  auto pat_at = pattern.rfind('@');
  auto at = address.rfind('@');
  if (pat_at == std::string_view::npos || at == std::string_view::npos) return iequal(pattern, address);
  std::string_view local = pattern.substr(0, pat_at);
  if (local != "*" && !iequal(local, address.substr(0, at))) return false;
  return domain_match(pattern.substr(pat_at + 1), address.substr(at + 1));
}

// ---------------------------------------------------------------------------------------


// ---------------------------------------------------------------------------------------

void outcome::clear() {
  fired.clear();
  header_edits.clear();
  redirects.clear();
  bcc.clear();
  routes.clear();
  reject.reset();
}

std::string_view outcome::redirect_for(size_t i) const { return lookup(redirects, i); }
std::string_view outcome::route_for(size_t i) const { return lookup(routes, i); }

rule_set::rule_set(std::vector<rule_spec> specs) {
  for (auto& s : specs) {
    if (!s.enabled) continue;  // a disabled rule can never fire; keep the hot loop short
    compiled c;
    if (s.header) {
      needs_headers_ = true;
      c.header_glob = s.header->how == header_condition::kind::contains ? "*" + escape_glob(s.header->pattern) + "*"
                                                                          : s.header->pattern;
      c.header_glob = lower(c.header_glob);
    }
    c.actions = summarize(s);
    c.spec = std::move(s);
    rules_.push_back(std::move(c));
  }
}

bool rule_set::message_conditions_hold(const compiled& c, const message_view& m) const {
  const rule_spec& r = c.spec;
  // Cheapest first: the header scan is the only one that walks message bytes.
  if (!r.received_on.empty() && std::find(r.received_on.begin(), r.received_on.end(), m.receive_connector) ==
                                    r.received_on.end()) {
    return false;
  }
  if (r.size_above && !(m.size > *r.size_above)) return false;
  if (!r.sender.empty() &&
      std::none_of(r.sender.begin(), r.sender.end(), [&](const std::string& p) { return address_match(p, m.sender); })) {
    return false;
  }
  if (!r.sender_domain.empty()) {
    std::string_view d = domain_of(m.sender);
    if (std::none_of(r.sender_domain.begin(), r.sender_domain.end(),
                     [&](const std::string& p) { return domain_match(p, d); })) {
      return false;
    }
  }
  if (r.header) {
    header_cursor cur(m.headers);
    bool found = false;
    while (!found && cur.next()) {
      if (!iequal(cur.name(), r.header->name)) continue;
      std::string_view v = cur.raw_value();
      while (!v.empty() && (is_blank(v.front()) || v.front() == '\r' || v.front() == '\n')) v.remove_prefix(1);
      while (!v.empty() && (is_blank(v.back()) || v.back() == '\r' || v.back() == '\n')) v.remove_suffix(1);
      found = glob_impl(c.header_glob, unfolded_iterator(v.data(), v.data() + v.size()));
    }
    if (!found) return false;
  }
  return true;
}

bool rule_set::evaluate(const message_view& m, outcome& out) const {
  bool any = false;
  for (const compiled& c : rules_) {
    const rule_spec& r = c.spec;
    if (!message_conditions_hold(c, m)) continue;
    const bool selects = r.has_recipient_condition();
    if (selects && std::none_of(m.recipients.begin(), m.recipients.end(),
                                [&](std::string_view rcpt) { return recipient_matches(r, rcpt); })) {
      continue;
    }
    any = true;
    out.fired.push_back({r.name, c.actions});
    if (r.add_header) out.header_edits.push_back({header_edit::kind::add, r.add_header->name, r.add_header->value});
    if (r.replace_header) {
      out.header_edits.push_back({header_edit::kind::replace, r.replace_header->name, r.replace_header->value});
    }
    if (!r.redirect_to.empty() || !r.route_via.empty()) {
      for (size_t i = 0; i < m.recipients.size(); ++i) {
        if (selects && !recipient_matches(r, m.recipients[i])) continue;
        if (!r.redirect_to.empty()) set_override(out.redirects, static_cast<uint32_t>(i), r.redirect_to);
        if (!r.route_via.empty()) set_override(out.routes, static_cast<uint32_t>(i), r.route_via);
      }
    }
    if (!r.bcc.empty() &&
        std::none_of(out.bcc.begin(), out.bcc.end(), [&](std::string_view b) { return iequal(b, r.bcc); })) {
      out.bcc.push_back(r.bcc);
    }
    if (r.reject) {
      // Nothing after a rejection can matter: every recipient fails.
      out.reject = rejection{r.reject->status, r.reject->text};
      return true;
    }
    if (r.stop) break;
  }
  return any;
}

// ---------------------------------------------------------------------------------------

void apply_header_edits(std::string& body, std::span<const header_edit> edits) {
  if (edits.empty()) return;
  size_t first_nl = body.find('\n');
  std::string_view eol = (first_nl != std::string::npos && (first_nl == 0 || body[first_nl - 1] != '\r')) ? "\n" : "\r\n";

  // The last replace of a field wins, as a later rule's would.
  std::vector<std::pair<std::string_view, std::string_view>> replaces;
  for (const header_edit& e : edits) {
    if (e.what != header_edit::kind::replace) continue;
    auto it = std::find_if(replaces.begin(), replaces.end(), [&](const auto& p) { return iequal(p.first, e.name); });
    if (it != replaces.end()) it->second = e.value;
    else replaces.emplace_back(e.name, e.value);
  }
  std::vector<bool> written(replaces.size(), false);

  std::string out;
  out.reserve(body.size() + 256);
  auto line = [&](std::string_view name, std::string_view value) {
    out += name;
    out += ": ";
    out += value;
    out += eol;
  };
  for (const header_edit& e : edits) {
    if (e.what == header_edit::kind::add) line(e.name, e.value);
  }
  // Replaced fields that are absent go to the top as well; find them first.
  std::string_view view(body);
  {
    header_cursor scan(view);
    while (scan.next()) {
      for (size_t i = 0; i < replaces.size(); ++i) {
        if (iequal(scan.name(), replaces[i].first)) written[i] = true;
      }
    }
    for (size_t i = 0; i < replaces.size(); ++i) {
      if (!written[i]) line(replaces[i].first, replaces[i].second);
      written[i] = !written[i];  // true now means "already written"
    }
  }
  header_cursor cur(view);
  while (cur.next()) {
    size_t hit = replaces.size();
    for (size_t i = 0; i < replaces.size(); ++i) {
      if (iequal(cur.name(), replaces[i].first)) hit = i;
    }
    if (hit == replaces.size()) {
      out.append(view.substr(cur.begin(), cur.end() - cur.begin()));
      continue;
    }
    if (written[hit]) continue;  // a later occurrence of a replaced field
    written[hit] = true;
    line(cur.name(), replaces[hit].second);  // keeps the message's spelling of the name
  }
  out.append(view.substr(cur.body_offset()));
  body = std::move(out);
}

}  // namespace sluice::rules
