// config_fuzz.cc: libFuzzer driver for the TOML configuration loader (config/config.h).
// Untrusted input: the payload is a configuration file's text (an admin's file, but a typo
// or a half-written file must give an error, never a crash).
#include <cstdint>
#include <string>

#include "config/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // A base directory that does not exist: relative file names resolve to nothing.
  auto r = sluice::config::load_string(text, "fuzz.toml", "/nonexistent-sluice-fuzz");
  if (!r.ok()) {
    FUZZ_CHECK(!r.errors.empty());
    FUZZ_CHECK(!r.error_text().empty());
  }
  (void)sluice::config::parse_size(text);
  return 0;
}
