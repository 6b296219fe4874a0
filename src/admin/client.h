// client.h: a blocking admin socket client for sluicectl (one request, one response).
// Untrusted input: response bytes from whatever listens on the socket path.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "admin/protocol.h"

namespace sluice::admin {

enum class call_status {
  ok,           // a complete response arrived (it may itself be an error response)
  not_running,  // no socket at the path, or nobody listens on it
  failed,       // connected, but the exchange failed (timeout, reset, malformed response)
};

struct call_result {
  call_status status = call_status::failed;
  response reply;     // when status is ok
  std::string error;  // otherwise: what went wrong, naming the path
};

// Connects to socket_path, sends words as one request and waits up to timeout_ms in
// total for the response. Plain POSIX sockets: sluicectl has no event loop.
call_result call(const std::string& socket_path, const std::vector<std::string>& words, int timeout_ms = 10000);

}  // namespace sluice::admin
