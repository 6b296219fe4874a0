// load_delivery.cc: how mail leaves: [delivery] (limits, retries, timeouts, per-domain
// [[delivery.domain]] overrides), [dns] (resolvers, and their address parser), [dsn]
// (when reports are sent and what they hold) and the limit keys send connectors share.
// Untrusted input: the configuration file (admin-written, but typos must be reported with
// file, line, column and key, never silently ignored).
#include <cmath>
#include <set>

#include "config/reader.h"

namespace sluice::config::detail {
namespace {

constexpr uint64_t hour = 3600, day = 86400;

// Rates above this are no limit at all on one loop; more likely a slip of the keyboard.
constexpr double max_rate = 1e6;

void read_rate(table_reader& r, std::string_view key, std::optional<double>& out) {
  const toml::node* n = r.get(key);
  if (!n) return;
  double v;
  if (auto i = n->as_integer()) {
    v = static_cast<double>(i->get());
  } else if (auto f = n->as_floating_point()) {
    v = f->get();
  } else {
    r.type_error(key, *n, "a number (per second; 0 = unlimited)");
    return;
  }
  // !(v >= 0) also catches nan, which TOML can spell.
  if (!(v >= 0) || !std::isfinite(v) || v > max_rate) {
    r.value_error(key, *n, "must be between 0 (unlimited) and 1000000 per second");
    return;
  }
  out = v;
}

template <typename T>
void read_optional_uint(table_reader& r, std::string_view key, std::optional<T>& out, uint64_t min, uint64_t max) {
  T v{};
  if (r.read_uint(key, v, min, max)) out = v;
}

void read_timeouts(table_reader& parent, delivery_timeouts& t) {
  const toml::table* table = parent.read_table("timeouts");
  if (!table) return;
  table_reader r(parent.ctx(), *table, parent.key_path("timeouts"));
  // Each wait of RFC 5321 4.5.3.2 on its own; an hour is far beyond any of its
  // recommendations, so more is a mistake (and would pin a connection for that long).
  const std::pair<std::string_view, uint32_t*> keys[] = {
      {"connect", &t.connect_s}, {"greeting", &t.greeting_s},     {"helo", &t.helo_s},
      {"starttls", &t.starttls_s}, {"mail", &t.mail_s},           {"rcpt", &t.rcpt_s},
      {"data", &t.data_s},       {"data_block", &t.data_block_s}, {"final_dot", &t.final_dot_s},
      {"rset", &t.rset_s},       {"quit", &t.quit_s}};
  for (const auto& [key, field] : keys) r.read_duration(key, *field, 1, hour);
  r.finish();
}

void read_domains(table_reader& r, delivery_settings& d) {
  const toml::array* arr = read_table_array(r, "domain");
  if (!arr) return;
  size_t index = 0;
  std::set<std::string> seen;
  for (const toml::node& el : *arr) {
    const toml::table& t = *el.as_table();
    std::string path = r.key_path("domain") + "[" + std::to_string(index++) + "]";
    table_reader er(r.ctx(), t, path);
    domain_override o;
    o.line = static_cast<int>(t.source().begin.line);
    bool named = false;
    if (er.read_string("name", o.domain)) {
      const toml::node* n = t.get("name");
      if (!is_hostname(o.domain)) {
        er.value_error("name", *n, squote(o.domain) + " is not a domain name (one domain per entry, no wildcards)" +
                                       idn_hint(o.domain));
      } else if (o.domain = lower(o.domain); !seen.insert(o.domain).second) {
        er.value_error("name", *n, "duplicate delivery domain " + squote(o.domain));
      } else {
        named = true;
      }
    } else if (!t.get("name")) {
      er.missing("name", "the recipient domain it shapes, e.g. name = \"example.com\"");
    }
    size_t errors_before = r.ctx().errors.size();
    read_limits(er, o.limits);
    er.finish();
    // A misspelt limit is the likelier story, and finish() has told it.
    if (named && o.limits.empty() && r.ctx().errors.size() == errors_before) {
      er.ctx().error(t.source(), path,
                     "sets no limit (max_connections, max_messages_per_connection, max_recipients_per_message, "
                     "connection_rate, message_rate, failures_before_suspend, suspend)");
    }
    if (named) d.domains.push_back(std::move(o));
  }
}

}  // namespace

void read_limits(table_reader& r, delivery_limits_override& out) {
  read_optional_uint(r, "max_connections", out.max_connections, 1, 10'000);
  read_optional_uint(r, "max_messages_per_connection", out.max_messages_per_connection, 1, 1'000'000);
  read_optional_uint(r, "max_recipients_per_message", out.max_recipients_per_message, 1, 100'000);
  read_rate(r, "connection_rate", out.connection_rate);
  read_rate(r, "message_rate", out.message_rate);
  read_optional_uint(r, "failures_before_suspend", out.failures_before_suspend, 1, 10'000);
  uint32_t suspend = 0;
  if (r.read_duration("suspend", suspend, 1, 7 * day)) out.suspend_s = suspend;
}

void read_delivery(table_reader& top, config& c) {
  delivery_settings& d = c.delivery;
  d.helo = c.server.hostname;
  const toml::table* t = top.read_table("delivery");
  if (!t) return;
  table_reader r(top.ctx(), *t, "delivery");
  r.read_uint("max_outbound_connections", d.max_outbound_connections, 1, 1'000'000);
  r.read_uint("max_addresses", d.max_addresses, 1, 100);
  r.read_uint("max_sessions", d.max_sessions, 1, 100);
  r.read_uint("idle_connections", d.idle_connections, 0, 10'000);
  r.read_duration("idle_timeout", d.idle_timeout_s, 1, hour);
  bool first_set = r.read_duration("retry_first", d.retry_first_s, 1, day);
  bool max_set = r.read_duration("retry_max", d.retry_max_s, 1, 30 * day);
  bool expire_set = r.read_duration("expire_after", d.expire_after_s, 1, 365 * day);
  r.read_duration("tls_broken_remember", d.tls_broken_remember_s, 0, 30 * day);
  r.read_enum("reconnect", d.reconnect, {{"next_host", reconnect_policy::next_host},
                                         {"same_host", reconnect_policy::same_host},
                                         {"end", reconnect_policy::end}});
  r.read_bool("chunking", d.chunking);
  if (r.read_string("helo", d.helo)) {
    if (!is_hostname(d.helo)) {
      r.value_error("helo", *t->get("helo"), squote(d.helo) + " is not a valid host name" + idn_hint(d.helo));
    }
    d.helo = lower(d.helo);
  }
  // Checked against each other only when one of them was written: the defaults agree,
  // and a lone retry_first = "2h" must say which default it collides with.
  auto seconds = [](uint64_t s) { return std::to_string(s) + " s"; };
  if (d.retry_max_s < d.retry_first_s && (first_set || max_set)) {
    const toml::node* n = max_set ? t->get("retry_max") : t->get("retry_first");
    r.value_error(max_set ? "retry_max" : "retry_first", *n,
                  "retry_max (" + seconds(d.retry_max_s) + ") must be at least retry_first (" +
                      seconds(d.retry_first_s) + ")");
  }
  if (d.expire_after_s < d.retry_first_s && (first_set || expire_set)) {
    const toml::node* n = expire_set ? t->get("expire_after") : t->get("retry_first");
    r.value_error(expire_set ? "expire_after" : "retry_first", *n,
                  "expire_after (" + seconds(d.expire_after_s) + ") must be at least retry_first (" +
                      seconds(d.retry_first_s) + "): a message would expire before its first retry");
  }
  delivery_limits_override limits;
  read_limits(r, limits);
  d.limits = limits.apply(d.limits);
  read_timeouts(r, d.timeouts);
  read_domains(r, d);
  r.finish();
}

void read_dns(table_reader& top, config& c) {
  dns_settings& d = c.dns;
  const toml::table* t = top.read_table("dns");
  if (!t) return;
  table_reader r(top.ctx(), *t, "dns");
  std::vector<std::pair<std::string, const toml::node*>> items;
  if (r.read_strings("servers", items)) {
    std::vector<dns_server> parsed;
    for (auto& [text, n] : items) {
      auto s = dns_server::parse(text);
      if (!s) {
        r.value_error("servers", *n,
                      squote(text) + " is not an IP address or IP:port (IPv6 with a port in brackets: \"[::1]:53\")");
        continue;
      }
      bool dup = false;
      for (const auto& p : parsed) dup = dup || (p.address == s->address && p.port == s->port);
      if (dup) {
        r.value_error("servers", *n, "duplicate server " + squote(text));
        continue;
      }
      parsed.push_back(*s);
      d.servers.push_back(text);
    }
  }
  r.read_uint("timeout_ms", d.timeout_ms, 100, 60'000);
  r.read_uint("tries", d.tries, 1, 10);
  r.read_duration("negative_ttl", d.negative_ttl_s, 0, day);
  r.read_duration("max_ttl", d.max_ttl_s, 1, 7 * day);
  r.read_bool("ipv6", d.ipv6);
  r.finish();
}

void read_dsn(table_reader& top, config& c) {
  dsn_settings& d = c.dsn;
  if (const toml::table* t = top.read_table("dsn")) {
    table_reader r(top.ctx(), *t, "dsn");
    r.read_duration("delay_after", d.delay_after_s, 0, 30 * day);
    r.read_bool("delay_without_notify", d.delay_without_notify);
    // Zero would expire a report before its first delivery attempt.
    r.read_duration("expire_after", d.expire_after_s, 1, 365 * day);
    r.read_size("return_content_limit", d.return_content_limit);
    if (r.read_string("reporting_mta", d.reporting_mta) && !d.reporting_mta.empty()) {
      if (!is_hostname(d.reporting_mta)) {
        r.value_error("reporting_mta", *t->get("reporting_mta"),
                      squote(d.reporting_mta) + " is not a valid host name" + idn_hint(d.reporting_mta));
      }
      d.reporting_mta = lower(d.reporting_mta);
    }
    r.finish();
  }
  if (d.reporting_mta.empty()) d.reporting_mta = c.server.hostname;
}

}  // namespace sluice::config::detail

namespace sluice::config {

std::optional<dns_server> dns_server::parse(std::string_view text) {
  dns_server s;
  std::string_view host = text, port;
  if (!text.empty() && text.front() == '[') {
    if (!detail::split_bracketed(text, host, port)) return std::nullopt;
    // Brackets are for IPv6 only: "[192.0.2.1]" reads like a mistake for a port.
    auto a = ip_address::parse(host);
    if (!a || a->is_v4()) return std::nullopt;
    s.address = *a;
  } else if (auto a = ip_address::parse(text)) {
    s.address = *a;  // a bare IPv6 address: every colon belongs to it
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    a = ip_address::parse(text.substr(0, colon));
    if (!a || !a->is_v4()) return std::nullopt;
    s.address = *a;
    port = text.substr(colon + 1);
    if (port.empty()) return std::nullopt;
  }
  if (!port.empty()) {
    auto p = detail::parse_port(port);
    if (!p) return std::nullopt;
    s.port = *p;
  }
  return s;
}

}  // namespace sluice::config
