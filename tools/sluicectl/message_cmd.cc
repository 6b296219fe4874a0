// message_cmd.cc: `sluicectl message show|export|bounce --list` (read-only, from the store) and the message actions asked of the running sluiced.
// Untrusted input: envelopes, headers and bodies stored from remote SMTP clients (printed escaped, or exported as
// bytes), and the daemon's answers (framing checked by admin::response_decoder).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "admin/client.h"
#include "admin/protocol.h"
#include "base/queue_id.h"
#include "common.h"
#include "store/store.h"

namespace sluice::ctl {

namespace {

// Header blocks beyond this are cut: `message show` is for a look, export is for the whole.
constexpr std::size_t header_limit = 64 * 1024;

base::queue_id parse_id(const std::string& text) {
  auto id = base::queue_id::parse(text);
  if (!id) throw command_error{fmt::format("'{}' is not a queue id (16 hex digits)", terminal_text(text))};
  return *id;
}

// Where one recipient of the message stands.
struct recipient_status {
  std::string state;  // queued, deferred, in-flight, held, report-pending, done
  const store::message_item* item = nullptr;
  const store::report_entry* report = nullptr;
};

std::string item_state_name(const store::message_item& m) {
  if (m.item.held) return "held";
  switch (m.item.state) {
    case store::item_state::in_flight: return "in-flight";
    case store::item_state::deferred: return "deferred";
    default: return "queued";
  }
}

std::vector<recipient_status> statuses(const smtp::envelope& env, const std::vector<store::message_item>& items,
                                       const std::vector<store::report_entry>& reports) {
  std::vector<recipient_status> out(env.recipients.size());
  for (auto& s : out) s.state = "done";  // neither queued nor to report: delivered, or reported
  for (const auto& e : reports)
    if (e.recipient < out.size()) {
      out[e.recipient].state = fmt::format("report-pending ({})", store::to_string(e.action));
      out[e.recipient].report = &e;
    }
  for (const auto& m : items)
    for (uint32_t r : m.item.recipients)
      if (r < out.size()) {
        out[r].state = item_state_name(m);
        out[r].item = &m;
      }
  return out;
}

store::stored_message read_stored(const store::queue_store& s, base::queue_id id) {
  std::string error;
  auto m = s.read_message(id, error);
  if (!m) {
    if (!error.empty()) throw command_error{error};
    throw command_error{fmt::format("no message {} in the queue", id.text())};
  }
  return std::move(*m);
}

std::string ms_json(int64_t ms) { return ms == 0 ? std::string("null") : std::to_string(ms); }

void message_show(const global_options& g, const std::string& id_text) {
  const base::queue_id id = parse_id(id_text);
  store::queue_store s;
  open_store(s, g);
  const auto m = read_stored(s, id);
  std::string error;
  auto items = s.items_of(id, error);
  if (!items) throw command_error{error};
  auto reports = s.read_reports(id, error);
  if (!reports && !error.empty()) throw command_error{error};
  const std::vector<store::report_entry> pending = reports ? std::move(*reports) : std::vector<store::report_entry>{};
  std::string headers;
  if (!s.read_header_block(id, headers, header_limit, error) && !error.empty()) throw command_error{error};
  const auto& e = m.envelope;
  const auto& meta = m.meta;
  const auto st = statuses(e, *items, pending);

  if (g.json) {
    std::string rcpts;
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
      const auto& r = st[i];
      std::string where = "null", attempts = "0", next = "null", last = "\"\"", report = "null";
      if (r.item) {
        where = json_string(r.item->hop_key);
        attempts = std::to_string(r.item->item.attempts);
        next = ms_json(r.item->item.next_attempt_ms);
        last = json_string(r.item->item.last_error);
      }
      if (r.report)
        report = fmt::format("{{\"action\":\"{}\",\"status\":{},\"diagnostic\":{}}}", store::to_string(r.report->action),
                             json_string(r.report->status), json_string(r.report->diagnostic));
      rcpts += fmt::format("{}{{\"index\":{},\"address\":{},\"orcpt\":{},\"status\":{},\"next_hop\":{},\"attempts\":{},"
                           "\"next_attempt_ms\":{},\"last_reply\":{},\"report\":{}}}",
                           i == 0 ? "" : ",", i, json_string(e.recipients[i].address), json_string(e.recipients[i].orcpt),
                           json_string(r.state), where, attempts, next, last, report);
    }
    fmt::print("{{\"id\":\"{}\",\"received_at_ms\":{},\"connector\":{},\"client_address\":{},\"client_helo\":{},"
               "\"auth_user\":{},\"mail_from\":{},\"envid\":{},\"size\":{},\"recipients\":[{}],\"headers\":{}}}\n",
               m.id.text(), meta.received_at_ms, json_string(meta.connector), json_string(meta.client_address),
               json_string(meta.client_helo), json_string(meta.auth_user), json_string(e.mail_from),
               json_string(e.envid), meta.body_size, rcpts, json_string(headers));
    return;
  }
  const int64_t now = now_ms();
  fmt::print("Queue-ID:   {}\n", m.id.text());
  fmt::print("Received:   {} ago from {} (HELO {}) on {}\n", format_age((now - meta.received_at_ms) / 1000),
             terminal_text(meta.client_address), terminal_text(meta.client_helo), terminal_text(meta.connector));
  if (!meta.auth_user.empty()) fmt::print("Auth-User:  {}\n", terminal_text(meta.auth_user));
  fmt::print("Mail-From:  <{}>{}\n", terminal_text(e.mail_from),
             e.envid.empty() ? std::string() : " ENVID=" + terminal_text(e.envid));
  fmt::print("Size:       {} bytes\n", meta.body_size);
  for (std::size_t i = 0; i < e.recipients.size(); ++i) {
    const auto& r = st[i];
    fmt::print("Rcpt-To:    <{}>  {}", terminal_text(e.recipients[i].address), r.state);
    if (r.item) {
      fmt::print("  via {}, {} attempt{}", terminal_text(r.item->hop_key), r.item->item.attempts,
                 r.item->item.attempts == 1 ? "" : "s");
      const int64_t next = r.item->item.next_attempt_ms;
      if (next != 0) fmt::print(", next {}", next > now ? "in " + format_age((next - now) / 1000) : std::string("due"));
      if (!r.item->item.last_error.empty()) fmt::print("\n            last reply: {}", terminal_text(r.item->item.last_error));
    }
    if (r.report) fmt::print("\n            {}", terminal_text(r.report->diagnostic));
    fmt::print("\n");
  }
  fmt::print("\n");
  const std::string text = terminal_text(headers, true);
  std::fwrite(text.data(), 1, text.size(), stdout);
}

// The body exactly as stored, so `message export ID > file.eml` and a resubmission give the
// same message (the envelope is not part of it).
void message_export(const global_options& g, const std::string& id_text) {
  const base::queue_id id = parse_id(id_text);
  store::queue_store s;
  open_store(s, g);
  const auto m = read_stored(s, id);
  if (std::fwrite(m.body.data(), 1, m.body.size(), stdout) != m.body.size() || std::fflush(stdout) != 0)
    throw command_error{"writing the message to stdout failed"};
}

// A "name: value" line's value as JSON: digits as a number, anything else as a string.
std::string json_value(const std::string& v) {
  const bool number = !v.empty() && v.size() < 19 && v.find_first_not_of("0123456789") == std::string::npos;
  return number ? v : json_string(v);
}

// The stored bounce rules, with until when each holds; ended ones are marked.
void bounce_list(const global_options& g) {
  store::queue_store s;
  open_store(s, g);
  std::string error;
  auto rules = s.bounce_rules(error);
  if (!rules) throw command_error{error};
  const int64_t now = now_ms();
  if (g.json) {
    std::string out;
    for (const auto& [domain, until] : *rules)
      out += fmt::format("{}{{\"domain\":{},\"until_ms\":{},\"active\":{}}}", out.empty() ? "" : ",", json_string(domain),
                         until, until > now);
    fmt::print("{{\"bounce_rules\":[{}]}}\n", out);
    return;
  }
  if (rules->empty()) fmt::print("no bounce rules\n");
  for (const auto& [domain, until] : *rules)
    fmt::print("{}  {}\n", terminal_text(domain),
               until > now ? "for " + format_age((until - now + 999) / 1000) : std::string("ended"));
}

}  // namespace

void ask_daemon(const global_options& g, const std::vector<std::string>& words, int timeout_ms) {
  const std::string path = admin::socket_path_for(resolve_queue_dir(g));
  admin::call_result r = admin::call(path, words, timeout_ms);
  if (r.status != admin::call_status::ok) throw command_error{r.error};
  const admin::response& a = r.reply;
  if (g.json) {
    std::string fields, lines;
    for (const auto& l : a.lines) {
      lines += (lines.empty() ? "" : ",") + json_string(l);
      const auto colon = l.find(": ");
      if (colon == std::string::npos || colon == 0) continue;
      std::string name = l.substr(0, colon);
      for (auto& c : name)
        if (c == ' ' || c == '-') c = '_';
      fields += fmt::format(",{}:{}", json_string(name), json_value(l.substr(colon + 2)));
    }
    fmt::print("{{\"ok\":{},\"error\":{}{},\"lines\":[{}]}}\n", a.ok, json_string(a.error), fields, lines);
    if (!a.ok) throw command_error{terminal_text(a.error)};
    return;
  }
  if (!a.ok) throw command_error{terminal_text(a.error)};
  for (const auto& l : a.lines) fmt::print("{}\n", terminal_text(l));
}

void add_message_commands(CLI::App& app, global_options& g) {
  auto* message = app.add_subcommand("message", "look at one queued message, or act on it through the running sluiced");
  message->require_subcommand(1);
  message->fallthrough();
  auto id = std::make_shared<std::string>();

  auto* show = message->add_subcommand(
      "show", "envelope, where each recipient stands (next hop, attempts, next retry, last reply), metadata, headers");
  show->fallthrough();
  show->add_option("id", *id, "queue id (16 hex digits)")->required();
  show->callback([&g, id] { message_show(g, *id); });

  auto* exp = message->add_subcommand("export", "the message exactly as stored, to stdout (> file.eml)");
  exp->fallthrough();
  exp->add_option("id", *id, "queue id (16 hex digits)")->required();
  exp->callback([&g, id] { message_export(g, *id); });

  // Actions: the daemon owns the queue in memory, so they go through its admin socket.
  struct action {
    const char* name;
    const char* help;
  };
  for (const action a : {action{"retry", "try the message's waiting items now"},
                         action{"hold", "keep the message from being delivered until released (survives restart)"},
                         action{"release", "let a held message be delivered again"}}) {
    auto* cmd = message->add_subcommand(a.name, a.help);
    cmd->fallthrough();
    cmd->add_option("id", *id, "queue id (16 hex digits)")->required();
    cmd->callback([&g, id, name = std::string(a.name)] { ask_daemon(g, {"message", name, parse_id(*id).text()}); });
  }
  auto dsn = std::make_shared<bool>(false);
  auto* remove = message->add_subcommand(
      "remove", "delete the message from the queue (logged with your uid); with --dsn its sender gets a failure report. "
                "An attempt in progress is let finish first (up to 45 s): what it delivered is said, the rest removed");
  remove->fallthrough();
  remove->add_option("id", *id, "queue id (16 hex digits)")->required();
  remove->add_flag("--dsn", *dsn, "fail the queued recipients with 550 5.0.0, so the sender is told");
  remove->callback([&g, id, dsn] {
    std::vector<std::string> words{"message", "remove", parse_id(*id).text()};
    if (*dsn) words.push_back("--dsn");
    // sluiced first lets an attempt in progress finish, for up to 45 s
    // (delivery::engine::removal_wait_ms): the answer may take that long.
    ask_daemon(g, words, 60'000);
  });

  struct bounce_options {
    std::string domain, duration, cancel;
    bool list = false;
  };
  auto b = std::make_shared<bounce_options>();
  auto* bounce = message->add_subcommand(
      "bounce", "fail the queued mail for a domain with a DSN to each sender (logged with your uid), and with --for what "
                "arrives for it until then");
  bounce->fallthrough();
  auto* domain = bounce->add_option("--domain", b->domain, "the destination domain (or a next hop's routing domain)");
  bounce->add_option("--for", b->duration, "keep failing arriving mail for the domain this long (30s, 5m, 2h, 1d)")
      ->needs(domain);
  auto* cancel = bounce->add_option("--cancel", b->cancel, "remove the bounce rule of a domain");
  auto* list = bounce->add_flag("--list", b->list, "the bounce rules and until when they hold");
  domain->excludes(cancel)->excludes(list);
  cancel->excludes(list);
  bounce->callback([&g, b] {
    if (b->list) return bounce_list(g);
    if (!b->cancel.empty()) return ask_daemon(g, {"message", "bounce", "--cancel", b->cancel});
    if (b->domain.empty()) throw command_error{"message bounce: give --domain D, --cancel D or --list"};
    std::vector<std::string> words{"message", "bounce", "--domain", b->domain};
    if (!b->duration.empty()) words.insert(words.end(), {"--for", b->duration});
    ask_daemon(g, words);
  });
}

}  // namespace sluice::ctl
