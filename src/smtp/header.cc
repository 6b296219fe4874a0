// header.cc: header block scanning and the Received: trace field.
// Untrusted input: header bytes from clients and pickup files; all loops are bounded by the input size.
#include "smtp/header.h"

namespace sluice::smtp {

namespace {

constexpr char fold_case(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_blank(char c) { return c == ' ' || c == '\t'; }

}  // namespace

bool header_cursor::next() {
  const size_t n = block_.size();
  if (pos_ >= n) return false;
  if (block_[pos_] == '\n' || (block_[pos_] == '\r' && pos_ + 1 < n && block_[pos_ + 1] == '\n')) return false;
  begin_ = pos_;
  size_t p = pos_;
  for (;;) {
    size_t nl = block_.find('\n', p);
    if (nl == std::string_view::npos) {
      end_ = n;
      break;
    }
    size_t after = nl + 1;
    if (after < n && is_blank(block_[after])) {
      p = after;
      continue;
    }
    end_ = after;
    break;
  }
  size_t value_end = end_;
  if (value_end > begin_ && block_[value_end - 1] == '\n') --value_end;
  if (value_end > begin_ && block_[value_end - 1] == '\r') --value_end;
  std::string_view field = block_.substr(begin_, value_end - begin_);
  auto colon = field.find(':');
  if (colon == std::string_view::npos) {
    name_ = {};
    value_ = field;
  } else {
    name_ = field.substr(0, colon);
    while (!name_.empty() && is_blank(name_.back())) name_.remove_suffix(1);  // obsolete "Subject :"
    value_ = field.substr(colon + 1);
  }
  pos_ = end_;
  return true;
}

bool header_name_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (fold_case(a[i]) != fold_case(b[i])) return false;
  return true;
}

std::string unfold(std::string_view raw_value) {
  std::string out;
  out.reserve(raw_value.size());
  // Inside one field every CR or LF belongs to a fold, so dropping them is unfolding.
  for (char c : raw_value)
    if (c != '\r' && c != '\n') out.push_back(c);
  size_t first = 0;
  while (first < out.size() && is_blank(out[first])) ++first;
  size_t last = out.size();
  while (last > first && is_blank(out[last - 1])) --last;
  return out.substr(first, last - first);
}

std::optional<std::string_view> find_header(std::string_view block, std::string_view name) {
  header_cursor cur(block);
  while (cur.next())
    if (header_name_equal(cur.name(), name)) return cur.raw_value();
  return std::nullopt;
}

unsigned count_received(std::string_view message) {
  unsigned count = 0;
  header_cursor cur(message);
  while (cur.next())
    if (header_name_equal(cur.name(), "received")) ++count;
  return count;
}

std::string sanitize_helo(std::string_view helo) {
  std::string out;
  for (char c : helo.substr(0, 255)) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
        c == '[' || c == ']' || c == ':' || c == '_')
      out.push_back(c);
  }
  return out.empty() ? "unknown" : out;
}

std::string received_header(const received_fields& f) {
  std::string h;
  h.reserve(256);
  h += "Received: from ";
  if (!f.from_text.empty()) {
    h += f.from_text;
  } else {
    h += sanitize_helo(f.from_helo);
    h += " ([";
    h += f.from_address;
    h += "])";
  }
  h += "\r\n\tby ";
  h += f.by_host;
  h += " (sluice) with ";
  h += f.with;
  if (!f.tls_summary.empty()) {
    h += "\r\n\t(";
    h += f.tls_summary;
    h += ")";
    // As Postfix does: the client certificate's subject, for policy further on.
    if (!f.tls_peer_subject.empty()) {
      h += "\r\n\t(client certificate \"";
      for (char c : f.tls_peer_subject) h.push_back(c == '"' || c == '\\' || c == '\r' || c == '\n' ? '_' : c);
      h += f.tls_peer_verified ? "\", verified)" : "\", not verified)";
    }
  }
  h += " id ";
  h += f.id;
  if (!f.for_recipient.empty()) {
    h += "\r\n\tfor <";
    // An address that passed the SMTP parser holds no CR, LF or '>'; this guards pickup
    // addresses, which come from header text.
    for (char c : f.for_recipient) h.push_back(c == '\r' || c == '\n' || c == '>' ? '_' : c);
    h += ">";
  }
  h += "; ";
  h += f.date;
  h += "\r\n";
  return h;
}

}  // namespace sluice::smtp
