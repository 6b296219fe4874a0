// params.cc: ESMTP parameter parsing for MAIL and RCPT, and xtext coding.
// Untrusted input: esmtp-param text from a remote client.
#include "smtp/params.h"
#include "base/ascii.h"

#include <limits>

namespace sluice::smtp {

namespace {

constexpr size_t max_envid = 100;  // RFC 3461 4.4
constexpr size_t max_orcpt = 500;  // RFC 3461 4.2: 500 characters in all

reply unknown_param() { return {555, "5.5.4", "Unsupported option"}; }
reply duplicate_param() { return {555, "5.5.4", "Duplicate option"}; }
reply bad_value(std::string what) { return {501, "5.5.4", "Bad " + what + " syntax"}; }

using base::ascii_lower;
using base::iequals;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = ascii_lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Calls fn(keyword, value, has_value) for every space-separated esmtp-param;
// stops at the first reply fn returns. Checks RFC 5321 esmtp-keyword/esmtp-value.
template <typename Fn>
std::optional<reply> for_each_param(std::string_view text, Fn&& fn) {
  while (!text.empty()) {
    if (text.front() == ' ') { text.remove_prefix(1); continue; }
    size_t sp = text.find(' ');
    std::string_view item = text.substr(0, sp);
    text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp);
    size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
    if (key.empty()) return bad_value("parameter");
    for (size_t i = 0; i < key.size(); ++i) {
      char c = key[i];
      bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (!alnum && !(c == '-' && i > 0)) return bad_value("parameter");
    }
    if (eq != std::string_view::npos) {
      if (value.empty()) return bad_value("parameter");
      for (char ch : value) {
        auto c = static_cast<unsigned char>(ch);
        // esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 adds UTF-8
        if (c < 33 || c == '=' || c == 127) return bad_value("parameter");
      }
    }
    if (auto r = fn(key, value, eq != std::string_view::npos)) return r;
  }
  return std::nullopt;
}

}  // namespace

bool xtext_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c == '+') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(char(hi << 4 | lo));
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {
      return false;
    } else {
      out.push_back(char(c));
    }
  }
  return true;
}

std::string xtext_encode(std::string_view in) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out.push_back('+');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(char(c));
    }
  }
  return out;
}

std::optional<reply> parse_mail_params(std::string_view text, const param_extensions& ext, mail_params& out) {
  bool seen_size = false, seen_body = false, seen_utf8 = false, seen_ret = false, seen_envid = false,
       seen_auth = false;
  return for_each_param(text, [&](std::string_view key, std::string_view value,
                                  bool has_value) -> std::optional<reply> {
    if (iequals(key, "SIZE")) {
      if (seen_size) return duplicate_param();
      seen_size = true;
      if (!has_value) return bad_value("SIZE");
      uint64_t v = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return bad_value("SIZE");
        uint64_t d = uint64_t(c - '0');
        // A size too large to represent is still just "too large": saturate.
        v = v > (std::numeric_limits<uint64_t>::max() - d) / 10 ? std::numeric_limits<uint64_t>::max()
                                                                   : v * 10 + d;
      }
      out.size = v;
    } else if (iequals(key, "BODY")) {
      if (seen_body) return duplicate_param();
      seen_body = true;
      if (iequals(value, "7BIT")) out.body = body_type::seven_bit;
      else if (iequals(value, "8BITMIME") && ext.eightbitmime) out.body = body_type::eight_bit_mime;
      else if (iequals(value, "BINARYMIME") && ext.binarymime) out.body = body_type::binary_mime;
      else return bad_value("BODY");
    } else if (iequals(key, "SMTPUTF8") && ext.smtputf8) {
      if (seen_utf8) return duplicate_param();
      seen_utf8 = true;
      if (has_value) return bad_value("SMTPUTF8");
      out.smtputf8 = true;
    } else if (iequals(key, "RET") && ext.dsn) {
      if (seen_ret) return duplicate_param();
      seen_ret = true;
      if (iequals(value, "FULL")) out.ret = dsn_ret::full;
      else if (iequals(value, "HDRS")) out.ret = dsn_ret::headers;
      else return bad_value("RET");
    } else if (iequals(key, "ENVID") && ext.dsn) {
      if (seen_envid) return duplicate_param();
      seen_envid = true;
      if (!has_value || !xtext_decode(value, out.envid) || out.envid.size() > max_envid)
        return bad_value("ENVID");
    } else if (iequals(key, "AUTH") && ext.auth) {
      if (seen_auth) return duplicate_param();
      seen_auth = true;
      std::string decoded;
      if (!has_value || !xtext_decode(value, decoded)) return bad_value("AUTH");
      out.auth = std::move(decoded);
    } else {
      return unknown_param();
    }
    return std::nullopt;
  });
}

std::optional<reply> parse_rcpt_params(std::string_view text, const param_extensions& ext, rcpt_params& out) {
  bool seen_notify = false, seen_orcpt = false;
  return for_each_param(text, [&](std::string_view key, std::string_view value,
                                  bool has_value) -> std::optional<reply> {
    if (iequals(key, "NOTIFY") && ext.dsn) {
      if (seen_notify) return duplicate_param();
      seen_notify = true;
      if (!has_value) return bad_value("NOTIFY");
      uint8_t flags = 0;
      while (true) {
        size_t comma = value.find(',');
        std::string_view word = value.substr(0, comma);
        if (iequals(word, "NEVER")) flags |= notify_never;
        else if (iequals(word, "SUCCESS")) flags |= notify_success;
        else if (iequals(word, "FAILURE")) flags |= notify_failure;
        else if (iequals(word, "DELAY")) flags |= notify_delay;
        else return bad_value("NOTIFY");
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
      }
      if ((flags & notify_never) && flags != notify_never) return bad_value("NOTIFY");
      out.notify = flags;
    } else if (iequals(key, "ORCPT") && ext.dsn) {
      if (seen_orcpt) return duplicate_param();
      seen_orcpt = true;
      size_t semi = value.find(';');
      if (!has_value || semi == std::string_view::npos || semi == 0 || value.size() > max_orcpt)
        return bad_value("ORCPT");
      std::string_view type = value.substr(0, semi);
      for (char c : type) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok) return bad_value("ORCPT");
      }
      std::string decoded;
      if (!xtext_decode(value.substr(semi + 1), decoded) || decoded.empty()) return bad_value("ORCPT");
      out.orcpt.assign(type);
      out.orcpt.push_back(';');
      out.orcpt.append(decoded);
    } else {
      return unknown_param();
    }
    return std::nullopt;
  });
}

}  // namespace sluice::smtp
