// smtp_server_fuzz.cc: libFuzzer driver for the SMTP server state machine (smtp/server.h).
// Untrusted input: the whole fuzzer input is client bytes, split at fuzzer-chosen points.
#include <cstdint>
#include <algorithm>
#include <string>

#include <sanitizer/allocator_interface.h>

#include "smtp/server.h"
#include "fuzz_util.h"

namespace {

using sluice::fuzz::bits;
using sluice::fuzz::input_stream;
using namespace sluice::smtp;

constexpr uint64_t max_message = 64u << 10;

// Accepts or refuses from the decision bits; defers submit/AUTH/TLS completion to the
// driver loop because the server forbids calling back into it from a delegate call.
struct delegate final : server_delegate {
  explicit delegate(bits& b) : b_(b) {}
  reply check_helo(std::string_view) override { return b_.pick(8) == 0 ? reply{550, "5.7.1", "no"} : reply{250, "", ""}; }
  reply check_mail(const envelope&) override {
    return b_.pick(8) == 0 ? reply{451, "4.3.0", "later"} : reply{250, "2.1.0", "Sender OK"};
  }
  reply check_recipient(const envelope&, const recipient& r) override {
    FUZZ_CHECK(r.address.size() <= 1024);
    return b_.pick(4) == 0 ? reply{550, "5.1.1", "unknown"} : reply{250, "2.1.5", "Recipient OK"};
  }
  void submit(envelope& env, std::string& body) override {
    // The server promises the body is within the limit (plus the CRLFs it adds).
    FUZZ_CHECK(body.size() <= max_message + 4096);
    FUZZ_CHECK(!env.recipients.empty());
    FUZZ_CHECK(!submit_pending);  // no second submit before submit_done
    std::string taken = std::move(body);
    submit_pending = true;
  }
  void start_tls() override { tls_pending = true; }
  reply check_auth(std::string_view, std::string_view, std::string_view, std::string_view) override {
    switch (b_.pick(3)) {
      case 0: return {235, "2.7.0", "Authentication successful"};
      case 1: auth_pending = true; return {0, "", ""};
      default: return {535, "5.7.8", "Authentication credentials invalid"};
    }
  }
  void on_command(std::string_view line) override { FUZZ_CHECK(line.size() <= 64u << 10); }
  void on_reply(std::string_view text) override { FUZZ_CHECK(!text.empty()); }

  bits& b_;
  bool submit_pending = false;
  bool auth_pending = false;
  bool tls_pending = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_stream in(data, size);
  uint8_t flags = in.byte();
  uint8_t flags2 = in.byte();
  uint64_t seed = 0;
  for (int i = 0; i < 4; ++i) seed = (seed << 8) | in.byte();
  bits b(seed);

  server_settings s;
  s.hostname = "mx.fuzz.test";
  s.banner = (flags2 & 1) ? "" : "mx.fuzz.test ESMTP";
  s.max_message_size = max_message;
  s.max_recipients = 1 + (flags2 >> 4);
  s.max_errors = (flags2 & 2) ? 3 : 10;
  s.helo_required = flags & 1;
  s.pipelining = !(flags & 2);
  s.chunking = !(flags & 4);
  s.smtputf8 = !(flags & 8);
  s.dsn = !(flags & 16);
  s.starttls_offered = flags & 32;
  s.starttls_required = (flags & 96) == 96;
  s.auth_offered = flags & 128;
  s.auth_required = (flags & 128) && (flags2 & 4);

  delegate d(b);
  server srv(s, d);
  size_t out_total = 0;
  size_t in_total = 0;
  auto drain = [&] {
    out_total += srv.output().size();
    srv.consume_output(srv.output().size());
  };
  if (flags2 & 8) srv.refuse("no connector for you");
  else srv.greet();
  drain();

  // Now and then the verdicts never come (a stalled store) while the client keeps sending.
  bool stalled = b.pick(8) == 0;
  // While a verdict is pending the server only holds input: its memory may grow by the
  // held-input limit (a message plus its commands), not by everything fed.
  const size_t held_limit = max_message + s.max_command_line * (s.max_recipients + 16);
  bool waiting = false;
  size_t wait_base = 0, wait_largest = 0;
  while (!in.empty()) {
    // Reads split anywhere: byte by byte, mid-line, or many lines at once.
    std::string_view piece = in.chunk(1 + (b.next() ? b.pick(16) : b.pick(4096)));
    in_total += piece.size();
    size_t fed_now = piece.size();
    if (b.pick(32) == 0) {
      // Now and then a piece repeated many times: reaches the message size and line
      // length limits that a max_len-sized input alone would not.
      std::string big;
      for (int i = 0; i < 512; ++i) big.append(piece);
      in_total += big.size() - piece.size();
      fed_now = big.size();
      srv.feed(big);
    } else {
      srv.feed(piece);
    }
    // Complete whatever the session waits for; each completion may run held input
    // that starts the next wait, so loop until nothing is pending.
    // Sometimes the verdict is slow (a long group commit, a password hash) and input keeps
    // coming: what the server holds meanwhile must stay bounded (-malloc_limit_mb in run.sh).
    bool slow = stalled || b.pick(4) == 0;
    for (int guard = 0; guard < 10000 && !slow; ++guard) {
      drain();
      if (d.submit_pending) {
        d.submit_pending = false;
        switch (b.pick(4)) {
          case 0: srv.submit_done({452, "4.3.1", "Insufficient system storage"}); break;
          case 1: srv.submit_done({554, "5.6.0", "rejected"}); break;
          default: srv.submit_done({250, "2.6.0", "<id@fuzz> Queued mail for delivery"});
        }
      } else if (d.auth_pending) {
        d.auth_pending = false;
        srv.auth_done(b.next() ? reply{235, "2.7.0", "Authentication successful"}
                               : reply{535, "5.7.8", "Authentication credentials invalid"});
      } else if (d.tls_pending) {
        d.tls_pending = false;
        srv.tls_started();
      } else {
        break;
      }
    }
    drain();
    bool now_waiting = d.submit_pending || d.auth_pending;
    if (now_waiting && !waiting) {
      wait_base = __sanitizer_get_current_allocated_bytes();
      wait_largest = 0;
    } else if (now_waiting) {
      wait_largest = std::max(wait_largest, fed_now);
      size_t grown = __sanitizer_get_current_allocated_bytes() - std::min(wait_base, __sanitizer_get_current_allocated_bytes());
      FUZZ_CHECK(grown <= 2 * (held_limit + wait_largest) + 65536);
    }
    waiting = now_waiting;
    if (b.pick(64) == 0) srv.timeout();
    // No reply is larger than a few hundred bytes and each takes at least one input byte
    // (or a completion triggered by one); anything beyond this is amplification.
    FUZZ_CHECK(out_total <= 64 * in_total + 4096);
    if (srv.closing() && b.next()) break;  // a real caller closes; sometimes keep feeding
  }
  return 0;
}
