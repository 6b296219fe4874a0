// verify.cc: loss, duplication and corruption accounting between sent and received logs.
// Untrusted input: log lines (malformed ones are counted, never trusted).
#include "verify.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>

namespace sluice::blaster {

void verifier::add_sent(const sent_record& r) {
  ++sent_messages_;
  auto& e = sent_[r.id];
  for (const auto& rc : r.rcpts) {
    if (std::find(e.rcpts.begin(), e.rcpts.end(), rc) != e.rcpts.end()) continue;
    e.rcpts.push_back(rc);
    e.arrivals.push_back(0);
  }
}

void verifier::add_received(const received_record& r) {
  ++received_;
  if (r.check == "bad") ++corrupted_;
  auto it = sent_.find(r.id);
  if (it == sent_.end()) {
    ++extra_;
    return;
  }
  auto& e = it->second;
  for (const auto& rc : r.rcpts) {
    auto pos = std::find(e.rcpts.begin(), e.rcpts.end(), rc);
    if (pos == e.rcpts.end()) {
      ++extra_;
      continue;
    }
    ++e.arrivals[size_t(pos - e.rcpts.begin())];
  }
}

verify_result verifier::result() const {
  verify_result v;
  v.sent_messages = sent_messages_;
  v.received_messages = received_;
  v.corrupted = corrupted_;
  v.extra = extra_;
  v.bad_lines = bad_lines_;
  for (const auto& [id, e] : sent_) {
    bool any = false;
    for (uint32_t a : e.arrivals) {
      ++v.sent_recipients;
      if (a == 0) {
        ++v.lost;
      } else {
        any = true;
        ++v.delivered;
        v.duplicated += a - 1;
      }
    }
    if (!any && !e.arrivals.empty()) ++v.lost_messages;
  }
  return v;
}

bool verifier::read_sent(const std::string& path, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot read " + path;
    return false;
  }
  std::string line;
  sent_record r;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (parse_record(line, r)) add_sent(r);
    else ++bad_lines_;
  }
  return true;
}

bool verifier::read_received(const std::string& path, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot read " + path;
    return false;
  }
  std::string line;
  received_record r;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (parse_record(line, r)) add_received(r);
    else ++bad_lines_;
  }
  return true;
}

std::string format_result(const verify_result& r, bool json) {
  if (json) {
    return fmt::format(
        "{{\"ok\":{},\"sent_messages\":{},\"sent_recipients\":{},\"received_messages\":{},"
        "\"delivered\":{},\"lost\":{},\"lost_messages\":{},\"duplicated\":{},\"corrupted\":{},"
        "\"extra\":{},\"bad_lines\":{}}}\n",
        r.ok(), r.sent_messages, r.sent_recipients, r.received_messages, r.delivered, r.lost,
        r.lost_messages, r.duplicated, r.corrupted, r.extra, r.bad_lines);
  }
  return fmt::format(
      "verify: {}\n  sent:       {} messages, {} recipients acknowledged\n"
      "  received:   {} messages\n  delivered:  {} recipients\n  lost:       {} recipients ({} messages)\n"
      "  duplicated: {}\n  corrupted:  {}\n  extra:      {}\n  bad lines:  {}\n",
      r.ok() ? "OK" : "FAILED", r.sent_messages, r.sent_recipients, r.received_messages, r.delivered,
      r.lost, r.lost_messages, r.duplicated, r.corrupted, r.extra, r.bad_lines);
}

}  // namespace sluice::blaster
