// options.cc: CLI11 definitions and validation for the blaster subcommands.
// Untrusted input: command-line arguments.
#include "options.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

namespace sluice::blaster {

namespace {

bool parse_u64_suffixed(std::string s, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t mult = 1;
  char last = char(std::tolower(static_cast<unsigned char>(s.back())));
  if (last == 'k') mult = 1024;
  else if (last == 'm') mult = 1024 * 1024;
  else if (last == 'g') mult = 1024ull * 1024 * 1024;
  if (mult != 1) s.pop_back();
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno != 0) return false;
  out = uint64_t(v) * mult;
  return true;
}

}  // namespace

bool parse_duration(const std::string& text, double& seconds) {
  if (text.empty()) return false;
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return false;
  std::string number = text.substr(0, i);  // strtod's end pointer points into it
  char* end = nullptr;
  double v = std::strtod(number.c_str(), &end);
  if (end == nullptr || *end != '\0') return false;
  std::string unit = text.substr(i);
  if (unit.empty() || unit == "s") seconds = v;
  else if (unit == "ms") seconds = v / 1000.0;
  else if (unit == "m") seconds = v * 60.0;
  else if (unit == "h") seconds = v * 3600.0;
  else return false;
  return seconds >= 0;
}

bool parse_size_range(const std::string& text, size_t& lo, size_t& hi) {
  size_t dash = text.find('-');
  uint64_t a = 0, b = 0;
  if (dash == std::string::npos) {
    if (!parse_u64_suffixed(text, a)) return false;
    b = a;
  } else if (!parse_u64_suffixed(text.substr(0, dash), a) || !parse_u64_suffixed(text.substr(dash + 1), b)) {
    return false;
  }
  if (a > b || b > (1ull << 31)) return false;
  lo = size_t(a);
  hi = size_t(b);
  return true;
}

bool parse_domains(const std::vector<std::string>& items, std::vector<weighted_domain>& out) {
  out.clear();
  for (const auto& item0 : items) {
    // Accept "a:1,b:2" as well as repeated --domain options.
    std::string_view rest(item0);
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string item(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      weighted_domain d;
      size_t colon = item.rfind(':');
      d.name = item.substr(0, colon);
      if (colon != std::string::npos) {
        uint64_t w = 0;
        if (!parse_u64_suffixed(item.substr(colon + 1), w) || w == 0 || w > 1000000) return false;
        d.weight = unsigned(w);
      }
      if (d.name.empty() || d.name.find_first_of(" <>@\t") != std::string::npos) return false;
      out.push_back(std::move(d));
    }
  }
  return true;
}

bool parse_host_port(const std::string& text, std::string& host, uint16_t& port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= text.size()) return false;
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  uint64_t p = 0;
  if (!parse_u64_suffixed(text.substr(colon + 1), p) || p > 65535 || text.back() == 'k' || text.back() == 'm')
    return false;
  port = uint16_t(p);
  return !host.empty();
}

bool glob_match(std::string_view pattern, std::string_view text) {
  auto fold = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
  // Greedy with one backtrack point: the last '*' seen. Linear in |pattern| x |text|.
  size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || fold(pattern[p]) == fold(text[t]))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

parsed_args parse_args(int argc, const char* const* argv) {
  parsed_args r;
  CLI::App app{"blaster: SMTP load generator, sink and loss checker", "blaster"};
  app.require_subcommand(1);
  unsigned default_threads = std::max(1u, std::thread::hardware_concurrency());

  // send
  auto* send = app.add_subcommand("send", "send messages to an SMTP/LMTP server");
  auto& so = r.send;
  so.threads = default_threads;
  std::string s_size = "1024", s_duration, s_pipelining = "on", s_auth, s_timeout = "60s", s_warmup = "0",
              s_interval = "0";
  std::vector<std::string> s_domains;
  bool one_per_connection = false, s_reuse = false;
  bool s_progress = false, s_no_progress = false;
  send->add_option("--target", so.target, "server HOST:PORT")->required();
  send->add_option("--sessions", so.sessions, "concurrent connections")
      ->capture_default_str()->check(CLI::Range(1u, 100000u));
  auto* o_messages = send->add_option("--messages", so.messages, "messages to send in total");
  auto* o_duration = send->add_option("--duration", s_duration, "run time (30s, 5m) instead of --messages");
  o_messages->excludes(o_duration);
  send->add_option("--size", s_size, "message size in bytes, or MIN-MAX (k/M suffixes)")
      ->capture_default_str();
  send->add_option("--rcpts", so.spec.rcpts, "recipients per message")
      ->capture_default_str()->check(CLI::Range(1u, 10000u));
  send->add_option("--from", so.spec.from_pattern, "sender pattern ({n}, {domain})")
      ->capture_default_str();
  send->add_option("--to", so.spec.to_pattern, "recipient pattern ({n}, {r}, {domain})")
      ->capture_default_str();
  send->add_option("--domain", s_domains, "recipient domain[:weight], repeatable or comma-separated (default example.test)");
  send->add_option("--pipelining", s_pipelining, "on|off")
      ->capture_default_str()->check(CLI::IsMember({"on", "off"}));
  send->add_flag("--reuse", s_reuse, "many messages per connection (default)");
  send->add_flag("--one-per-connection", one_per_connection, "one message per connection");
  send->add_flag("--starttls", so.starttls, "require STARTTLS");
  send->add_flag("--bdat", so.bdat, "send with BDAT when the server offers CHUNKING (default DATA)");
  send->add_option("--auth", s_auth, "AUTH PLAIN user:pass");
  send->add_option("--rate", so.rate, "open loop at this many msg/s (0: closed loop)")->check(CLI::NonNegativeNumber);
  send->add_option("--threads", so.threads, "event loops (default: cores)")
      ->capture_default_str()->check(CLI::Range(1u, 256u));
  send->add_flag("--lmtp", so.lmtp, "speak LMTP");
  send->add_option("--helo", so.helo, "EHLO/LHLO name")
      ->capture_default_str();
  send->add_flag("--json", so.json, "print a JSON summary");
  send->add_flag("--progress", s_progress, "always show the live progress line");
  send->add_flag("--no-progress", s_no_progress, "never show the live progress line");
  send->add_option("--record", so.record, "write the sent log here");
  send->add_option("--run-id", so.spec.run_id, "id prefix (default: random)");
  send->add_option("--timeout", s_timeout, "per-reply timeout")
      ->capture_default_str();
  send->add_option("--warmup", s_warmup, "drop latencies recorded in the first period");
  send->add_option("--interval", s_interval, "write one CSV line per interval to --series");
  send->add_option("--series", so.series, "CSV file for --interval lines");

  // sink
  auto* sink = app.add_subcommand("sink", "accept and count messages");
  auto& ko = r.sink;
  ko.threads = default_threads;
  std::string k_duration = "0";
  sink->add_option("--listen", ko.listen, "HOST:PORT to listen on")->required();
  sink->add_flag("--lmtp", ko.lmtp, "speak LMTP");
  sink->add_option("--threads", ko.threads, "event loops")
      ->capture_default_str()->check(CLI::Range(1u, 256u));
  sink->add_option("--latency", ko.latency_ms, "ms before every reply")->check(CLI::Range(0.0, 600000.0));
  sink->add_option("--data-latency", ko.data_latency_ms, "ms before the end-of-data reply")
      ->check(CLI::Range(0.0, 600000.0));
  sink->add_option("--fail-4xx", ko.fail4, "fraction of messages refused with 451")->check(CLI::Range(0.0, 1.0));
  sink->add_option("--fail-5xx", ko.fail5, "fraction of messages refused with 554")->check(CLI::Range(0.0, 1.0));
  sink->add_option("--fail-at", ko.inject_at, "mail|rcpt|data")
      ->capture_default_str()->check(CLI::IsMember({"mail", "rcpt", "data"}));
  sink->add_flag("--starttls", ko.starttls, "offer STARTTLS");
  sink->add_option("--record", ko.record, "write the received log here");
  sink->add_flag("--json", ko.json, "print a JSON summary on exit");
  sink->add_option("--duration", k_duration, "exit after this long (default: at SIGINT/SIGTERM)");
  sink->add_option("--hostname", ko.hostname, "name in the banner")
      ->capture_default_str();
  std::string k_size, k_stall_ms, k_fail_for = "0";
  bool k_no_8bit = false, k_no_utf8 = false, k_no_pipelining = false;
  sink->add_option("--greeting", ko.greeting, "greet with this code (421, 554...) and close")
      ->check(CLI::Range(200u, 599u));
  sink->add_option("--stall-at", ko.stall_at, "greeting|ehlo|mail|rcpt|data|dot: hold that reply")
      ->check(CLI::IsMember({"greeting", "ehlo", "mail", "rcpt", "data", "dot"}));
  sink->add_option("--stall-ms", k_stall_ms, "hold it this long (default: forever)");
  sink->add_option("--drop-at", ko.drop_at, "mail|rcpt|data|dot|after-dot: close the connection there")
      ->check(CLI::IsMember({"mail", "rcpt", "data", "dot", "after-dot"}));
  sink->add_option("--drop-fraction", ko.drop_fraction, "drop at that fraction of the times the point comes (default 1)")
      ->check(CLI::Range(0.0, 1.0));
  sink->add_option("--reject-rcpt", ko.reject_rcpt, "550 5.1.1 for recipients matching this glob (repeatable)");
  sink->add_option("--defer-rcpt", ko.defer_rcpt, "451 4.2.1 for recipients matching this glob (repeatable)");
  sink->add_option("--fail-for-ms", k_fail_for, "451 4.3.2 to every MAIL for this long after start");
  sink->add_option("--tls-cert-name", ko.tls_cert_name, "CN/SAN of the generated certificate (default --hostname)");
  sink->add_option("--tls-cert", ko.tls_cert, "PEM certificate (chain) to present");
  sink->add_option("--tls-key", ko.tls_key, "PEM key of --tls-cert");
  sink->add_flag("--tls-broken", ko.tls_broken, "offer STARTTLS, answer 220, then send garbage");
  sink->add_flag("--no-8bitmime", k_no_8bit, "do not offer 8BITMIME");
  sink->add_flag("--no-smtputf8", k_no_utf8, "do not offer SMTPUTF8");
  sink->add_flag("--no-pipelining", k_no_pipelining, "do not offer PIPELINING");
  sink->add_flag("--chunking", ko.chunking, "offer CHUNKING and BINARYMIME (BDAT, RFC 3030)");
  sink->add_option("--size", k_size, "announce SIZE N (k/M/G suffixes) and refuse larger with 552");
  sink->add_flag("--dsn", ko.dsn, "offer DSN; --record gets the DSN parameters as a sixth column");
  sink->add_option("--max-sessions", ko.max_sessions, "refuse connections beyond this many at once with 421")
      ->check(CLI::Range(1u, 1000000u));
  sink->add_option("--connection-log", ko.connection_log,
                   "one line per accepted connection: unix time in ms TAB session|refused (written at once)");

  // verify
  auto* verify = app.add_subcommand("verify", "compare sent and received logs");
  verify->add_option("--sent", r.verify.sent, "sent log(s)")->required();
  verify->add_option("--received", r.verify.received, "received log(s)")->required();
  verify->add_flag("--json", r.verify.json, "print JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    r.exit_code = e.get_exit_code();
    r.message = e.get_name() == "CallForHelp" || e.get_name() == "CallForAllHelp" ? app.help() : e.what();
    if (e.get_name() == "CallForHelp" || e.get_name() == "CallForAllHelp") {
      for (auto* sub : {send, sink, verify})
        if (sub->parsed()) r.message = sub->help();
    }
    return r;
  }

  auto error = [&](std::string msg) {
    r.exit_code = 2;
    r.message = std::move(msg);
    return r;
  };
  std::string host;
  uint16_t port = 0;
  if (send->parsed()) {
    r.cmd = parsed_args::command::send;
    if (!parse_host_port(so.target, host, port)) return error("--target: expected HOST:PORT, got " + so.target);
    if (!parse_size_range(s_size, so.spec.size_min, so.spec.size_max))
      return error("--size: expected BYTES or MIN-MAX, got " + s_size);
    if (!s_duration.empty() && !parse_duration(s_duration, so.duration_s))
      return error("--duration: expected a time like 30s or 5m, got " + s_duration);
    if (so.messages == 0 && so.duration_s <= 0) return error("give --messages N or --duration T");
    if (!parse_duration(s_timeout, so.timeout_s) || so.timeout_s <= 0) return error("--timeout: bad time " + s_timeout);
    if (!parse_duration(s_warmup, so.warmup_s)) return error("--warmup: bad time " + s_warmup);
    if (!parse_duration(s_interval, so.interval_s)) return error("--interval: bad time " + s_interval);
    if (so.interval_s > 0 && so.series.empty()) return error("--interval needs --series FILE");
    if (!s_domains.empty() && !parse_domains(s_domains, so.spec.domains))
      return error("--domain: expected NAME[:WEIGHT]");
    so.pipelining = s_pipelining == "on";
    if (one_per_connection) {
      if (s_reuse) return error("--reuse and --one-per-connection exclude each other");
      so.reuse = false;
    } else {
      so.reuse = true;
    }
    if (!s_auth.empty()) {
      size_t colon = s_auth.find(':');
      if (colon == std::string::npos || colon == 0) return error("--auth: expected user:pass");
      so.auth_user = s_auth.substr(0, colon);
      so.auth_password = s_auth.substr(colon + 1);
    }
    if (s_progress && s_no_progress) return error("--progress and --no-progress exclude each other");
    so.progress = s_progress ? 1 : s_no_progress ? 0 : -1;
    if (so.threads > so.sessions) so.threads = so.sessions;
  } else if (sink->parsed()) {
    r.cmd = parsed_args::command::sink;
    if (!parse_host_port(ko.listen, host, port)) return error("--listen: expected HOST:PORT, got " + ko.listen);
    if (!parse_duration(k_duration, ko.duration_s)) return error("--duration: bad time " + k_duration);
    if (ko.fail4 + ko.fail5 > 1.0) return error("--fail-4xx plus --fail-5xx exceed 1");
    if (ko.greeting != 220 && ko.greeting < 400) return error("--greeting: 220, or a 4xx or 5xx code");
    double seconds = 0;
    if (!k_stall_ms.empty()) {
      if (!parse_duration(k_stall_ms + "ms", seconds)) return error("--stall-ms: expected milliseconds, got " + k_stall_ms);
      if (ko.stall_at.empty()) return error("--stall-ms needs --stall-at");
      ko.stall_ms = seconds * 1000.0;
    }
    if (!parse_duration(k_fail_for + "ms", seconds)) return error("--fail-for-ms: expected milliseconds, got " + k_fail_for);
    ko.fail_for_ms = seconds * 1000.0;
    if (!k_size.empty() && (!parse_u64_suffixed(k_size, ko.max_size) || ko.max_size == 0))
      return error("--size: expected a positive number of bytes, got " + k_size);
    if (ko.drop_fraction < 1 && ko.drop_at.empty()) return error("--drop-fraction needs --drop-at");
    if (ko.tls_cert.empty() != ko.tls_key.empty()) return error("--tls-cert and --tls-key go together");
    if (!ko.tls_cert.empty() && !ko.tls_cert_name.empty())
      return error("--tls-cert-name names a generated certificate; --tls-cert brings its own");
    if (ko.tls_broken && (!ko.tls_cert.empty() || !ko.tls_cert_name.empty()))
      return error("--tls-broken never gets to a certificate");
    // Any certificate choice means the sink offers STARTTLS.
    if (!ko.tls_cert.empty() || !ko.tls_cert_name.empty() || ko.tls_broken) ko.starttls = true;
    ko.eightbitmime = !k_no_8bit;
    ko.smtputf8 = !k_no_utf8;
    ko.pipelining = !k_no_pipelining;
  } else {
    r.cmd = parsed_args::command::verify;
  }
  return r;
}

}  // namespace sluice::blaster
