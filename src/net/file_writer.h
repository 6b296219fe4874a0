// file_writer.h: appends to log files from a loop without blocking it (libuv threadpool).
#pragma once
#include <string>

#include "net/loop.h"

namespace sluice::net {

// Writes `data` to the O_APPEND descriptor `fd` on libuv's threadpool. The request owns
// `data` until the write finishes; the descriptor must stay open until the loop ends.
// Appends from several loops to one O_APPEND file never overwrite each other.
void append_async(loop& l, int fd, std::string&& data);

}  // namespace sluice::net
