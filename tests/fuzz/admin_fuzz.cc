// admin_fuzz.cc: libFuzzer driver for the admin socket protocol (admin/protocol.h).
// Untrusted input: request lines from any local user who can reach the socket, and
// response bytes as the CLI reads them.
#include <cstdint>
#include <string>

#include "admin/protocol.h"
#include "fuzz_util.h"

using sluice::fuzz::bits;
using sluice::fuzz::input_stream;
using namespace sluice::admin;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_stream in(data, size);
  bits b(in.byte() + 1);
  std::string_view text = in.rest();

  auto nl = text.find('\n');
  auto r = parse_request(text.substr(0, nl));
  if (r.ok()) {
    FUZZ_CHECK(r.words.size() <= max_request_words);
    // Quoting gives every word back unchanged.
    std::string line = format_request(r.words);
    FUZZ_CHECK(!line.empty() && line.back() == '\n');
    line.pop_back();
    auto again = parse_request(line);
    FUZZ_CHECK(again.ok() && again.words == r.words);
  }
  (void)parse_number(text.substr(0, nl));

  // Client side: arbitrary bytes, split anywhere.
  response_decoder dec;
  while (!text.empty()) {
    size_t n = std::min<size_t>(text.size(), 1 + b.pick(64));
    auto st = dec.feed(text.substr(0, n));
    text.remove_prefix(n);
    if (st == response_decoder::state::malformed) {
      FUZZ_CHECK(!dec.problem().empty());
      break;
    }
    if (st == response_decoder::state::complete) {
      response got = dec.take();
      // What the decoder returns survives encoding and decoding again.
      response_decoder dec2;
      FUZZ_CHECK(dec2.feed(encode_response(got)) == response_decoder::state::complete);
      response back = dec2.take();
      // Encoding drops CRs (so nothing can break the framing); the rest survives.
      for (auto& l : got.lines) std::erase(l, '\r');
      FUZZ_CHECK(back.ok == got.ok && back.lines == got.lines);
    }
  }
  return 0;
}
