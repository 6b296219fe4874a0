// message_test.cc: TTLs read from hand-built DNS responses (dns/message.h), including malformed ones.
// Untrusted input: none.
#include <criterion/criterion.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "dns/cache.h"
#include "dns/message.h"

using namespace sluice::dns;

namespace {

using bytes = std::vector<uint8_t>;

void u16(bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void u32(bytes& b, uint32_t v) {
  u16(b, static_cast<uint16_t>(v >> 16));
  u16(b, static_cast<uint16_t>(v));
}

// Header and the question "ex.test" IN `type`; the name sits at offset 12.
bytes header(uint16_t an, uint16_t ns, uint16_t type) {
  bytes b = {0x12, 0x34, 0x81, 0x80};
  u16(b, 1);
  u16(b, an);
  u16(b, ns);
  u16(b, 0);
  for (char c : std::string_view("\x02" "ex" "\x04" "test", 8)) b.push_back(static_cast<uint8_t>(c));
  b.push_back(0);
  u16(b, type);
  u16(b, 1);
  return b;
}

// A record owned by a pointer to the question name.
void record(bytes& b, uint16_t type, uint32_t ttl, const bytes& rdata) {
  u16(b, 0xC00C);
  u16(b, type);
  u16(b, 1);
  u32(b, ttl);
  u16(b, static_cast<uint16_t>(rdata.size()));
  b.insert(b.end(), rdata.begin(), rdata.end());
}

bytes soa_rdata(uint32_t minimum) {
  bytes r = {2, 'n', 's', 0xC0, 0x0C, 0xC0, 0x0C};  // MNAME ns.ex.test, RNAME ex.test
  for (uint32_t v : {1u, 2u, 3u, 4u}) u32(r, v);
  u32(r, minimum);
  return r;
}

}  // namespace

Test(message, answer_ttl_is_the_smallest) {
  bytes m = header(2, 0, 15);
  record(m, 15, 300, {0, 10, 0xC0, 0x0C});
  record(m, 15, 120, {0, 20, 0xC0, 0x0C});
  auto ttl = answer_ttl(m);
  cr_assert(ttl.has_value());
  cr_assert_eq(*ttl, 120u);
}

Test(message, negative_ttl_from_soa) {
  bytes m = header(0, 1, 15);
  record(m, 6, 900, soa_rdata(30));
  cr_assert_eq(negative_ttl(m).value_or(0), 30u);
  bytes n = header(0, 1, 15);
  record(n, 6, 10, soa_rdata(3600));
  cr_assert_eq(negative_ttl(n).value_or(0), 10u, "the SOA record's own TTL bounds it too");
  cr_assert(!negative_ttl(header(0, 0, 15)).has_value());
}

Test(message, malformed_messages_give_nothing) {
  bytes m = header(1, 0, 15);
  record(m, 15, 300, {0, 10, 0xC0, 0x0C});
  for (size_t cut = 0; cut < m.size(); ++cut) {
    bytes shorter(m.begin(), m.begin() + static_cast<long>(cut));
    cr_assert(!answer_ttl(shorter).has_value(), "truncated at %zu", cut);
  }
  bytes soa = header(0, 1, 15);
  record(soa, 6, 900, soa_rdata(30));
  soa.resize(soa.size() - 3);  // rdata shorter than its length says
  cr_assert(!negative_ttl(soa).has_value());
}

Test(cache, expires_and_reports_remaining_ttl) {
  answer_cache c(8);
  answer a;
  a.kind = answer_kind::records;
  a.addresses = {"192.0.2.1"};
  a.ttl_s = 10;
  c.insert("1 a.test", a, 1000);
  auto hit = c.find("1 a.test", 5000);
  cr_assert(hit.has_value());
  cr_assert_eq(hit->ttl_s, 6u);
  cr_assert_eq(hit->addresses.size(), 1u);
  cr_assert(!c.find("1 a.test", 11000).has_value());
  cr_assert_eq(c.size(), 0u, "an expired entry is dropped when found");
}

Test(cache, failures_and_zero_ttls_are_not_kept) {
  answer_cache c(8);
  answer failed;
  failed.ttl_s = 60;
  c.insert("15 f.test", failed, 0);
  answer zero;
  zero.kind = answer_kind::nxdomain;
  c.insert("15 z.test", zero, 0);
  cr_assert_eq(c.size(), 0u);
}

Test(cache, bounded_evicting_soonest_expiry) {
  answer_cache c(3);
  answer a;
  a.kind = answer_kind::nodata;
  for (uint32_t i = 0; i < 3; ++i) {
    a.ttl_s = 100 + i;
    c.insert("k" + std::to_string(i), a, 0);
  }
  a.ttl_s = 50;
  c.insert("k3", a, 0);
  cr_assert_eq(c.size(), 3u);
  cr_assert(!c.find("k0", 1).has_value(), "the entry expiring soonest made room");
  cr_assert(c.find("k1", 1).has_value());
  cr_assert(c.find("k3", 1).has_value());
}
