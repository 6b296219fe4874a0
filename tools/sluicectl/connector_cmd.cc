// connector_cmd.cc: `sluicectl receive-connector|send-connector|accepted-domain get|new|set|remove`, Exchange-style.
// Untrusted input: the TOML file named by --config (edited with config::edit, which refuses what it cannot follow), the
// option values (written as escaped TOML, then validated by the loader) and the daemon's answers (shown terminal-safe).
// Flow of an edit: edit in memory, validate as sluiced would, write atomically, reload sluiced, undo if it refuses.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "admin/client.h"
#include "admin/protocol.h"
#include "common.h"
#include "config/config.h"
#include "config/edit.h"

namespace sluice::ctl {

namespace {

namespace fs = std::filesystem;
using config::edit::value;

// How an option's text becomes the key's value.
// seconds: an integer, a number with a unit (30s, 5m, 1h, 2d) or an Exchange time span
// ([d.]hh:mm:ss), written as whole seconds; rate: per second, a decimal allowed.
enum class conv { text, list, size, number, boolean, seconds, rate };

struct option_spec {
  const char* flag;  // "--max-message-size"
  const char* key;   // "max_message_size"; "" for the options handled by the group itself
  conv how;
  const char* help;
};

// One verb group: its object ([[table]] name, words for messages) and its options.
struct group_spec {
  const char* command;  // "receive-connector"
  const char* table;    // "receive_connector"
  const char* noun;     // "receive connector"
  std::vector<option_spec> options;
};

const group_spec receive_group{
    "receive-connector", "receive_connector", "receive connector",
    {{"--usage", "", conv::text,
      "type: internet, internal (type enterprise), partner, client or custom; the preset of permissions and TLS"},
     {"--bindings", "bindings", conv::list, "bindings: local IP:port list, e.g. 0.0.0.0:25,[::]:25"},
     {"--remote-ip-ranges", "remote_ranges", conv::list,
      "remote_ranges: e.g. 10.10.0.0(255.255.0.0),192.168.1.5,10.0.0.1-10.0.0.9,2001:db8::/32"},
     {"--permission-groups", "", conv::list,
      "permissions: none, anonymous-users (anonymous), exchange-users (relay_authenticated), exchange-servers "
      "(anonymous + relay: hosts trusted by their remote range), partners (anonymous + tls.require_client_certificate); "
      "every permission not named is written false"},
     {"--max-message-size", "max_message_size", conv::size, "max_message_size: bytes or 10MB, 512K"},
     {"--max-header-size", "max_header_size", conv::size,
      "max_header_size: bytes or 128K; a header section past it gets 552 5.3.4"},
     {"--max-recipients-per-message", "max_recipients", conv::number, "max_recipients"},
     {"--max-inbound-connection", "max_connections", conv::number, "max_connections"},
     {"--max-inbound-connection-per-source", "max_connections_per_ip", conv::number, "max_connections_per_ip"},
     {"--banner", "banner", conv::text, "banner: the whole 220 greeting text (\"\" = host name and sluice's greeting)"},
     {"--protocol-logging", "protocol_log", conv::boolean, "protocol_log: true or false"},
     {"--require-tls", "", conv::boolean, "tls.starttls: true = \"required\", false = \"offered\""},
     {"--starttls", "tls.starttls", conv::text, "tls.starttls: off, offered or required (off: no STARTTLS at all)"},
     {"--max-protocol-errors", "max_errors", conv::number, "max_errors: error replies before the session ends (421 4.7.0)"},
     {"--helo-required", "helo_required", conv::boolean, "helo_required: true = MAIL needs HELO/EHLO first"},
     {"--connection-timeout", "timeouts.connection_s", conv::seconds,
      "timeouts.connection_s: the longest a session lives; seconds, 30m or 00:30:00"},
     {"--connection-inactivity-timeout", "timeouts.command_s", conv::seconds,
      "timeouts.command_s: a command line must be complete this long after the reply before it"},
     {"--data-timeout", "timeouts.data_s", conv::seconds, "timeouts.data_s: the longest silence within a message's content"},
     {"--content-timeout", "timeouts.content_s", conv::seconds,
      "timeouts.content_s: a message's whole content (DATA, or BDAT to LAST) must arrive within this"},
     {"--auth-required", "permissions.auth_required", conv::boolean,
      "permissions.auth_required: true = MAIL needs AUTH first (after --permission-groups, which writes it false)"},
     {"--auth-mechanism", "auth.mechanisms", conv::list, "auth.mechanisms: PLAIN,LOGIN"},
     {"--auth-credentials", "auth.credentials", conv::text, "auth.credentials: the user:crypt-hash file"},
     {"--auth-allow-plaintext-on-loopback", "auth.allow_plaintext_on_loopback", conv::boolean,
      "auth.allow_plaintext_on_loopback: true = AUTH without TLS from 127.0.0.0/8 and ::1"},
     {"--auth-max-failures-per-ip", "auth.max_failures_per_ip", conv::number,
      "auth.max_failures_per_ip: AUTH failures from one address before it is refused for a while"},
     {"--tls-certificate", "tls.certificate", conv::text, "tls.certificate: PEM file, or auto (generated)"},
     {"--tls-key", "tls.key", conv::text, "tls.key: PEM file, or auto (with tls.certificate = auto)"},
     {"--tls-min-version", "tls.min_version", conv::text, "tls.min_version: 1.2 or 1.3"},
     {"--tls-ciphers", "tls.ciphers", conv::text, "tls.ciphers: an OpenSSL cipher list for TLS 1.2"},
     {"--require-client-certificate", "tls.require_client_certificate", conv::boolean,
      "tls.require_client_certificate: true = a client must present a certificate tls.client_ca verifies"},
     {"--tls-client-ca", "tls.client_ca", conv::text, "tls.client_ca: PEM file of the CAs client certificates are checked with"}}};

const group_spec send_group{
    "send-connector", "send_connector", "send connector",
    {{"--address-spaces", "address_spaces", conv::list,
      "address_spaces: domains with an optional ;cost, e.g. contoso.com;5,*.contoso.com,* (an SMTP: prefix is dropped)"},
     {"--smart-hosts", "smart_hosts", conv::list, "smart_hosts: host[:port] list; also sets routing = \"smarthost\""},
     {"--dns-routing-enabled", "", conv::boolean,
      "routing: true = \"dns\" (MX lookup; removes smart_hosts), false = \"smarthost\""},
     {"--source", "source_servers", conv::list, "source_servers: the transport servers that use it"},
     {"--max-message-size", "max_message_size", conv::size, "max_message_size: bytes or 10MB, 512K"},
     {"--enabled", "enabled", conv::boolean, "enabled: true or false"},
     {"--fqdn", "helo", conv::text, "helo: the name sent in EHLO"},
     {"--port", "port", conv::number, "port: the port of the next hop (default 25)"},
     {"--require-tls", "", conv::boolean, "tls: true = \"mandatory\", false = \"opportunistic\""},
     {"--tls", "tls", conv::text, "tls: none, opportunistic, mandatory or partner"},
     {"--tls-domain", "tls_verify_name", conv::text,
      "tls_verify_name: the name the next hop's certificate must carry (tls = partner)"},
     {"--tls-ca", "tls_ca", conv::text, "tls_ca: PEM file of the CAs the next hop's certificate is checked with"},
     {"--auth-credentials", "auth_credentials", conv::text,
      "auth_credentials: the smart host's user:password file (not readable by others)"},
     {"--max-connections", "max_connections", conv::number, "max_connections: to one destination at once"},
     {"--max-messages-per-connection", "max_messages_per_connection", conv::number, "max_messages_per_connection"},
     {"--max-recipients-per-message", "max_recipients_per_message", conv::number,
      "max_recipients_per_message: RCPTs in one transaction; more go in further ones"},
     {"--connection-rate", "connection_rate", conv::rate, "connection_rate: new connections per second (0 = unlimited)"},
     {"--message-rate", "message_rate", conv::rate, "message_rate: messages per second (0 = unlimited)"},
     {"--failures-before-suspend", "failures_before_suspend", conv::number,
      "failures_before_suspend: failed connections in a row before the destination is suspended"},
     {"--suspend", "suspend", conv::seconds, "suspend: how long a destination is suspended; seconds, 10m or 00:10:00"}}};

const group_spec domain_group{
    "accepted-domain", "accepted_domain", "accepted domain",
    {{"--domain-type", "", conv::text, "type: authoritative, internal-relay or external-relay"},
     {"--recipients", "recipients", conv::text, "recipients: the file listing the valid addresses"},
     {"--mailbox", "mailbox", conv::text, "mailbox: maildir or lmtp (local delivery)"},
     {"--maildir-root", "maildir_root", conv::text, "maildir_root: absolute directory of the Maildirs"},
     {"--maildir-path", "maildir_path", conv::text,
      "maildir_path: where a recipient's Maildir is, e.g. {root}/{domain}/{local}/Maildir"},
     {"--lmtp", "lmtp", conv::text, "lmtp: IP:port, [IPv6]:port or a Unix socket path"}}};

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, comma - start);
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    start = comma + 1;
  }
  return out;
}

bool parse_bool(const std::string& flag, const std::string& text) {
  std::string t = lower(text);
  if (t == "true" || t == "yes" || t == "1" || t == "$true") return true;
  if (t == "false" || t == "no" || t == "0" || t == "$false") return false;
  throw command_error{fmt::format("{}: '{}' is not true or false", flag, terminal_text(text))};
}

// Whole seconds of "90", "30s", "5m", "1h", "2d" or an Exchange time span "[d.]hh:mm:ss".
std::optional<int64_t> parse_seconds(std::string_view t) {
  if (all_digits(t, 18)) return std::stoll(std::string(t));
  if (t.size() >= 2 && all_digits(t.substr(0, t.size() - 1), 12)) {
    const int64_t n = std::stoll(std::string(t.substr(0, t.size() - 1)));
    switch (t.back()) {
      case 's': return n;
      case 'm': return n * 60;
      case 'h': return n * 3600;
      case 'd': return n * 86'400;
    }
    return std::nullopt;
  }
  int64_t days = 0;
  if (size_t dot = t.find('.'); dot != std::string_view::npos && dot < t.find(':')) {
    if (!all_digits(t.substr(0, dot), 6)) return std::nullopt;
    days = std::stoll(std::string(t.substr(0, dot)));
    t.remove_prefix(dot + 1);
  }
  // hh:mm:ss, each part two digits at most, minutes and seconds below 60.
  if (t.size() < 5 || t.size() > 8) return std::nullopt;
  int64_t parts[3];
  for (int i = 0; i < 3; ++i) {
    const size_t colon = i < 2 ? t.find(':') : t.size();
    if (colon == std::string_view::npos || !all_digits(t.substr(0, colon), 2)) return std::nullopt;
    parts[i] = std::stoll(std::string(t.substr(0, colon)));
    t.remove_prefix(std::min(t.size(), colon + 1));
  }
  if (parts[1] > 59 || parts[2] > 59) return std::nullopt;
  return ((days * 24 + parts[0]) * 60 + parts[1]) * 60 + parts[2];
}

value convert(const option_spec& o, const std::string& text) {
  switch (o.how) {
    case conv::seconds:
      if (auto s = parse_seconds(text)) return value::integer(*s);
      throw command_error{fmt::format("{}: '{}' is not a duration (seconds, 30s, 5m, 1h, 2d or hh:mm:ss)", o.flag,
                                      terminal_text(text))};
    case conv::rate: {
      if (all_digits(text, 18)) return value::integer(std::stoll(text));
      char* end = nullptr;
      const double v = text.empty() ? -1 : std::strtod(text.c_str(), &end);
      // Decimal notation only: strtod would also take "inf", "nan" and hexadecimal floats.
      const bool decimal = text.find_first_not_of("0123456789.") == std::string::npos;
      if (!decimal || end != text.c_str() + text.size() || !(v >= 0) || !std::isfinite(v))
        throw command_error{fmt::format("{}: '{}' is not a rate (per second, e.g. 10 or 0.5)", o.flag, terminal_text(text))};
      return value::number(v);
    }
    case conv::list: return value::strings(split_list(text));
    case conv::boolean: return value::boolean(parse_bool(o.flag, text));
    case conv::number:
    case conv::size: {
      if (all_digits(text, 18)) return value::integer(std::stoll(text));
      if (o.how == conv::size) return value::string(text);  // "10MB": the loader reads sizes
      throw command_error{fmt::format("{}: '{}' is not a number", o.flag, terminal_text(text))};
    }
    case conv::text: break;
  }
  return value::string(text);
}

// What one command was given: the identity, and every option that was present.
struct request {
  std::string name, new_name, domain_name, socket;
  std::deque<std::string> values;  // one per option of the group (stable references for CLI11)
  std::vector<std::pair<const option_spec*, CLI::Option*>> options;
};

struct key_edit {
  std::string key;
  std::optional<value> v;  // nullopt: remove the key
};

bool given(const request& r, std::string_view flag) {
  for (const auto& [spec, opt] : r.options)
    if (spec->flag == flag && opt->count() != 0) return true;
  return false;
}

// The keys the options of `r` write (nullopt: removed), in the order of the group's options.
std::vector<key_edit> edits_of(const group_spec& gs, const request& r) {
  std::vector<key_edit> out;
  // A key two options write (--permission-groups and --auth-required) takes the later one.
  auto put = [&](std::string key, value v) {
    std::erase_if(out, [&key](const key_edit& e) { return e.key == key; });
    out.push_back({std::move(key), std::move(v)});
  };
  for (size_t i = 0; i < r.options.size(); ++i) {
    const option_spec& o = *r.options[i].first;
    if (r.options[i].second->count() == 0) continue;
    const std::string& text = r.values[i];
    const std::string_view flag = o.flag;
    if (flag == "--address-spaces") {
      std::vector<std::string> items;
      for (auto& a : split_list(text)) items.push_back(lower(a.substr(0, 5)) == "smtp:" ? a.substr(5) : a);
      put(o.key, value::strings(items));
    } else if (*o.key) {
      put(o.key, convert(o, text));
      // Smart hosts mean smart-host routing, unless --dns-routing-enabled says otherwise.
      if (flag == "--smart-hosts" && !given(r, "--dns-routing-enabled")) put("routing", value::string("smarthost"));
    } else if (flag == "--usage") {
      std::string u = lower(text);
      put("type", value::string(u == "internal" ? "enterprise" : u));
    } else if (flag == "--domain-type") {
      std::string t = lower(text);
      if (t == "internalrelay" || t == "externalrelay") t.insert(8, "_");
      std::replace(t.begin(), t.end(), '-', '_');
      put("type", value::string(t));
    } else if (flag == "--permission-groups") {
      bool anonymous = false, relay = false, relay_authenticated = false, partners = false;
      for (const auto& group : split_list(lower(text))) {
        if (group == "anonymous-users" || group == "anonymoususers") anonymous = true;
        else if (group == "exchange-users" || group == "exchangeusers") relay_authenticated = true;
        else if (group == "exchange-servers" || group == "exchangeservers") anonymous = relay = true;
        else if (group == "partners") anonymous = partners = true;
        else if (group != "none")
          throw command_error{fmt::format("--permission-groups: '{}' is not none, anonymous-users, exchange-users, "
                                          "exchange-servers or partners",
                                          terminal_text(group))};
      }
      put("permissions.anonymous", value::boolean(anonymous));
      put("permissions.relay", value::boolean(relay));
      put("permissions.auth_required", value::boolean(false));
      put("permissions.relay_authenticated", value::boolean(relay_authenticated));
      if (partners) put("tls.require_client_certificate", value::boolean(true));
    } else if (flag == "--require-tls") {
      bool required = parse_bool(o.flag, text);
      if (std::string_view(gs.table) == "receive_connector")
        put("tls.starttls", value::string(required ? "required" : "offered"));
      else
        put("tls", value::string(required ? "mandatory" : "opportunistic"));
    } else if (flag == "--dns-routing-enabled") {
      bool dns = parse_bool(o.flag, text);
      put("routing", value::string(dns ? "dns" : "smarthost"));
      if (dns && !given(r, "--smart-hosts")) out.push_back({"smart_hosts", std::nullopt});
    }
  }
  return out;
}

// ---- the file ----

// The configuration file, read under an exclusive flock held until the command ends, so two
// sluicectl edits do not interleave. The lock is on the inode; after a rename by another
// sluicectl the path names a new one, so the lock is taken again on that.
struct locked_file {
  std::string path;  // the real file (symlinks resolved): the temp file goes beside it
  std::string text;
  struct stat st {};
  int fd = -1;
  ~locked_file() {
    if (fd >= 0) ::close(fd);
  }
};

void read_locked(const std::string& given, locked_file& f) {
  std::error_code ec;
  f.path = fs::canonical(given, ec).string();
  if (ec) throw command_error{fmt::format("cannot read {}: {}", terminal_text(given), ec.message())};
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw command_error{fmt::format("cannot open {}: {}", terminal_text(given), std::strerror(errno))};
    struct stat by_path {};
    if (::flock(fd, LOCK_EX) != 0 || ::fstat(fd, &f.st) != 0) {
      ::close(fd);
      throw command_error{fmt::format("cannot lock {}: {}", terminal_text(given), std::strerror(errno))};
    }
    if (::stat(f.path.c_str(), &by_path) != 0 || by_path.st_ino != f.st.st_ino || by_path.st_dev != f.st.st_dev) {
      ::close(fd);
      continue;  // replaced while we waited: lock the new one
    }
    if (!S_ISREG(f.st.st_mode)) {
      ::close(fd);
      throw command_error{fmt::format("{} is not a regular file", terminal_text(given))};
    }
    f.fd = fd;
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw command_error{fmt::format("cannot read {}: {}", terminal_text(given), std::strerror(errno))};
      f.text.append(buf, static_cast<size_t>(n));
    }
    return;
  }
  throw command_error{fmt::format("{} keeps being replaced; try again", terminal_text(given))};
}

// Temp file beside it, same mode (and owner if we may), fsync, rename over, fsync the
// directory: a crash leaves the old file or the new one, never a mix.
void write_atomically(const locked_file& f, const std::string& text) {
  const fs::path target(f.path);
  std::string tmpl = (target.parent_path() / ("." + target.filename().string() + ".sluicectl-XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw command_error{fmt::format("cannot create a file beside {}: {}", terminal_text(f.path), std::strerror(errno))};
  bool ok = true;
  for (size_t done = 0; ok && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  int saved = errno;
  if (ok) {
    if (::fchown(fd, f.st.st_uid, f.st.st_gid) != 0) {
    }  // only root may give a file away; the mode is what matters
    ok = ::fchmod(fd, f.st.st_mode & 07777) == 0 && ::fsync(fd) == 0;
    saved = errno;
  }
  ok = ::close(fd) == 0 && ok;
  if (ok && ::rename(tmpl.c_str(), f.path.c_str()) != 0) {
    saved = errno;
    ok = false;
  }
  if (!ok) {
    ::unlink(tmpl.c_str());
    throw command_error{fmt::format("cannot write {}: {}", terminal_text(f.path), std::strerror(saved))};
  }
  int dir = ::open(target.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

// ---- output ----

std::string json_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ",") + json_string(i);
  return "[" + out + "]";
}

struct outcome {
  std::string action, noun, name, file;
  bool changed = false;
  std::string reload = "none";  // none, reloaded, not_running, other_file, refused, failed
  std::string message;
  std::vector<std::string> errors, lines;
};

// Prints the outcome (JSON or text); exit status 1 for every refusal.
void finish(const global_options& g, const outcome& o) {
  const bool ok = o.errors.empty() && o.reload != "refused" && o.reload != "failed";
  if (g.json) {
    fmt::print("{{\"ok\":{},\"action\":{},\"object\":{},\"name\":{},\"file\":{},\"changed\":{},\"reload\":{},"
               "\"message\":{},\"errors\":{},\"lines\":{}}}\n",
               ok, json_string(o.action), json_string(o.noun), json_string(o.name), json_string(o.file), o.changed,
               json_string(o.reload), json_string(o.message), json_list(o.errors), json_list(o.lines));
  } else {
    for (const auto& e : o.errors) fmt::print("{}\n", terminal_text(e));
    if (ok) fmt::print("{}\n", terminal_text(o.message));
    for (const auto& l : o.lines) fmt::print("sluiced: {}\n", terminal_text(l));
  }
  if (!ok) throw command_error{terminal_text(o.message)};
}

// ---- the flow ----

// Validates the edited text as sluiced would, writes it, reloads the daemon running this
// file, and puts the old text back if the daemon refuses it.
void apply(const global_options& g, const std::string& socket, locked_file& f, const std::string& text, outcome& o) {
  // Relative files resolve beside the path as given, as sluiced's load_file does (a symlink's directory).
  o.errors = config_problems(g.config_file, config::load_string(text, g.config_file));
  if (!o.errors.empty()) {
    o.message = fmt::format("the change was refused ({} error{}); {} was not changed", o.errors.size(),
                            o.errors.size() == 1 ? "" : "s", g.config_file);
    return;
  }
  write_atomically(f, text);
  o.changed = true;
  const std::string path = socket.empty() ? admin::socket_path_for(resolve_queue_dir(g)) : socket;
  admin::call_result which = admin::call(path, {"config"});
  if (which.status == admin::call_status::not_running) {
    o.reload = "not_running";
    o.message = o.message + "; no sluiced is running: the file was changed; it takes effect at the next start";
    return;
  }
  for (const auto& l : which.reply.lines) {
    std::error_code ec;
    if (l.rfind("file: ", 0) == 0 && fs::exists(l.substr(6), ec) && !fs::equivalent(l.substr(6), f.path, ec)) {
      o.reload = "other_file";
      o.message += fmt::format("; the sluiced at {} runs {}, not this file: not reloaded", path, l.substr(6));
      return;
    }
  }
  admin::call_result r = ask_reload(g, socket);
  if (r.status != admin::call_status::ok) {
    o.reload = "failed";
    o.message += "; the file was changed but the reload got no answer: " + r.error;
    return;
  }
  o.lines = r.reply.lines;
  if (r.reply.ok) {
    o.reload = "reloaded";
    o.message += "; sluiced reloaded it";
    return;
  }
  o.reload = "refused";
  o.lines.insert(o.lines.begin(), r.reply.error);
  write_atomically(f, f.text);
  o.changed = false;
  o.message = "sluiced refused the change (" + r.reply.error + "); " + g.config_file + " is as it was";
}

void run_edit(const global_options& g, const group_spec& gs, const std::string& verb, const request& r) {
  if (g.config_file.empty()) throw command_error{"--config FILE is required: the file to edit"};
  std::string name = r.name;
  if (!r.domain_name.empty()) {
    if (!name.empty() && lower(name) != lower(r.domain_name))
      throw command_error{"--name and --domain-name name the same domain: give one"};
    name = r.domain_name;
  }
  if (name.empty()) throw command_error{fmt::format("--name is required: which {}", gs.noun)};
  locked_file f;
  read_locked(g.config_file, f);
  std::string error;
  auto doc = config::edit::document::parse(f.text, error);
  if (!doc) throw command_error{fmt::format("{}: {}", g.config_file, error)};
  outcome o;
  o.action = verb;
  o.noun = gs.command;
  o.name = name;
  o.file = g.config_file;
  std::vector<key_edit> edits = edits_of(gs, r);
  auto entries = doc->entries(gs.table, error);
  if (!entries) throw command_error{fmt::format("{}: {}", g.config_file, error)};
  auto index = doc->find(gs.table, name);
  if (index) name = o.name = (*entries)[*index].name;  // as the file spells it
  auto fail = [&](std::string why) {
    o.errors.push_back(why);
    o.message = fmt::format("the change was refused; {} was not changed", g.config_file);
    finish(g, o);
  };
  if (verb == "new") {
    if (index) return fail(fmt::format("a {} named '{}' already exists", gs.noun, name));
    config::edit::key_values keys{{"name", value::string(name)}};
    for (auto& e : edits)
      if (e.v) keys.emplace_back(e.key, *e.v);
    if (!doc->append(gs.table, keys, error)) return fail(error);
    o.message = fmt::format("{} '{}' created in {}", gs.noun, name, g.config_file);
  } else {
    if (!index) return fail(fmt::format("there is no {} named '{}'", gs.noun, name));
    if (verb == "remove") {
      if (!doc->remove(gs.table, *index, error)) return fail(error);
      o.message = fmt::format("{} '{}' removed from {}", gs.noun, name, g.config_file);
    } else {
      if (!r.new_name.empty()) edits.insert(edits.begin(), {"name", value::string(r.new_name)});
      if (edits.empty()) return fail("nothing to set: give at least one option");
      for (const auto& e : edits) {
        bool done = e.v ? doc->set(gs.table, *index, e.key, *e.v, error) : doc->remove_key(gs.table, *index, e.key, error);
        if (!done) return fail(e.key + ": " + error);
      }
      o.message = fmt::format("{} '{}' changed in {}", gs.noun, name, g.config_file);
    }
  }
  apply(g, r.socket, f, doc->text(), o);
  finish(g, o);
}

// ---- get ----

std::string joined(const std::vector<std::string>& items, const char* sep = ",") {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

// (field, value, is_json_list) rows describing one entry of the loaded configuration.
using row = std::pair<std::string, std::vector<std::string>>;

std::vector<row> describe(const config::receive_connector& rc) {
  std::vector<std::string> b, ranges, perms;
  for (const auto& x : rc.bindings) b.push_back(x.to_string());
  for (const auto& x : rc.remote_ranges) ranges.push_back(x.to_string());
  const auto& p = rc.permissions;
  for (auto [on, word] : {std::pair{p.anonymous, "anonymous"}, {p.relay, "relay"}, {p.auth_required, "auth_required"},
                          {p.relay_authenticated, "relay_authenticated"}})
    if (on) perms.push_back(word);
  return {{"name", {rc.name}}, {"usage", {std::string(config::to_string(rc.type))}}, {"bindings", b},
          {"remote_ip_ranges", ranges}, {"permissions", perms}, {"max_message_size", {std::to_string(rc.max_message_size)}},
          {"max_recipients", {std::to_string(rc.max_recipients)}}, {"starttls", {std::string(config::to_string(rc.tls.starttls))}},
          {"banner", {rc.banner}}, {"protocol_log", {rc.protocol_log ? "true" : "false"}},
          {"max_header_size", {std::to_string(rc.max_header_size)}}, {"max_protocol_errors", {std::to_string(rc.max_errors)}},
          {"helo_required", {rc.helo_required ? "true" : "false"}},
          {"connection_timeout", {std::to_string(rc.timeouts.connection_s)}},
          {"connection_inactivity_timeout", {std::to_string(rc.timeouts.command_s)}},
          {"data_timeout", {std::to_string(rc.timeouts.data_s)}}, {"content_timeout", {std::to_string(rc.timeouts.content_s)}}};
}

std::vector<row> describe(const config::send_connector& sc) {
  std::vector<std::string> spaces, hosts;
  for (const auto& a : sc.address_spaces) spaces.push_back(a.domain + ";" + std::to_string(a.cost));
  for (const auto& h : sc.smart_hosts) hosts.push_back(h.to_string());
  static const char* tls_names[] = {"none", "opportunistic", "mandatory", "partner"};
  return {{"name", {sc.name}}, {"enabled", {sc.enabled ? "true" : "false"}}, {"address_spaces", spaces},
          {"routing", {sc.routing == route::routing_method::dns ? "dns" : "smarthost"}}, {"smart_hosts", hosts},
          {"source", sc.source_servers}, {"max_message_size", {std::to_string(sc.max_message_size)}},
          {"tls", {tls_names[static_cast<int>(sc.tls)]}}, {"port", {std::to_string(sc.port)}}, {"fqdn", {sc.helo}},
          {"tls_domain", {sc.tls_verify_name}}};
}

std::vector<row> describe(const config::accepted_domain& d) {
  static const char* types[] = {"authoritative", "internal-relay", "external-relay"};
  return {{"name", {d.name}}, {"domain_type", {types[static_cast<int>(d.type)]}},
          {"recipients", {d.recipients_file}}, {"mailbox", {std::string(config::to_string(d.mailbox))}},
          {"maildir_path", {d.maildir_path}}};
}

const std::set<std::string> list_fields = {"bindings", "remote_ip_ranges", "permissions", "address_spaces", "smart_hosts", "source"};

void run_get(const global_options& g, const group_spec& gs, const request& r) {
  if (g.config_file.empty()) throw command_error{"--config FILE is required: the file to read"};
  locked_file f;
  read_locked(g.config_file, f);
  std::string error;
  if (!config::edit::document::parse(f.text, error)) throw command_error{fmt::format("{}: {}", g.config_file, error)};
  auto loaded = config::load_string(f.text, g.config_file);
  if (!loaded) throw command_error{loaded.error_text()};
  std::vector<std::vector<row>> all;
  const std::string want = lower(r.name.empty() ? r.domain_name : r.name);
  auto take = [&](const auto& list) {
    for (const auto& x : list)
      if (want.empty() || lower(x.name) == want) all.push_back(describe(x));
  };
  if (gs.table == std::string("receive_connector")) take(loaded.value->receive_connectors);
  else if (gs.table == std::string("send_connector")) take(loaded.value->send_connectors);
  else take(loaded.value->accepted_domains);
  if (!want.empty() && all.empty()) throw command_error{fmt::format("there is no {} named '{}'", gs.noun, terminal_text(want))};
  if (g.json) {
    std::string out;
    for (const auto& rows : all) {
      std::string obj;
      for (const auto& [field, v] : rows)
        obj += (obj.empty() ? "" : ",") + json_string(field) + ":" + (list_fields.count(field) ? json_list(v) : json_string(v.empty() ? "" : v[0]));
      out += (out.empty() ? "{" : ",{") + obj + "}";
    }
    fmt::print("{}\n", want.empty() ? "[" + out + "]" : out);
    return;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (i) fmt::print("\n");
    std::size_t width = 18;
    for (const auto& [field, v] : all[i]) width = std::max(width, field.size() + 1);
    for (const auto& [field, v] : all[i])
      fmt::print("{:<{}} {}\n", field + ":", width, terminal_text(joined(v, ", ")));
  }
}

void add_group(CLI::App& app, global_options& g, const group_spec& gs) {
  std::string about = std::string(gs.noun) + "s of the configuration file (--config): get, new, set, remove";
  // Exchange options without a sluice key are not offered rather than silently ignored.
  if (std::string_view(gs.table) == "receive_connector")
    about += ". No --fqdn or --enabled: a receive connector greets with [server] hostname (or --banner) and is "
             "disabled by removing it. tls.sni entries (a list of tables) are edited in the file";
  auto* group = app.add_subcommand(gs.command, about);
  group->require_subcommand(1);
  for (const std::string verb : {"get", "new", "set", "remove"}) {
    auto r = std::make_shared<request>();
    std::string what = verb == "get" ? "list every " + std::string(gs.noun) + ", or the one --name names (effective values)"
                       : verb == "new" ? "add a " + std::string(gs.noun) + " (a name already used is refused)"
                       : verb == "set" ? "change keys of the " + std::string(gs.noun) + " --name names"
                                       : "remove the " + std::string(gs.noun) + " --name names with its comment";
    auto* cmd = group->add_subcommand(verb, what + (verb == "get" ? "" : "; the file is validated as sluiced would, "
                                                                 "written atomically and the running sluiced reloaded. "
                                                                 "Each option writes the key named in its help"));
    const bool domain = gs.table == std::string("accepted_domain");
    cmd->add_option("--name", r->name, domain ? "the domain (name)" : "name (its identity)");
    if (domain) cmd->add_option("--domain-name", r->domain_name, "the domain (name), as --name");
    if (verb == "get") {
      cmd->callback([&g, &gs, r] { run_get(g, gs, *r); });
      continue;
    }
    if (verb == "set" && !domain) cmd->add_option("--new-name", r->new_name, "name: renames it");
    if (verb == "new" || verb == "set")
      for (const auto& o : gs.options) {
        r->values.emplace_back();
        r->options.emplace_back(&o, cmd->add_option(o.flag, r->values.back(), o.help));
      }
    cmd->add_option("--socket", r->socket, "admin socket (default: admin.sock beside the queue directory)");
    cmd->callback([&g, &gs, verb, r] { run_edit(g, gs, verb, *r); });
  }
}

}  // namespace

void add_connector_commands(CLI::App& app, global_options& g) {
  add_group(app, g, receive_group);
  add_group(app, g, send_group);
  add_group(app, g, domain_group);
}

}  // namespace sluice::ctl
