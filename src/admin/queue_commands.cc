// queue_commands.cc: the queue and message actions of the admin socket: retry now, suspend/resume a next hop, hold/release/remove a message.
// Untrusted input: command arguments from admin socket clients (ids and durations checked, hop keys passed as data).
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "admin/commands.h"
#include "store/store.h"

namespace sluice::admin {

namespace {

std::string check_id(const arguments& a) {
  return base::queue_id::parse(a.positional[0]) ? "" : "'" + a.positional[0] + "' is not a queue id (16 hex digits)";
}

// The next hop a HOP argument names: a hop key as `queue list` shows it ("dns:Internet:a.example"),
// or a domain, which names the hop its mail is routed to now.
std::string hop_key_of(const std::string& arg, const context& ctx, std::string& error) {
  if (arg.find(':') != std::string::npos) return arg;
  if (!ctx.state.routes) {
    error = "no routing table is loaded to find the next hop of " + arg;
    return "";
  }
  const std::string address = "postmaster@" + arg;  // the decision's views point into it
  const auto d = ctx.state.routes->route_recipient(address, 0, 0);
  if (!route::deliverable(d.result)) {
    error = "mail for " + arg + " is not routed anywhere: " + std::string(route::reason(d.result));
    return "";
  }
  return ctx.state.routes->hop_key(d.hop);
}

bool can_act(const context& ctx, response& r) {
  if (ctx.daemon.run_on_loop && ctx.daemon.owner_of && ctx.defer && ctx.daemon.workers != 0) return true;
  r = response::failure("this daemon offers no queue or message actions");
  return false;
}

// The answer of a stored action, or its error.
response outcome_response(const action_result& res, const std::string& what, const std::string& not_found) {
  if (!res.error.empty()) return response::failure(what + ": " + res.error);
  if (!res.found) return response::failure(not_found);
  response r;
  r.add(what);
  r.add("items: " + std::to_string(res.items));
  r.add("recipients: " + std::to_string(res.recipients));
  return r;
}

// Runs `fn` on each of `workers` loops and answers through `reply` once all have:
// answer(sum of what they returned). Any thread.
void gather_on(const std::function<bool(unsigned, loop_task)>& run, const std::vector<unsigned>& workers,
               std::function<uint64_t(loop_actions&)> fn, std::function<response(uint64_t)> answer, reply_fn reply) {
  struct gather {
    std::mutex mutex;
    std::size_t left = 0;
    uint64_t sum = 0;
    reply_fn reply;
    std::function<response(uint64_t)> answer;
    void add(uint64_t n) {
      std::unique_lock lock(mutex);
      sum += n;
      if (--left != 0) return;
      lock.unlock();
      reply(answer(sum), {});
    }
  };
  auto g = std::make_shared<gather>();
  g->left = workers.size();
  g->reply = std::move(reply);
  g->answer = std::move(answer);
  for (unsigned w : workers)
    if (!run(w, [g, fn](loop_actions& a) { g->add(fn(a)); })) g->add(0);
}

void on_loops(const context& ctx, const std::vector<unsigned>& workers, std::function<uint64_t(loop_actions&)> fn,
              std::function<response(uint64_t)> answer) {
  gather_on(ctx.daemon.run_on_loop, workers, std::move(fn), std::move(answer), ctx.defer());
}

std::vector<unsigned> every_loop(const context& ctx) {
  std::vector<unsigned> all;
  for (unsigned w = 0; w < ctx.daemon.workers; ++w) all.push_back(w);
  return all;
}

// One control operation on loop `worker`; `then` turns its result into the answer (and may
// start more work before answering through `reply`).
void control_on(const context& ctx, unsigned worker, store::control_action action, base::queue_id id,
                std::string hop_key, int64_t until_ms, std::function<void(const action_result&, reply_fn)> then) {
  reply_fn reply = ctx.defer();
  auto task = [=](loop_actions& a) { a.control(action, id, hop_key, until_ms, [=](const action_result& r) { then(r, reply); }); };
  if (!ctx.daemon.run_on_loop(worker, task)) reply(response::failure("the daemon is stopping"), {});
}

// A command of one argument; `apply` runs only when the daemon offers the actions.
command one_argument(std::vector<std::string> path, std::string usage, std::string summary,
                     std::function<void(const arguments&, const context&, response&)> apply) {
  command c;
  c.path = std::move(path);
  c.args_usage = std::move(usage);
  c.summary = std::move(summary);
  c.min_args = c.max_args = 1;
  c.apply = [apply = std::move(apply)](const arguments& a, const context& ctx, response& r) {
    if (can_act(ctx, r)) apply(a, ctx, r);
  };
  return c;
}

using hop_apply = std::function<void(const std::string& key, const arguments&, const context&, response&)>;
using id_apply = std::function<void(base::queue_id id, const arguments&, const context&, response&)>;

// The argument is a next hop or a domain (hop_key_of).
command hop_command(std::vector<std::string> path, std::string usage, std::string summary, hop_apply apply) {
  return one_argument(std::move(path), std::move(usage), std::move(summary),
                      [apply = std::move(apply)](const arguments& a, const context& ctx, response& r) {
                        std::string error;
                        const std::string key = hop_key_of(a.positional[0], ctx, error);
                        if (key.empty()) return void(r = response::failure(error));
                        apply(key, a, ctx, r);
                      });
}

// The argument is a queue id, checked before anything happens.
command id_command(std::vector<std::string> path, std::string usage, std::string summary, id_apply apply) {
  command c = one_argument(std::move(path), std::move(usage), std::move(summary),
                           [apply = std::move(apply)](const arguments& a, const context& ctx, response& r) {
                             apply(*base::queue_id::parse(a.positional[0]), a, ctx, r);
                           });
  c.check = check_id;
  return c;
}

// "<what>: <name>" and the items an in-memory action moved.
std::function<response(uint64_t)> moved(std::string first) {
  return [first = std::move(first)](uint64_t n) {
    response out;
    out.add(first);
    out.add("items: " + std::to_string(n));
    return out;
  };
}

// Longer is no use to anyone, and it keeps until_of() far from overflowing int64 milliseconds
// ("--for 9223372036854776s" was undefined behaviour there, and a larger one wrapped into the past).
constexpr uint64_t max_for_seconds = 3650ull * 86400;

std::string check_for(const arguments& a) {
  if (const std::string* d = a.option("for")) {
    auto s = config::parse_duration(*d);
    if (!s || *s == 0) return "--for: '" + *d + "' is not a duration (30s, 5m, 2h, 1d)";
    if (*s > max_for_seconds) return "--for: '" + *d + "' is longer than ten years (3650d)";
  }
  return "";
}

// Unix ms when --for ends, 0 without it.
int64_t until_of(const arguments& a, const context& ctx) {
  const std::string* d = a.option("for");
  if (d == nullptr) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(ctx.now.time_since_epoch()).count() +
         static_cast<int64_t>(*config::parse_duration(*d)) * 1000;
}

void hop_commands(command_table& t) {
  t.add(hop_command({"queue", "retry"}, "<next hop or domain>",
                    "deliver what waits for its retry time on a next hop now, lifting its site's failure suspension",
                    [](const std::string& key, const arguments&, const context& ctx, response&) {
                      on_loops(ctx, {ctx.daemon.owner_of(key)}, [key](loop_actions& l) { return l.retry_hop(key); },
                               moved("next hop: " + key));
                    }));

  command suspend = hop_command(
      {"queue", "suspend"}, "<next hop or domain> [--for DURATION]",
      "stop delivering to a next hop (new arrivals wait too; kept across restarts), for ever or for a time",
      [](const std::string& key, const arguments& a, const context& ctx, response&) {
        const int64_t until = until_of(a, ctx);
        control_on(ctx, ctx.daemon.owner_of(key), store::control_action::suspend, {}, key, until,
                   [key, until](const action_result& res, reply_fn reply) {
                     response out = outcome_response(res, "suspended: " + key, "no next hop " + key);
                     if (out.ok) out.add("until: " + (until == 0 ? std::string("resumed") : std::to_string(until)));
                     reply(std::move(out), {});
                   });
      });
  suspend.options = {{"for", true}};
  suspend.check = check_for;
  t.add(std::move(suspend));

  t.add(hop_command({"queue", "resume"}, "<next hop or domain>", "deliver to a suspended next hop again",
                    [](const std::string& key, const arguments&, const context& ctx, response&) {
                      control_on(ctx, ctx.daemon.owner_of(key), store::control_action::resume, {}, key, 0,
                                 [key](const action_result& res, reply_fn reply) {
                                   reply(outcome_response(res, "resumed: " + key, "no next hop " + key), {});
                                 });
                    }));
}

void message_commands(command_table& t) {
  t.add(id_command({"message", "retry"}, "<queue id>", "try a message's items that wait for their retry time now",
                   [](base::queue_id id, const arguments&, const context& ctx, response&) {
                     on_loops(ctx, every_loop(ctx), [id](loop_actions& l) { return l.retry_message(id); },
                              moved("message: " + id.text()));
                   }));

  t.add(id_command({"message", "hold"}, "<queue id>",
                   "keep a message from being delivered until it is released (kept across restarts)",
                   [](base::queue_id id, const arguments&, const context& ctx, response&) {
                     control_on(ctx, 0, store::control_action::hold, id, "", 0,
                                [id](const action_result& res, reply_fn reply) {
                                  reply(outcome_response(res, "held: " + id.text(),
                                                         "no queued item of message " + id.text()),
                                        {});
                                });
                   }));

  t.add(id_command({"message", "release"}, "<queue id>", "let a held message be delivered again",
                   [](base::queue_id id, const arguments&, const context& ctx, response&) {
                     const auto run = ctx.daemon.run_on_loop;
                     const auto loops = every_loop(ctx);
                     control_on(ctx, 0, store::control_action::release, id, "", 0,
                                [=](const action_result& res, reply_fn reply) {
                                  reply(outcome_response(res, "released: " + id.text(),
                                                         "no queued item of message " + id.text()),
                                        {});
                                  if (!res.error.empty() || !res.found) return;
                                  // Durable now: every loop that parked one of its items sends it on.
                                  for (unsigned w : loops) run(w, [id](loop_actions& l) { l.unpark(id); });
                                });
                   }));
}

// Asks every loop in `workers` to settle a removal (loop_actions::settle_removal) and calls
// `then` once all have: what their attempts in progress delivered, and whether one of them was
// still unfinished. Any thread.
void settle_on(const std::function<bool(unsigned, loop_task)>& run, const std::vector<unsigned>& workers,
               base::queue_id id, bool dsn, std::function<void(uint64_t, bool)> then) {
  struct gather {
    std::mutex mutex;
    std::size_t left = 0;
    uint64_t sum = 0;
    bool unfinished = false;
    std::function<void(uint64_t, bool)> then;
    void add(uint64_t n, bool still_running) {
      std::unique_lock lock(mutex);
      sum += n;
      unfinished = unfinished || still_running;
      if (--left != 0) return;
      lock.unlock();
      then(sum, unfinished);
    }
  };
  auto g = std::make_shared<gather>();
  g->left = workers.size();
  g->then = std::move(then);
  for (unsigned w : workers) {
    auto task = [g, id, dsn](loop_actions& a) {
      a.settle_removal(id, dsn, [g](uint64_t n, bool still_running) { g->add(n, still_running); });
    };
    if (!run(w, task)) g->add(0, false);
  }
}

// What became of a message removed while an attempt was delivering it.
std::string delivered_note(uint64_t delivered, bool unfinished) {
  std::string note;
  if (delivered != 0)
    note = "; an attempt in progress delivered it to " + std::to_string(delivered) + " recipient" +
           (delivered == 1 ? "" : "s");
  if (unfinished)
    note += "; an attempt still in progress was not waited for: a delivery it makes is tracked as DELIVER";
  return note;
}

void remove_command(command_table& t) {
  command remove = id_command(
      {"message", "remove"}, "<queue id> [--dsn]",
      "delete a message from the queue; with --dsn its sender gets a failure report instead. An attempt in progress "
      "is let finish first: what it delivered is said, the rest is removed",
      [](base::queue_id id, const arguments& a, const context& ctx, response&) {
        const int64_t uid = ctx.peer_uid;
        const auto loops = every_loop(ctx);
        const auto run = ctx.daemon.run_on_loop;
        const bool dsn = a.has("dsn");
        reply_fn reply = ctx.defer();
        // Both ways alike: first no loop has an attempt of it in progress (each lets its own
        // finish and says what it delivered), then what is left goes.
        settle_on(run, loops, id, dsn, [=](uint64_t delivered, bool unfinished) {
          const std::string note = delivered_note(delivered, unfinished);
          auto give_back = [=] {
            for (unsigned w : loops) run(w, [id](loop_actions& x) { x.end_removal(id); });
          };
          if (dsn) {
            // Each loop fails what it holds, as an attempt's outcome: the reporter makes the DSN.
            gather_on(run, loops, [id, uid](loop_actions& l) { return l.fail_message(id, uid); },
                      moved("removed with a DSN: " + id.text() + note), reply);
            return;
          }
          auto task = [=](loop_actions& l) {
            l.remove_message(id, uid, delivered, [=](const action_result& res) {
              if (!res.error.empty() || (!res.found && delivered == 0)) {
                give_back();
                reply(outcome_response(res, "removed: " + id.text(), "no message " + id.text() + " in the queue"), {});
                return;
              }
              // Gone from the store (or delivered whole): every loop forgets what it still held of it.
              for (unsigned w : loops) run(w, [id](loop_actions& x) { x.drop_message(id); });
              if (!res.found) {
                response r;
                r.add("removed: " + id.text() + note + "; nothing of it was left in the queue");
                r.add("items: 0");
                r.add("recipients: 0");
                reply(r, {});
                return;
              }
              reply(outcome_response(res, "removed: " + id.text() + note, ""), {});
            });
          };
          if (!run(0, task)) {
            give_back();
            reply(response::failure("the daemon is stopping"), {});
          }
        });
      });
  remove.options = {{"dsn", false}};
  t.add(std::move(remove));
}

// A domain as bounce rules keep it: lower case, no trailing dot.
std::string rule_domain(std::string d) {
  while (!d.empty() && d.back() == '.') d.pop_back();
  for (auto& c : d)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return d;
}

void bounce_command(command_table& t) {
  command bounce;
  bounce.path = {"message", "bounce"};
  bounce.args_usage = "--domain D [--for DURATION] | --cancel D";
  bounce.summary = "fail queued mail for a domain with a DSN to its senders, and for a time what arrives for it";
  bounce.options = {{"domain", true}, {"for", true}, {"cancel", true}};
  bounce.check = [](const arguments& a) -> std::string {
    const std::string* d = a.option("domain");
    const std::string* c = a.option("cancel");
    if ((d == nullptr) == (c == nullptr)) return "give --domain D or --cancel D";
    if ((d && rule_domain(*d).empty()) || (c && rule_domain(*c).empty())) return "the domain is empty";
    if (c && a.has("for")) return "--for goes with --domain";
    return check_for(a);
  };
  bounce.apply = [](const arguments& a, const context& ctx, response& r) {
    if (!can_act(ctx, r)) return;
    const auto run = ctx.daemon.run_on_loop;
    const auto loops = every_loop(ctx);
    if (const std::string* c = a.option("cancel")) {
      const std::string domain = rule_domain(*c);
      control_on(ctx, 0, store::control_action::unbounce, {}, domain, 0, [=](const action_result& res, reply_fn reply) {
        reply(outcome_response(res, "bounce rule cancelled: " + domain, "no bounce rule for " + domain), {});
        if (res.error.empty() && res.found)
          for (unsigned w : loops) run(w, [domain](loop_actions& l) { l.cancel_bounce(domain); });
      });
      return;
    }
    const std::string domain = rule_domain(*a.option("domain"));
    const int64_t uid = ctx.peer_uid;
    const int64_t until = until_of(a, ctx);
    auto answer = [domain, until, counted = moved("bounced: " + domain)](uint64_t n) {
      response out = counted(n);
      if (until != 0) out.add("until: " + std::to_string(until));
      return out;
    };
    // What is queued fails on every loop; a rule for arrivals is stored first, so that it
    // survives a restart.
    auto fail_all = [=](loop_actions& l) { return l.bounce_domain(domain, until, uid); };
    if (until == 0) return on_loops(ctx, loops, fail_all, answer);
    reply_fn reply = ctx.defer();
    auto task = [=](loop_actions& l) {
      l.control(store::control_action::bounce, {}, domain, until, [=](const action_result& res) {
        if (!res.error.empty()) return reply(response::failure("storing the bounce rule: " + res.error), {});
        gather_on(run, loops, fail_all, answer, reply);
      });
    };
    if (!run(0, task)) reply(response::failure("the daemon is stopping"), {});
  };
  t.add(std::move(bounce));
}

}  // namespace

void add_queue_commands(command_table& t) {
  hop_commands(t);
  message_commands(t);
  remove_command(t);
  bounce_command(t);
}

}  // namespace sluice::admin
