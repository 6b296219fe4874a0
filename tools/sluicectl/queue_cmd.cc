// queue_cmd.cc: `sluicectl queue list|show`: read-only views of the queue store (submission and delivery queues).
// Untrusted input: message envelopes and bodies stored from remote SMTP clients (printed as data).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "base/queue_id.h"
#include "common.h"
#include "store/store.h"

namespace sluice::ctl {

namespace {

// Opens the store read-only: LMDB's lock file lets this run beside a live sluiced.
void open_store(store::queue_store& s, const global_options& g) {
  store::store_options o;
  o.dir = resolve_queue_dir(g);
  o.read_only = true;
  std::string error;
  if (!s.open(std::move(o), error)) throw command_error{error};
}

std::string sender_text(const std::string& mail_from) {
  return mail_from.empty() ? "<>" : terminal_text(mail_from);
}

std::string ms_or_null(int64_t ms) { return ms == 0 ? std::string("null") : std::to_string(ms); }

// The per-next-hop delivery queues, as the categorizer's hop records describe them.
void print_delivery_queues(const std::vector<store::hop_entry>& hops, int64_t now, bool json) {
  if (json) {
    fmt::print("\"delivery_queues\":[");
    bool first = true;
    for (const auto& h : hops) {
      const auto& r = h.record;
      fmt::print("{}{{\"next_hop\":{},\"id\":{},\"status\":\"{}\",\"items\":{},\"recipients\":{},"
                 "\"oldest_received_at_ms\":{},\"next_retry_ms\":{},\"last_error\":{}}}",
                 first ? "" : ",", json_string(r.key), h.id, store::to_string(r.status), r.items, r.recipients,
                 ms_or_null(r.oldest_ms), ms_or_null(r.next_retry_ms), json_string(r.last_error));
      first = false;
    }
    fmt::print("],");
    return;
  }
  if (hops.empty()) return;
  fmt::print("\n{:<36}  {:<9}  {:>6}  {:>6}  {:>7}  {:>10}  {}\n", "NEXT HOP", "STATUS", "ITEMS", "RCPTS", "OLDEST",
             "NEXT RETRY", "LAST ERROR");
  for (const auto& h : hops) {
    const auto& r = h.record;
    std::string retry = "-";
    if (r.next_retry_ms != 0)
      retry = r.next_retry_ms > now ? "in " + format_age((r.next_retry_ms - now) / 1000) : std::string("due");
    fmt::print("{:<36}  {:<9}  {:>6}  {:>6}  {:>7}  {:>10}  {}\n", terminal_text(r.key), store::to_string(r.status),
               r.items, r.recipients,
               r.items != 0 && r.oldest_ms != 0 ? format_age((now - r.oldest_ms) / 1000) : "-", retry,
               r.last_error.empty() ? "-" : terminal_text(r.last_error));
  }
}

void queue_list(const global_options& g) {
  store::queue_store s;
  open_store(s, g);
  std::string error;
  auto st = s.stats(error);
  if (!st) throw command_error{error};
  std::vector<store::hop_entry> hops;
  if (!s.for_each_hop(
          [&](const store::hop_entry& e) {
            hops.push_back(e);
            return true;
          },
          error))
    throw command_error{error};
  const int64_t now = now_ms();
  const bool json = g.json;

  if (json) {
    fmt::print("{{\"summary\":{{\"messages\":{},\"recipients\":{},\"submission_queued\":{},"
               "\"delivery_queues\":{},\"delivery_items\":{},\"failed_messages\":{},"
               "\"oldest_received_at_ms\":{},\"store_file_bytes\":{},\"map_bytes\":{},"
               "\"page_size\":{},\"pages_used\":{},\"free_pages\":{},\"overflow_pages\":{}}},",
               st->messages, st->recipients, st->submission_queued, st->delivery_queues, st->delivery_items,
               st->failed_messages,
               st->oldest_received_at_ms ? std::to_string(*st->oldest_received_at_ms) : "null",
               st->file_size, st->map_size, st->pages.page_size, st->pages.pages_used,
               st->pages.free_pages, st->pages.overflow_pages);
    print_delivery_queues(hops, now, true);
    fmt::print("\"messages\":[");
  } else {
    fmt::print("{} message{} queued, {} recipient{}, {} awaiting categorization\n", st->messages,
               st->messages == 1 ? "" : "s", st->recipients, st->recipients == 1 ? "" : "s",
               st->submission_queued);
    fmt::print("{} delivery item{} in {} delivery queue{}, {} message{} with failed recipients\n",
               st->delivery_items, st->delivery_items == 1 ? "" : "s", st->delivery_queues,
               st->delivery_queues == 1 ? "" : "s", st->failed_messages, st->failed_messages == 1 ? "" : "s");
    fmt::print("oldest: {}   store: {} on disk, {} map, {} free pages\n",
               st->oldest_received_at_ms
                   ? format_age((now - *st->oldest_received_at_ms) / 1000) + " ago"
                   : std::string("-"),
               format_bytes(st->file_size), format_bytes(st->map_size), st->pages.free_pages);
    print_delivery_queues(hops, now, false);
    if (st->messages != 0)
      fmt::print("\n{:<16}  {:>7}  {:>9}  {:<32}  {:>5}  {}\n", "ID", "AGE", "SIZE", "SENDER",
                 "RCPTS", "FIRST RECIPIENT");
  }
  bool first = true;
  bool ok = s.for_each_message(
      [&](base::queue_id id, const smtp::envelope& env, const store::message_metadata& meta) {
        const std::string first_rcpt = env.recipients.empty() ? "" : env.recipients[0].address;
        if (json) {
          fmt::print("{}{{\"id\":\"{}\",\"received_at_ms\":{},\"size\":{},\"sender\":{},"
                     "\"recipients\":{},\"first_recipient\":{},\"connector\":{}}}",
                     first ? "" : ",", id.text(), meta.received_at_ms, meta.body_size,
                     json_string(env.mail_from), env.recipients.size(), json_string(first_rcpt),
                     json_string(meta.connector));
        } else {
          fmt::print("{:<16}  {:>7}  {:>9}  {:<32}  {:>5}  {}\n", id.text(),
                     format_age((now - meta.received_at_ms) / 1000), format_bytes(meta.body_size),
                     sender_text(env.mail_from), env.recipients.size(), terminal_text(first_rcpt));
        }
        first = false;
        return true;
      },
      error);
  if (json) fmt::print("]}}\n");
  if (!ok) throw command_error{error};
}

const char* body_type_name(smtp::body_type b) {
  switch (b) {
    case smtp::body_type::seven_bit: return "7BIT";
    case smtp::body_type::eight_bit_mime: return "8BITMIME";
    case smtp::body_type::binary_mime: return "BINARYMIME";
    default: return "-";
  }
}

std::string notify_text(uint8_t n) {
  if (n == smtp::notify_unspecified) return "";
  if (n & smtp::notify_never) return "NEVER";
  std::string out;
  if (n & smtp::notify_success) out += "SUCCESS,";
  if (n & smtp::notify_failure) out += "FAILURE,";
  if (n & smtp::notify_delay) out += "DELAY,";
  if (!out.empty()) out.pop_back();
  return out;
}

void queue_show(const global_options& g, const std::string& id_text) {
  auto id = base::queue_id::parse(id_text);
  if (!id) throw command_error{fmt::format("'{}' is not a queue id (16 hex digits)", id_text)};
  store::queue_store s;
  open_store(s, g);
  std::string error;
  auto m = s.read_message(*id, error);
  if (!m) {
    if (!error.empty()) throw command_error{error};
    throw command_error{fmt::format("no message {} in the queue", id->text())};
  }
  const auto& e = m->envelope;
  const auto& meta = m->meta;
  if (g.json) {
    std::string rcpts;
    for (const auto& r : e.recipients)
      rcpts += fmt::format("{}{{\"address\":{},\"notify\":{},\"orcpt\":{}}}",
                           rcpts.empty() ? "" : ",", json_string(r.address),
                           json_string(notify_text(r.notify)), json_string(r.orcpt));
    fmt::print("{{\"id\":\"{}\",\"received_at_ms\":{},\"connector\":{},\"client_address\":{},"
               "\"client_helo\":{},\"auth_user\":{},\"esmtp\":{},\"mail_from\":{},"
               "\"body_type\":{},\"smtputf8\":{},\"declared_size\":{},\"envid\":{},"
               "\"auth_submitter\":{},\"recipients\":[{}],\"size\":{},\"body\":{}}}\n",
               m->id.text(), meta.received_at_ms, json_string(meta.connector),
               json_string(meta.client_address), json_string(meta.client_helo),
               json_string(meta.auth_user), e.esmtp, json_string(e.mail_from),
               json_string(body_type_name(e.body)), e.smtputf8,
               e.declared_size ? std::to_string(*e.declared_size) : "null", json_string(e.envid),
               json_string(e.auth_submitter), rcpts, meta.body_size, json_string(m->body));
    return;
  }
  const int64_t now = now_ms();
  fmt::print("Queue-ID:     {}\n", m->id.text());
  fmt::print("Received:     {} ago (unix ms {})\n", format_age((now - meta.received_at_ms) / 1000),
             meta.received_at_ms);
  fmt::print("Connector:    {}\n", terminal_text(meta.connector));
  fmt::print("Client:       {} (HELO {}){}\n", terminal_text(meta.client_address), terminal_text(meta.client_helo),
             e.esmtp ? " ESMTP" : "");
  if (!meta.auth_user.empty()) fmt::print("Auth-User:    {}\n", terminal_text(meta.auth_user));
  fmt::print("Mail-From:    <{}>", terminal_text(e.mail_from));
  if (e.body != smtp::body_type::unspecified) fmt::print(" BODY={}", body_type_name(e.body));
  if (e.smtputf8) fmt::print(" SMTPUTF8");
  if (e.declared_size) fmt::print(" SIZE={}", *e.declared_size);
  if (e.ret == smtp::dsn_ret::full) fmt::print(" RET=FULL");
  if (e.ret == smtp::dsn_ret::headers) fmt::print(" RET=HDRS");
  if (!e.envid.empty()) fmt::print(" ENVID={}", terminal_text(e.envid));
  if (!e.auth_submitter.empty()) fmt::print(" AUTH={}", terminal_text(e.auth_submitter));
  fmt::print("\n");
  for (const auto& r : e.recipients) {
    fmt::print("Rcpt-To:      <{}>", terminal_text(r.address));
    if (r.notify) fmt::print(" NOTIFY={}", notify_text(r.notify));
    if (!r.orcpt.empty()) fmt::print(" ORCPT={}", terminal_text(r.orcpt));
    fmt::print("\n");
  }
  fmt::print("Size:         {} bytes in {} chunk{}\n\n", meta.body_size, meta.body_chunks,
             meta.body_chunks == 1 ? "" : "s");
  // Escaped even when stdout is not a terminal: a pager or `cat` of the file shows it later.
  std::string body = terminal_text(m->body, true);
  std::fwrite(body.data(), 1, body.size(), stdout);
  if (!body.empty() && body.back() != '\n') fmt::print("\n");
}

}  // namespace

void add_queue_commands(CLI::App& app, global_options& g) {
  auto* queue = app.add_subcommand("queue", "inspect the submission and delivery queues");
  queue->require_subcommand(1);
  queue->fallthrough();

  auto* list = queue->add_subcommand("list", "summary, one line per delivery queue and per queued message");
  list->fallthrough();
  list->callback([&g] { queue_list(g); });

  auto id = std::make_shared<std::string>();
  auto* show = queue->add_subcommand("show", "envelope, metadata and body of one message");
  show->fallthrough();
  show->add_option("id", *id, "queue id (16 hex digits)")->required();
  show->callback([&g, id] { queue_show(g, *id); });
}

}  // namespace sluice::ctl
