// local.cc: the engine's local next hops: accepted domains with a mailbox, by Maildir on the thread pool or LMTP.
// Untrusted input: recipient addresses (mapped into Maildir paths by maildir_for) and the mailbox server's replies.
#include <fmt/format.h>

#include "delivery/outbound.h"

namespace sluice::delivery {

namespace {

// Maildir deliveries of one hop on the thread pool at once: each is bound by fsyncs, and
// libuv's pool (4 threads by default) is shared with the logs and the pickup directory.
constexpr uint32_t max_maildir_jobs_per_hop = 4;

// One Maildir attempt: the item, its view (pinning the body the pool thread reads: the
// read transaction is not tied to a thread, MDB_NOTLS), and the result the pool fills in.
struct maildir_job {
  engine::work w;
  std::unique_ptr<store::message_view> view;
  maildir_target target;
  maildir_message message;
  attempt_result result;
};

}  // namespace

const config::accepted_domain* engine::mailbox_domain(std::string_view name) const {
  if (!cfg_) return nullptr;
  for (const auto& d : cfg_->accepted_domains)
    if (d.name == name) return d.mailbox == config::mailbox_kind::none ? nullptr : &d;
  return nullptr;
}

void engine::pump_local(hop& h) {
  // No mailbox configured for the domain: its items wait, durable in the store, until a
  // reload gives it one.
  const config::accepted_domain* ad = mailbox_domain(h.connector);
  if (ad == nullptr || stopping_) return;
  if (ad->mailbox == config::mailbox_kind::maildir) {
    while (!h.ready.empty() && h.jobs < max_maildir_jobs_per_hop) {
      work w = std::move(h.ready.front());
      h.ready.pop_front();
      start_maildir(h, std::move(w), *ad);
    }
    return;
  }
  site& s = lmtp_site(*ad);
  if (h.bound != &s && h.in_site && h.bound) std::erase(h.bound->hops, &h), h.in_site = false;
  h.bound = &s;
  if (s.streak.suspended(now_ms())) {
    auto ready = std::move(h.ready);
    h.ready.clear();
    for (const auto& w : ready) settle_all(w, suspended_reply(s), "");
    return;
  }
  enqueue(s, h);
  pump(s);
}

engine::site& engine::lmtp_site(const config::accepted_domain& ad) {
  const std::string key = "lmtp|" + ad.lmtp_target;
  auto& slot = sites_[key];
  if (!slot) {
    slot = std::make_unique<site>();
    slot->key = key;
    slot->lmtp = true;
    slot->shared = registry_.find(key);
    stats_.sites = static_cast<uint32_t>(sites_.size());
    slot->hosts.push_back({ad.lmtp_target, 0, ad.lmtp_port, {}, ad.lmtp_socket});
    if (ad.lmtp_socket.empty()) slot->hosts.back().addresses.push_back(ad.lmtp_address.to_string());
  }
  set_limits(*slot, cfg_->delivery.limits);
  return *slot;
}

void engine::start_maildir(hop& h, work&& w, const config::accepted_domain& ad) {
  auto view = open_item(w);
  if (!view) return;
  if (retry::expired(policy_for(view->envelope), w.received_at_ms, now_ms()))
    return settle_all(w, *view, expired_reply(*view), "");
  auto job = std::make_shared<maildir_job>();
  job->w = w;
  job->target = {ad.maildir_root, ad.maildir_path};
  const auto& env = view->envelope;
  job->message.queue_id = w.id.text();
  job->message.mail_from = env.mail_from;
  job->message.hostname = cfg_->server.hostname;
  job->message.body = view->chunks;
  for (uint32_t idx : view->item.recipients)
    if (idx < env.recipients.size()) job->message.recipients.emplace_back(idx, env.recipients[idx].address);
  job->view = std::move(view);
  ++h.jobs;
  ++maildir_jobs_;
  ++stats_.maildir_deliveries;
  // The job is shared by both callbacks; the engine outlives them (idle() waits for
  // maildir_jobs_ to reach 0 before the worker lets it go).
  net::queue_work(
      loop_, [job] { job->result = deliver_to_maildirs(job->target, job->message); },
      [this, job] {
        --maildir_jobs_;
        job->result.final_delivery = true;
        record(job->w, *job->view, std::move(job->result));
        job->view.reset();
        if (auto it = hops_.find(job->w.hop_id); it != hops_.end()) {
          --it->second->jobs;
          pump_local(*it->second);
        }
      });
}

}  // namespace sluice::delivery
