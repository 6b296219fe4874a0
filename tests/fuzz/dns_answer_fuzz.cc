// dns_answer_fuzz.cc: libFuzzer driver for DNS answers as c-ares hands them to the resolver (dns/answer.h, dns/mx.h).
// Untrusted input: the payload is a raw DNS response (abuf/alen), from any name server or a forger.
#include <arpa/nameser.h>
#include <ares.h>

#include <algorithm>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "dns/answer.h"
#include "dns/cache.h"
#include "dns/message.h"
#include "dns/mx.h"
#include "fuzz_util.h"

using sluice::fuzz::input_stream;
using namespace sluice::dns;

namespace {

// The status c-ares gives the answer callback for a response it received whole: it maps
// the RCODE, and a NOERROR without answers to ENODATA (ares_process.c end_query).
int callback_status(std::span<const uint8_t> m) {
  if (m.size() < 12) return ARES_EBADRESP;
  const int rcode = m[3] & 0x0F;
  const int ancount = m[6] << 8 | m[7];
  switch (rcode) {
    case 0: return ancount == 0 ? ARES_ENODATA : ARES_SUCCESS;
    case 2: return ARES_ESERVFAIL;
    case 3: return ARES_ENOTFOUND;
    case 5: return ARES_EREFUSED;
    default: return ARES_EBADRESP;
  }
}

bool is_lower_name(const std::string& h) {
  return !h.empty() && h.back() != '.' && std::none_of(h.begin(), h.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// resolver::impl::on_mx for a records answer: the plan and the promises plan_mx makes about it.
void check_mx_plan(const answer& a, std::span<const std::string> self, uint64_t seed) {
  std::mt19937_64 rng(seed);
  mx_plan plan = plan_mx(a.mx, self, rng);
  if (plan.status == lookup_status::null_mx) {
    FUZZ_CHECK(a.mx.size() == 1 && normalize_name(a.mx[0].host).empty());
    return;
  }
  if (plan.status == lookup_status::loops_to_self) {
    FUZZ_CHECK(plan.hosts.empty());
    return;
  }
  FUZZ_CHECK(plan.status == lookup_status::ok);
  FUZZ_CHECK(plan.hosts.size() <= a.mx.size());
  std::vector<std::string> names;
  for (size_t i = 0; i < plan.hosts.size(); ++i) {
    const mx_record& r = plan.hosts[i];
    FUZZ_CHECK(is_lower_name(r.host));
    if (i > 0) FUZZ_CHECK(plan.hosts[i - 1].preference <= r.preference);  // RFC 5321 5.1 order
    for (const auto& s : self) FUZZ_CHECK(normalize_name(s) != r.host);   // never to myself
    // Every host kept came from the answer, with the best preference it had there.
    uint16_t best = UINT16_MAX;
    bool found = false;
    for (const auto& m : a.mx) {
      if (normalize_name(m.host) != r.host) continue;
      found = true;
      best = std::min(best, m.preference);
    }
    FUZZ_CHECK(found && best == r.preference);
    names.push_back(r.host);
  }
  std::sort(names.begin(), names.end());
  FUZZ_CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());  // no duplicates
  // The site key names the set, not the order: a second shuffle gives the same key.
  std::mt19937_64 other(seed ^ 0x9e3779b97f4a7c15ull);
  mx_plan again = plan_mx(a.mx, self, other);
  FUZZ_CHECK(again.status == plan.status && again.hosts.size() == plan.hosts.size());
  FUZZ_CHECK(site_key(plan.hosts, false, "d") == site_key(again.hosts, false, "d"));
}

}  // namespace

// Input: byte 0 picks the question type (MX, A, AAAA) and self names; the rest is the response.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_stream in(data, size);
  const uint8_t flags = in.byte();
  const std::string_view body = in.rest();
  std::span<const uint8_t> message(reinterpret_cast<const uint8_t*>(body.data()), body.size());

  static const int types[] = {ns_t_mx, ns_t_a, ns_t_aaaa, ns_t_mx};
  const int type = types[flags & 3];
  const int status = callback_status(message);

  // The section walkers on their own: any bytes, never out of bounds (ASan watches).
  if (auto ttl = answer_ttl(message)) FUZZ_CHECK(*ttl <= 0x7FFFFFFFu);
  if (auto ttl = negative_ttl(message)) FUZZ_CHECK(*ttl <= 0x7FFFFFFFu);

  // As resolver.cc's answer callback calls it, with the settings' defaults (1 day, 1 hour).
  answer a = make_answer(type, status, message, 86400, 3600);
  FUZZ_CHECK(a.kind != answer_kind::records || !a.mx.empty() || !a.addresses.empty());
  FUZZ_CHECK(a.kind == answer_kind::records || (a.mx.empty() && a.addresses.empty()));
  FUZZ_CHECK(a.ttl_s <= 86400);
  for (const auto& m : a.mx) FUZZ_CHECK(normalize_name(m.host) == m.host);

  // The cache keeps what it was given and hands back no more TTL than it had.
  answer_cache cache(4);
  cache.insert("k", a, 1000);
  if (auto got = cache.find("k", 1000)) {
    FUZZ_CHECK(a.kind != answer_kind::failed && a.ttl_s > 0);
    FUZZ_CHECK(got->ttl_s <= a.ttl_s && got->mx.size() == a.mx.size() && got->addresses.size() == a.addresses.size());
  }

  if (a.kind == answer_kind::records && type == ns_t_mx) {
    std::vector<std::string> self;
    if (flags & 4) self.push_back("MX1.Example.NET.");
    if (flags & 8 && !a.mx.empty()) self.push_back(a.mx[(flags >> 4) % a.mx.size()].host);
    check_mx_plan(a, self, flags);
  }
  return 0;
}
