// record.h: the sent and received logs that blaster verify compares, one tab-separated line per message.
// Untrusted input: log files given on the command line (parsed leniently, bad lines counted).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::blaster {

// One acknowledged message: "<id>\t<digest>\t<queue id>\t<from>\t<rcpt>,<rcpt>...".
// Only the recipients the server accepted are listed.
struct sent_record {
  std::string id, digest, queue_id, from;
  std::vector<std::string> rcpts;
};
// One received message: "<id>\t<ok|bad|none>\t<digest>\t<from>\t<rcpt>,<rcpt>...", and
// with sink --dsn a sixth column: the DSN parameters (see README.md). Readers ignore
// columns they do not know, so columns are only ever added at the end.
struct received_record {
  std::string id, check, digest, from;
  std::vector<std::string> rcpts;
  std::optional<std::string> dsn;
};

void append_record(std::string& out, const sent_record& r);
void append_record(std::string& out, const received_record& r);
bool parse_record(std::string_view line, sent_record& r);
bool parse_record(std::string_view line, received_record& r);

// The queue id in a 250 reply text: the token after "queued as" (Postfix), else the
// first token (sluice: "<id> Queued mail for delivery"), without angle brackets.
std::string queue_id_from_reply(std::string_view text);

}  // namespace sluice::blaster
