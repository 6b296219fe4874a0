// config.h: the validated, immutable server configuration and its loader.
// Untrusted input: none at run time; the TOML file and recipient lists are admin-supplied
// but are validated strictly, and every mistake is reported with file, line and key.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/ip_range.h"
#include "route/kinds.h"
#include "rules/spec.h"

namespace sluice::config {

// ---------------------------------------------------------------------------------------
// [server]

struct server_settings {
  std::string hostname;             // default: gethostname()
  unsigned workers = 1;             // "auto" is resolved to the number of cores (1-256)
  std::string queue_dir = "./var/queue";
  uint64_t max_message_size = 36ull << 20;
  uint64_t map_size = 8ull << 30;   // LMDB map size
  // Message bytes all sessions may hold in memory at once (DATA/BDAT); past it 452 4.3.1.
  uint64_t max_in_flight_bytes = 512ull << 20;
  std::string pickup_dir;           // "" = pickup disabled
  uint32_t pickup_interval_ms = 1000;
  std::string log_dir = "./var/log";
  // Rotation of every log under log_dir (protocol logs, tracking.csv).
  uint64_t log_max_size = 100ull << 20;  // rotate before a file passes this; 0 = never by size
  uint32_t log_keep = 10;                // rotated files kept per log
  uint32_t log_max_age_days = 30;        // rotated files older than this are deleted; 0 = kept
  bool log_rotate_daily = true;          // a new file each UTC day as well
  uint32_t max_received_headers = 100;  // more Received: headers than this = mail loop
  // Where certificates configured as "auto" are generated: queue_dir/../tls.
  std::string auto_tls_dir;
  // Who the daemon runs as once it listens (src/main/privileges.h). Started as root, ""
  // means "sluice"; started as anyone else, "" means that user and any other name is an error.
  std::string user;
  std::string group;  // "" = the user's primary group
  bool allow_root = false;  // started as root with user unset or "root": stay root (warned)
  // SIGTERM: how long transactions under way and deliveries on the wire may take to finish.
  uint32_t drain_timeout_s = 30;
};

// ---------------------------------------------------------------------------------------
// [metrics]

struct metrics_settings {
  // The Prometheus endpoint (GET /metrics, /metrics.json): "IP:port"; "" = off. Loopback
  // by default: the numbers name connectors and destinations, which are nobody else's business.
  std::string listen = "127.0.0.1:9925";
  bool non_loopback = false;  // listen is set to a non-loopback address (sluiced warns)
};

// ---------------------------------------------------------------------------------------
// [[accepted_domain]]

// Where the recipients of an accepted domain that are delivered on this host end up.
// none: the domain's local mail waits in its queue (no local delivery configured yet).
enum class mailbox_kind : uint8_t { none, maildir, lmtp };  // absent | "maildir" | "lmtp"

struct accepted_domain {
  std::string name;        // lower-case; "example.com" or "*.example.com"
  route::domain_kind type = route::domain_kind::authoritative;
  std::string recipients_file;  // resolved path, "" if none
  bool has_recipient_list = false;  // false: every recipient exists
  std::unordered_set<std::string> recipients;  // lower-cased full addresses
  // Local delivery; only on authoritative and internal_relay domains.
  mailbox_kind mailbox = mailbox_kind::none;
  std::string maildir_root;  // maildir: absolute, normalized, without a trailing '/'
  // maildir: starts with "{root}/", contains {local}; {domain} optional; no "." or ".."
  // components, so the expansion (delivery::maildir_for) stays under maildir_root.
  std::string maildir_path = "{root}/{domain}/{local}/Maildir";
  std::string lmtp_target;   // lmtp: as written ("127.0.0.1:24", "[::1]:24", "/run/dovecot/lmtp")
  std::string lmtp_socket;   // lmtp over a Unix socket: its absolute path; "" = TCP
  ip_address lmtp_address;   // lmtp over TCP
  uint16_t lmtp_port = 0;    // lmtp over TCP; 0 for a Unix socket
  bool is_wildcard() const { return name.size() > 2 && name[0] == '*' && name[1] == '.'; }
};

// ---------------------------------------------------------------------------------------
// [[receive_connector]]

// Presets, as Exchange 2007's connector usage types (Type on New-ReceiveConnector).
// A preset only supplies defaults: every key written in the file overrides it.
//
//   type        anonymous relay auth_required relay_authenticated starttls  client cert
//   internet    yes       no    no            no                  offered   no
//   enterprise  yes       yes   no            no                  offered   no
//   partner     yes       no    no            no                  required  required
//   client      no        no    yes           yes                 required  no
//   custom      no        no    no            no                  off       no
//
// internet: anyone may submit mail for accepted domains, nobody may relay (an open relay
//   is the classic mistake). enterprise: hosts of our own organisation, trusted to relay
//   because the remote ranges say who they are. partner: domain security, i.e. mutual
//   TLS; the peer proves itself with a certificate. client: users' mail programs on the
//   submission port (587); they must authenticate and then may send anywhere.
//   custom: nothing implied; set what you need.
// Limits (max_recipients, max_connections...) are the same for every preset.
enum class connector_type { internet, enterprise, partner, client, custom };
enum class starttls_mode { off, offered, required };

struct permission_set {
  bool anonymous = false;            // unauthenticated clients may submit to accepted domains
  bool relay = false;                // anyone matching this connector may relay
  bool auth_required = false;        // AUTH before MAIL FROM
  bool relay_authenticated = false;  // authenticated clients may relay
};

struct timeout_settings {
  // Waiting for a command line, from the reply before it: bytes that do not complete the
  // line do not extend it, so a client trickling a byte a second cannot hold a session.
  uint32_t command_s = 300;
  uint32_t data_s = 600;        // silence inside DATA or between BDAT chunks
  uint32_t content_s = 1200;    // the whole content of one message, DATA or BDAT to its end
  uint32_t connection_s = 1800;
};

struct sni_certificate {
  std::string name;         // lower-case host name, "*.example.com" allowed
  std::string certificate;  // resolved path or "auto"
  std::string key;
};

struct tls_settings {
  std::string certificate = "auto";  // resolved path, or "auto": self-signed in auto_tls_dir
  std::string key = "auto";
  starttls_mode starttls = starttls_mode::off;
  std::string min_version = "1.2";   // "1.2" or "1.3"
  std::string ciphers;               // OpenSSL cipher list; "" = library default
  bool require_client_certificate = false;
  std::string client_ca;             // resolved path; "" = system trust store
  std::vector<sni_certificate> sni;
  bool is_auto() const { return certificate == "auto"; }
};

struct auth_settings {
  std::vector<std::string> mechanisms{"PLAIN", "LOGIN"};  // upper-case
  std::string credentials;           // resolved path; "" = no AUTH possible
  bool allow_plaintext_on_loopback = false;  // AUTH without TLS from 127.0.0.0/8, ::1
  uint32_t max_failures_per_ip = 5;
};

struct receive_connector {
  std::string name;
  connector_type type = connector_type::custom;
  std::vector<binding> bindings;
  std::vector<ip_range> remote_ranges;
  uint64_t max_message_size = 0;     // default: server.max_message_size
  // The header section of a message (Exchange's MaxHeaderSize); larger gets 552 5.3.4. 0 = none.
  uint64_t max_header_size = 128u << 10;
  uint32_t max_recipients = 200;
  uint32_t max_connections = 1000;
  uint32_t max_connections_per_ip = 100;
  uint32_t max_errors = 10;
  bool helo_required = false;
  permission_set permissions;
  std::string banner;                // "" = smtpd's default greeting
  bool protocol_log = false;
  timeout_settings timeouts;
  tls_settings tls;
  auth_settings auth;
  int line = 0;                      // where it is defined, for messages
};

struct address_space {
  std::string domain;  // lower-case: "contoso.com", "*.contoso.com" or "*"
  uint32_t cost = 1;   // 1-100; lower wins among equally specific matches
};

struct smart_host {
  std::string host;    // host name (lower-case) or IP literal without brackets
  uint16_t port = 25;
  std::string to_string() const;
};

// ---------------------------------------------------------------------------------------
// Delivery shaping, shared by [delivery], [[delivery.domain]] and [[send_connector]]

enum class reconnect_policy : uint8_t { next_host, same_host, end };  // "next_host" | "same_host" | "end"

// Per-destination shaping. Every field optional at the override levels (send connector,
// domain): unset = inherit.
struct delivery_limits {
  uint32_t max_connections = 20;              // concurrent connections per site (MX set) or smart-host set
  uint32_t max_messages_per_connection = 100;
  uint32_t max_recipients_per_message = 100;  // RCPTs per transaction; more are split into further transactions
  double connection_rate = 0;                 // new connections per second per site; 0 = unlimited
  double message_rate = 0;                    // messages per second per site; 0 = unlimited
  uint32_t failures_before_suspend = 5;       // connection failures in a row that suspend the site
  uint32_t suspend_s = 300;                   // how long it stays suspended
};

struct delivery_limits_override {  // the same fields as std::optional
  std::optional<uint32_t> max_connections, max_messages_per_connection, max_recipients_per_message,
      failures_before_suspend, suspend_s;
  std::optional<double> connection_rate, message_rate;
  delivery_limits apply(delivery_limits base) const;  // base with the set fields replaced
  bool empty() const;                                  // no field set
};

struct domain_override {
  std::string domain;  // lower-case, exact (no wildcards)
  delivery_limits_override limits;
  int line = 0;
};

struct delivery_timeouts {  // RFC 5321 4.5.3.2; seconds in the file
  uint32_t connect_s = 30, greeting_s = 300, helo_s = 300, starttls_s = 300, mail_s = 300, rcpt_s = 300,
           data_s = 120, data_block_s = 180, final_dot_s = 600, rset_s = 120, quit_s = 60;
};

struct delivery_settings {                    // [delivery]
  uint32_t max_outbound_connections = 1000;   // all sites together
  uint32_t max_addresses = 5;                 // addresses tried per delivery attempt (Postfix smtp_mx_address_limit)
  uint32_t max_sessions = 2;                  // sessions (connections that got a greeting) per attempt (smtp_mx_session_limit)
  uint32_t idle_connections = 20;             // idle connections kept per site for reuse (as many as max_connections)
  uint32_t idle_timeout_s = 5;                // an idle connection is QUIT after this
  uint32_t retry_first_s = 300;               // first retry after a temporary failure
  uint32_t retry_max_s = 3600;                // longest interval between retries
  uint64_t expire_after_s = 5 * 86400;        // message lifetime ("5d", "120h", "3600s" or a number of seconds)
  uint32_t tls_broken_remember_s = 3600;      // opportunistic: a host whose handshake failed is tried in plaintext
  reconnect_policy reconnect = reconnect_policy::next_host;
  // BDAT (RFC 3030) to next hops offering CHUNKING; false: DATA everywhere (BINARYMIME mail
  // then fails 5.6.3). A send connector's own `chunking` wins.
  bool chunking = true;
  std::string helo;                           // EHLO name; default server.hostname
  delivery_limits limits;                     // [delivery] keys of the same names
  delivery_timeouts timeouts;                 // [delivery.timeouts]
  std::vector<domain_override> domains;       // [[delivery.domain]] name = "...", plus any limit keys

  // The override for a recipient domain (lower-case), or nullptr.
  const domain_override* find_domain(std::string_view domain) const;
};

// ---------------------------------------------------------------------------------------
// [dns]

struct dns_settings {                         // [dns]
  std::vector<std::string> servers;           // "127.0.0.1:5353", "192.0.2.53", "[::1]:53"; empty = /etc/resolv.conf
  uint32_t timeout_ms = 5000;
  uint32_t tries = 2;
  uint32_t negative_ttl_s = 60;
  uint32_t max_ttl_s = 86400;
  bool ipv6 = true;
};

// A [dns] servers entry: "192.0.2.53", "192.0.2.53:5353", "::1", "[::1]", "[::1]:53".
// A port needs brackets around an IPv6 address; the port defaults to 53.
struct dns_server {
  ip_address address;
  uint16_t port = 53;
  static std::optional<dns_server> parse(std::string_view text);
};

// ---------------------------------------------------------------------------------------
// [dsn]

struct dsn_settings {                   // [dsn]
  uint32_t delay_after_s = 14400;       // a delay report once mail has waited this long; 0 = never
  bool delay_without_notify = true;     // recipients that gave no NOTIFY get delay reports too
  uint32_t expire_after_s = 86400;      // queue lifetime of null-sender mail (Postfix bounce_queue_lifetime)
  uint64_t return_content_limit = 50000;  // larger originals are returned as headers only
  std::string reporting_mta;            // Reporting-MTA and MAILER-DAEMON@ name; server.hostname if unset
};

// ---------------------------------------------------------------------------------------
// [[send_connector]]

struct send_connector {
  std::string name;
  bool enabled = true;
  std::vector<address_space> address_spaces;
  route::routing_method routing = route::routing_method::dns;  // "dns" or "smarthost"
  std::vector<smart_host> smart_hosts;
  uint64_t max_message_size = 0;     // default: server.max_message_size
  route::tls_policy tls = route::tls_policy::opportunistic;
  std::vector<std::string> source_servers;
  uint16_t port = 25;
  delivery_limits_override limits;   // the limit keys directly in the [[send_connector]] table
  std::string tls_verify_name;       // "" = the MX host name / smart host name (partner TLS)
  std::string tls_ca;                // resolved path; "" = system store
  std::string auth_credentials;      // resolved path of a "user:password" file; smarthost only
  std::string auth_user, auth_password;  // read from auth_credentials by the loader
  std::string helo;                  // "" = delivery.helo
  std::optional<bool> chunking;      // unset = delivery.chunking
  int line = 0;
};

// ---------------------------------------------------------------------------------------

struct config {
  std::string source;  // the file it came from, as given
  server_settings server;
  std::vector<accepted_domain> accepted_domains;  // the first one is the default domain
  std::vector<receive_connector> receive_connectors;
  std::vector<send_connector> send_connectors;
  delivery_settings delivery;
  dns_settings dns;
  dsn_settings dsn;
  metrics_settings metrics;
  // [[transport_rule]], in file order (evaluation order). Connector names in route_via and
  // received_on are rewritten to the connectors' own spelling, so exact comparison works.
  std::vector<rules::rule_spec> transport_rules;

  // The connector governing a session accepted on local:local_port from peer: among the
  // connectors with a binding matching the local endpoint, the one with the smallest
  // remote range containing the peer. Ties: an exact binding beats a wildcard binding,
  // then the connector defined first. nullptr: refuse the session (554).
  const receive_connector* select_receive_connector(const ip_address& local, uint16_t local_port,
                                                    const ip_address& peer) const;
  // Every distinct binding, in order of first appearance.
  std::vector<binding> all_bindings() const;

  // Which accepted domain a recipient belongs to is route::table's decision (built from
  // this by generation::build_route_table), not the configuration's.
  const accepted_domain* default_domain() const {
    return accepted_domains.empty() ? nullptr : &accepted_domains.front();
  }
  const receive_connector* find_receive_connector(std::string_view name) const;
  const send_connector* find_send_connector(std::string_view name) const;
};

// ---------------------------------------------------------------------------------------
// Loading

struct config_error {
  std::string file;     // config file or recipients file
  int line = 0;         // 1-based; 0 = unknown
  int column = 0;       // 1-based; 0 = unknown
  std::string key;      // "receive_connector[1].bindings"; "" if not about one key
  std::string message;
  // "etc/sluice.toml:12:5: receive_connector[1].bindings: '1.2.3.4:99999' is not a valid IP:port"
  std::string to_string() const;
};

// Either a config or at least one error (every problem found, in file order, capped).
struct load_result {
  std::shared_ptr<const config> value;
  std::vector<config_error> errors;

  bool ok() const { return value != nullptr; }
  explicit operator bool() const { return ok(); }
  const config_error& error() const { return errors.front(); }  // only if !ok()
  std::string error_text() const;  // every error's to_string(), one per line
};

// Reads and validates path. Relative input files named inside it (recipients, TLS
// certificates and keys, credentials) are resolved against the file's directory;
// directories (queue_dir, log_dir, pickup_dir) are left relative to the working
// directory, where `make run` starts the daemon.
load_result load_file(const std::string& path);
// The same from memory: name is used in messages, base_dir resolves relative input files
// ("" = the directory part of name).
load_result load_string(std::string_view text, std::string_view name, std::string_view base_dir = "");

// "36MB", "36M", "36MiB", "512k", "1G", "1048576": binary multiples, case-insensitive.
// nullopt on junk, overflow or zero.
std::optional<uint64_t> parse_size(std::string_view text);
// Seconds: "30s", "5m", "1h", "5d" or a bare number of seconds ("90"); nullopt on junk or
// overflow. Zero is returned as zero (each key has its own minimum).
std::optional<uint64_t> parse_duration(std::string_view text);

std::string_view to_string(connector_type t);
std::string_view to_string(starttls_mode m);
std::string_view to_string(reconnect_policy p);
std::string_view to_string(mailbox_kind k);

}  // namespace sluice::config
