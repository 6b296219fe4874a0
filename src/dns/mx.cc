// mx.cc: MX ordering, null MX and loops-to-self detection, site keys.
// Untrusted input: MX host names from DNS answers.
#include "dns/mx.h"

#include <algorithm>
#include <unordered_set>

#include "base/ascii.h"

namespace sluice::dns {

std::string_view enhanced_status(lookup_status s) noexcept {
  switch (s) {
    case lookup_status::ok: return "";
    case lookup_status::nxdomain: return "5.1.2";
    case lookup_status::null_mx: return "5.1.10";
    case lookup_status::loops_to_self: return "5.4.6";
    case lookup_status::no_addresses: return "5.4.4";
    case lookup_status::temporary: return "4.4.3";
  }
  return "4.4.3";
}

int reply_code(lookup_status s) noexcept {
  switch (s) {
    case lookup_status::ok: return 0;
    case lookup_status::nxdomain: return 550;
    case lookup_status::null_mx: return 556;
    case lookup_status::loops_to_self: return 554;
    case lookup_status::no_addresses: return 550;
    case lookup_status::temporary: return 451;
  }
  return 451;
}

std::string_view status_name(lookup_status s) noexcept {
  switch (s) {
    case lookup_status::ok: return "ok";
    case lookup_status::nxdomain: return "nxdomain";
    case lookup_status::null_mx: return "null_mx";
    case lookup_status::loops_to_self: return "loops_to_self";
    case lookup_status::no_addresses: return "no_addresses";
    case lookup_status::temporary: return "temporary";
  }
  return "temporary";
}

std::string normalize_name(std::string_view name) {
  // Every trailing dot, so that normalizing twice changes nothing ("mx.example.." from a
  // label holding a dot must compare equal to itself once normalized).
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) c = base::ascii_lower(c);
  return out;
}

mx_plan plan_mx(std::vector<mx_record> records, std::span<const std::string> self_names,
                std::mt19937_64& rng) {
  mx_plan plan;
  for (auto& r : records) r.host = normalize_name(r.host);
  if (records.size() == 1 && records.front().host.empty()) {
    plan.status = lookup_status::null_mx;
    return plan;
  }
  // A "." among real MX records breaks RFC 7505; it names no host, so it is skipped.
  std::erase_if(records, [](const mx_record& r) { return r.host.empty(); });
  std::stable_sort(records.begin(), records.end(),
                   [](const mx_record& a, const mx_record& b) { return a.preference < b.preference; });
  std::unordered_set<std::string> seen;
  std::erase_if(records, [&seen](const mx_record& r) { return !seen.insert(r.host).second; });

  auto is_self = [&self_names](const std::string& host) {
    return std::any_of(self_names.begin(), self_names.end(),
                       [&host](const std::string& s) { return base::iequals(normalize_name(s), host); });
  };
  auto self = std::find_if(records.begin(), records.end(), [&](const mx_record& r) { return is_self(r.host); });
  if (self != records.end()) {
    // Sorted, so the first self record has the best self preference: it and all after go.
    uint16_t limit = self->preference;
    std::erase_if(records, [limit](const mx_record& r) { return r.preference >= limit; });
    if (records.empty()) {
      plan.status = lookup_status::loops_to_self;
      return plan;
    }
  }
  for (auto first = records.begin(); first != records.end();) {
    auto last = std::find_if(first, records.end(),
                             [p = first->preference](const mx_record& r) { return r.preference != p; });
    std::shuffle(first, last, rng);
    first = last;
  }
  plan.hosts = std::move(records);
  return plan;
}

std::string site_key(std::span<const mx_record> hosts, bool implicit_mx, std::string_view domain) {
  if (implicit_mx) return "host:" + normalize_name(domain);
  std::vector<std::string> names;
  names.reserve(hosts.size());
  for (const auto& h : hosts) names.push_back(normalize_name(h.host));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string key = "mx:";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i != 0) key += ',';
    key += names[i];
  }
  return key;
}

}  // namespace sluice::dns
