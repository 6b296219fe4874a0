// load_rules.cc: [[transport_rule]]: conditions and actions, checked so that no value can
// inject header lines, and connector names resolved to the connectors' own spelling.
// Untrusted input: the configuration file (admin-written, but typos must be reported with
// file, line, column and key, never silently ignored).
#include <algorithm>
#include <optional>

#include "config/reader.h"

namespace sluice::config::detail {
namespace {

// RFC 5322 field name: printable ASCII except ':'.
bool is_field_name(std::string_view s) {
  if (s.empty() || s.size() > 76) return false;
  for (char ch : s) {
    if (ch <= 32 || ch >= 127 || ch == ':') return false;
  }
  return true;
}

// A value written into a header or a reply: CR or LF would let it start a new header line
// (header injection), NUL would truncate it in C APIs.
bool has_line_break(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos; }

bool is_local_part(std::string_view s) {
  return !s.empty() && s.size() <= 64 && s.find_first_of(" \t<>*\r\n") == std::string_view::npos;
}

// "user@example.org", "*@example.org", "*@*.example.org".
bool is_address_pattern(std::string_view s) {
  auto at = s.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view local = s.substr(0, at);
  return (local == "*" || is_local_part(local)) && is_domain_pattern(s.substr(at + 1), true);
}

bool is_address(std::string_view s) {
  auto at = s.rfind('@');
  return at != std::string_view::npos && is_local_part(s.substr(0, at)) && is_hostname(s.substr(at + 1));
}

// Enhanced status code (RFC 3463) of a failure: 4.x.x or 5.x.x.
bool is_failure_status(std::string_view s) {
  if (s.size() < 5 || (s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t digits = 0, dots = 0;
  for (size_t i = 2; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (digits == 0 || ++dots > 1) return false;
      digits = 0;
    } else if (s[i] >= '0' && s[i] <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots == 1 && digits > 0;
}

void read_rule_list(table_reader& r, std::string_view key, std::vector<std::string>& out,
                    bool (*valid)(std::string_view), std::string_view what) {
  std::vector<std::pair<std::string, const toml::node*>> items;
  if (!r.read_strings(key, items)) return;
  if (items.empty()) r.value_error(key, *r.get(key), "must not be empty (leave the key out to match everything)");
  for (auto& [text, n] : items) {
    if (!valid(text)) {
      r.value_error(key, *n, squote(text) + " is not " + std::string(what) + idn_hint(text));
      continue;
    }
    out.push_back(lower(text));
  }
}

// { name = "X-Tag", value = "..." }
std::optional<rules::header_field> read_header_field(table_reader& r, std::string_view key) {
  const toml::table* t = r.read_table(key);
  if (!t) return std::nullopt;
  table_reader hr(r.ctx(), *t, r.key_path(key));
  rules::header_field f;
  bool ok = true;
  if (hr.read_string("name", f.name)) {
    if (!is_field_name(f.name)) {
      hr.value_error("name", *t->get("name"), squote(f.name) + " is not a header field name");
      ok = false;
    }
  } else {
    if (!t->get("name")) hr.missing("name", "the header field, e.g. \"X-Tag\"");
    ok = false;
  }
  if (hr.read_string("value", f.value)) {
    if (has_line_break(f.value)) {
      hr.value_error("value", *t->get("value"), "must not contain CR, LF or NUL (it would inject header lines)");
      ok = false;
    }
  } else {
    if (!t->get("value")) hr.missing("value", "the field's value");
    ok = false;
  }
  hr.finish();
  if (!ok) return std::nullopt;
  return f;
}

// A connector name from a rule, rewritten to the connector's own spelling.
template <typename Connectors>
bool resolve_connector(table_reader& r, std::string_view key, const toml::node& n, std::string& name,
                       const Connectors& list, std::string_view kind) {
  for (const auto& con : list) {
    if (lower(con.name) == lower(name)) {
      name = con.name;
      return true;
    }
  }
  std::string known;
  for (const auto& con : list) known += (known.empty() ? "" : ", ") + squote(con.name);
  r.value_error(key, n,
                "no " + std::string(kind) + " named " + squote(name) +
                    (known.empty() ? " (none is defined)" : " (defined: " + known + ")"));
  return false;
}

void read_transport_rule(table_reader& r, const toml::table& t, const config& c, const std::string& path,
                         rules::rule_spec& rule) {
  rule.line = static_cast<int>(t.source().begin.line);
  if (!r.read_string("name", rule.name) && !t.get("name")) r.missing("name", "a unique name, for the tracking log");
  if (t.get("name") && t.get("name")->is_string() && (rule.name.empty() || has_line_break(rule.name))) {
    r.value_error("name", *t.get("name"), "must be a non-empty single line");
  }
  r.read_bool("enabled", rule.enabled);

  read_rule_list(r, "sender", rule.sender, is_address_pattern,
                 "an address pattern (user@example.org, *@example.org or *@*.example.org)");
  read_rule_list(r, "sender_domain", rule.sender_domain,
                 [](std::string_view s) { return is_domain_pattern(s, true); }, "a domain or *.domain");
  read_rule_list(r, "recipient", rule.recipient, is_address_pattern,
                 "an address pattern (user@example.org, *@example.org or *@*.example.org)");
  read_rule_list(r, "recipient_domain", rule.recipient_domain,
                 [](std::string_view s) { return is_domain_pattern(s, true); }, "a domain or *.domain");

  if (const toml::table* ht = r.read_table("header")) {
    table_reader hr(r.ctx(), *ht, r.key_path("header"));
    rules::header_condition h;
    bool ok = true;
    if (hr.read_string("name", h.name)) {
      if (!is_field_name(h.name)) {
        hr.value_error("name", *ht->get("name"), squote(h.name) + " is not a header field name");
        ok = false;
      }
    } else {
      if (!ht->get("name")) hr.missing("name", "the header field to look at, e.g. \"Subject\"");
      ok = false;
    }
    bool has_pattern = hr.read_string("pattern", h.pattern);
    std::string contains;
    bool has_contains = hr.read_string("contains", contains);
    if (has_pattern && has_contains) {
      hr.value_error("contains", *ht->get("contains"), "give either pattern or contains, not both");
      ok = false;
    } else if (has_contains) {
      h.how = rules::header_condition::kind::contains;
      h.pattern = std::move(contains);
    } else if (!has_pattern) {
      if (!ht->get("pattern") && !ht->get("contains")) {
        hr.missing("pattern", "a glob such as \"*invoice*\", or contains = \"invoice\"");
      }
      ok = false;
    }
    if ((has_pattern || has_contains) && (has_line_break(h.pattern) || h.pattern.size() > 1000)) {
      std::string_view k = has_contains ? "contains" : "pattern";
      hr.value_error(k, *ht->get(k), "must be one line of at most 1000 bytes");
      ok = false;
    }
    hr.finish();
    if (ok) rule.header = std::move(h);
  }
  uint64_t size = 0;
  if (r.read_size("size_above", size)) rule.size_above = size;

  std::vector<std::pair<std::string, const toml::node*>> items;
  if (r.read_strings("received_on", items)) {
    if (items.empty()) r.value_error("received_on", *t.get("received_on"), "must name at least one receive connector");
    for (auto& [name, n] : items) {
      if (resolve_connector(r, "received_on", *n, name, c.receive_connectors, "receive connector")) {
        rule.received_on.push_back(name);
      }
    }
  }

  rule.add_header = read_header_field(r, "add_header");
  rule.replace_header = read_header_field(r, "replace_header");
  for (auto [key, out] : {std::pair<std::string_view, std::string*>{"redirect_to", &rule.redirect_to},
                          std::pair<std::string_view, std::string*>{"bcc", &rule.bcc}}) {
    if (r.read_string(key, *out) && !is_address(*out)) {
      r.value_error(key, *t.get(key), squote(*out) + " is not an e-mail address (local@domain)" + idn_hint(*out));
      out->clear();
    }
  }
  if (r.read_string("route_via", rule.route_via)) {
    if (!resolve_connector(r, "route_via", *t.get("route_via"), rule.route_via, c.send_connectors, "send connector")) {
      rule.route_via.clear();
    }
  }
  if (const toml::table* jt = r.read_table("reject")) {
    table_reader jr(r.ctx(), *jt, r.key_path("reject"));
    rules::rejection_spec rej;
    rej.text = "Message rejected by transport rule";
    bool ok = true;
    if (jr.read_string("status", rej.status)) {
      if (!is_failure_status(rej.status)) {
        jr.value_error("status", *jt->get("status"),
                       squote(rej.status) + " is not a failure status code (5.x.x or 4.x.x, e.g. \"5.7.1\")");
        ok = false;
      }
    } else {
      if (!jt->get("status")) jr.missing("status", "an enhanced status code such as \"5.7.1\"");
      ok = false;
    }
    if (jr.read_string("text", rej.text) && (rej.text.empty() || has_line_break(rej.text))) {
      jr.value_error("text", *jt->get("text"), "must be one non-empty line (no CR, LF or NUL)");
      ok = false;
    }
    jr.finish();
    if (ok) rule.reject = std::move(rej);
  }
  r.read_bool("stop", rule.stop);
  r.finish();

  // An action key that is present but wrong already has its own message; this one is for
  // a rule that says nothing about what to do.
  static constexpr std::string_view action_keys[] = {"add_header", "replace_header", "redirect_to",
                                                     "bcc",        "route_via",      "reject"};
  bool any_action_key = std::any_of(std::begin(action_keys), std::end(action_keys),
                                    [&](std::string_view k) { return t.get(k) != nullptr; });
  if (!any_action_key) {
    r.ctx().error(t.source(), path,
                  "rule " + squote(rule.name) +
                      " has no action (add_header, replace_header, redirect_to, bcc, route_via or reject)");
  } else if (rule.reject && (rule.add_header || rule.replace_header || !rule.redirect_to.empty() ||
                             !rule.bcc.empty() || !rule.route_via.empty())) {
    r.ctx().error(t.get("reject")->source(), r.key_path("reject"),
                  "cannot be combined with other actions: a rejected message goes nowhere");
  }
}

}  // namespace

void read_transport_rules(table_reader& top, config& c) {
  const toml::array* arr = read_table_array(top, "transport_rule");
  if (!arr) return;
  size_t index = 0;
  std::vector<std::string> paths;
  for (const toml::node& el : *arr) {
    const toml::table& t = *el.as_table();
    std::string path = "transport_rule[" + std::to_string(index++) + "]";
    table_reader r(top.ctx(), t, path);
    rules::rule_spec rule;
    read_transport_rule(r, t, c, path, rule);
    for (size_t i = 0; i < c.transport_rules.size(); ++i) {
      if (!rule.name.empty() && lower(c.transport_rules[i].name) == lower(rule.name)) {
        r.value_error("name", *t.get("name"),
                      "duplicate transport rule name " + squote(rule.name) + " (also " + paths[i] + " at line " +
                          std::to_string(c.transport_rules[i].line) + ")");
      }
    }
    paths.push_back(path);
    c.transport_rules.push_back(std::move(rule));
  }
}

}  // namespace sluice::config::detail
