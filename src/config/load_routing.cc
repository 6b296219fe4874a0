// load_routing.cc: where mail goes: [[accepted_domain]] (with recipient lists) and
// [[send_connector]] (address spaces, smart hosts, TLS, size and delivery limits, AUTH).
// Untrusted input: the configuration file, the recipient lists and smart-host credential
// files it names (admin-written, but typos must be reported with file, line, column and
// key, never silently ignored).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sys/stat.h>
#include <unordered_map>

#include "config/reader.h"
#include "route/hop_key.h"

namespace sluice::config::detail {
namespace {

namespace fs = std::filesystem;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

void load_recipients(context& ctx, const std::string& key, accepted_domain& d) {
  std::ifstream in(d.recipients_file);
  d.has_recipient_list = true;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string_view v = line;
    if (auto hash = v.find('#'); hash != std::string_view::npos) v = v.substr(0, hash);
    v = trim(v);
    if (v.empty()) continue;
    auto at = v.rfind('@');
    bool blank = v.find_first_of(" \t<>") != std::string_view::npos;
    if (at == std::string_view::npos || at == 0 || at + 1 == v.size() || blank ||
        !is_hostname(v.substr(at + 1))) {
      ctx.error_at(d.recipients_file, number, 0, key,
                   squote(v) + " is not an e-mail address (one local@domain per line)");
      continue;
    }
    std::string address = lower(v);
    // A line for another domain could never match: most likely a copy-paste slip.
    std::string_view domain = std::string_view(address).substr(at + 1);
    bool in_domain = d.is_wildcard() ? (domain.size() > d.name.size() - 1 &&
                                        domain.substr(domain.size() - (d.name.size() - 1)) == d.name.substr(1))
                                     : domain == d.name;
    if (!d.name.empty() && !in_domain) {
      ctx.error_at(d.recipients_file, number, 0, key,
                   squote(v) + " is not in the accepted domain " + squote(d.name));
      continue;
    }
    d.recipients.insert(std::move(address));
  }
}

// "host", "host:port", "[192.0.2.1]:port", "[2001:db8::1]:port"; port defaults to the
// connector's.
std::optional<smart_host> parse_smart_host(std::string_view text, uint16_t default_port) {
  smart_host h;
  h.port = default_port;
  std::string_view host = text, port;
  if (!text.empty() && text.front() == '[') {
    if (!split_bracketed(text, host, port)) return std::nullopt;
    if (!ip_address::parse(host)) return std::nullopt;  // "[1.2.3.4]" and "[2001:db8::1]" only
  } else {
    auto colon = text.find(':');
    if (colon != std::string_view::npos) {
      if (text.find(':', colon + 1) != std::string_view::npos) return std::nullopt;  // bare IPv6
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
    }
    if (!is_hostname(host) && !ip_address::parse(host)) return std::nullopt;
  }
  if (port.data() != nullptr) {
    auto p = parse_port(port);
    if (!p) return std::nullopt;
    h.port = *p;
  }
  h.host = lower(host);
  return h;
}

void read_address_spaces(table_reader& r, const toml::table& t, send_connector& sc) {
  const toml::array* arr = r.read_array("address_spaces");
  if (!arr) {
    if (!t.get("address_spaces")) {
      r.missing("address_spaces", "the domains it sends to, e.g. [\"*\"] or [{ domain = \"contoso.com\", cost = 5 }]");
    }
    return;
  }
  if (arr->empty()) r.value_error("address_spaces", *arr, "must list at least one domain");
  size_t index = 0;
  for (const toml::node& el : *arr) {
    std::string key = "address_spaces[" + std::to_string(index++) + "]";
    address_space as;
    const toml::node* domain_node = &el;
    bool ok = true;
    if (auto s = el.as_string()) {
      std::string_view v = s->get();
      if (auto semi = v.find(';'); semi != std::string_view::npos) {
        std::string_view cost = trim(v.substr(semi + 1));
        v = trim(v.substr(0, semi));
        unsigned n = 0;
        ok = !cost.empty() && cost.size() <= 3;
        for (char ch : cost) {
          if (ch < '0' || ch > '9') ok = false;
          else n = n * 10 + static_cast<unsigned>(ch - '0');
        }
        if (!ok || n < 1 || n > 100) {
          r.ctx().error(el.source(), r.key_path(key),
                        squote(s->get()) + ": the cost after ';' must be between 1 and 100");
          continue;
        }
        as.cost = n;
      }
      as.domain = std::string(v);
    } else if (auto et = el.as_table()) {
      table_reader er(r.ctx(), *et, r.key_path(key));
      if (!er.read_string("domain", as.domain)) {
        if (!et->get("domain")) er.missing("domain", "\"contoso.com\", \"*.contoso.com\" or \"*\"");
        ok = false;
      } else {
        domain_node = et->get("domain");
      }
      er.read_uint("cost", as.cost, 1, 100);
      er.finish();
      if (!ok) continue;
    } else {
      r.ctx().error(el.source(), r.key_path(key),
                    "expected a domain string (\"contoso.com;5\") or a table { domain = ..., cost = ... }, got " +
                        type_name(el));
      continue;
    }
    if (as.domain != "*" && !is_domain_pattern(as.domain, true)) {
      r.ctx().error(domain_node->source(), r.key_path(key),
                    squote(as.domain) + " is not a domain, a wildcard such as *.contoso.com, or *" +
                        idn_hint(as.domain));
      continue;
    }
    as.domain = lower(as.domain);
    bool dup = false;
    for (const auto& other : sc.address_spaces) dup = dup || other.domain == as.domain;
    if (dup) {
      r.ctx().error(domain_node->source(), r.key_path(key), "duplicate address space " + squote(as.domain));
      continue;
    }
    sc.address_spaces.push_back(std::move(as));
  }
}

// The smart host's AUTH credentials: one line "user:password". The file holds a password
// in the clear, so one that everybody may read is refused rather than used.
void load_credentials(table_reader& r, const toml::node& n, send_connector& sc) {
  const std::string& file = sc.auth_credentials;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    r.value_error("auth_credentials", n, "cannot read " + squote(file) + ": " + std::strerror(errno));
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    r.value_error("auth_credentials", n, squote(file) + " is not a regular file");
    return;
  }
  if (st.st_mode & S_IROTH) {
    r.value_error("auth_credentials", n,
                  squote(file) + " is readable by everyone; it holds a password (chmod o-r " + file + ")");
    return;
  }
  std::ifstream in(file);
  if (!in) {
    r.value_error("auth_credentials", n, "cannot read " + squote(file) + ": " + std::strerror(errno));
    return;
  }
  std::string line, extra;
  std::getline(in, line);
  while (std::getline(in, extra)) {
    if (!trim(extra).empty()) {
      r.value_error("auth_credentials", n, squote(file) + " must hold one line user:password, it has more");
      return;
    }
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  auto colon = line.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == line.size()) {
    r.value_error("auth_credentials", n, squote(file) + " must hold one line user:password");
    return;
  }
  sc.auth_user = line.substr(0, colon);
  sc.auth_password = line.substr(colon + 1);
}

// The outbound TLS and AUTH keys, after tls and routing are known.
void read_send_security(table_reader& r, const toml::table& t, send_connector& sc) {
  if (r.read_string("tls_verify_name", sc.tls_verify_name)) {
    const toml::node& n = *t.get("tls_verify_name");
    if (!is_hostname(sc.tls_verify_name)) {
      r.value_error("tls_verify_name", n,
                    squote(sc.tls_verify_name) + " is not a host name" + idn_hint(sc.tls_verify_name));
    } else if (sc.tls != route::tls_policy::partner) {
      r.value_error("tls_verify_name", n, "is only used with tls = \"partner\"");
    }
    sc.tls_verify_name = lower(sc.tls_verify_name);
  }
  if (r.read_path("tls_ca", sc.tls_ca, false) && sc.tls != route::tls_policy::partner &&
      sc.tls != route::tls_policy::mandatory) {
    r.value_error("tls_ca", *t.get("tls_ca"), "is only used with tls = \"mandatory\" or \"partner\"");
  }
  if (r.read_path("auth_credentials", sc.auth_credentials, false)) {
    const toml::node& n = *t.get("auth_credentials");
    if (sc.routing != route::routing_method::smart_host) {
      r.value_error("auth_credentials", n, "is only used with routing = \"smarthost\"");
    } else {
      load_credentials(r, n, sc);
    }
  }
  if (r.read_string("helo", sc.helo)) {
    if (!is_hostname(sc.helo)) {
      r.value_error("helo", *t.get("helo"), squote(sc.helo) + " is not a valid host name" + idn_hint(sc.helo));
    }
    sc.helo = lower(sc.helo);
  }
  bool chunking = true;
  if (r.read_bool("chunking", chunking)) sc.chunking = chunking;
}

// Why a maildir_path template is refused, or "" when it is usable. It must keep every
// Maildir under maildir_root whatever the recipient: the expansion of {domain} and {local}
// is escaped into one path component each, so only the template itself could climb out.
std::string maildir_template_problem(std::string_view t) {
  if (t.substr(0, 7) != "{root}/") return "must start with {root}/ (every Maildir stays under maildir_root)";
  bool has_local = false;
  for (size_t i = 0; i < t.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(t[i]);
    if (ch < 0x20 || ch == 0x7f) return "contains a control character";
    if (ch == '}') return "has a '}' without its '{'";
    if (ch != '{') continue;
    size_t close = t.find('}', i);
    if (close == std::string_view::npos) return "has a '{' without its '}'";
    std::string_view name = t.substr(i + 1, close - i - 1);
    // The root anywhere but first could follow a "." or ".." of the template's own ("..{root}"):
    // found by tests/fuzz/maildir.
    if (name == "root" && i != 0) return "may name {root} only at its start";
    if (name == "local") has_local = true;
    else if (name != "root" && name != "domain")
      return "unknown placeholder {" + std::string(name) + "} (the placeholders are {root}, {domain} and {local})";
    i = close;
  }
  if (!has_local) return "must contain {local}, or every recipient would share one Maildir";
  for (size_t start = 0; start <= t.size();) {
    size_t end = std::min(t.find('/', start), t.size());
    std::string_view part = t.substr(start, end - start);
    if (part == "." || part == "..") return "must not contain '.' or '..' components";
    start = end + 1;
  }
  return "";
}

// lmtp = "addr:port", "[addr]:port" or an absolute path (a Unix socket). The port is
// required: LMTP has no well-known one (RFC 2033 forbids port 25).
bool parse_lmtp_target(std::string_view text, accepted_domain& d) {
  if (!text.empty() && text.front() == '/') {
    d.lmtp_socket = std::string(text);
    return true;
  }
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    if (!split_bracketed(text, host, port)) return false;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return false;  // a bare IPv6 needs brackets
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto address = ip_address::parse(host);
  auto p = parse_port(port);
  if (!address || !p) return false;
  d.lmtp_address = *address;
  d.lmtp_port = *p;
  return true;
}

// sun_path holds 108 bytes on Linux, the terminating NUL included.
constexpr size_t max_unix_socket_path = 107;

// mailbox and the keys of the kind it names, after type is known.
void read_local_delivery(table_reader& r, const toml::table& t, accepted_domain& d) {
  bool mailbox_known = r.read_enum("mailbox", d.mailbox, {{"maildir", mailbox_kind::maildir}, {"lmtp", mailbox_kind::lmtp}}) ||
                       !t.get("mailbox");
  if (d.mailbox != mailbox_kind::none && d.type == route::domain_kind::external_relay) {
    r.value_error("mailbox", *t.get("mailbox"),
                  "is only for authoritative and internal_relay domains: an external_relay domain's mail "
                  "is relayed onward, never delivered here");
  }
  auto only_with = [&](std::string_view key, mailbox_kind kind) {
    if (d.mailbox == kind) return false;
    if (!mailbox_known) return true;  // the bad mailbox value is the error worth reading
    r.value_error(key, *t.get(key), "is only used with mailbox = \"" + std::string(to_string(kind)) + "\"");
    return true;
  };
  if (r.read_string("maildir_root", d.maildir_root)) {
    const toml::node& n = *t.get("maildir_root");
    std::string& root = d.maildir_root;
    if (only_with("maildir_root", mailbox_kind::maildir)) {
    } else if (root.empty() || root.front() != '/') {
      r.value_error("maildir_root", n, squote(root) + " is not an absolute path");
    } else if (std::any_of(root.begin(), root.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20; })) {
      r.value_error("maildir_root", n, "contains a control character");
    } else {
      root = fs::path(root).lexically_normal().string();
      while (root.size() > 1 && root.back() == '/') root.pop_back();
    }
  } else if (d.mailbox == mailbox_kind::maildir && !t.get("maildir_root")) {
    r.missing("maildir_root", "the absolute directory the Maildirs are under, e.g. \"/var/mail/vhosts\"");
  }
  if (r.read_string("maildir_path", d.maildir_path) && !only_with("maildir_path", mailbox_kind::maildir)) {
    if (std::string why = maildir_template_problem(d.maildir_path); !why.empty())
      r.value_error("maildir_path", *t.get("maildir_path"), squote(d.maildir_path) + " " + why);
  }
  if (r.read_string("lmtp", d.lmtp_target) && !only_with("lmtp", mailbox_kind::lmtp)) {
    const toml::node& n = *t.get("lmtp");
    if (!parse_lmtp_target(d.lmtp_target, d)) {
      r.value_error("lmtp", n,
                    squote(d.lmtp_target) +
                        " is not IP:port, [IPv6]:port or the absolute path of a Unix socket (\"/run/dovecot/lmtp\")");
    } else if (d.lmtp_socket.size() > max_unix_socket_path) {
      r.value_error("lmtp", n, "is " + std::to_string(d.lmtp_socket.size()) + " bytes long; a Unix socket path holds " +
                                   std::to_string(max_unix_socket_path));
    }
  } else if (d.mailbox == mailbox_kind::lmtp && !t.get("lmtp")) {
    r.missing("lmtp", "\"127.0.0.1:24\", \"[::1]:24\" or a Unix socket such as \"/run/dovecot/lmtp\"");
  }
}

std::string name_too_long(std::string_view name, std::string_view key_format) {
  return "is " + std::to_string(name.size()) + " bytes long: its next-hop key \"" + std::string(key_format) +
         "\" must fit in " + std::to_string(route::max_hop_key_size) + " bytes";
}

}  // namespace

void read_accepted_domains(table_reader& top, config& c) {
  const toml::array* arr = read_table_array(top, "accepted_domain");
  if (!arr) return;
  size_t index = 0;
  std::unordered_map<std::string, size_t> position_of_name;  // lower-case name -> c.accepted_domains
  for (const toml::node& el : *arr) {
    const toml::table& t = *el.as_table();
    std::string path = "accepted_domain[" + std::to_string(index++) + "]";
    table_reader r(top.ctx(), t, path);
    accepted_domain d;
    bool named = false;
    if (r.read_string("name", d.name)) {
      if (!is_domain_pattern(d.name, true)) {
        r.value_error("name", *t.get("name"),
                      squote(d.name) + " is not a domain name (or a wildcard such as *.example.com)" +
                          idn_hint(d.name));
        d.name.clear();  // so its recipient list is not checked against a bad name
      } else {
        d.name = lower(d.name);
        named = true;
        if (route::longest_local_hop_key(d.name) > route::max_hop_key_size) {
          r.value_error("name", *t.get("name"), name_too_long(d.name, "local:<name>"));
          named = false;
        }
      }
    } else if (!t.get("name")) {
      r.missing("name", "the domain, e.g. name = \"example.com\"");
    }
    r.read_enum("type", d.type, {{"authoritative", route::domain_kind::authoritative},
                                 {"internal_relay", route::domain_kind::internal_relay},
                                 {"external_relay", route::domain_kind::external_relay}});
    std::string raw;
    if (r.read_string("recipients", raw)) {
      d.recipients_file = top.ctx().resolve(raw);
      std::error_code ec;
      if (raw.empty()) {
        r.value_error("recipients", *t.get("recipients"), "must be a file name");
      } else if (!fs::is_regular_file(d.recipients_file, ec)) {
        std::ifstream probe(d.recipients_file);
        std::string why = probe ? "is not a regular file" : std::strerror(errno);
        r.value_error("recipients", *t.get("recipients"),
                      "cannot read recipients file " + squote(d.recipients_file) + ": " + why);
      } else {
        load_recipients(top.ctx(), r.key_path("recipients"), d);
      }
    }
    read_local_delivery(r, t, d);
    r.finish();
    if (!named) continue;
    if (auto it = position_of_name.find(d.name); it != position_of_name.end()) {
      r.value_error("name", *t.get("name"),
                    "duplicate accepted domain " + squote(d.name) + " (first defined as accepted_domain[" +
                        std::to_string(it->second) + "])");
      continue;
    }
    position_of_name.emplace(d.name, c.accepted_domains.size());
    c.accepted_domains.push_back(std::move(d));
  }
}

void read_send_connectors(table_reader& top, config& c) {
  const toml::array* arr = read_table_array(top, "send_connector");
  if (!arr) return;
  size_t index = 0;
  std::vector<std::string> paths;
  for (const toml::node& el : *arr) {
    const toml::table& t = *el.as_table();
    std::string path = "send_connector[" + std::to_string(index++) + "]";
    table_reader r(top.ctx(), t, path);
    send_connector sc;
    sc.line = static_cast<int>(t.source().begin.line);
    sc.max_message_size = c.server.max_message_size;
    if (!r.read_string("name", sc.name) && !t.get("name")) r.missing("name", "a unique name such as \"Internet\"");
    if (t.get("name") && sc.name.empty() && t.get("name")->is_string()) {
      r.value_error("name", *t.get("name"), "must not be empty");
    }
    r.read_bool("enabled", sc.enabled);
    r.read_uint("port", sc.port, 1, 65535);
    read_address_spaces(r, t, sc);
    r.read_enum("routing", sc.routing,
                {{"dns", route::routing_method::dns}, {"smarthost", route::routing_method::smart_host}});
    std::vector<std::pair<std::string, const toml::node*>> items;
    if (r.read_strings("smart_hosts", items)) {
      for (auto& [text, n] : items) {
        if (auto h = parse_smart_host(text, sc.port)) {
          sc.smart_hosts.push_back(*h);
        } else {
          r.value_error("smart_hosts", *n, squote(text) + " is not a valid host or host:port");
        }
      }
    }
    if (sc.routing == route::routing_method::smart_host && sc.smart_hosts.empty() && items.empty()) {
      const toml::node* n = t.get("routing");
      r.ctx().error(n ? n->source() : t.source(), r.key_path("smart_hosts"),
                    "is required when routing = \"smarthost\" (e.g. smart_hosts = [\"relay.example.com:25\"])");
    }
    if (sc.routing == route::routing_method::dns && !items.empty()) {
      r.value_error("smart_hosts", *t.get("smart_hosts"),
                    "is only used with routing = \"smarthost\" (routing is \"dns\")");
    }
    r.read_size("max_message_size", sc.max_message_size);
    r.read_enum("tls", sc.tls, {{"none", route::tls_policy::none},
                                {"opportunistic", route::tls_policy::opportunistic},
                                {"mandatory", route::tls_policy::mandatory},
                                {"partner", route::tls_policy::partner}});
    read_send_security(r, t, sc);
    read_limits(r, sc.limits);
    items.clear();
    if (r.read_strings("source_servers", items)) {
      for (auto& [text, n] : items) {
        if (text.empty()) r.value_error("source_servers", *n, "must not be empty");
        else sc.source_servers.push_back(text);
      }
    }
    r.finish();
    // The name is part of every delivery queue key of the connector, and the store keys
    // queues by that text: a name it cannot hold would make every message routed here
    // fail at categorization, so it is refused now rather than discovered per message.
    if (!sc.name.empty() && route::longest_hop_key(sc.routing, sc.name) > route::max_hop_key_size)
      r.value_error("name", *t.get("name"),
                    name_too_long(sc.name, sc.routing == route::routing_method::smart_host
                                               ? "smarthost:<name>"
                                               : "dns:<name>:<recipient domain of up to 255 bytes>"));
    for (size_t i = 0; i < c.send_connectors.size(); ++i) {
      if (!sc.name.empty() && lower(c.send_connectors[i].name) == lower(sc.name)) {
        r.value_error("name", *t.get("name"),
                      "duplicate send connector name " + squote(sc.name) + " (also " + paths[i] + " at line " +
                          std::to_string(c.send_connectors[i].line) + ")");
      }
    }
    paths.push_back(path);
    c.send_connectors.push_back(std::move(sc));
  }
}

}  // namespace sluice::config::detail
