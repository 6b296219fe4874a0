// delivery_test.cc: [delivery], [[delivery.domain]] and [dns]: every key, its default, the
// duration forms, override apply(), and each error's file:line:key form.
// Untrusted input: none (test configurations written here).
#include <criterion/criterion.h>

#include <cmath>
#include <fstream>
#include <string>

#include "config/config.h"
#include "test_util.h"

using namespace sluice::config;
using sluice::config::test::expect_error;
using sluice::config::test::load_ok;

Test(config_delivery, defaults_when_sections_are_absent) {
  auto c = load_ok("[server]\nhostname = \"MX.Example.org\"\n");
  const delivery_settings& d = c->delivery;
  cr_assert_eq(d.max_outbound_connections, 1000u);
  cr_assert_eq(d.max_addresses, 5u);
  cr_assert_eq(d.max_sessions, 2u);
  cr_assert_eq(d.idle_connections, 20u);
  cr_assert_eq(d.idle_timeout_s, 5u);
  cr_assert_eq(d.retry_first_s, 300u);
  cr_assert_eq(d.retry_max_s, 3600u);
  cr_assert_eq(d.expire_after_s, 5u * 86400);
  cr_assert_eq(d.tls_broken_remember_s, 3600u);
  cr_assert(d.reconnect == reconnect_policy::next_host);
  cr_assert_str_eq(d.helo.c_str(), "mx.example.org");  // server.hostname, lower-cased
  cr_assert_eq(d.limits.max_connections, 20u);
  cr_assert_eq(d.limits.max_messages_per_connection, 100u);
  cr_assert_eq(d.limits.max_recipients_per_message, 100u);
  cr_assert_eq(d.limits.connection_rate, 0.0);
  cr_assert_eq(d.limits.message_rate, 0.0);
  cr_assert_eq(d.limits.failures_before_suspend, 5u);
  cr_assert_eq(d.limits.suspend_s, 300u);
  const delivery_timeouts& t = d.timeouts;
  cr_assert(t.connect_s == 30 && t.greeting_s == 300 && t.helo_s == 300 && t.starttls_s == 300 &&
            t.mail_s == 300 && t.rcpt_s == 300 && t.data_s == 120 && t.data_block_s == 180 &&
            t.final_dot_s == 600 && t.rset_s == 120 && t.quit_s == 60);
  cr_assert(d.domains.empty());
  const dns_settings& dns = c->dns;
  cr_assert(dns.servers.empty());
  cr_assert_eq(dns.timeout_ms, 5000u);
  cr_assert_eq(dns.tries, 2u);
  cr_assert_eq(dns.negative_ttl_s, 60u);
  cr_assert_eq(dns.max_ttl_s, 86400u);
  cr_assert(dns.ipv6);
}

Test(config_delivery, every_key_is_read) {
  auto c = load_ok(R"toml(
[delivery]
max_outbound_connections = 50
max_addresses = 7
max_sessions = 3
idle_connections = 0
idle_timeout = "2m"
retry_first = "1m"
retry_max = "2h"
expire_after = "3d"
tls_broken_remember = 0
reconnect = "same_host"
helo = "Out.Example.NET"
max_connections = 4
max_messages_per_connection = 9
max_recipients_per_message = 11
connection_rate = 2.5
message_rate = 10
failures_before_suspend = 3
suspend = "10m"

[delivery.timeouts]
connect = 5
greeting = "1m"
helo = 61
starttls = 62
mail = 63
rcpt = 64
data = 65
data_block = 66
final_dot = "10m"
rset = 67
quit = "1s"
)toml");
  const delivery_settings& d = c->delivery;
  cr_assert_eq(d.max_outbound_connections, 50u);
  cr_assert_eq(d.max_addresses, 7u);
  cr_assert_eq(d.max_sessions, 3u);
  cr_assert_eq(d.idle_connections, 0u);
  cr_assert_eq(d.idle_timeout_s, 120u);
  cr_assert_eq(d.retry_first_s, 60u);
  cr_assert_eq(d.retry_max_s, 7200u);
  cr_assert_eq(d.expire_after_s, 3u * 86400);
  cr_assert_eq(d.tls_broken_remember_s, 0u);
  cr_assert(d.reconnect == reconnect_policy::same_host);
  cr_assert_str_eq(d.helo.c_str(), "out.example.net");
  cr_assert_eq(d.limits.max_connections, 4u);
  cr_assert_eq(d.limits.max_messages_per_connection, 9u);
  cr_assert_eq(d.limits.max_recipients_per_message, 11u);
  cr_assert_eq(d.limits.connection_rate, 2.5);
  cr_assert_eq(d.limits.message_rate, 10.0);
  cr_assert_eq(d.limits.failures_before_suspend, 3u);
  cr_assert_eq(d.limits.suspend_s, 600u);
  const delivery_timeouts& t = d.timeouts;
  cr_assert_eq(t.connect_s, 5u);
  cr_assert_eq(t.greeting_s, 60u);
  cr_assert_eq(t.helo_s, 61u);
  cr_assert_eq(t.starttls_s, 62u);
  cr_assert_eq(t.mail_s, 63u);
  cr_assert_eq(t.rcpt_s, 64u);
  cr_assert_eq(t.data_s, 65u);
  cr_assert_eq(t.data_block_s, 66u);
  cr_assert_eq(t.final_dot_s, 600u);
  cr_assert_eq(t.rset_s, 67u);
  cr_assert_eq(t.quit_s, 1u);
  auto end = load_ok("[delivery]\nreconnect = \"end\"\n");
  cr_assert(end->delivery.reconnect == reconnect_policy::end);
  cr_assert_eq(std::string(to_string(reconnect_policy::end)), "end");
}

Test(config_delivery, durations_take_every_unit_or_plain_seconds) {
  cr_assert_eq(parse_duration("30s").value_or(1), 30u);
  cr_assert_eq(parse_duration("5m").value_or(1), 300u);
  cr_assert_eq(parse_duration("1h").value_or(1), 3600u);
  cr_assert_eq(parse_duration("5d").value_or(1), 432000u);
  cr_assert_eq(parse_duration("120H").value_or(1), 432000u);
  cr_assert_eq(parse_duration("3600").value_or(1), 3600u);
  cr_assert_eq(parse_duration("0").value_or(1), 0u);
  cr_assert(!parse_duration(""));
  cr_assert(!parse_duration("m"));
  cr_assert(!parse_duration("5 m"));
  cr_assert(!parse_duration("5w"));
  cr_assert(!parse_duration("-5"));
  cr_assert(!parse_duration("1.5h"));
  cr_assert(!parse_duration("99999999999999999999"));
  cr_assert(!parse_duration("999999999999999999d"));  // overflows when scaled
  auto c = load_ok("[delivery]\nexpire_after = \"120h\"\nretry_max = 5400\nidle_timeout = \"30s\"\n");
  cr_assert_eq(c->delivery.expire_after_s, 5u * 86400);
  cr_assert_eq(c->delivery.retry_max_s, 5400u);
  cr_assert_eq(c->delivery.idle_timeout_s, 30u);
  c = load_ok("[delivery]\nexpire_after = \"3600s\"\n");
  cr_assert_eq(c->delivery.expire_after_s, 3600u);
}

Test(config_delivery, override_apply_replaces_only_the_set_fields) {
  delivery_limits base;
  base.max_connections = 7;
  base.connection_rate = 1.5;
  delivery_limits_override none;
  cr_assert(none.empty());
  delivery_limits same = none.apply(base);
  cr_assert(same.max_connections == 7 && same.connection_rate == 1.5 && same.suspend_s == 300 &&
            same.max_messages_per_connection == 100 && same.max_recipients_per_message == 100 &&
            same.message_rate == 0 && same.failures_before_suspend == 5);
  delivery_limits_override o;
  o.max_messages_per_connection = 1;
  o.message_rate = 0.5;
  o.suspend_s = 60;
  cr_assert(!o.empty());
  delivery_limits r = o.apply(base);
  cr_assert_eq(r.max_connections, 7u);
  cr_assert_eq(r.connection_rate, 1.5);
  cr_assert_eq(r.max_messages_per_connection, 1u);
  cr_assert_eq(r.message_rate, 0.5);
  cr_assert_eq(r.suspend_s, 60u);
  cr_assert_eq(r.max_recipients_per_message, 100u);
  cr_assert_eq(r.failures_before_suspend, 5u);
  // Every field on its own, so none is forgotten by apply().
  delivery_limits_override all;
  all.max_connections = 1;
  all.max_messages_per_connection = 2;
  all.max_recipients_per_message = 3;
  all.connection_rate = 4;
  all.message_rate = 5;
  all.failures_before_suspend = 6;
  all.suspend_s = 7;
  delivery_limits a = all.apply(base);
  cr_assert(a.max_connections == 1 && a.max_messages_per_connection == 2 && a.max_recipients_per_message == 3 &&
            a.connection_rate == 4 && a.message_rate == 5 && a.failures_before_suspend == 6 && a.suspend_s == 7);
}

Test(config_delivery, domain_overrides) {
  auto c = load_ok(R"toml(
[delivery]
max_connections = 30

[[delivery.domain]]
name = "GMail.com"
max_connections = 5
message_rate = 1.5

[[delivery.domain]]
name = "example.net"
suspend = "1h"
failures_before_suspend = 2
max_messages_per_connection = 1000
max_recipients_per_message = 50
connection_rate = 0
)toml");
  const delivery_settings& d = c->delivery;
  cr_assert_eq(d.domains.size(), 2u);
  cr_assert_str_eq(d.domains[0].domain.c_str(), "gmail.com");
  cr_assert_eq(d.domains[0].line, 5);
  cr_assert_eq(d.domains[0].limits.max_connections.value_or(0), 5u);
  cr_assert_eq(d.domains[0].limits.message_rate.value_or(0), 1.5);
  cr_assert(!d.domains[0].limits.suspend_s);
  const domain_override* n = d.find_domain("example.net");
  cr_assert(n == &d.domains[1]);
  cr_assert_eq(n->limits.suspend_s.value_or(0), 3600u);
  cr_assert_eq(n->limits.failures_before_suspend.value_or(0), 2u);
  cr_assert_eq(n->limits.max_messages_per_connection.value_or(0), 1000u);
  cr_assert_eq(n->limits.max_recipients_per_message.value_or(0), 50u);
  cr_assert(n->limits.connection_rate && *n->limits.connection_rate == 0);
  cr_assert(d.find_domain("example.org") == nullptr);
  // The domain's limits sit on top of [delivery]'s.
  delivery_limits eff = d.domains[0].limits.apply(d.limits);
  cr_assert_eq(eff.max_connections, 5u);
  eff = d.domains[1].limits.apply(d.limits);
  cr_assert_eq(eff.max_connections, 30u);
}

Test(config_delivery, dns_keys) {
  auto c = load_ok(R"toml(
[dns]
servers = ["127.0.0.1:5353", "192.0.2.53", "[::1]:53", "2001:db8::35"]
timeout_ms = 250
tries = 4
negative_ttl = "5m"
max_ttl = "1h"
ipv6 = false
)toml");
  const dns_settings& d = c->dns;
  cr_assert_eq(d.servers.size(), 4u);
  cr_assert_str_eq(d.servers[0].c_str(), "127.0.0.1:5353");
  cr_assert_str_eq(d.servers[1].c_str(), "192.0.2.53");
  cr_assert_str_eq(d.servers[2].c_str(), "[::1]:53");
  cr_assert_str_eq(d.servers[3].c_str(), "2001:db8::35");
  cr_assert_eq(d.timeout_ms, 250u);
  cr_assert_eq(d.tries, 4u);
  cr_assert_eq(d.negative_ttl_s, 300u);
  cr_assert_eq(d.max_ttl_s, 3600u);
  cr_assert(!d.ipv6);
}

Test(config_delivery, dns_server_parser) {
  auto s = dns_server::parse("127.0.0.1:5353");
  cr_assert(s && s->address == *ip_address::parse("127.0.0.1") && s->port == 5353);
  s = dns_server::parse("192.0.2.53");
  cr_assert(s && s->address == *ip_address::parse("192.0.2.53") && s->port == 53);
  s = dns_server::parse("[::1]:5300");
  cr_assert(s && s->address == *ip_address::parse("::1") && s->port == 5300);
  s = dns_server::parse("[2001:db8::1]");
  cr_assert(s && s->address == *ip_address::parse("2001:db8::1") && s->port == 53);
  s = dns_server::parse("::1");
  cr_assert(s && s->address == *ip_address::parse("::1") && s->port == 53);
  for (const char* bad : {"", "dns.example.com", "dns.example.com:53", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536",
                          "1.2.3.4:5x", "[::1]:", "[::1]53", "[::1", "[1.2.3.4]:53", "1.2.3:53", "1.2.3.4:53:53",
                          "1.2.3.4:123456", " 1.2.3.4"}) {
    cr_assert(!dns_server::parse(bad), "'%s' should not parse", bad);
  }
}

Test(config_delivery, shipped_config_has_the_defaults) {
  load_result r = load_file(std::string(SLUICE_SOURCE_ROOT) + "/etc/sluice.toml");
  std::string errors = r.ok() ? "" : r.error_text();
  cr_assert(r.ok(), "%s", errors.c_str());
  const delivery_settings& d = r.value->delivery;
  delivery_settings defaults;
  cr_assert_eq(d.max_outbound_connections, defaults.max_outbound_connections);
  cr_assert_eq(d.expire_after_s, defaults.expire_after_s);
  cr_assert_eq(d.limits.max_connections, defaults.limits.max_connections);
  cr_assert_eq(d.timeouts.final_dot_s, defaults.timeouts.final_dot_s);
  cr_assert(d.domains.empty() && r.value->dns.servers.empty());
  cr_assert_str_eq(d.helo.c_str(), r.value->server.hostname.c_str());
}

// The commented [delivery], [dns] and [dsn] sections of the shipped file, uncommented, must load
// and be the defaults: the file documents them, so it must not drift from the code.
Test(config_delivery, shipped_commented_sections_are_the_defaults) {
  std::ifstream in(std::string(SLUICE_SOURCE_ROOT) + "/etc/sluice.toml");
  std::string line, text;
  bool inside = false;
  int lines = 0;
  while (std::getline(in, line)) {
    if (line == "# [delivery]") inside = true;
    if (line.rfind("# Transport rules", 0) == 0) inside = false;
    if (!inside || line.rfind("# ", 0) != 0) continue;
    std::string body = line.substr(2);
    size_t eq = body.find(" = ");
    bool is_key = eq != std::string::npos && body.find_first_not_of("abcdefghijklmnopqrstuvwxyz_0123456789") == eq;
    if (body[0] == '[' || is_key) {
      text += body + "\n";
      ++lines;
    }
  }
  cr_assert_gt(lines, 30, "found only %d lines of the commented sections", lines);
  auto c = load_ok(text);
  delivery_settings d = c->delivery;
  delivery_settings defaults;
  cr_assert_str_eq(d.helo.c_str(), "mail.example.com");
  cr_assert_eq(d.max_outbound_connections, defaults.max_outbound_connections);
  cr_assert_eq(d.max_addresses, defaults.max_addresses);
  cr_assert_eq(d.max_sessions, defaults.max_sessions);
  cr_assert_eq(d.idle_connections, defaults.idle_connections);
  cr_assert_eq(d.idle_timeout_s, defaults.idle_timeout_s);
  cr_assert_eq(d.retry_first_s, defaults.retry_first_s);
  cr_assert_eq(d.retry_max_s, defaults.retry_max_s);
  cr_assert_eq(d.expire_after_s, defaults.expire_after_s);
  cr_assert_eq(d.tls_broken_remember_s, defaults.tls_broken_remember_s);
  cr_assert(d.reconnect == defaults.reconnect);
  cr_assert(d.chunking == defaults.chunking);
  const delivery_limits &l = d.limits, &dl = defaults.limits;
  cr_assert(l.max_connections == dl.max_connections && l.max_messages_per_connection == dl.max_messages_per_connection &&
            l.max_recipients_per_message == dl.max_recipients_per_message && l.connection_rate == dl.connection_rate &&
            l.message_rate == dl.message_rate && l.failures_before_suspend == dl.failures_before_suspend &&
            l.suspend_s == dl.suspend_s);
  const delivery_timeouts &t = d.timeouts, &dt = defaults.timeouts;
  cr_assert(t.connect_s == dt.connect_s && t.greeting_s == dt.greeting_s && t.helo_s == dt.helo_s &&
            t.starttls_s == dt.starttls_s && t.mail_s == dt.mail_s && t.rcpt_s == dt.rcpt_s && t.data_s == dt.data_s &&
            t.data_block_s == dt.data_block_s && t.final_dot_s == dt.final_dot_s && t.rset_s == dt.rset_s &&
            t.quit_s == dt.quit_s);
  cr_assert_eq(d.domains.size(), 1u);
  dns_settings dns = c->dns, ddns;
  cr_assert(dns.servers.empty() && dns.timeout_ms == ddns.timeout_ms && dns.tries == ddns.tries &&
            dns.negative_ttl_s == ddns.negative_ttl_s && dns.max_ttl_s == ddns.max_ttl_s && dns.ipv6 == ddns.ipv6);
  dsn_settings dsn = c->dsn, ddsn;
  cr_assert(dsn.delay_after_s == ddsn.delay_after_s && dsn.delay_without_notify == ddsn.delay_without_notify &&
            dsn.expire_after_s == ddsn.expire_after_s && dsn.return_content_limit == ddsn.return_content_limit);
  cr_assert_str_eq(dsn.reporting_mta.c_str(), c->server.hostname.c_str());
}

// ---------------------------------------------------------------------------------------
// Errors

Test(config_delivery, limit_ranges) {
  struct {
    const char* text;
    const char* key;
    const char* fragment;
  } cases[] = {
      {"max_connections = 0", "max_connections", "between 1 and 10000, not 0"},
      {"max_connections = 10001", "max_connections", "between 1 and 10000"},
      {"max_messages_per_connection = 0", "max_messages_per_connection", "between 1 and"},
      {"max_recipients_per_message = 0", "max_recipients_per_message", "between 1 and"},
      {"failures_before_suspend = 0", "failures_before_suspend", "between 1 and"},
      {"suspend = 0", "suspend", "between 1s and 7d, not 0s"},
      {"connection_rate = -1", "connection_rate", "between 0 (unlimited)"},
      {"message_rate = -0.5", "message_rate", "between 0 (unlimited)"},
      {"message_rate = nan", "message_rate", "between 0 (unlimited)"},
      {"message_rate = inf", "message_rate", "between 0 (unlimited)"},
      {"connection_rate = \"5/s\"", "connection_rate", "expected a number (per second; 0 = unlimited), got a string"},
      {"max_outbound_connections = 0", "max_outbound_connections", "between 1 and"},
      {"max_addresses = 0", "max_addresses", "between 1 and 100"},
      {"max_sessions = 101", "max_sessions", "between 1 and 100"},
      {"idle_connections = -1", "idle_connections", "between 0 and"},
      {"idle_timeout = \"2h\"", "idle_timeout", "between 1s and 1h, not 2h"},
      {"tls_broken_remember = \"31d\"", "tls_broken_remember", "between 0s and 30d"},
  };
  for (const auto& c : cases) {
    expect_error(std::string("[delivery]\n") + c.text + "\n", 2, ("delivery." + std::string(c.key)).c_str(),
                 c.fragment);
  }
}

Test(config_delivery, duration_errors) {
  expect_error("[delivery]\nexpire_after = \"5 days\"\n", 2, "delivery.expire_after",
               "'5 days' is not a duration (seconds, or a number with s, m, h or d");
  expect_error("[delivery]\nexpire_after = -5\n", 2, "delivery.expire_after", "must not be negative");
  expect_error("[delivery]\nretry_first = 1.5\n", 2, "delivery.retry_first",
               "expected a duration (seconds as an integer, or a string such as \"5m\"), got a float");
  expect_error("[delivery]\nexpire_after = \"400d\"\n", 2, "delivery.expire_after", "between 1s and 365d");
}

Test(config_delivery, retry_and_expiry_must_agree) {
  expect_error("[delivery]\nretry_first = \"10m\"\nretry_max = \"5m\"\n", 3, "delivery.retry_max",
               "retry_max (300 s) must be at least retry_first (600 s)");
  // Only retry_first written: it collides with retry_max's default, and says so.
  expect_error("[delivery]\nretry_first = \"2h\"\n", 2, "delivery.retry_first",
               "retry_max (3600 s) must be at least retry_first (7200 s)");
  expect_error("[delivery]\nexpire_after = \"1m\"\n", 2, "delivery.expire_after",
               "expire_after (60 s) must be at least retry_first (300 s): a message would expire");
  load_ok("[delivery]\nretry_first = \"5m\"\nretry_max = \"5m\"\nexpire_after = \"5m\"\n");
}

Test(config_delivery, timeout_errors) {
  expect_error("[delivery.timeouts]\nconnect = 0\n", 2, "delivery.timeouts.connect", "between 1s and 1h, not 0s");
  expect_error("[delivery.timeouts]\nfinal_dot = 3601\n", 2, "delivery.timeouts.final_dot",
               "between 1s and 1h, not 3601s");
  expect_error("[delivery.timeouts]\nquit = \"forever\"\n", 2, "delivery.timeouts.quit", "is not a duration");
  expect_error("[delivery.timeouts]\nconnect_s = 5\n", 2, "delivery.timeouts.connect_s",
               "unknown key (did you mean 'connect'?)");
  expect_error("[delivery]\ntimeouts = 5\n", 2, "delivery.timeouts", "expected a table, got an integer");
}

Test(config_delivery, delivery_key_errors) {
  expect_error("[delivery]\nreconnect = \"next\"\n", 2, "delivery.reconnect",
               "'next' is not one of \"next_host\", \"same_host\", \"end\"");
  expect_error("[delivery]\nhelo = \"bad_name\"\n", 2, "delivery.helo", "'bad_name' is not a valid host name");
  expect_error("[delivery]\nmax_conections = 5\n", 2, "delivery.max_conections",
               "unknown key (did you mean 'max_connections'?)");
  expect_error("[delivery]\nexpire_after_s = 5\n", 2, "delivery.expire_after_s",
               "unknown key (did you mean 'expire_after'?)");
  expect_error("[[delivery]]\nmax_connections = 5\n", 1, "delivery", "expected a table, got an array");
}

Test(config_delivery, domain_errors) {
  expect_error("[[delivery.domain]]\nname = \"example.com\"\nmax_connections = 1\n"
               "[[delivery.domain]]\nname = \"EXAMPLE.com\"\nmax_connections = 2\n",
               5, "delivery.domain[1].name", "duplicate delivery domain 'example.com'");
  expect_error("[[delivery.domain]]\nname = \"*.example.com\"\nmax_connections = 1\n", 2, "delivery.domain[0].name",
               "is not a domain name (one domain per entry, no wildcards)");
  expect_error("[[delivery.domain]]\nmax_connections = 1\n", 1, "delivery.domain[0].name", "is required");
  expect_error("[[delivery.domain]]\nname = \"example.com\"\n", 1, "delivery.domain[0]", "sets no limit");
  expect_error("[[delivery.domain]]\nname = \"example.com\"\nmax_connections = 0\n", 3,
               "delivery.domain[0].max_connections", "between 1 and 10000");
  expect_error("[[delivery.domain]]\nname = \"example.com\"\nmax_conections = 3\n", 3,
               "delivery.domain[0].max_conections", "did you mean 'max_connections'?");
  expect_error("[delivery.domain]\nname = \"example.com\"\n", 1, "delivery.domain",
               "an array of tables (write [[delivery.domain]])");
}

Test(config_delivery, dns_errors) {
  expect_error("[dns]\nservers = [\"192.0.2.1\", \"resolver.example\"]\n", 2, "dns.servers",
               "'resolver.example' is not an IP address or IP:port");
  expect_error("[dns]\nservers = [\"[::1]\", \"[::1]:53\"]\n", 2, "dns.servers", "duplicate server '[::1]:53'");
  expect_error("[dns]\nservers = [\"1.2.3.4:99999\"]\n", 2, "dns.servers", "is not an IP address or IP:port");
  expect_error("[dns]\nservers = \"1.2.3.4\"\n", 2, "dns.servers", "expected an array");
  expect_error("[dns]\ntimeout_ms = 10\n", 2, "dns.timeout_ms", "between 100 and 60000");
  expect_error("[dns]\ntries = 0\n", 2, "dns.tries", "between 1 and 10");
  expect_error("[dns]\nnegative_ttl = \"2d\"\n", 2, "dns.negative_ttl", "between 0s and 1d");
  expect_error("[dns]\nmax_ttl = 0\n", 2, "dns.max_ttl", "between 1s and 7d");
  expect_error("[dns]\nipv6 = \"yes\"\n", 2, "dns.ipv6", "expected a boolean");
  expect_error("[dns]\nserver = [\"1.2.3.4\"]\n", 2, "dns.server", "did you mean 'servers'?");
}

Test(config_delivery, every_problem_is_reported) {
  auto r = sluice::config::test::load("[delivery]\nmax_connections = 0\nmax_sessions = 0\n[dns]\ntries = 0\n");
  cr_assert(!r.ok());
  cr_assert_eq(r.errors.size(), 3u, "%s", r.error_text().c_str());
}
