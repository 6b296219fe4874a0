// dsn.cc: composing one RFC 3464 report (explanation, delivery-status fields, returned content) and the
// RFC 3461 NOTIFY rules that decide who gets one.
// Untrusted input: remote replies, envelope addresses, ENVID/ORCPT and the original message's content.
#include "dsn/dsn.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

#include "dsn/text.h"
#include "smtp/header.h"

namespace sluice::dsn {

namespace {

enum class kind : uint8_t { failure, delay, success };

// Even a header section with no blank line (all headers) is returned up to this much.
constexpr uint64_t min_header_limit = 64 * 1024;
// A diagnostic longer than this is cut: a reply that long is noise, and every byte is the remote's.
constexpr size_t max_diagnostic = 4000;

kind kind_of(std::span<const recipient_report> rs) {
  kind k = kind::success;
  for (const auto& r : rs) {
    if (r.what == action::failed) return kind::failure;
    if (r.what == action::delayed) k = kind::delay;
  }
  return k;
}

std::string_view action_name(action a) {
  switch (a) {
    case action::failed: return "failed";
    case action::delayed: return "delayed";
    case action::delivered: return "delivered";
    case action::relayed: return "relayed";
  }
  return "failed";
}

// RFC 3463 2: class "." subject "." detail, 1-3 digits each after the class.
bool valid_status(std::string_view s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 3) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

std::string status_of(const recipient_report& r) {
  if (valid_status(r.status)) return r.status;
  switch (r.what) {
    case action::failed: return "5.0.0";
    case action::delayed: return "4.0.0";
    default: return "2.0.0";
  }
}

// "mx1.example.net[192.0.2.1]:25" -> "mx1.example.net"; "[192.0.2.1]:25" -> "[192.0.2.1]".
std::string_view mta_name(std::string_view r) {
  const size_t bracket = r.find('[');
  if (bracket == 0) {
    const size_t close = r.find(']');
    return close == std::string_view::npos ? r : r.substr(0, close + 1);
  }
  if (bracket != std::string_view::npos) return r.substr(0, bracket);
  return r.substr(0, r.find(':'));
}

// A reply from an SMTP (or LMTP) peer starts with its three-digit code; anything else is our own text.
bool is_smtp_reply(std::string_view d) {
  return d.size() >= 3 && d[0] >= '2' && d[0] <= '5' && d[1] >= '0' && d[1] <= '9' && d[2] >= '0' && d[2] <= '9' &&
         (d.size() == 3 || d[3] == ' ' || d[3] == '-');
}

std::string diagnostic_text(std::string_view d, bool utf8) {
  std::string t = text::one_line(d, utf8);
  text::cut(t, max_diagnostic);
  return t;
}

// "rfc822;addr" -> its type (an atom, kept to atom characters) and address.
std::pair<std::string, std::string_view> split_orcpt(std::string_view orcpt) {
  const size_t semi = orcpt.find(';');
  std::string_view type = semi == std::string_view::npos ? "rfc822" : orcpt.substr(0, semi);
  std::string_view addr = semi == std::string_view::npos ? orcpt : orcpt.substr(semi + 1);
  std::string t;
  for (const char c : type)
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') t.push_back(c);
  if (t.empty()) t = "rfc822";
  return {t, addr};
}

// What goes back to the sender, and why only the headers when that is all.
struct returned {
  enum class reason : uint8_t { whole, asked_headers, kind_default, too_large, unsendable } why = reason::whole;
  text::original_copy copy;
  bool headers_only() const { return why != reason::whole; }
};

returned pick_returned(const original_message& m, const smtp::envelope& env, kind k, const settings& s, uint64_t size) {
  returned r;
  const bool want_whole =
      env.ret == smtp::dsn_ret::full || (env.ret == smtp::dsn_ret::unspecified && k == kind::failure);
  if (!want_whole)
    r.why = env.ret == smtp::dsn_ret::headers ? returned::reason::asked_headers : returned::reason::kind_default;
  else if (size > s.return_content_limit)
    r.why = returned::reason::too_large;
  if (!r.headers_only()) {
    r.copy = text::whole_content(m.body);
    if (r.copy.complete) return r;
    r.why = returned::reason::unsendable;
  }
  r.copy = text::header_section(m.body, std::max(s.return_content_limit, min_header_limit));
  return r;
}

// RFC 6533 applies when an address cannot be written in ASCII, or when an SMTPUTF8 original comes back
// with UTF-8 in it.
bool needs_global(const smtp::envelope& env, std::span<const recipient_report> rs, const returned& ret) {
  if (!text::is_ascii(env.mail_from)) return true;
  for (const auto& r : rs)
    if (!text::is_ascii(r.final_recipient) || !text::is_ascii(r.original_recipient)) return true;
  return env.smtputf8 && !text::is_ascii(ret.copy.text);
}

std::string_view subject_of(kind k) {
  switch (k) {
    case kind::failure: return "Undelivered Mail Returned to Sender";
    case kind::delay: return "Delayed Mail (still being retried)";
    case kind::success: return "Successful Mail Delivery Report";
  }
  return "";
}

std::string_view result_of(action a) {
  switch (a) {
    case action::failed: return "could not be delivered; this is permanent";
    case action::delayed: return "not delivered yet; still being retried";
    case action::delivered: return "delivered";
    case action::relayed: return "relayed to a system that sends no delivery reports";
  }
  return "";
}

void paragraph(std::string& out, std::string_view prose) {
  text::append_wrapped(out, "", prose, "", 76);
  out += "\r\n";
}

// Part 1: what a person reads. Everything from outside is cleaned to one line and wrapped.
std::string human_part(const original_message& m, std::span<const recipient_report> rs, kind k, const returned& ret,
                       uint64_t size, const settings& s, std::string_view host) {
  std::string out;
  paragraph(out, fmt::format("This is the mail delivery system at {}.", host));
  switch (k) {
    case kind::failure:
      paragraph(out,
                "Your message could not be delivered to one or more of its recipients. The errors below "
                "are permanent: the message will not be tried again for them.");
      break;
    case kind::delay:
      paragraph(out,
                "Your message has not been delivered yet to the recipients below. Delivery is still being "
                "retried; this is only a warning and you need not send the message again. You will be "
                "told if it finally fails.");
      break;
    case kind::success:
      paragraph(out, "Your message was delivered to the recipients below, as you asked to be told.");
      break;
  }
  if (!m.queue_id.empty()) paragraph(out, fmt::format("Its queue id here was {}.", text::one_line(m.queue_id, true)));
  for (const auto& r : rs) {
    text::append_wrapped(out, "", "<" + text::clean(r.final_recipient, true) + ">", "    ", 76);
    if (!r.original_recipient.empty())
      text::append_wrapped(out, "    ",
                           "originally addressed as " + text::one_line(split_orcpt(r.original_recipient).second, true),
                           "    ", 76);
    text::append_wrapped(out, "    ", fmt::format("{} ({})", result_of(r.what), status_of(r)), "    ", 76);
    if (!r.remote_mta.empty())
      text::append_wrapped(out, "    ", "remote server: " + text::one_line(r.remote_mta, true), "    ", 76);
    if (!r.diagnostic.empty())
      text::append_wrapped(out, "    ", "reply: " + diagnostic_text(r.diagnostic, true), "        ", 76);
    if (r.what == action::delayed && r.will_retry_until_ms != 0)
      text::append_wrapped(out, "    ", "retried until " + text::utc_date(r.will_retry_until_ms), "    ", 76);
    out += "\r\n";
  }
  switch (ret.why) {
    case returned::reason::whole: paragraph(out, "Your original message is attached below."); break;
    case returned::reason::asked_headers:
      paragraph(out, "As its sender asked, only the headers of your original message are attached below.");
      break;
    case returned::reason::kind_default:
      paragraph(out, "The headers of your original message are attached below.");
      break;
    case returned::reason::too_large:
      paragraph(out, fmt::format("Your original message was {} bytes, more than the {} bytes this system "
                                 "returns whole, so only its headers are attached below.",
                                 size, s.return_content_limit));
      break;
    case returned::reason::unsendable:
      paragraph(out,
                "Your original message has lines that mail cannot carry back (too long, or holding NUL "
                "bytes), so only its headers are attached below.");
      break;
  }
  if (ret.headers_only() && !ret.copy.complete)
    paragraph(out, "Its header section was too large and has been cut short.");
  out.resize(out.size() - 2);  // the last paragraph's blank line: the boundary's own CRLF follows
  return out;
}

// "rfc822; addr", or RFC 6533's "utf-8; addr" for an address that ASCII cannot hold.
std::string typed_address(std::string_view addr, bool global) {
  return (text::is_ascii(addr) ? "rfc822; " : "utf-8; ") + text::clean(addr, global);
}

// Part 2: the machine-readable fields (RFC 3464 2.2 and 2.3). No value may carry CR or LF, so nothing
// a remote server wrote can become a field of its own.
std::string status_part(const original_message& m, const smtp::envelope& env, std::span<const recipient_report> rs,
                        bool global, std::string_view host) {
  std::string out;
  text::append_field(out, "Reporting-MTA", fmt::format("dns; {}", host));
  if (!m.queue_id.empty()) text::append_field(out, "X-Sluice-Queue-ID", text::one_line(m.queue_id, false));
  if (!env.envid.empty()) text::append_field(out, "Original-Envelope-Id", text::xtext_if_needed(env.envid, global));
  if (!env.helo.empty())
    text::append_field(out, "Received-From-MTA", "dns; " + smtp::sanitize_helo(text::one_line(env.helo, false)));
  if (m.received_at_ms != 0) text::append_field(out, "Arrival-Date", text::utc_date(m.received_at_ms));
  for (const auto& r : rs) {
    out += "\r\n";
    if (!r.original_recipient.empty()) {
      const auto [type, addr] = split_orcpt(r.original_recipient);
      text::append_field(out, "Original-Recipient", type + ";" + text::xtext_if_needed(addr, global));
    }
    text::append_field(out, "Final-Recipient", typed_address(r.final_recipient, global));
    text::append_field(out, "Action", action_name(r.what));
    text::append_field(out, "Status", status_of(r));
    if (!r.remote_mta.empty())
      text::append_field(out, "Remote-MTA", "dns; " + text::one_line(mta_name(r.remote_mta), false));
    if (!r.diagnostic.empty())
      text::append_field(
          out, "Diagnostic-Code",
          (is_smtp_reply(r.diagnostic) ? "smtp; " : "X-Sluice; ") + diagnostic_text(r.diagnostic, global));
    if (r.last_attempt_ms != 0) text::append_field(out, "Last-Attempt-Date", text::utc_date(r.last_attempt_ms));
    if (r.what == action::delayed && r.will_retry_until_ms != 0)
      text::append_field(out, "Will-Retry-Until", text::utc_date(r.will_retry_until_ms));
  }
  return out;
}

// The characters of `id` that a Message-ID's left part and a boundary may both hold.
std::string id_text(std::string_view id) {
  std::string out;
  for (const char c : id.substr(0, 40))
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')
      out.push_back(c);
  if (out.empty()) out = "dsn";
  return out;
}

// FNV-1a: only to make a second boundary candidate that depends on the parts it must avoid.
uint64_t fnv1a(std::initializer_list<std::string_view> parts) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto p : parts)
    for (const char c : p) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

// A boundary that occurs in none of the parts (RFC 2046 5.1.1). The first candidate is predictable from
// the DSN id; should the returned content hold it, the next ones mix in a hash of the parts themselves,
// which content cannot anticipate without containing its own hash.
std::string pick_boundary(std::string_view dsn_id, std::initializer_list<std::string_view> parts) {
  const std::string base = "=_sluice_" + id_text(dsn_id);
  const uint64_t h = fnv1a(parts);
  for (uint64_t n = 0;; ++n) {
    std::string b = n == 0 ? base : fmt::format("{}.{:016x}", base, h + n);
    if (std::none_of(parts.begin(), parts.end(), [&](std::string_view p) { return p.find(b) != p.npos; })) return b;
  }
}

void append_part_header(std::string& out, std::string_view boundary, std::string_view type,
                        std::string_view description, std::string_view body) {
  out += "\r\n--";
  out += boundary;
  out += "\r\nContent-Type: ";
  out += type;
  out += "\r\nContent-Description: ";
  out += description;
  out += text::is_ascii(body) ? "\r\n" : "\r\nContent-Transfer-Encoding: 8bit\r\n";
  out += "\r\n";
  out += body;
}

}  // namespace

report compose(const original_message& m, std::span<const recipient_report> recipients, const settings& s,
               int64_t now_ms, std::string_view dsn_id) {
  static const smtp::envelope no_envelope;
  const smtp::envelope& env = m.envelope != nullptr ? *m.envelope : no_envelope;
  std::string host = text::one_line(s.reporting_mta, false);
  std::replace(host.begin(), host.end(), ' ', '-');
  if (host.empty()) host = "localhost";

  uint64_t size = 0;
  for (const auto c : m.body) size += c.size();
  size = std::max(size, m.body_size);

  const kind k = kind_of(recipients);
  const returned ret = pick_returned(m, env, k, s, size);
  const bool global = needs_global(env, recipients, ret);
  const std::string human = human_part(m, recipients, k, ret, size, s, host);
  const std::string status = status_part(m, env, recipients, global, host);
  const std::string boundary = pick_boundary(dsn_id, {human, status, ret.copy.text});

  report r;
  r.recipient = env.mail_from;
  r.smtputf8 = global;
  std::string& out = r.content;
  out.reserve(human.size() + status.size() + ret.copy.text.size() + 2048);
  text::append_field(out, "From", fmt::format("Mail Delivery System <MAILER-DAEMON@{}>", host));
  text::append_field(out, "To", "<" + text::clean(env.mail_from, global) + ">");
  text::append_field(out, "Subject", subject_of(k));
  text::append_field(out, "Date", text::utc_date(now_ms));
  text::append_field(out, "Message-ID", fmt::format("<{}@{}>", id_text(dsn_id), host));
  text::append_field(out, "Auto-Submitted", "auto-replied");
  text::append_field(out, "MIME-Version", "1.0");
  text::append_field(out, "Content-Type",
                     fmt::format("multipart/report; report-type=delivery-status; boundary=\"{}\"", boundary));
  const bool eight_bit = !text::is_ascii(human) || !text::is_ascii(status) || !text::is_ascii(ret.copy.text);
  if (eight_bit) text::append_field(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\nThis is a MIME-encapsulated delivery status notification.\r\n";

  append_part_header(out, boundary, "text/plain; charset=utf-8", "Notification", human);
  append_part_header(out, boundary, global ? "message/global-delivery-status" : "message/delivery-status",
                     "Delivery report", status);
  if (ret.headers_only())
    append_part_header(out, boundary, global ? "message/global-headers" : "text/rfc822-headers",
                       "Headers of the original message", ret.copy.text);
  else
    append_part_header(out, boundary, global ? "message/global" : "message/rfc822", "The original message",
                       ret.copy.text);
  out += "\r\n--";
  out += boundary;
  out += "--\r\n";
  r.eight_bit = eight_bit || !text::is_ascii(out);
  return r;
}

bool wanted(const smtp::envelope& env, std::size_t index, action a, bool delay_without_notify) {
  if (env.mail_from.empty() || index >= env.recipients.size()) return false;
  const uint8_t notify = env.recipients[index].notify;
  if (notify & smtp::notify_never) return false;
  switch (a) {
    case action::failed: return notify == smtp::notify_unspecified || (notify & smtp::notify_failure);
    case action::delayed:
      return (notify & smtp::notify_delay) || (notify == smtp::notify_unspecified && delay_without_notify);
    case action::delivered:
    case action::relayed: return (notify & smtp::notify_success) != 0;
  }
  return false;
}

}  // namespace sluice::dsn
