// rules_bench.cc: transport rule evaluation with 20 rules, none or some firing; allocations per message.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "rules/rules.h"

// Counting operator new: the claim to check is "no allocation when no rule fires". It
// replaces the global operator new, so this binary is built without mimalloc_dep (whose
// new/delete would clash); apply_header_edits' numbers are therefore glibc malloc's.
namespace {
std::atomic<uint64_t> allocations{0};
}
void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace sluice::rules;

constexpr size_t rule_count = 20;

const std::string message =
    "Received: from mail.partner.example (mail.partner.example [192.0.2.10])\r\n"
    "\tby mx.contoso.com with ESMTPS id 0001ABCD; Sat, 28 Nov 2026 10:00:00 +0000\r\n"
    "Received: from laptop by mail.partner.example; Sat, 28 Nov 2026 09:59:58 +0000\r\n"
    "From: Alice Example <alice@partner.example>\r\n"
    "To: Bob <bob@contoso.com>, Carol <carol@contoso.com>\r\n"
    "Cc: dave@sales.contoso.com\r\n"
    "Subject: Quarterly figures for the\r\n"
    " northern region, draft 3\r\n"
    "Date: Sat, 28 Nov 2026 09:59:57 +0000\r\n"
    "Message-ID: <20261128095957.12345@partner.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "X-Mailer: Example Mail 1.0\r\n"
    "\r\n"
    "Hello,\r\n\r\nthe figures are attached.\r\n";

std::vector<rule_spec> make_rules(bool some_fire) {
  std::vector<rule_spec> v;
  for (size_t i = 0; i < rule_count; ++i) {
    rule_spec r;
    r.name = "rule " + std::to_string(i);
    std::string n = std::to_string(i);
    switch (i % 5) {
      case 0: r.sender_domain = {"never" + n + ".example", "*.never" + n + ".example"}; break;
      case 1: r.recipient = {"*@blocked" + n + ".example", "someone@contoso.org"}; break;
      case 2: r.header = header_condition{"Subject", header_condition::kind::glob, "*invoice " + n + "*"}; break;
      case 3: r.header = header_condition{"X-Spam-Flag", header_condition::kind::contains, "yes"}; break;
      case 4: r.size_above = 50ull << 20; r.received_on = {"Internet"}; break;
    }
    r.add_header = header_field{"X-Rule", n};
    v.push_back(std::move(r));
  }
  if (some_fire) {
    // Three typical policies that match this message.
    v[3].header = header_condition{"subject", header_condition::kind::glob, "*figures*region*"};
    v[7].recipient = {};
    v[7].header.reset();
    v[7].recipient_domain = {"*.contoso.com"};
    v[7].add_header.reset();
    v[7].route_via = "Sales";
    v[12].sender_domain = {"partner.example"};
    v[12].header.reset();
    v[12].add_header.reset();
    v[12].bcc = "audit@contoso.com";
  }
  return v;
}

void run(benchmark::State& state, bool some_fire) {
  rule_set set(make_rules(some_fire));
  std::vector<std::string_view> rcpts{"bob@contoso.com", "carol@contoso.com", "dave@sales.contoso.com"};
  message_view m;
  m.sender = "alice@partner.example";
  m.recipients = rcpts;
  m.headers = message;
  m.size = message.size();
  m.receive_connector = "Default";
  outcome out;
  set.evaluate(m, out);  // warm the outcome's capacity, as a shard's reused one is
  uint64_t fired = out.fired.size();
  uint64_t before = allocations.load();
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(set.evaluate(m, out));
  }
  uint64_t allocs = allocations.load() - before;
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["rules/s"] = benchmark::Counter(static_cast<double>(state.iterations() * rule_count),
                                                 benchmark::Counter::kIsRate);
  state.counters["fired"] = static_cast<double>(fired);
  state.counters["allocs/msg"] = static_cast<double>(allocs) / static_cast<double>(state.iterations());
}

void BM_rules_none_fire(benchmark::State& state) { run(state, false); }
void BM_rules_some_fire(benchmark::State& state) { run(state, true); }

// Rewriting a typical header block: one added field, one replaced.
void BM_apply_header_edits(benchmark::State& state) {
  header_edit edits[] = {{header_edit::kind::add, "X-Tag", "external"},
                         {header_edit::kind::replace, "Subject", "[EXT] Quarterly figures"}};
  std::string body;
  for (auto _ : state) {
    body = message;
    apply_header_edits(body, edits);
    benchmark::DoNotOptimize(body.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * message.size()));
}

}  // namespace

BENCHMARK(BM_rules_none_fire);
BENCHMARK(BM_rules_some_fire);
BENCHMARK(BM_apply_header_edits);
BENCHMARK_MAIN();
