// protocol_log.cc: CSV formatting of protocol log events.
// Untrusted input: `data` carries client command lines verbatim.
#include "log/protocol_log.h"

#include "base/clock.h"

namespace sluice::log {

void append_csv_field(std::string& line, std::string_view field) {
  line.push_back('"');
  for (char c : field) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"') {
      line += "\"\"";
    } else if (u < 0x20 || u == 0x7f) {
      static const char hex[] = "0123456789ABCDEF";
      line += "\\x";
      line.push_back(hex[u >> 4]);
      line.push_back(hex[u & 0xf]);
    } else {
      line.push_back(c);
    }
  }
  line.push_back('"');
}

void protocol_log_buffer::add(size_t file, std::string_view connector, uint64_t session,
                              uint32_t sequence, std::string_view local, std::string_view remote,
                              event kind, std::string_view data) {
  std::string& out = pending_[file];
  out += base::iso8601_now_utc();
  out.push_back(',');
  append_csv_field(out, connector);
  out.push_back(',');
  out += std::to_string(session);
  out.push_back(',');
  out += std::to_string(sequence);
  out.push_back(',');
  out += local;
  out.push_back(',');
  out += remote;
  out.push_back(',');
  out.push_back(static_cast<char>(kind));
  out.push_back(',');
  append_csv_field(out, data);
  out.push_back('\n');
}

std::string protocol_log_buffer::take(size_t file) {
  std::string batch;
  batch.swap(pending_[file]);
  return batch;
}

const char* protocol_log_buffer::header() {
  return "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data\n";
}

}  // namespace sluice::log
