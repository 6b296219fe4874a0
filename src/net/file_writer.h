// file_writer.h: appends to log files from a loop without blocking it (libuv threadpool).
#pragma once
#include <memory>
#include <string>

#include "net/loop.h"

namespace sluice::net {

// Writes `data` to the O_APPEND descriptor `fd` on libuv's threadpool. The request owns
// `data` and a reference to `keep_open` (whatever owns the descriptor) until the write
// finishes. Appends from several loops to one O_APPEND file never overwrite each other.
void append_async(loop& l, int fd, std::shared_ptr<const void> keep_open, std::string&& data);

}  // namespace sluice::net
