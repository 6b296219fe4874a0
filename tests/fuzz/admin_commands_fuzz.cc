// admin_commands_fuzz.cc: libFuzzer driver for the admin command table sluiced serves (admin/commands.h):
// parse, option and argument splitting, check, apply, over a fake daemon and fake worker loops.
// Untrusted input: request lines from any local user who can reach the admin socket.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "admin/commands.h"
#include "admin/protocol.h"
#include "base/queue_id.h"
#include "fuzz_util.h"
#include "generation/route_config.h"
#include "store/store.h"

using sluice::fuzz::input_stream;
using namespace sluice;
using namespace sluice::admin;

namespace {

// A configuration with every kind of route (local, relay, DNS, smart host) so that `route test`
// and the hop commands reach their real work.
constexpr std::string_view config_text = R"([server]
hostname = "mx.fuzz.test"
queue_dir = "/nonexistent-sluice-fuzz/queue"
[[accepted_domain]]
name = "fuzz.test"
type = "authoritative"
[[accepted_domain]]
name = "*.relay.fuzz.test"
type = "external_relay"
[[receive_connector]]
name = "Default"
type = "internet"
bindings = ["127.0.0.1:2525"]
max_message_size = "10MB"
[[send_connector]]
name = "Internet"
address_spaces = [{ domain = "*", cost = 1 }]
[[send_connector]]
name = "Smart"
address_spaces = [{ domain = "smart.test", cost = 1 }]
routing = "smarthost"
smart_hosts = ["127.0.0.1:2526"]
)";

const snapshot& loaded_snapshot() {
  static const snapshot snap = [] {
    snapshot s;
    auto loaded = config::load_string(config_text, "admin-fuzz.toml", "/nonexistent-sluice-fuzz");
    if (!loaded.ok()) std::fprintf(stderr, "%s\n", loaded.error_text().c_str());
    FUZZ_CHECK(loaded.ok());
    s.cfg = loaded.value;
    std::vector<std::string> errors;
    s.routes = generation::build_route_table(*s.cfg, errors);
    FUZZ_CHECK(s.routes != nullptr);
    return s;
  }();
  return snap;
}

constexpr auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
constexpr int64_t now_ms = 1'800'000'000'000;

// One worker loop. Whatever the commands hand it must already have been checked: a queue id
// that parses back, a hop key, a domain as bounce rules keep it, a time ahead of now.
struct fake_loop final : loop_actions {
  unsigned calls = 0;
  action_result stored;
  uint64_t moved = 0;

  static void check_key(const std::string& key) { FUZZ_CHECK(!key.empty()); }
  static void check_id(base::queue_id id) { FUZZ_CHECK(base::queue_id::parse(id.text()).has_value()); }
  static void check_domain(const std::string& d) {
    FUZZ_CHECK(!d.empty() && d.back() != '.');
    for (char c : d) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
  }
  static void check_until(int64_t until) { FUZZ_CHECK(until == 0 || until > now_ms); }

  uint64_t retry_hop(const std::string& key) override {
    ++calls;
    check_key(key);
    return moved;
  }
  // The in-memory actions on one message: each counts, checks its id and moves `moved` items.
  uint64_t on_message(base::queue_id id) {
    ++calls;
    check_id(id);
    return moved;
  }
  uint64_t retry_message(base::queue_id id) override { return on_message(id); }
  void control(store::control_action a, base::queue_id id, const std::string& key, int64_t until, action_done done) override {
    ++calls;
    check_until(until);
    switch (a) {
      case store::control_action::hold:
      case store::control_action::release:
      case store::control_action::remove: check_id(id); break;
      case store::control_action::suspend:
      case store::control_action::resume: check_key(key); break;
      case store::control_action::bounce: FUZZ_CHECK(until != 0); [[fallthrough]];
      case store::control_action::unbounce: check_domain(key); break;
    }
    done(stored);
  }
  uint64_t unpark(base::queue_id id) override { return on_message(id); }
  uint64_t drop_message(base::queue_id id) override { return on_message(id); }
  void settle_removal(base::queue_id id, bool, std::function<void(uint64_t, bool)> done) override {
    ++calls;
    check_id(id);
    done(moved, false);
  }
  void end_removal(base::queue_id id) override { on_message(id); }
  void remove_message(base::queue_id id, int64_t uid, uint64_t, action_done done) override {
    ++calls;
    check_id(id);
    FUZZ_CHECK(uid == 1000);
    done(stored);
  }
  uint64_t fail_message(base::queue_id id, int64_t uid) override {
    FUZZ_CHECK(uid == 1000);
    return on_message(id);
  }
  uint64_t bounce_domain(const std::string& domain, int64_t until, int64_t uid) override {
    ++calls;
    check_domain(domain);
    check_until(until);
    FUZZ_CHECK(uid == 1000);
    return moved;
  }
  void cancel_bounce(const std::string& domain) override {
    ++calls;
    check_domain(domain);
  }
};

// A response survives the wire as it is (what encode_response promises).
void check_framing(const response& r) {
  response_decoder dec;
  FUZZ_CHECK(dec.feed(encode_response(r)) == response_decoder::state::complete);
  response back = dec.take();
  FUZZ_CHECK(back.ok == r.ok);
  FUZZ_CHECK(r.ok || !back.error.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const command_table table = default_commands();
  input_stream in(data, size);
  // Decision byte: what this daemon offers and how its loops answer.
  const uint8_t flags = in.byte();
  const unsigned workers = flags & 3;        // 0: no queue actions at all
  const bool stopping = flags & 4;           // run_on_loop refuses every task
  const bool has_routes = !(flags & 8);      // a daemon before its first load has none
  const bool stored_error = flags & 16;
  const bool stored_missing = flags & 32;
  const bool reload_fails = flags & 64;
  const bool immediate_only = flags & 128;   // no defer(): commands that need it must refuse

  snapshot empty;
  const snapshot& snap = has_routes ? loaded_snapshot() : empty;
  fake_loop loops[3];
  for (auto& l : loops) {
    if (stored_error) l.stored.error = "fuzz: store failed";
    l.stored.found = !stored_missing;
    l.stored.items = 2;
    l.moved = 1;
  }
  daemon_info info{"fuzz", workers, 1, {}};
  info.started_at = now - std::chrono::seconds(3600);
  unsigned reloads = 0;
  info.reload = [&](daemon_info::reload_done done) {
    ++reloads;
    done(reload_fails ? "fuzz.toml:1: no\nsecond line" : "", reload_fails ? std::chrono::system_clock::time_point{} : now);
  };
  if (workers != 0) {
    info.run_on_loop = [&](unsigned w, loop_task task) {
      FUZZ_CHECK(w < workers);
      if (stopping) return false;
      task(loops[w]);
      return true;
    };
    info.owner_of = [&](std::string_view key) {
      FUZZ_CHECK(!key.empty());
      return static_cast<unsigned>(key.size() % workers);
    };
  }

  std::string_view text = in.rest();
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);

    unsigned deferred = 0, answers = 0;
    std::optional<response> later;
    context ctx{snap, info, now};
    ctx.peer_uid = 1000;
    if (!immediate_only) {
      ctx.defer = [&]() -> reply_fn {
        ++deferred;
        return [&](response r, std::chrono::system_clock::time_point) {
          ++answers;
          later = std::move(r);
        };
      };
    }
    unsigned calls_before = 0;
    for (auto& l : loops) calls_before += l.calls;
    const unsigned reloads_before = reloads;

    response now_r = table.dispatch(line, ctx);

    unsigned calls = 0;
    for (auto& l : loops) calls += l.calls;
    // At most one deferral, and the fake loops run at once, so a deferred request has its one answer.
    FUZZ_CHECK(deferred <= 1);
    FUZZ_CHECK(answers == deferred);
    FUZZ_CHECK(reloads - reloads_before <= 1);
    if (deferred == 0) {
      // Answered at once (a refusal, or a command that only reads): nothing was asked of the
      // loops or the reloader, whose answers always come through defer().
      FUZZ_CHECK(calls == calls_before && reloads == reloads_before);
      check_framing(now_r);
    } else {
      check_framing(*later);
    }
    if (workers == 0 || immediate_only) FUZZ_CHECK(calls == calls_before);
  }
  return 0;
}
