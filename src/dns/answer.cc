// answer.cc: c-ares's record parsers and the section walkers of message.cc over one DNS response.
// Untrusted input: the raw response; c-ares bounds-checks the records, message.cc the TTL walk.
#include "dns/answer.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>

#include <algorithm>

#include "dns/message.h"

namespace sluice::dns {

namespace {

constexpr int max_records = 64;  // addresses read from one answer: far more than any limit uses

std::string text_of(const ares_addrttl& r) { return address_text(AF_INET, &r.ipaddr); }
std::string text_of(const ares_addr6ttl& r) { return address_text(AF_INET6, &r.ip6addr); }

// The addresses of an A or AAAA answer in answer order, lowering `ttl` to theirs.
template <typename Record, typename Parse>
int read_addresses(Parse parse, const unsigned char* abuf, int alen, std::vector<std::string>& out, uint32_t& ttl) {
  Record records[max_records];
  int n = max_records;
  int status = parse(abuf, alen, nullptr, records, &n);
  for (int i = 0; status == ARES_SUCCESS && i < n; ++i) {
    out.push_back(text_of(records[i]));
    ttl = std::min<uint32_t>(ttl, static_cast<uint32_t>(std::max(records[i].ttl, 0)));
  }
  return status;
}

}  // namespace

std::string address_text(int family, const void* addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, addr, buf, sizeof buf) == nullptr) return {};
  return buf;
}

answer make_answer(int type, int status, std::span<const uint8_t> message, uint32_t max_ttl_s,
                   uint32_t negative_ttl_s) {
  const unsigned char* abuf = message.data();
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
      a.ttl_s = std::min(ttl, max_ttl_s);
      return a;
    }
    // An answer with only a CNAME, say, parses as ENODATA: the name exists, no records.
    if (status != ARES_ENODATA && status != ARES_SUCCESS) {
      a.mx.clear();
      a.addresses.clear();
      return a;  // malformed: failed, never cached
    }
    a.error = ARES_ENODATA;
  }
  if (a.error == ARES_ENODATA || a.error == ARES_ENOTFOUND) {
    a.kind = a.error == ARES_ENODATA ? answer_kind::nodata : answer_kind::nxdomain;
    a.ttl_s = std::min(negative_ttl(message).value_or(negative_ttl_s), negative_ttl_s);
  }
  return a;
}

}  // namespace sluice::dns
