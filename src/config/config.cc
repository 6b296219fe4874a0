// config.cc: lookups on a loaded configuration (receive connector selection, connectors by
// name, delivery overrides), error texts, size and duration parsing.
// Untrusted input: peer addresses of SMTP sessions.
#include "config/config.h"

#include <algorithm>

namespace sluice::config {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Moves the leading decimal digits of text into n; false if there are none or they overflow.
bool take_number(std::string_view& text, uint64_t& n) {
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (n > (UINT64_MAX - 9) / 10) return false;
    n = n * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  text.remove_prefix(i);
  return i != 0;
}

}  // namespace

const receive_connector* config::select_receive_connector(const ip_address& local,
                                                          uint16_t local_port,
                                                          const ip_address& peer) const {
  const receive_connector* best = nullptr;
  uint128 best_span = 0;
  bool best_exact = false;
  for (const auto& rc : receive_connectors) {
    bool bound = false, exact = false;
    for (const auto& b : rc.bindings) {
      if (!b.matches(local, local_port)) continue;
      bound = true;
      if (!b.is_wildcard()) exact = true;
    }
    if (!bound) continue;
    for (const auto& r : rc.remote_ranges) {
      if (!r.contains(peer)) continue;
      uint128 span = r.span();
      // Strictly better only, so the connector defined first wins a complete tie.
      if (best == nullptr || span < best_span || (span == best_span && exact && !best_exact)) {
        best = &rc;
        best_span = span;
        best_exact = exact;
      }
    }
  }
  return best;
}

std::vector<binding> config::all_bindings() const {
  std::vector<binding> out;
  for (const auto& rc : receive_connectors) {
    for (const auto& b : rc.bindings) {
      if (std::find(out.begin(), out.end(), b) == out.end()) out.push_back(b);
    }
  }
  return out;
}

const receive_connector* config::find_receive_connector(std::string_view name) const {
  for (const auto& rc : receive_connectors) {
    if (rc.name == name) return &rc;
  }
  return nullptr;
}

const send_connector* config::find_send_connector(std::string_view name) const {
  for (const auto& sc : send_connectors) {
    if (sc.name == name) return &sc;
  }
  return nullptr;
}

std::string smart_host::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

delivery_limits delivery_limits_override::apply(delivery_limits base) const {
  if (max_connections) base.max_connections = *max_connections;
  if (max_messages_per_connection) base.max_messages_per_connection = *max_messages_per_connection;
  if (max_recipients_per_message) base.max_recipients_per_message = *max_recipients_per_message;
  if (connection_rate) base.connection_rate = *connection_rate;
  if (message_rate) base.message_rate = *message_rate;
  if (failures_before_suspend) base.failures_before_suspend = *failures_before_suspend;
  if (suspend_s) base.suspend_s = *suspend_s;
  return base;
}

bool delivery_limits_override::empty() const {
  return !max_connections && !max_messages_per_connection && !max_recipients_per_message && !connection_rate &&
         !message_rate && !failures_before_suspend && !suspend_s;
}

const domain_override* delivery_settings::find_domain(std::string_view domain) const {
  for (const auto& d : domains) {
    if (d.domain == domain) return &d;
  }
  return nullptr;
}

std::string config_error::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

std::string load_result::error_text() const {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) out += '\n';
    out += e.to_string();
  }
  return out;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  uint64_t n = 0;
  if (!take_number(text, n)) return std::nullopt;
  std::string unit = lower(text);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  unsigned shift;
  if (unit.empty() || unit == "b") shift = 0;
  else if (unit == "k" || unit == "kb" || unit == "kib") shift = 10;
  else if (unit == "m" || unit == "mb" || unit == "mib") shift = 20;
  else if (unit == "g" || unit == "gb" || unit == "gib") shift = 30;
  else if (unit == "t" || unit == "tb" || unit == "tib") shift = 40;
  else return std::nullopt;
  if (n == 0 || n > (UINT64_MAX >> shift)) return std::nullopt;
  return n << shift;
}

std::optional<uint64_t> parse_duration(std::string_view text) {
  uint64_t n = 0;
  if (!take_number(text, n)) return std::nullopt;
  std::string unit = lower(text);
  uint64_t scale;
  if (unit.empty() || unit == "s") scale = 1;
  else if (unit == "m") scale = 60;
  else if (unit == "h") scale = 3600;
  else if (unit == "d") scale = 86400;
  else return std::nullopt;
  if (n > UINT64_MAX / scale) return std::nullopt;
  return n * scale;
}

std::string_view to_string(connector_type t) {
  switch (t) {
    case connector_type::internet: return "internet";
    case connector_type::enterprise: return "enterprise";
    case connector_type::partner: return "partner";
    case connector_type::client: return "client";
    case connector_type::custom: return "custom";
  }
  return "?";
}

std::string_view to_string(starttls_mode m) {
  switch (m) {
    case starttls_mode::off: return "off";
    case starttls_mode::offered: return "offered";
    case starttls_mode::required: return "required";
  }
  return "?";
}

std::string_view to_string(reconnect_policy p) {
  switch (p) {
    case reconnect_policy::next_host: return "next_host";
    case reconnect_policy::same_host: return "same_host";
    case reconnect_policy::end: return "end";
  }
  return "?";
}

std::string_view to_string(mailbox_kind k) {
  switch (k) {
    case mailbox_kind::none: return "none";
    case mailbox_kind::maildir: return "maildir";
    case mailbox_kind::lmtp: return "lmtp";
  }
  return "?";
}

}  // namespace sluice::config
