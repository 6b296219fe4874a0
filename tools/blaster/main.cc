// main.cc: blaster: SMTP/LMTP load generator (send), counting sink (sink) and loss checker (verify).
// Untrusted input: command-line arguments (validated by parse_args).
#include <fmt/format.h>
#include <signal.h>

#include "commands.h"
#include "options.h"

int main(int argc, char** argv) {
  using namespace sluice::blaster;
  parsed_args a = parse_args(argc, argv);
  if (a.exit_code >= 0) {
    fmt::print(a.exit_code == 0 ? stdout : stderr, "{}\n", a.message);
    return a.exit_code;
  }
  signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write is a per-connection error, not fatal
  switch (a.cmd) {
    case parsed_args::command::send:
      return run_send(a.send);
    case parsed_args::command::sink:
      return run_sink(a.sink);
    case parsed_args::command::verify:
      return run_verify(a.verify);
    case parsed_args::command::none:
      break;
  }
  return 2;
}
