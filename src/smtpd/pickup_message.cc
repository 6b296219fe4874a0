// pickup_message.cc: header parsing and envelope extraction for pickup files.
// Untrusted input: arbitrary file content; every parse is bounded by the content size.
#include "smtpd/pickup_message.h"

#include "smtp/header.h"

namespace sluice::smtpd {

namespace {

struct header_field {
  std::string_view name;
  std::string value;  // unfolded
  size_t begin = 0;   // byte range of the whole field (with its CRLFs) in the normalized text
  size_t end = 0;
};

std::string to_crlf(std::string_view in) {
  std::string out;
  out.reserve(in.size() + in.size() / 32);
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '\r') {
      out += "\r\n";
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses the header block of CRLF text; returns false if there is none. `body_start` is
// the offset just after the empty line (or the end if the file has headers only). Stricter
// than the shared scanner: a pickup file that is not plainly a message is refused, not guessed at.
bool parse_headers(const std::string& text, std::vector<header_field>& fields, size_t& body_start,
                   std::string& error) {
  if (text.empty()) {
    error = "empty file";
    return false;
  }
  if (text.front() == ' ' || text.front() == '\t') {
    error = "message starts with a continuation line";
    return false;
  }
  smtp::header_cursor cur(text);
  while (cur.next()) {
    std::string_view name = cur.name();
    if (name.empty()) {
      if (fields.empty()) {
        error = "no header block (first line is not a header field)";
        return false;
      }
      error = "malformed header line: " + std::string(cur.raw_value().substr(0, 60));
      return false;
    }
    for (char c : name) {
      if (c <= 32 || c >= 127) {
        error = "malformed header field name: " + std::string(name.substr(0, 60));
        return false;
      }
    }
    fields.push_back({name, smtp::unfold(cur.raw_value()), cur.begin(), cur.end()});
  }
  size_t blank = cur.body_offset();
  body_start = blank + 2 <= text.size() ? blank + 2 : text.size();
  if (fields.empty()) error = "no header fields";
  return !fields.empty();
}

std::string strip_comments(std::string_view s) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      out.push_back(c);
      if (c == '\\' && i + 1 < s.size()) out.push_back(s[++i]);
      else if (c == '"') quoted = false;
    } else if (c == '"' && depth == 0) {
      quoted = true;
      out.push_back(c);
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && depth > 0) {
      --depth;
    } else if (depth == 0) {
      out.push_back(c);
    }
  }
  return out;
}

std::string extract_address(std::string_view token) {
  token = trim(token);
  auto lt = token.rfind('<');
  if (lt != std::string_view::npos) {
    auto gt = token.find('>', lt);
    if (gt == std::string_view::npos) return {};
    return std::string(trim(token.substr(lt + 1, gt - lt - 1)));
  }
  return std::string(token);
}

bool plausible_address(std::string_view a) {
  auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= a.size()) return false;
  for (char c : a)
    if (c == ' ' || c == '\t' || c == '<' || c == '>' || c == ',' || static_cast<unsigned char>(c) < 32) return false;
  return true;
}

}  // namespace

std::vector<std::string> parse_address_list(std::string_view value) {
  std::string text = strip_comments(value);
  std::vector<std::string> out;
  std::string token;
  bool quoted = false, angle = false;
  auto flush = [&] {
    std::string_view t = trim(token);
    // "group: a@b, c@d;" : the display name before ':' is not an address.
    if (!t.empty()) {
      std::string a = extract_address(t);
      if (!a.empty()) out.push_back(a);
    }
    token.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      token.push_back(c);
      if (c == '\\' && i + 1 < text.size()) token.push_back(text[++i]);
      else if (c == '"') quoted = false;
      continue;
    }
    if (c == '"') quoted = true;
    if (c == '<') angle = true;
    if (c == '>') angle = false;
    if (!angle && c == ':' ) {  // group display name ends here
      token.clear();
      continue;
    }
    if (!angle && (c == ',' || c == ';')) {
      flush();
      continue;
    }
    token.push_back(c);
  }
  flush();
  return out;
}

pickup_result parse_pickup_file(std::string_view content, uint64_t max_size, unsigned max_received_headers) {
  pickup_result r;
  if (content.size() > max_size) {
    r.error = "message size " + std::to_string(content.size()) + " exceeds the limit of " + std::to_string(max_size);
    return r;
  }
  std::string text = to_crlf(content);
  std::vector<header_field> fields;
  size_t body_start = 0;
  if (!parse_headers(text, fields, body_start, r.error)) return r;
  if (smtp::hop_limit_reached(text, max_received_headers)) {
    r.error = "mail loop: " + std::to_string(smtp::count_received(text)) +
              " Received: headers, the limit is " + std::to_string(max_received_headers);
    return r;
  }

  std::vector<std::string> x_receivers;
  std::string x_sender, sender, from;
  std::vector<std::string> listed;
  bool has_x_receiver = false;
  for (const auto& f : fields) {
    if (smtp::header_name_equal(f.name, "x-sender")) {
      auto a = parse_address_list(f.value);
      if (!a.empty()) x_sender = a.front();
    } else if (smtp::header_name_equal(f.name, "x-receiver")) {
      has_x_receiver = true;
      for (auto& a : parse_address_list(f.value)) x_receivers.push_back(a);
    } else if (smtp::header_name_equal(f.name, "sender")) {
      auto a = parse_address_list(f.value);
      if (!a.empty()) sender = a.front();
    } else if (smtp::header_name_equal(f.name, "from")) {
      auto a = parse_address_list(f.value);
      if (!a.empty()) from = a.front();
    } else if (smtp::header_name_equal(f.name, "to") || smtp::header_name_equal(f.name, "cc") || smtp::header_name_equal(f.name, "bcc")) {
      for (auto& a : parse_address_list(f.value)) listed.push_back(a);
    }
  }
  std::vector<std::string>& rcpts = has_x_receiver ? x_receivers : listed;
  r.envelope.mail_from = !x_sender.empty() ? x_sender : !sender.empty() ? sender : from;
  if (r.envelope.mail_from.empty()) {
    r.error = "no sender: neither X-Sender:, Sender: nor From: holds an address";
    return r;
  }
  if (!plausible_address(r.envelope.mail_from)) {
    r.error = "invalid sender address: " + r.envelope.mail_from.substr(0, 100);
    return r;
  }
  if (rcpts.empty()) {
    r.error = has_x_receiver ? "X-Receiver: holds no address" : "no recipients in To:, Cc: or Bcc:";
    return r;
  }
  for (const auto& a : rcpts) {
    if (!plausible_address(a)) {
      r.error = "invalid recipient address: " + a.substr(0, 100);
      return r;
    }
    bool seen = false;
    for (const auto& existing : r.envelope.recipients) seen |= existing.address == a;
    if (!seen) r.envelope.recipients.push_back({a, smtp::notify_unspecified, ""});
  }
  for (unsigned char c : text) {
    if (c >= 0x80) {
      r.envelope.body = smtp::body_type::eight_bit_mime;
      break;
    }
  }

  // Copy the message without the envelope headers and Bcc:.
  r.body.reserve(text.size());
  size_t copied = 0;
  for (const auto& f : fields) {
    if (smtp::header_name_equal(f.name, "x-sender") || smtp::header_name_equal(f.name, "x-receiver") || smtp::header_name_equal(f.name, "bcc")) {
      r.body.append(text, copied, f.begin - copied);
      copied = f.end;
    }
  }
  r.body.append(text, copied, std::string::npos);
  if (body_start == text.size() && (r.body.size() < 2 || r.body.compare(r.body.size() - 2, 2, "\r\n") != 0))
    r.body += "\r\n";
  r.ok = true;
  return r;
}

}  // namespace sluice::smtpd
