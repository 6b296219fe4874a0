// verify.h: compares the sent log (acknowledged messages) with received logs.
// Untrusted input: log files named on the command line.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "record.h"

namespace sluice::blaster {

// Accounting is per (message id, recipient): an acknowledged recipient must arrive
// exactly once with an intact body. Copies of unacknowledged messages are "extra":
// legitimate when a connection broke after the server had queued the message.
struct verify_result {
  uint64_t sent_messages = 0;
  uint64_t sent_recipients = 0;
  uint64_t received_messages = 0;
  uint64_t delivered = 0;        // acknowledged recipients that arrived at least once
  uint64_t lost = 0;             // acknowledged recipients that never arrived
  uint64_t lost_messages = 0;    // acknowledged messages of which no recipient arrived
  uint64_t duplicated = 0;       // arrivals beyond the first per (id, recipient)
  uint64_t corrupted = 0;        // received messages whose digest did not match
  uint64_t extra = 0;            // received messages (or recipients) never acknowledged
  uint64_t bad_lines = 0;        // unparsable log lines
  bool ok() const { return lost == 0 && corrupted == 0; }
};

class verifier {
 public:
  void add_sent(const sent_record& r);
  void add_received(const received_record& r);
  verify_result result() const;
  // Reads a whole log; returns false (and sets error) if the file cannot be read.
  bool read_sent(const std::string& path, std::string& error);
  bool read_received(const std::string& path, std::string& error);

 private:
  struct entry {
    std::vector<std::string> rcpts;
    std::vector<uint32_t> arrivals;
  };
  std::unordered_map<std::string, entry> sent_;
  uint64_t sent_messages_ = 0;
  uint64_t received_ = 0;
  uint64_t corrupted_ = 0;
  uint64_t extra_ = 0;
  uint64_t bad_lines_ = 0;
};

std::string format_result(const verify_result& r, bool json);

}  // namespace sluice::blaster
