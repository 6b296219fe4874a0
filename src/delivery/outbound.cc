// outbound.cc: one outbound connection of the engine: failover across a site's addresses, then messages, zero-copy.
// Untrusted input: remote SMTP replies (through smtp_connection); used only to decide outcomes and logged as data.
#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "delivery/outbound.h"
#include "smtp/params.h"

namespace sluice::delivery {

namespace {

std::string dsn_mail_params(const smtp::envelope& env) {
  std::string p;
  if (env.ret == smtp::dsn_ret::full) p = "RET=FULL";
  if (env.ret == smtp::dsn_ret::headers) p = "RET=HDRS";
  if (!env.envid.empty()) p += (p.empty() ? "" : " ") + std::string("ENVID=") + smtp::xtext_encode(env.envid);
  return p;
}

std::string dsn_rcpt_params(const smtp::recipient& r) {
  std::string p;
  if (r.notify != smtp::notify_unspecified) {
    if (r.notify & smtp::notify_never) {
      p = "NOTIFY=NEVER";
    } else {
      std::string list;
      if (r.notify & smtp::notify_success) list += "SUCCESS,";
      if (r.notify & smtp::notify_failure) list += "FAILURE,";
      if (r.notify & smtp::notify_delay) list += "DELAY,";
      if (!list.empty()) list.pop_back();
      p = "NOTIFY=" + list;
    }
  }
  if (!r.orcpt.empty()) {
    // Stored as "addr-type;address" decoded; the address part goes back out as xtext.
    const auto semi = r.orcpt.find(';');
    if (semi != std::string::npos)
      p += (p.empty() ? "" : " ") + std::string("ORCPT=") + r.orcpt.substr(0, semi + 1) +
           smtp::xtext_encode(std::string_view(r.orcpt).substr(semi + 1));
  }
  return p;
}

}  // namespace

engine::outbound::outbound(engine& e, site& s, work first, std::vector<target> targets)
    : e_(e), site_(&s), targets_(std::move(targets)), bound_(std::move(first)) {}

engine::outbound::~outbound() = default;

void engine::outbound::start() {
  if (targets_.empty()) {
    last_error_ = "no addresses to connect to";
    const connection_failure none{connection_end::connect_failed, {0, "", ""}, last_error_, false};
    failover(none);
    return;
  }
  connect_current();
}

void engine::outbound::connect_current() {
  const target& t = targets_[next_];
  net::endpoint ep;
  const std::string text = t.address.find(':') != std::string::npos ? fmt::format("[{}]:{}", t.address, t.port)
                                                                     : fmt::format("{}:{}", t.address, t.port);
  ++addresses_tried_;
  ++e_.stats_.connections_opened;
  connection_settings cs = e_.settings_for(*site_, t.host);
  if (t.skip_tls && cs.tls == route::tls_policy::opportunistic) cs.skip_tls = true;
  conn_ = std::make_unique<smtp_connection>(e_.loop_, std::move(cs), *this);
  if (!t.unix_path.empty()) {
    conn_->start_unix(t.unix_path, t.host);
    return;
  }
  if (!net::endpoint::parse(text, ep)) {
    last_error_ = "bad address " + text;
    // smtp_connection reports the failure through on_closed; a bad literal never gets there.
    connection_failure f{connection_end::connect_failed, {0, "", ""}, last_error_, false};
    on_closed(*conn_, f);
    return;
  }
  conn_->start(ep, t.host);
}

void engine::outbound::on_ready(smtp_connection&) {
  if (!ever_ready_) {
    ever_ready_ = true;
    site_->streak.succeeded();
  }
  next_step();
}

void engine::outbound::next_step() {
  if (current_) {
    // With PIPELINING the session is ready for the next MAIL before the final reply to this
    // message: one message at a time here, so the next one waits for that reply.
    if (awaiting_reply_) {
      ready_pending_ = true;
      return;
    }
    send_batch();  // more recipient batches of the message on the wire
    return;
  }
  if (closing_) return;
  if (e_.stopping_ && !bound_) {
    quit();
    return;
  }
  for (;;) {
    work w;
    if (bound_) {
      w = std::move(*bound_);
      bound_.reset();
    } else if (messages_ >= site_->limits.max_messages_per_connection) {
      quit();
      return;
    } else if (!e_.next_work(*site_, w)) {
      go_idle();
      return;
    }
    if (begin(std::move(w))) return;
  }
}

bool engine::outbound::wake() {
  if (!idle_) return false;
  work w;
  while (e_.next_work(*site_, w)) {
    idle_ = false;
    if (begin(std::move(w))) return true;
    idle_ = true;
  }
  return false;
}

void engine::outbound::go_idle() {
  auto& idle = site_->idle;
  if (e_.stopping_ || idle.size() >= e_.cfg_->delivery.idle_connections) {
    quit();
    return;
  }
  idle_ = true;
  idle_since_ms_ = e_.now_ms();
  if (std::find(idle.begin(), idle.end(), this) == idle.end()) idle.push_back(this);
}

// Starts one message; false when there was nothing to send (gone, or settled without a
// transaction), so the caller takes the next.
bool engine::outbound::begin(work w) {
  view_ = e_.open_item(w);
  if (!view_) return false;
  const auto& env = view_->envelope;
  indices_.clear();
  for (uint32_t i : view_->item.recipients)
    if (i < env.recipients.size()) indices_.push_back(i);
  result_ = {};
  if (indices_.empty() || retry::expired(e_.policy_for(env), w.received_at_ms, e_.now_ms())) {
    // Expired before this attempt: record() fails every recipient with 4.4.7.
    e_.settle_all(w, *view_, e_.expired_reply(*view_), "");
    view_.reset();
    return false;
  }
  current_ = std::move(w);
  if (messages_ > 0) ++e_.stats_.connections_reused;
  idle_ = false;
  msg_ = {};
  msg_.mail_from = env.mail_from;
  msg_.body = view_->chunks;  // zero-copy: views into the map, pinned by view_ until the final reply
  msg_.size = view_->meta.body_size;
  msg_.eight_bit = env.body == smtp::body_type::eight_bit_mime || env.body == smtp::body_type::binary_mime;
  msg_.smtputf8 = env.smtputf8;
  msg_.binary = env.body == smtp::body_type::binary_mime;
  msg_.dsn_mail_params = dsn_mail_params(env);
  batch_begin_ = batch_end_ = 0;
  send_batch();
  return true;
}

void engine::outbound::send_batch() {
  const auto& env = view_->envelope;
  const std::size_t limit = std::max<uint32_t>(1, site_->limits.max_recipients_per_message);
  batch_begin_ = batch_end_;
  batch_end_ = std::min(indices_.size(), batch_begin_ + limit);
  msg_.recipients.clear();
  msg_.dsn_rcpt_params.clear();
  for (std::size_t k = batch_begin_; k < batch_end_; ++k) {
    const auto& r = env.recipients[indices_[k]];
    msg_.recipients.push_back(r.address);
    msg_.dsn_rcpt_params.push_back(dsn_rcpt_params(r));
  }
  awaiting_reply_ = true;
  conn_->send(msg_);
}

void engine::outbound::on_message_done(smtp_connection& c, std::vector<smtp::reply>&& replies) {
  if (!current_) return;
  awaiting_reply_ = false;
  for (std::size_t k = batch_begin_; k < batch_end_; ++k) {
    const std::size_t j = k - batch_begin_;
    smtp::reply r = j < replies.size() ? std::move(replies[j]) : smtp::reply{451, "4.4.2", "no reply for this recipient"};
    result_.recipients.push_back({indices_[k], outcome_of(r), std::move(r)});
  }
  if (batch_end_ < indices_.size()) {  // the next batch goes when the session is ready again
    if (std::exchange(ready_pending_, false) && !closing_) next_step();
    return;
  }
  result_.remote_mta = c.remote_mta();
  result_.tls = c.tls_summary();
  result_.final_delivery = site_->lmtp;
  result_.next_hop_dsn = c.caps().dsn;
  finish_message();
  if (std::exchange(ready_pending_, false) && !closing_) next_step();
}

void engine::outbound::finish_message() {
  ++messages_;
  e_.stats_.body_bytes_borrowed = e_.stats_.body_bytes_borrowed - last_borrowed_ + conn_->body_bytes_borrowed();
  last_borrowed_ = conn_->body_bytes_borrowed();
  work w = std::move(*current_);
  current_.reset();
  e_.record(w, *view_, std::move(result_));
  view_.reset();  // ends the read transaction: the body has been answered for
}

// The session ended with recipients of the message still unanswered: they are deferred.
void engine::outbound::abandon_message(const smtp::reply& why) {
  for (std::size_t k = batch_end_; k < indices_.size(); ++k) result_.recipients.push_back({indices_[k], recipient_outcome::deferred, why});
  batch_end_ = indices_.size();
  awaiting_reply_ = false;
  if (conn_) {
    result_.remote_mta = conn_->remote_mta();
    result_.tls = conn_->tls_summary();
  }
  finish_message();
}

void engine::outbound::quit() {
  if (closing_) return;
  closing_ = true;
  idle_ = false;
  std::erase(site_->idle, this);
  if (conn_)
    conn_->quit();
  else
    e_.closed(*this);
}

void engine::outbound::abort() {
  closing_ = true;
  if (conn_) conn_->abort();
}

smtp::reply engine::outbound::give_up_reply() const {
  return {451, last_enhanced_, last_error_.empty() ? std::string("no usable connection") : last_error_};
}

// A connection ended before it was usable: decides whether to try the next address.
// True when another connection was started.
bool engine::outbound::failover(const connection_failure& f) {
  const int64_t now = e_.now_ms();
  const target* t = next_ < targets_.size() ? &targets_[next_] : nullptr;
  last_error_ = f.detail.empty() ? fmt::format("{} {}", f.reply.code, f.reply.text) : f.detail;
  last_enhanced_ = "4.4.1";
  ++e_.stats_.connections_failed;
  bool same_target_again = false;
  switch (f.why) {
    case connection_end::connect_failed:
    case connection_end::timeout:
      if (t && f.why == connection_end::connect_failed)
        e_.unreachable_[fmt::format("{}:{}", t->address, t->port)] = now + unreachable_ms;
      if (f.why == connection_end::timeout) last_enhanced_ = "4.4.2";
      if (f.reply.code != 0) ++sessions_used_;
      break;
    case connection_end::tls_failed:
      ++sessions_used_;
      last_enhanced_ = "4.7.5";
      // Opportunistic TLS that breaks: remember the host and try it again in plaintext.
      if (t && !t->skip_tls && e_.settings_for(*site_, t->host).tls == route::tls_policy::opportunistic) {
        e_.broken_tls_[t->host] = now + int64_t{e_.cfg_->delivery.tls_broken_remember_s} * 1000;
        targets_[next_].skip_tls = true;
        same_target_again = true;
      }
      break;
    case connection_end::tls_unavailable:
      ++sessions_used_;
      last_enhanced_ = "4.7.4";
      break;
    case connection_end::auth_failed:
      ++sessions_used_;
      last_enhanced_ = "4.7.0";
      break;
    default:  // greeting refused, 421, EHLO refused, dropped after the greeting
      ++sessions_used_;
      break;
  }
  if (same_target_again) {
    connect_current();
    return true;
  }
  const auto& d = e_.cfg_->delivery;
  std::size_t candidate = next_ + 1;
  if (d.reconnect == config::reconnect_policy::end) candidate = targets_.size();
  if (d.reconnect == config::reconnect_policy::same_host && t)
    while (candidate < targets_.size() && targets_[candidate].host != t->host) ++candidate;
  if (candidate < targets_.size() && addresses_tried_ < d.max_addresses && sessions_used_ < d.max_sessions && !e_.stopping_) {
    next_ = candidate;
    connect_current();
    return true;
  }
  if (site_->streak.failed(now)) e_.suspend(*site_, last_error_);
  return false;
}

void engine::outbound::on_closed(smtp_connection&, const connection_failure& f) {
  if (!ever_ready_ && !closing_) {
    if (failover(f)) return;
    if (bound_) {
      work w = std::move(*bound_);
      bound_.reset();
      e_.settle_all(w, give_up_reply(), "");
    }
  }
  if (current_) {
    const smtp::reply why{451, "4.4.2", f.detail.empty() ? std::string("connection lost") : f.detail};
    abandon_message(why);
  }
  if (bound_) {  // never sent: back to the site for another connection
    work w = std::move(*bound_);
    bound_.reset();
    auto it = e_.hops_.find(w.hop_id);
    if (it != e_.hops_.end()) it->second->ready.push_front(std::move(w)), e_.enqueue(*site_, *it->second);
  }
  e_.closed(*this);
}

}  // namespace sluice::delivery
