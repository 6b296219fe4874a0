// protocol_log.cc: CSV formatting of protocol log events and the shared append-only files.
// Untrusted input: `data` carries client command lines verbatim.
#include "log/protocol_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

void append_event(std::string& out, std::string_view connector, uint64_t session, uint32_t sequence,
                  std::string_view local, std::string_view remote, event kind, std::string_view data) {
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

const char* protocol_log_header() {
  return "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data\n";
}

std::shared_ptr<const append_file> append_file::open(const std::string& path, const char* header, std::string& error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  // A new (empty) file gets the column names first.
  if (header != nullptr && ::lseek(fd, 0, SEEK_END) == 0) (void)!::write(fd, header, std::strlen(header));
  return std::make_shared<const append_file>(private_tag{}, fd, path);
}

append_file::~append_file() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace sluice::log
