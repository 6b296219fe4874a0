// dns_answer_fuzz.cc: libFuzzer driver for DNS answers as c-ares hands them to the resolver (dns/message.h, dns/mx.h).
// Untrusted input: the payload is a raw DNS response (abuf/alen), from any name server or a forger.
#include <arpa/nameser.h>
#include <ares.h>

#include <algorithm>
#include <random>
#include <span>
#include <string>
#include <vector>

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

std::string address_text(int family, const void* addr) {
  char buf[64] = {};
  FUZZ_CHECK(ares_inet_ntop(family, addr, buf, sizeof buf) != nullptr);
  return buf;
}
std::string address_text(const ares_addrttl& r) { return address_text(AF_INET, &r.ipaddr); }
std::string address_text(const ares_addr6ttl& r) { return address_text(AF_INET6, &r.ip6addr); }

// The address texts of an A/AAAA answer, as resolver.cc's read_addresses takes them.
template <typename Record, typename Parse>
int read_addresses(Parse parse, const uint8_t* abuf, int alen, std::vector<std::string>& out, uint32_t& ttl) {
  Record records[64];
  int n = 64;
  int status = parse(abuf, alen, nullptr, records, &n);
  FUZZ_CHECK(status != ARES_SUCCESS || (n >= 0 && n <= 64));
  for (int i = 0; status == ARES_SUCCESS && i < n; ++i) {
    out.push_back(address_text(records[i]));
    ttl = std::min<uint32_t>(ttl, static_cast<uint32_t>(std::max(records[i].ttl, 0)));
  }
  return status;
}

// resolver::impl::make_answer, step for step, with its settings' defaults (max 1 day, negative 1 h).
answer make_answer(int type, int status, std::span<const uint8_t> message) {
  constexpr uint32_t max_ttl = 86400, negative_ttl_default = 3600;
  const uint8_t* abuf = message.data();
  const int alen = static_cast<int>(message.size());
  answer a;
  a.error = status;
  if (status == ARES_SUCCESS) {
    uint32_t ttl = UINT32_MAX;
    if (type == ns_t_mx) {
      ares_mx_reply* mx = nullptr;
      status = ares_parse_mx_reply(abuf, alen, &mx);
      for (auto* r = mx; r != nullptr; r = r->next) a.mx.push_back({r->priority, normalize_name(r->host)});
      if (mx != nullptr) ares_free_data(mx);
      ttl = answer_ttl(message).value_or(0);
    } else if (type == ns_t_a) {
      status = read_addresses<ares_addrttl>(ares_parse_a_reply, abuf, alen, a.addresses, ttl);
    } else {
      status = read_addresses<ares_addr6ttl>(ares_parse_aaaa_reply, abuf, alen, a.addresses, ttl);
    }
    a.error = status;
    if (status == ARES_SUCCESS && (!a.mx.empty() || !a.addresses.empty())) {
      a.kind = answer_kind::records;
      a.ttl_s = std::min(ttl, max_ttl);
      return a;
    }
    if (status != ARES_ENODATA && status != ARES_SUCCESS) {
      a.mx.clear();
      a.addresses.clear();
      return a;
    }
    a.error = ARES_ENODATA;
  }
  if (a.error == ARES_ENODATA || a.error == ARES_ENOTFOUND) {
    a.kind = a.error == ARES_ENODATA ? answer_kind::nodata : answer_kind::nxdomain;
    a.ttl_s = std::min(negative_ttl(message).value_or(negative_ttl_default), negative_ttl_default);
  }
  return a;
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

  answer a = make_answer(type, status, message);
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
