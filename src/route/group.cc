// group.cc: bifurcation: recipients of one message grouped by next hop, in order of first appearance.
#include <cstdint>

#include "route/route.h"

namespace sluice::route {

void group_by_next_hop(std::span<const decision> decisions, grouping& out) {
  out.groups.clear();
  out.order.clear();
  out.failed.clear();
  const size_t n = decisions.size();
  out.group_of.resize(n);

  // Open-addressed map hop hash -> group index, sized for the worst case (every
  // recipient its own hop) so probing always ends; messages have few recipients,
  // so clearing it is cheaper than anything cleverer.
  size_t cap = 8;
  while (cap < n * 2) cap <<= 1;
  out.slots.assign(cap, UINT32_MAX);
  const size_t mask = cap - 1;

  for (size_t i = 0; i < n; ++i) {
    const decision& d = decisions[i];
    if (!deliverable(d.result)) {
      out.failed.push_back(static_cast<uint32_t>(i));
      out.group_of[i] = UINT32_MAX;
      continue;
    }
    size_t s = static_cast<size_t>(d.hop.hash) & mask;
    for (;; s = (s + 1) & mask) {
      uint32_t g = out.slots[s];
      if (g == UINT32_MAX) {
        g = static_cast<uint32_t>(out.groups.size());
        out.slots[s] = g;
        out.groups.push_back(hop_group{d.hop, 0, 0});
        out.group_of[i] = g;
        ++out.groups[g].count;
        break;
      }
      if (out.groups[g].hop == d.hop) {
        out.group_of[i] = g;
        ++out.groups[g].count;
        break;
      }
    }
  }

  // Counting sort by group keeps input order inside each group.
  uint32_t at = 0;
  for (hop_group& g : out.groups) {
    g.first = at;
    at += g.count;
    g.count = 0;
  }
  out.order.resize(at);
  for (size_t i = 0; i < n; ++i) {
    uint32_t g = out.group_of[i];
    if (g == UINT32_MAX) continue;
    hop_group& grp = out.groups[g];
    out.order[grp.first + grp.count++] = static_cast<uint32_t>(i);
  }
}

}  // namespace sluice::route
