// tls_bench.cc: in-memory TLS cost: server-side handshakes per second (RSA-2048, P-256) and bulk record throughput.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "tls/certgen.h"
#include "tls/context.h"
#include "tls/session.h"

namespace {

using namespace sluice::tls;
using steady = std::chrono::steady_clock;

// One server and one client context per key type, with certificates written to a
// temporary directory that is removed when the process exits.
struct contexts {
  std::string dir;
  std::shared_ptr<const context> server, client;

  contexts(key_type key, protocol max_version, const std::string& ciphersuites) {
    char tmpl[] = "/tmp/sluice-tls-bench-XXXXXX";
    dir = mkdtemp(tmpl);
    cert_request req;
    req.common_name = "bench.test";
    req.names = {"bench.test"};
    req.key = key;
    key_and_cert kc;
    std::string error;
    if (!issue_certificate(req, kc, error)) std::fprintf(stderr, "certificate: %s\n", error.c_str()), std::abort();
    std::ofstream(dir + "/c.pem") << kc.cert_pem;
    std::ofstream(dir + "/k.pem") << kc.key_pem;
    server_options so;
    so.pair = {dir + "/c.pem", dir + "/k.pem"};
    so.maximum = max_version;
    so.ciphersuites = ciphersuites;
    server = context::make_server(so, error);
    client_options co;
    co.maximum = max_version;
    client = context::make_client(co, error);
    if (!server || !client) std::fprintf(stderr, "context: %s\n", error.c_str()), std::abort();
  }
  ~contexts() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

contexts& get(key_type key, protocol p, const std::string& suites = "") {
  static contexts rsa13(key_type::rsa2048, protocol::tls1_3, "");
  static contexts ec13(key_type::p256, protocol::tls1_3, "");
  static contexts rsa12(key_type::rsa2048, protocol::tls1_2, "");
  static contexts ec12(key_type::p256, protocol::tls1_2, "");
  static contexts chacha(key_type::p256, protocol::tls1_3, "TLS_CHACHA20_POLY1305_SHA256");
  if (!suites.empty()) return chacha;
  if (key == key_type::rsa2048) return p == protocol::tls1_3 ? rsa13 : rsa12;
  return p == protocol::tls1_3 ? ec13 : ec12;
}

double seconds_since(steady::time_point t0) {
  return std::chrono::duration<double>(steady::now() - t0).count();
}

// Only the server's work is timed (session creation, consuming the client's flights,
// producing its own): that is what an MTA pays per inbound STARTTLS.
void handshake(benchmark::State& state, key_type key, protocol p, bool resume) {
  contexts& cx = get(key, p);
  saved_session saved;
  if (resume) {
    session c(cx.client, "bench.test"), s(cx.server);
    std::string a, b, text;
    for (int round = 0; round < 10; ++round) {
      a.clear();
      b.clear();
      c.take_ciphertext(a);
      s.feed_ciphertext(a);
      if (round == 5) s.write_plaintext("220 ok\r\n");
      s.take_ciphertext(b);
      c.feed_ciphertext(b);
      c.read_plaintext(text);
    }
    saved = c.save();
    if (!saved) {
      state.SkipWithError("no session to resume");
      return;
    }
  }
  for (auto _ : state) {
    double server_time = 0;
    session c(cx.client, "bench.test", saved);
    auto t0 = steady::now();
    session s(cx.server);
    server_time += seconds_since(t0);
    std::string a, b;
    for (int round = 0; round < 10 && !(c.handshake_done() && s.handshake_done()); ++round) {
      a.clear();
      b.clear();
      c.take_ciphertext(a);
      t0 = steady::now();
      if (!a.empty()) s.feed_ciphertext(a);
      s.take_ciphertext(b);
      server_time += seconds_since(t0);
      if (!b.empty()) c.feed_ciphertext(b);
    }
    if (!s.handshake_done() || s.failed() || s.resumed() != resume) {
      state.SkipWithError(("handshake failed or not resumed: " + s.error_text()).c_str());
      break;
    }
    state.SetIterationTime(server_time);
  }
  state.counters["handshakes/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate);
}

// Server-side encryption of `state.range(0)`-byte writes (SMTP replies are small,
// outbound message bodies large).
void encrypt(benchmark::State& state, const std::string& suites) {
  contexts& cx = get(key_type::p256, protocol::tls1_3, suites);
  session c(cx.client, "bench.test"), s(cx.server);
  std::string a, b;
  for (int round = 0; round < 10; ++round) {
    a.clear();
    b.clear();
    c.take_ciphertext(a);
    s.feed_ciphertext(a);
    s.take_ciphertext(b);
    c.feed_ciphertext(b);
  }
  std::string plain(static_cast<size_t>(state.range(0)), 'x');
  std::string wire;
  wire.reserve(plain.size() + plain.size() / 16 + 1024);
  for (auto _ : state) {
    wire.clear();
    s.write_plaintext(plain);
    s.take_ciphertext(wire);
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

// Encryption on one side and decryption on the other: the full cost of moving a body.
void round_trip(benchmark::State& state) {
  contexts& cx = get(key_type::p256, protocol::tls1_3);
  session c(cx.client, "bench.test"), s(cx.server);
  std::string a, b;
  for (int round = 0; round < 10; ++round) {
    a.clear();
    b.clear();
    c.take_ciphertext(a);
    s.feed_ciphertext(a);
    s.take_ciphertext(b);
    c.feed_ciphertext(b);
  }
  std::string plain(static_cast<size_t>(state.range(0)), 'x'), wire, got;
  for (auto _ : state) {
    wire.clear();
    got.clear();
    s.write_plaintext(plain);
    s.take_ciphertext(wire);
    c.feed_ciphertext(wire);
    c.read_plaintext(got);
    if (got.size() != plain.size()) {
      state.SkipWithError("short read");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

}  // namespace

BENCHMARK_CAPTURE(handshake, rsa2048_tls13, key_type::rsa2048, protocol::tls1_3, false)->UseManualTime();
BENCHMARK_CAPTURE(handshake, p256_tls13, key_type::p256, protocol::tls1_3, false)->UseManualTime();
BENCHMARK_CAPTURE(handshake, rsa2048_tls12, key_type::rsa2048, protocol::tls1_2, false)->UseManualTime();
BENCHMARK_CAPTURE(handshake, p256_tls12, key_type::p256, protocol::tls1_2, false)->UseManualTime();
BENCHMARK_CAPTURE(handshake, resumed_tls13, key_type::p256, protocol::tls1_3, true)->UseManualTime();
BENCHMARK_CAPTURE(handshake, resumed_tls12, key_type::p256, protocol::tls1_2, true)->UseManualTime();
BENCHMARK_CAPTURE(encrypt, aes_gcm, std::string())->Arg(512)->Arg(16384)->Arg(1 << 20);
BENCHMARK_CAPTURE(encrypt, chacha20, std::string("TLS_CHACHA20_POLY1305_SHA256"))->Arg(16384)->Arg(1 << 20);
BENCHMARK(round_trip)->Arg(16384)->Arg(1 << 20);

BENCHMARK_MAIN();
