// client_fixture.h: test helpers for the SMTP client machine: drain its events, take its output.
// Untrusted input: none (helpers only).
#pragma once
#include <string>
#include <vector>

#include "smtp/client.h"

namespace client_test {

inline std::vector<sluice::smtp::client_event> drain(sluice::smtp::client& c) {
  std::vector<sluice::smtp::client_event> v;
  sluice::smtp::client_event ev;
  while (c.next_event(ev)) v.push_back(std::move(ev));
  return v;
}

inline std::string take(sluice::smtp::client& c) {
  std::string s = c.output();
  c.consume_output(s.size());
  return s;
}

}  // namespace client_test
