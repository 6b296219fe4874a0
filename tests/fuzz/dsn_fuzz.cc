// dsn_fuzz.cc: libFuzzer driver for DSN composition (dsn::compose) from hostile envelopes, replies and originals.
// Untrusted input: the payload gives the envelope (sender, ENVID, HELO), per-recipient reports (address, ORCPT,
// status, remote MTA, diagnostic) and the original message, every one of them attacker-chosen text.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "dsn/dsn.h"
#include "fuzz_util.h"

using sluice::fuzz::bits;
using sluice::fuzz::input_stream;
using namespace sluice;

namespace {

constexpr char field_separator = '\x1e';  // ASCII RS: splits the payload into its fields

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// The content's lines, CRLF removed; checks CRLF only (no bare CR or LF), the SMTP line limit and no NUL.
std::vector<std::string_view> crlf_lines(std::string_view s) {
  FUZZ_CHECK(s.size() >= 2 && s.substr(s.size() - 2) == "\r\n");
  FUZZ_CHECK(s.find('\0') == s.npos);
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < s.size()) {
    size_t cr = s.find('\r', start);
    size_t lf = s.find('\n', start);
    FUZZ_CHECK(cr != s.npos && lf == cr + 1);  // every line ends in CRLF, and only there
    FUZZ_CHECK(cr - start <= 998);             // RFC 5322 2.1.1
    lines.push_back(s.substr(start, cr - start));
    start = lf + 1;
  }
  return lines;
}

// The field name of a header line, or "" for a continuation line; a line that is neither fails.
std::string_view field_name(std::string_view line) {
  if (line[0] == ' ' || line[0] == '\t') return {};
  size_t colon = line.find(':');
  FUZZ_CHECK(colon != line.npos && colon > 0);
  std::string_view name = line.substr(0, colon);
  for (char c : name) FUZZ_CHECK(c > 0x20 && c < 0x7f);
  return name;
}

bool one_of(std::string_view name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

size_t count(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != hay.npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

// The original as the DSN returns it whole: every line end CRLF, the last line too.
std::string crlf_copy(std::string_view body) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\r' || body[i] == '\n') {
      if (body[i] == '\r' && i + 1 < body.size() && body[i + 1] == '\n') ++i;
      out += "\r\n";
    } else {
      out += body[i];
    }
  }
  if (!out.empty() && (out.size() < 2 || out.substr(out.size() - 2) != "\r\n")) out += "\r\n";
  return out;
}

struct part {
  std::vector<std::string_view> header;  // its header lines
  std::string_view body;
};

// Checks the report's structure and returns its three parts.
std::vector<part> check_structure(const std::string& content, size_t recipients) {
  const auto lines = crlf_lines(content);
  // The message header: only the fields compose writes, each once; nothing injected.
  size_t i = 0;
  std::string content_type;
  std::vector<std::string_view> names;
  for (; i < lines.size() && !lines[i].empty(); ++i) {
    std::string_view name = field_name(lines[i]);
    if (name.empty()) {
      FUZZ_CHECK(!names.empty());
      if (names.back() == "Content-Type") content_type += lines[i];
      continue;
    }
    FUZZ_CHECK(one_of(name, {"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version",
                             "Content-Type", "Content-Transfer-Encoding"}));
    FUZZ_CHECK(std::find(names.begin(), names.end(), name) == names.end());
    names.push_back(name);
    if (name == "Content-Type") content_type = lines[i];
  }
  FUZZ_CHECK(names.size() >= 8 && i < lines.size());
  const size_t b_at = content_type.find("boundary=\"");
  FUZZ_CHECK(b_at != std::string::npos);
  const size_t b_end = content_type.find('"', b_at + 10);
  FUZZ_CHECK(b_end != std::string::npos && b_end > b_at + 10);
  const std::string boundary = content_type.substr(b_at + 10, b_end - b_at - 10);
  // RFC 2046 5.1.1: in the body the boundary occurs only as the three delimiters and the close
  // delimiter, never inside a part. (The sender's address in To: may hold it: harmless there.)
  const std::string_view mime_body = std::string_view(content).substr(content.find("\r\n\r\n") + 4);
  FUZZ_CHECK(count(mime_body, boundary) == 4);
  const std::string delimiter = "\r\n--" + boundary + "\r\n";
  const std::string close = "\r\n--" + boundary + "--\r\n";
  FUZZ_CHECK(content.size() >= close.size() && content.substr(content.size() - close.size()) == close);

  std::vector<part> parts;
  size_t at = content.find(delimiter);
  FUZZ_CHECK(at != std::string::npos);
  while (at != std::string::npos) {
    const size_t start = at + delimiter.size();
    size_t next = content.find(delimiter, start);
    const size_t end = next == std::string::npos ? content.size() - close.size() : next;
    std::string_view p(content.data() + start, end - start);
    const size_t blank = p.find("\r\n\r\n");
    FUZZ_CHECK(blank != std::string_view::npos);
    part out;
    std::string_view head = p.substr(0, blank + 2);
    while (!head.empty()) {
      size_t eol = head.find("\r\n");
      out.header.push_back(head.substr(0, eol));
      head.remove_prefix(eol + 2);
    }
    out.body = p.substr(blank + 4);
    FUZZ_CHECK(out.header.size() >= 2);
    FUZZ_CHECK(field_name(out.header[0]) == "Content-Type" && field_name(out.header[1]) == "Content-Description");
    // A part with 8-bit bytes says so (RFC 6152); one without needs no encoding header.
    const bool declares_8bit = out.header.size() == 3 && out.header[2] == "Content-Transfer-Encoding: 8bit";
    FUZZ_CHECK(out.header.size() <= 3 && declares_8bit == !is_ascii(out.body));
    parts.push_back(out);
    at = next;
  }
  FUZZ_CHECK(parts.size() == 3);
  FUZZ_CHECK(is_ascii(mime_body) ==
             (std::find(names.begin(), names.end(), "Content-Transfer-Encoding") == names.end()));

  // The delivery-status part: RFC 3464 fields only, one group per recipient.
  size_t finals = 0, actions = 0, statuses = 0;
  std::string_view st = parts[1].body;
  while (!st.empty()) {
    size_t eol = st.find("\r\n");
    std::string_view line = eol == st.npos ? st : st.substr(0, eol);
    st.remove_prefix(eol == st.npos ? st.size() : eol + 2);
    if (line.empty()) continue;
    std::string_view name = field_name(line);
    if (name.empty()) continue;
    FUZZ_CHECK(one_of(name, {"Reporting-MTA", "X-Sluice-Queue-ID", "Original-Envelope-Id", "Received-From-MTA",
                             "Arrival-Date", "Original-Recipient", "Final-Recipient", "Action", "Status",
                             "Remote-MTA", "Diagnostic-Code", "Last-Attempt-Date", "Will-Retry-Until"}));
    if (name == "Final-Recipient") ++finals;
    if (name == "Action") ++actions;
    if (name == "Status") {
      ++statuses;
      std::string_view v = line.substr(8);
      FUZZ_CHECK(v.size() >= 5 && (v[0] == '2' || v[0] == '4' || v[0] == '5') && v[1] == '.');
    }
  }
  FUZZ_CHECK(finals == recipients && actions == recipients && statuses == recipients);
  return parts;
}

}  // namespace

// Input: byte 0 flags (bits 0-1 RET: none, FULL, HDRS; 2 SMTPUTF8; 3 a 300-byte return limit; 4 body_size
// claims more than the chunks; 5-6 recipients - 1), byte 1 the recipients' actions (2 bits each), byte 2 the
// seed of the body's chunk splits; then RS-separated fields: sender, ENVID, HELO, queue id, reporting MTA,
// DSN id, then per recipient address, ORCPT, status, remote MTA, diagnostic; the rest is the original.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_stream in(data, size);
  const uint8_t flags = in.byte();
  const uint8_t actions = in.byte();
  bits b(in.byte());
  std::string_view rest = in.rest();
  auto field = [&rest]() {
    size_t sep = rest.find(field_separator);
    std::string_view f = rest.substr(0, sep);
    rest.remove_prefix(sep == rest.npos ? rest.size() : sep + 1);
    return std::string(f);
  };

  smtp::envelope env;
  env.ret = static_cast<smtp::dsn_ret>(std::min(flags & 3, 2));
  env.smtputf8 = flags & 4;
  env.mail_from = field();
  env.envid = field();
  env.helo = field();
  dsn::original_message m;
  m.envelope = &env;
  m.queue_id = field();
  m.received_at_ms = 1'700'000'000'000;
  dsn::settings s;
  s.reporting_mta = field();
  if (flags & 8) s.return_content_limit = 300;
  const std::string dsn_id = field();

  const size_t n = 1 + ((flags >> 5) & 3);
  std::vector<dsn::recipient_report> reports(n);
  for (size_t i = 0; i < n; ++i) {
    auto& r = reports[i];
    r.what = static_cast<dsn::action>((actions >> (2 * i)) & 3);
    r.final_recipient = field();
    r.original_recipient = field();
    r.status = field();
    r.remote_mta = field();
    r.diagnostic = field();
    r.last_attempt_ms = 1'700'000'100'000;
    r.will_retry_until_ms = r.what == dsn::action::delayed ? 1'700'400'000'000 : 0;
    env.recipients.push_back({r.final_recipient, smtp::notify_unspecified, r.original_recipient});
  }

  // The original in up to four chunks, split anywhere (a CR and its LF may fall in different chunks).
  const std::string_view body = rest;
  std::vector<std::string_view> chunks;
  for (size_t at = 0; at < body.size();) {
    size_t len = chunks.size() == 3 ? body.size() - at : std::min(body.size() - at, size_t{1} + b.pick(64));
    chunks.push_back(body.substr(at, len));
    at += len;
  }
  m.body = chunks;
  m.body_size = (flags & 16) ? body.size() + 100'000 : body.size();

  const dsn::report r = dsn::compose(m, reports, s, 1'700'000'200'000, dsn_id);
  FUZZ_CHECK(r.recipient == env.mail_from);
  FUZZ_CHECK(r.eight_bit == !is_ascii(r.content));
  const auto parts = check_structure(r.content, n);

  // Without SMTPUTF8 the header and the delivery status are plain ASCII (RFC 6533 is what allows more).
  const std::string_view header(r.content.data(), r.content.find("\r\n\r\n"));
  if (!r.smtputf8) FUZZ_CHECK(is_ascii(header) && is_ascii(parts[1].body));
  if (!is_ascii(env.mail_from)) FUZZ_CHECK(r.smtputf8);

  // The returned original: whole and unchanged but for its line ends, or only its header section.
  std::string_view type = parts[2].header[0];
  if (type == "Content-Type: message/rfc822" || type == "Content-Type: message/global") {
    FUZZ_CHECK(parts[2].body == crlf_copy(body));
  } else {
    FUZZ_CHECK(type == "Content-Type: text/rfc822-headers" || type == "Content-Type: message/global-headers");
    FUZZ_CHECK(parts[2].body.find("\r\n\r\n") == std::string_view::npos && parts[2].body.substr(0, 2) != "\r\n");
  }
  return 0;
}
