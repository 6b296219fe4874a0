// queue_commands_test.cc: the queue and message commands' dispatch to worker loops, over a fake loop (no sockets, no engine).
// Untrusted input: none.
#include <criterion/criterion.h>

#include <string>
#include <vector>

#include "admin/commands.h"
#include "admin/protocol.h"
#include "generation/route_config.h"
#include "store/store.h"

using namespace sluice;
using namespace sluice::admin;

namespace {

// One loop's actions, recording what was asked of it.
struct fake_loop final : loop_actions {
  unsigned index = 0;
  std::vector<std::string> calls;
  uint64_t moved = 0;
  uint64_t delivered = 0;  // by attempts in progress when a removal came (settle_removal)
  bool unfinished = false;  // one of them still on the wire after the daemon's wait
  action_result stored;

  uint64_t retry_hop(const std::string& key) override {
    calls.push_back("retry_hop " + key);
    return moved;
  }
  uint64_t retry_message(base::queue_id id) override {
    calls.push_back("retry_message " + id.text());
    return moved;
  }
  void control(store::control_action a, base::queue_id id, const std::string& key, int64_t until, action_done done) override {
    calls.push_back("control " + std::to_string(static_cast<int>(a)) + " " + id.text() + " " + key + " " +
                    std::to_string(until));
    done(stored);
  }
  uint64_t unpark(base::queue_id id) override {
    calls.push_back("unpark " + id.text());
    return 0;
  }
  uint64_t drop_message(base::queue_id id) override {
    calls.push_back("drop " + id.text());
    return 0;
  }
  void settle_removal(base::queue_id id, bool dsn, std::function<void(uint64_t, bool)> done) override {
    calls.push_back("settle " + id.text() + (dsn ? " dsn" : ""));
    done(delivered, unfinished);
  }
  void end_removal(base::queue_id id) override { calls.push_back("end_removal " + id.text()); }
  void remove_message(base::queue_id id, int64_t uid, uint64_t delivered_before, action_done done) override {
    calls.push_back("remove " + id.text() + " uid " + std::to_string(uid) + " delivered " + std::to_string(delivered_before));
    done(stored);
  }
  uint64_t fail_message(base::queue_id id, int64_t uid) override {
    calls.push_back("fail " + id.text() + " uid " + std::to_string(uid));
    return moved;
  }
  uint64_t bounce_domain(const std::string& domain, int64_t until, int64_t uid) override {
    calls.push_back("bounce " + domain + " " + std::to_string(until) + " uid " + std::to_string(uid));
    return moved;
  }
  void cancel_bounce(const std::string& domain) override { calls.push_back("cancel " + domain); }
};

// Two loops run synchronously; a later answer is captured.
struct fixture {
  snapshot snap;
  daemon_info info{"9.9.9", 2, 1, {}};
  command_table table = default_commands();
  fake_loop loops[2];
  std::optional<response> later;

  fixture() {
    auto loaded = config::load_string("[server]\nhostname = \"mx.test\"\nqueue_dir = \"/tmp/q/queue\"\n"
                                      "[[send_connector]]\nname = \"Internet\"\naddress_spaces = [\"*\"]\n",
                                      "admin.toml", "/nonexistent");
    if (!loaded.ok()) cr_assert_fail("config: %s", loaded.error_text().c_str());
    snap.cfg = loaded.value;
    std::vector<std::string> errors;
    snap.routes = generation::build_route_table(*snap.cfg, errors);
    loops[1].index = 1;
    info.run_on_loop = [this](unsigned w, loop_task task) {
      if (w >= 2) return false;
      task(loops[w]);
      return true;
    };
    info.owner_of = [](std::string_view key) { return key.find("b.test") != std::string_view::npos ? 1u : 0u; };
  }
  response run(std::string_view line) {
    later.reset();
    context ctx{snap, info, std::chrono::system_clock::time_point(std::chrono::seconds(1000))};
    ctx.peer_uid = 1234;
    ctx.defer = [this]() -> reply_fn {
      return [this](response r, std::chrono::system_clock::time_point) { later = std::move(r); };
    };
    response now = table.dispatch(line, ctx);
    if (later) return *later;
    return now;
  }
  bool has(const response& r, const std::string& text) const {
    for (const auto& l : r.lines)
      if (l.find(text) != std::string::npos) return true;
    return r.error.find(text) != std::string::npos;
  }
};

const std::string id = "0000018C2A3B4C00";  // as queue_id::text() writes it

}  // namespace

Test(admin_queue, hop_commands_go_to_the_owner_with_a_domain_resolved_by_the_routes) {
  fixture f;
  f.loops[1].moved = 3;
  response r = f.run("queue retry b.test");
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert(f.has(r, "next hop: dns:Internet:b.test") && f.has(r, "items: 3"));
  cr_assert(f.loops[0].calls.empty());
  cr_assert_eq(f.loops[1].calls.size(), 1u);
  cr_assert(f.loops[1].calls[0] == "retry_hop dns:Internet:b.test");

  r = f.run("queue suspend dns:Internet:a.test --for 2m");
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert(f.loops[0].calls.back() == "control 2 0000000000000000 dns:Internet:a.test 1120000",
            "%s", f.loops[0].calls.back().c_str());
  cr_assert(f.has(r, "until: 1120000"));
  cr_assert_not(f.run("queue suspend a.test --for never").ok, "a bad duration is refused by check");
  cr_assert_eq(f.loops[0].calls.size(), 1u, "and nothing was asked");
  f.loops[0].stored.found = false;
  r = f.run("queue resume a.test");
  cr_assert(!r.ok && f.has(r, "no next hop dns:Internet:a.test"), "%s", r.error.c_str());
}

Test(admin_queue, message_commands_reach_every_loop_and_answer_once_all_have) {
  fixture f;
  f.loops[0].moved = 1;
  f.loops[1].moved = 2;
  response r = f.run("message retry " + id);
  cr_assert(r.ok && f.has(r, "items: 3"), "the sum of both loops");
  cr_assert_not(f.run("message retry 12345").ok, "not a queue id");

  f.loops[0].stored = {"", true, 2, 5};
  r = f.run("message release " + id);
  cr_assert(r.ok && f.has(r, "recipients: 5"), "%s", r.error.c_str());
  cr_assert(f.loops[0].calls.back() == "unpark " + id && f.loops[1].calls.back() == "unpark " + id,
            "once durable, every loop sends its parked items on");

  r = f.run("message remove " + id);
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert(f.loops[0].calls[f.loops[0].calls.size() - 3] == "settle " + id, "every loop settles first");
  cr_assert(f.loops[0].calls[f.loops[0].calls.size() - 2] == "remove " + id + " uid 1234 delivered 0", "with the peer's uid");
  cr_assert(f.loops[1].calls.back() == "drop " + id);
  cr_assert(f.has(r, "removed: " + id) && !f.has(r, "delivered"), "%s", r.lines.empty() ? "" : r.lines[0].c_str());
  r = f.run("message remove " + id + " --dsn");
  cr_assert(r.ok && f.has(r, "items: 3"));
  cr_assert(f.loops[1].calls[f.loops[1].calls.size() - 2] == "settle " + id + " dsn");
  cr_assert(f.loops[1].calls.back() == "fail " + id + " uid 1234");

  // Attempts in progress on both loops delivered 1 recipient each before the removal.
  f.loops[0].delivered = f.loops[1].delivered = 1;
  r = f.run("message remove " + id);
  cr_assert(r.ok && f.has(r, "removed: " + id + "; an attempt in progress delivered it to 2 recipients"));
  cr_assert(f.loops[0].calls[f.loops[0].calls.size() - 2] == "remove " + id + " uid 1234 delivered 2");
  f.loops[0].stored = {"", false, 0, 0};  // and nothing was left
  r = f.run("message remove " + id);
  cr_assert(r.ok && f.has(r, "nothing of it was left in the queue") && f.has(r, "recipients: 0"));
  f.loops[0].delivered = f.loops[1].delivered = 0;
  r = f.run("message remove " + id);
  cr_assert(!r.ok && f.loops[1].calls.back() == "end_removal " + id, "not found: the loops are given it back");
  f.loops[0].stored = {"", true, 2, 5};
  // An attempt that outlasted the daemon's wait is said to be still running, with or without --dsn.
  f.loops[1].unfinished = true;
  r = f.run("message remove " + id);
  cr_assert(r.ok && f.has(r, "an attempt still in progress was not waited for"), "%s", r.lines[0].c_str());
  r = f.run("message remove " + id + " --dsn");
  cr_assert(r.ok && f.has(r, "removed with a DSN: " + id + "; an attempt still in progress was not waited for"));
  f.loops[1].unfinished = false;

  f.loops[0].stored = {"disk on fire", true, 0, 0};
  r = f.run("message hold " + id);
  cr_assert(!r.ok && f.has(r, "disk on fire"));
}

Test(admin_queue, bounce_stores_a_rule_only_with_for_and_fails_on_every_loop) {
  fixture f;
  response r = f.run("message bounce --domain Example.COM.");
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert(f.loops[0].calls.size() == 1 && f.loops[0].calls[0] == "bounce example.com 0 uid 1234",
            "no rule stored without --for: %s", f.loops[0].calls[0].c_str());
  cr_assert(f.loops[1].calls.back() == "bounce example.com 0 uid 1234");
  r = f.run("message bounce --domain example.com --for 10s");
  cr_assert(r.ok && f.has(r, "until: 1010000"), "%s", r.error.c_str());
  cr_assert(f.loops[0].calls[1] == "control 5 0000000000000000 example.com 1010000", "%s", f.loops[0].calls[1].c_str());
  cr_assert(f.loops[1].calls.back() == "bounce example.com 1010000 uid 1234");
  r = f.run("message bounce --cancel example.com");
  cr_assert(r.ok && f.loops[1].calls.back() == "cancel example.com");
  cr_assert_not(f.run("message bounce").ok);
  cr_assert_not(f.run("message bounce --domain a --cancel b").ok);
  cr_assert_not(f.run("message bounce --cancel a --for 1m").ok);
}

Test(admin_queue, a_daemon_without_loops_refuses) {
  fixture f;
  f.info.run_on_loop = nullptr;
  response r = f.run("message hold " + id);
  cr_assert(!r.ok && f.has(r, "offers no queue or message actions"));
}

// Seen while writing the admin_commands fuzz driver (its loops check that until_ms is ahead):
// until_of() multiplied the seconds into int64 milliseconds, so a huge --for overflowed
// (undefined behaviour) or wrapped into the past.
Test(admin_queue, a_for_too_long_to_count_in_milliseconds_is_refused) {
  fixture f;
  for (const char* line : {"queue suspend a.test --for 9223372036854776s", "queue suspend a.test --for 10000000000000000000s",
                           "message bounce --domain a.test --for 106751991168d", "queue suspend a.test --for 3651d"}) {
    response r = f.run(line);
    cr_assert(!r.ok && f.has(r, "longer than ten years"), "%s: %s", line, r.error.c_str());
  }
  cr_assert(f.loops[0].calls.empty() && f.loops[1].calls.empty(), "nothing was asked of the loops");
  response r = f.run("queue suspend a.test --for 3650d");
  cr_assert(r.ok, "%s", r.error.c_str());
  cr_assert(f.has(r, "until: " + std::to_string(1'000'000 + 3650LL * 86400 * 1000)));
}
