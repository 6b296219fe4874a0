// queue_cmd.cc: `sluicectl queue list|show|summary` and `sluicectl mailq` (read-only views of the store), `queue retry|suspend|resume` (asked of sluiced).
// Untrusted input: message envelopes and bodies stored from remote SMTP clients (printed as data).
#include <fmt/format.h>

#include <time.h>

#include <CLI/CLI.hpp>
#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/queue_id.h"
#include "common.h"
#include "route/hop_key.h"
#include "store/store.h"

namespace sluice::ctl {

// Opens the store read-only: LMDB's lock file lets this run beside a live sluiced.
void open_store(store::queue_store& s, const global_options& g) {
  store::store_options o;
  o.dir = resolve_queue_dir(g);
  o.read_only = true;
  std::string error;
  if (!s.open(std::move(o), error)) throw command_error{error};
}

namespace {

std::string sender_text(const std::string& mail_from) {
  return mail_from.empty() ? "<>" : terminal_text(mail_from);
}

std::string ms_or_null(int64_t ms) { return ms == 0 ? std::string("null") : std::to_string(ms); }

// What a hop is doing as shown: a suspension whose time has passed has ended, whatever the
// record still says (the next outcome rewrites it).
std::string_view shown_status(const store::hop_record& r, int64_t now) {
  if (r.status == store::hop_status::suspended && !store::suspended_at(r, now))
    return r.next_retry_ms > now ? "retry" : "ready";
  return store::to_string(r.status);
}

// Until when the administrator suspended the hop: "" when it is not, "resumed" when for ever.
std::string suspended_until(const store::hop_record& r, int64_t now) {
  if (!store::suspended_at(r, now)) return "";
  return r.suspended_until_ms == 0 ? "resumed" : "in " + format_age((r.suspended_until_ms - now + 999) / 1000);
}

// The per-next-hop delivery queues, as the categorizer's hop records describe them.
void print_delivery_queues(const std::vector<store::hop_entry>& hops, int64_t now, bool json) {
  if (json) {
    fmt::print("\"delivery_queues\":[");
    bool first = true;
    for (const auto& h : hops) {
      const auto& r = h.record;
      const bool suspended = store::suspended_at(r, now);
      fmt::print("{}{{\"next_hop\":{},\"id\":{},\"status\":\"{}\",\"items\":{},\"recipients\":{},"
                 "\"oldest_received_at_ms\":{},\"next_retry_ms\":{},\"last_error\":{},\"suspended\":{},"
                 "\"suspended_until_ms\":{}}}",
                 first ? "" : ",", json_string(r.key), h.id, shown_status(r, now), r.items, r.recipients,
                 ms_or_null(r.oldest_ms), ms_or_null(r.next_retry_ms), json_string(r.last_error), suspended,
                 suspended ? ms_or_null(r.suspended_until_ms) : "null");
      first = false;
    }
    fmt::print("],");
    return;
  }
  if (hops.empty()) return;
  fmt::print("\n{:<36}  {:<9}  {:>6}  {:>6}  {:>7}  {:>10}  {:>10}  {}\n", "NEXT HOP", "STATUS", "ITEMS", "RCPTS",
             "OLDEST", "NEXT RETRY", "SUSPENDED", "LAST ERROR");
  for (const auto& h : hops) {
    const auto& r = h.record;
    std::string retry = "-";
    if (r.next_retry_ms != 0)
      retry = r.next_retry_ms > now ? "in " + format_age((r.next_retry_ms - now) / 1000) : std::string("due");
    const std::string until = suspended_until(r, now);
    fmt::print("{:<36}  {:<9}  {:>6}  {:>6}  {:>7}  {:>10}  {:>10}  {}\n", terminal_text(r.key), shown_status(r, now),
               r.items, r.recipients,
               r.items != 0 && r.oldest_ms != 0 ? format_age((now - r.oldest_ms) / 1000) : "-", retry,
               until.empty() ? "-" : until, r.last_error.empty() ? "-" : terminal_text(r.last_error));
  }
}

// Every delivery queue (hop record), in hop id order.
std::vector<store::hop_entry> read_hops(const store::queue_store& s) {
  std::vector<store::hop_entry> hops;
  std::string error;
  if (!s.for_each_hop(
          [&](const store::hop_entry& e) {
            hops.push_back(e);
            return true;
          },
          error))
    throw command_error{error};
  return hops;
}

void queue_list(const global_options& g) {
  store::queue_store s;
  open_store(s, g);
  std::string error;
  auto st = s.stats(error);
  if (!st) throw command_error{error};
  const std::vector<store::hop_entry> hops = read_hops(s);
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


// One delivery item of a message as mailq and summary see it: its queue and its record.
struct queued_item {
  const store::hop_entry* hop = nullptr;
  store::delivery_item_record item;
};

// Every delivery queue and every item in it, read in the store's short transactions.
struct queue_snapshot {
  std::vector<store::hop_entry> hops;
  std::map<base::queue_id, std::vector<queued_item>> items;  // by message, in queue order
  std::vector<base::queue_id> submissions;                    // not categorized yet

  explicit queue_snapshot(const store::queue_store& s) : hops(read_hops(s)) {
    std::string error;
    for (const auto& h : hops)
      if (!s.for_each_item(
              h.id,
              [&](base::queue_id id, const store::delivery_item_record& r) {
                items[id].push_back({&h, r});
                return true;
              },
              error))
        throw command_error{error};
    if (!s.for_each_submission(
            [&](base::queue_id id) {
              submissions.push_back(id);
              return true;
            },
            error))
      throw command_error{error};
  }
};

// Postfix's `mailq`: id (* in delivery, ! held), size, arrival, sender, then each
// recipient still queued under the last error of its item, in parentheses.
void mailq(const global_options& g) {
  store::queue_store s;
  open_store(s, g);
  const queue_snapshot q(s);
  std::string error;
  uint64_t bytes = 0, requests = 0;
  bool ok = s.for_each_message(
      [&](base::queue_id id, const smtp::envelope& env, const store::message_metadata& meta) {
        auto it = q.items.find(id);
        const bool waiting = std::binary_search(q.submissions.begin(), q.submissions.end(), id);
        // A message whose recipients are all done stays only for its pending reports.
        if (it == q.items.end() && !waiting) return true;
        char mark = ' ';
        if (it != q.items.end())
          for (const auto& p : it->second) {
            if (p.item.state == store::item_state::in_flight) mark = '*';
            else if ((p.item.held || store::suspended_at(p.hop->record, now_ms())) && mark == ' ') mark = '!';
          }
        std::time_t arrival = static_cast<std::time_t>(meta.received_at_ms / 1000);
        std::tm tm{};
        localtime_r(&arrival, &tm);
        char when[32];
        std::strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
        if (requests == 0) fmt::print("{:<17} {:>8} {:<20} {}\n", "-Queue ID-", "--Size--", "----Arrival Time----",
                                      "-Sender/Recipient-------");
        fmt::print("{}{} {:>8} {:<20} {}\n", id.text(), mark, meta.body_size, when, sender_text(env.mail_from));
        auto recipient = [&](uint32_t i) {
          if (i < env.recipients.size()) fmt::print("{:<48}{}\n", "", terminal_text(env.recipients[i].address));
        };
        if (it == q.items.end()) {
          for (uint32_t i = 0; i < env.recipients.size(); ++i) recipient(i);
        } else {
          for (const auto& p : it->second) {
            if (!p.item.last_error.empty()) fmt::print("({})\n", terminal_text(p.item.last_error));
            for (uint32_t i : p.item.recipients) recipient(i);
          }
        }
        fmt::print("\n");
        bytes += meta.body_size;
        ++requests;
        return true;
      },
      error);
  if (!ok) throw command_error{error};
  if (requests == 0) fmt::print("Mail queue is empty\n");
  else fmt::print("-- {} Kbytes in {} Request{}.\n", (bytes + 1023) / 1024, requests, requests == 1 ? "" : "s");
}

// qshape's buckets: an item younger than 5 minutes counts under "5", and so on, doubling.
constexpr std::array<int64_t, 9> bucket_minutes = {5, 10, 20, 40, 80, 160, 320, 640, 1280};
using bucket_counts = std::array<uint64_t, bucket_minutes.size() + 2>;  // T, the buckets, 1280+

// The destination qshape would name: the domain of a DNS hop, else the hop key itself.
std::string destination_of(const std::string& hop_key) {
  const auto parts = route::parse_hop_key(hop_key);
  return parts.kind == route::hop_key_kind::dns ? std::string(parts.domain) : hop_key;
}

void count_age(bucket_counts& c, int64_t age_ms) {
  size_t b = 0;
  while (b < bucket_minutes.size() && age_ms >= bucket_minutes[b] * 60'000) ++b;
  ++c[0];
  ++c[1 + b];
}

void queue_summary(const global_options& g) {
  store::queue_store s;
  open_store(s, g);
  const queue_snapshot q(s);
  const int64_t now = now_ms();
  std::map<std::string, bucket_counts> by_destination;
  bucket_counts total{};
  for (const auto& [id, parts] : q.items)
    for (const auto& p : parts) {
      count_age(by_destination[destination_of(p.hop->record.key)], now - p.item.received_at_ms);
      count_age(total, now - p.item.received_at_ms);
    }
  if (g.json) {
    auto counts = [](const bucket_counts& c) {
      std::string out = fmt::format("\"total\":{}", c[0]);
      for (size_t b = 0; b < bucket_minutes.size(); ++b) out += fmt::format(",\"{}\":{}", bucket_minutes[b], c[1 + b]);
      return out + fmt::format(",\"{}+\":{}", bucket_minutes.back(), c.back());
    };
    fmt::print("{{\"buckets_minutes\":[");
    for (size_t b = 0; b < bucket_minutes.size(); ++b) fmt::print("{}{}", b ? "," : "", bucket_minutes[b]);
    fmt::print("],\"total\":{{{}}},\"destinations\":[", counts(total));
    bool first = true;
    for (const auto& [dest, c] : by_destination) {
      fmt::print("{}{{\"destination\":{},{}}}", first ? "" : ",", json_string(dest), counts(c));
      first = false;
    }
    fmt::print("]}}\n");
    return;
  }
  auto row = [](const std::string& name, const bucket_counts& c) {
    fmt::print("{:>40}", name);
    for (uint64_t n : c) fmt::print(" {:>5}", n);
    fmt::print("\n");
  };
  fmt::print("{:>40} {:>5}", "", "T");
  for (int64_t m : bucket_minutes) fmt::print(" {:>5}", m);
  fmt::print(" {:>5}\n", "1280+");
  row("TOTAL", total);
  for (const auto& [dest, c] : by_destination) row(terminal_text(dest), c);
}

}  // namespace

void add_mailq_command(CLI::App& app, global_options& g) {
  auto* cmd = app.add_subcommand("mailq", "the queue in Postfix's mailq format");
  cmd->fallthrough();
  cmd->callback([&g] { mailq(g); });
}

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

  // Actions: the daemon owns the delivery queues in memory, so they go through its admin socket.
  auto hop = std::make_shared<std::string>();
  auto duration = std::make_shared<std::string>();
  auto* retry = queue->add_subcommand(
      "retry", "deliver what waits for its retry time on a next hop now (lifts its site's failure suspension)");
  retry->fallthrough();
  retry->add_option("hop", *hop, "next hop as queue list shows it (dns:Internet:example.com), or a domain")->required();
  retry->callback([&g, hop] { ask_daemon(g, {"queue", "retry", *hop}); });
  auto* suspend = queue->add_subcommand(
      "suspend", "stop delivering to a next hop; what arrives for it waits too; kept across restarts");
  suspend->fallthrough();
  suspend->add_option("hop", *hop, "next hop as queue list shows it, or a domain")->required();
  suspend->add_option("--for", *duration, "end the suspension by itself after this long (30s, 5m, 2h, 1d)");
  suspend->callback([&g, hop, duration] {
    std::vector<std::string> words{"queue", "suspend", *hop};
    if (!duration->empty()) words.insert(words.end(), {"--for", *duration});
    ask_daemon(g, words);
  });
  auto* resume = queue->add_subcommand("resume", "deliver to a suspended next hop again");
  resume->fallthrough();
  resume->add_option("hop", *hop, "next hop as queue list shows it, or a domain")->required();
  resume->callback([&g, hop] { ask_daemon(g, {"queue", "resume", *hop}); });

  auto* summary = queue->add_subcommand(
      "summary", "per destination, queued items by age in minutes (qshape's columns: total, <5, <10 ... 1280+)");
  summary->fallthrough();
  summary->callback([&g] { queue_summary(g); });
}

}  // namespace sluice::ctl
