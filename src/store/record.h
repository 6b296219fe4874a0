// record.h: the versioned binary encoding of a stored message's envelope and metadata.
// Untrusted input: records read back from the LMDB file (validated, never trusted).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "smtp/envelope.h"

namespace sluice::store {

// What the receiving side knew about a message besides its SMTP envelope.
struct message_metadata {
  int64_t received_at_ms = 0;   // unix time in milliseconds
  std::string connector;        // receive connector name
  std::string client_address;   // peer IP address as text
  std::string client_helo;      // HELO/EHLO argument as given
  std::string auth_user;        // authenticated user, "" if none
  uint64_t body_size = 0;       // bytes
  uint32_t body_chunks = 0;     // entries in the `bodies` database
};

inline constexpr uint8_t record_version = 1;

std::string encode_record(const smtp::envelope& env, const message_metadata& meta);

// False, with `error` set, for any record that is not a complete, well-formed version 1
// record (truncated, trailing bytes, unknown version, out-of-range enum values). The
// outputs are unspecified on failure.
bool decode_record(std::string_view bytes, smtp::envelope& env, message_metadata& meta,
                   std::string& error);

}  // namespace sluice::store
