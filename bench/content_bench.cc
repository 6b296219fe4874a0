// content_bench.cc: the per-message cost of planning outbound content by reference: DATA (data_segments) against BDAT (plan_bdat, text and binary).
// Untrusted input: none (generated bodies in the store's 2 KB chunks).
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>
#include <vector>

#include "smtp/data_segments.h"

namespace {

using namespace sluice::smtp;

// A stored body of about `size` bytes in 2,000-byte chunks (the store's chunking), CRLF
// lines of 76 characters with a dot line now and then.
struct body {
  std::string bytes;
  std::vector<std::string_view> chunks;
  explicit body(size_t size) {
    bytes = "Subject: bench\r\n\r\n";
    for (size_t i = 0; bytes.size() < size; ++i)
      bytes += (i % 40 == 0 ? "." : "x") + std::string(75, 'a' + char(i % 26)) + "\r\n";
    for (size_t at = 0; at < bytes.size(); at += 2000) chunks.push_back(std::string_view(bytes).substr(at, 2000));
  }
};

void data(benchmark::State& st) {
  body b(size_t(st.range(0)));
  std::vector<std::string_view> segs;
  for (auto _ : st) {
    segs.clear();
    benchmark::DoNotOptimize(data_segments(b.chunks, segs));
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(b.bytes.size()));
}

void bdat(benchmark::State& st, bool binary) {
  body b(size_t(st.range(0)));
  bdat_plan p;
  for (auto _ : st) {
    plan_bdat(b.chunks, binary, 1024 * 1024, p);
    benchmark::DoNotOptimize(p.chunk_size.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(b.bytes.size()));
}

void bdat_text(benchmark::State& st) { bdat(st, false); }
void bdat_binary(benchmark::State& st) { bdat(st, true); }

}  // namespace

BENCHMARK(data)->Arg(2 << 10)->Arg(64 << 10)->Arg(4 << 20);
BENCHMARK(bdat_text)->Arg(2 << 10)->Arg(64 << 10)->Arg(4 << 20);
BENCHMARK(bdat_binary)->Arg(2 << 10)->Arg(64 << 10)->Arg(4 << 20);
BENCHMARK_MAIN();
