// message.h: test messages with an id and a body digest in their headers, and the check of received ones.
// Untrusted input: check_message() reads content received from a remote client.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::blaster {

struct weighted_domain {
  std::string name;
  unsigned weight = 1;
};

struct message_spec {
  std::string run_id = "run";
  std::string from_pattern = "sender{n}@blaster.test";
  std::string to_pattern = "user{n}.{r}@{domain}";
  std::vector<weighted_domain> domains{{"example.test", 1}};
  size_t size_min = 1024;   // whole message: headers and body
  size_t size_max = 1024;
  unsigned rcpts = 1;
};

// {n}: message number; {r}: recipient index within the message; {domain}: a domain
// drawn from the weighted list.
std::string expand(std::string_view pattern, uint64_t n, unsigned r, std::string_view domain);

struct generated_message {
  std::string id;                 // "<run>-<n>"
  std::string from;
  std::vector<std::string> rcpts;
  std::string content;            // CRLF lines, no line starts with '.'
  uint64_t digest = 0;            // of the body after the blank line
};

// One per loop (not thread-safe); bodies are slices of a shared read-only filler pool
// behind a first line naming the message, so every body and digest is distinct.
class message_factory {
 public:
  message_factory(const message_spec& spec, uint64_t seed);
  void make(uint64_t n, generated_message& out);

 private:
  const std::string& pick_domain();
  const message_spec& spec_;
  std::mt19937_64 rng_;
  unsigned weight_total_ = 0;
  std::string date_;
};

struct message_check {
  std::string id;          // "" when no X-Blaster-Id header
  std::string claimed;     // the X-Blaster-Digest value, "" if absent
  std::string actual;      // digest of the body as received
  bool ok() const { return !claimed.empty() && claimed == actual; }
  const char* verdict() const { return claimed.empty() ? "none" : ok() ? "ok" : "bad"; }
};
message_check check_message(std::string_view content);

}  // namespace sluice::blaster
