// verify_cmd.cc: blaster verify: reads the logs and prints the loss/corruption accounting.
// Untrusted input: the log files named on the command line.
#include <fmt/format.h>

#include "commands.h"
#include "verify.h"

namespace sluice::blaster {

int run_verify(const verify_options& o) {
  verifier v;
  std::string err;
  for (const auto& p : o.sent)
    if (!v.read_sent(p, err)) {
      fmt::print(stderr, "blaster verify: {}\n", err);
      return 2;
    }
  for (const auto& p : o.received)
    if (!v.read_received(p, err)) {
      fmt::print(stderr, "blaster verify: {}\n", err);
      return 2;
    }
  verify_result r = v.result();
  fmt::print("{}", format_result(r, o.json));
  return r.ok() ? 0 : 1;
}

}  // namespace sluice::blaster
