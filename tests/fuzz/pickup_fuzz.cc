// pickup_fuzz.cc: libFuzzer driver for pickup-directory files (smtpd/pickup_message.h).
// Untrusted input: the payload is an .eml file dropped by any local program.
#include <cstdint>
#include <string>

#include "smtpd/pickup_message.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr uint64_t max_size = 64u << 10;
  constexpr unsigned max_received_headers = 100;
  auto r = sluice::smtpd::parse_pickup_file(text, max_size, max_received_headers);
  if (r.ok) {
    FUZZ_CHECK(!r.envelope.recipients.empty());
    // LF → CRLF at most doubles the size; the limit applies to the result.
    FUZZ_CHECK(r.body.size() <= 2 * text.size() + 2);
    FUZZ_CHECK(r.body.size() <= max_size);
    for (const auto& rc : r.envelope.recipients) FUZZ_CHECK(!rc.address.empty());
  } else {
    FUZZ_CHECK(!r.error.empty());
  }
  auto list = sluice::smtpd::parse_address_list(text);
  size_t total = 0;
  for (const auto& a : list) total += a.size();
  FUZZ_CHECK(total <= text.size());
  return 0;
}
