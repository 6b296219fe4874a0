// receiver.cc: accepts connections, picks the governing receive connector, enforces limits,
// and answers recipient checks from the accepted domains.
// Untrusted input: peer addresses and RCPT addresses.
#include "smtpd/receiver.h"

#include "metrics/daemon.h"

namespace sluice::smtpd {

namespace {

uint64_t hash_source(const net::endpoint& peer) {
  // FNV-1a over the address bytes only (not the port).
  const unsigned char* p = nullptr;
  size_t n = 0;
  if (peer.addr.ss_family == AF_INET) {
    p = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in*>(&peer.addr)->sin_addr);
    n = 4;
  } else if (peer.addr.ss_family == AF_INET6) {
    p = reinterpret_cast<const unsigned char*>(&reinterpret_cast<const sockaddr_in6*>(&peer.addr)->sin6_addr);
    n = 16;
  }
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string_view domain_part(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

}  // namespace

receiver::receiver(net::loop& loop, unsigned worker_index, log::tracking_batch& tracking,
                   std::function<bool(store::submit_request*)> submit_fn, in_flight_budget* budget,
                   std::shared_ptr<auth::limiter_registry> auth_limiters)
    : loop_(loop),
      worker_index_(worker_index),
      tracking_(tracking),
      submit_fn_(std::move(submit_fn)),
      budget_(budget),
      ids_(worker_index),
      auth_limiters_(auth_limiters ? std::move(auth_limiters) : std::make_shared<auth::limiter_registry>()),
      reaper_(loop, [this] { reap(); }),
      next_session_id_(static_cast<uint64_t>(worker_index) << 48) {}

receiver::~receiver() {
  listeners_.clear();
  reap();
  sessions_.clear();
}

std::string receiver::listen() {
  std::string first_error;
  std::unordered_map<std::string, std::unique_ptr<net::listener>> next;
  for (const auto& b : policies_->cfg->all_bindings()) {
    std::string text = b.to_string();
    if (auto it = listeners_.find(text); it != listeners_.end()) {
      next.emplace(text, std::move(it->second));
      continue;
    }
    net::endpoint where;
    if (!net::endpoint::parse(text, where)) {
      if (first_error.empty()) first_error = "cannot parse binding " + text;
      continue;
    }
    auto l = std::make_unique<net::listener>(loop_, [this](std::unique_ptr<net::connection> c) { accept(std::move(c)); });
    int rc = l->listen(where);
    if (rc != 0) {
      if (first_error.empty()) first_error = "cannot listen on " + text + ": " + l->error_text(rc);
      continue;
    }
    next.emplace(text, std::move(l));
  }
  // Whatever is left in listeners_ is a binding the configuration no longer has.
  listeners_ = std::move(next);
  return first_error;
}

std::string receiver::install(std::shared_ptr<const connector_policies> next) {
  policies_ = std::move(next);
  limiters_.clear();
  return listen();
}

void receiver::accept(std::unique_ptr<net::connection> conn) {
  if (shutting_down_ || !policies_) return;
  const auto& cfg = *policies_->cfg;
  auto local = config::ip_address::from_sockaddr(reinterpret_cast<const sockaddr*>(&conn->local().addr));
  auto peer = config::ip_address::from_sockaddr(reinterpret_cast<const sockaddr*>(&conn->peer().addr));
  const config::receive_connector* rc = nullptr;
  if (local && peer) rc = cfg.select_receive_connector(*local, conn->local().port(), *peer);

  session_slot slot;
  std::shared_ptr<const connector_policy> policy;
  if (rc != nullptr) {
    const auto connector = static_cast<size_t>(rc - cfg.receive_connectors.data());
    const uint64_t source_hash = hash_source(conn->peer());
    if (!policies_->limits->acquire(connector, source_hash, rc->max_connections, rc->max_connections_per_ip)) {
      conn->write("421 4.7.0 " + cfg.server.hostname + " Too many connections, try again later\r\n");
      // Not counted anywhere, so it must not linger: a flood of refused peers that never
      // read would otherwise hold descriptors until the loop turn, or the close deadline.
      conn->close_now();
      return;
    }
    // Counted until the socket is really closed, not when the session ends: a close may
    // wait (bounded) for a peer that does not read, and its descriptor is still ours.
    metrics::daemon().sessions.with({rc->name}).inc();
    metrics::gauge* open = &metrics::daemon().connections_open.with({rc->name});
    open->add(1);
    conn->on_socket_closed([admitted_by = policies_, connector, source_hash, open] {
      admitted_by->limits->release(connector, source_hash);
      open->add(-1);
    });
    slot.admitted_by = policies_;
    policy = policies_->by_connector[connector];
  }
  auto s = std::make_unique<session>(*this, std::move(conn), std::move(policy), next_session_id_++);
  session* raw = s.get();
  slot.owner = std::move(s);
  sessions_.emplace(raw, std::move(slot));
  raw->start();
}

smtp::reply receiver::check_recipient(const connector_policy& policy, bool authenticated, const smtp::recipient& rcpt,
                                      uint64_t declared_size) {
  // RFC 5321 allows only <postmaster> without a domain: it means ours.
  if (domain_part(rcpt.address).empty()) return {250, "2.1.5", "Recipient OK"};
  const bool may_relay = policy.relay || (authenticated && policy.relay_authenticated);
  route::decision d = policies_->routes->route_recipient(rcpt.address, declared_size, policy.smtp.max_message_size);
  if (d.needs_relay_permission() && !may_relay)
    return {550, "5.7.54", "SMTP; Unable to relay recipient in non-accepted domain"};
  switch (d.result) {
    case route::outcome::unknown_recipient:
      return {550, "5.1.10", "RESOLVER.ADR.RecipNotFound; Recipient not found by SMTP address lookup"};
    case route::outcome::too_big:
      return {552, "5.3.4", "Message too big for this recipient's route (limit " + std::to_string(d.size_limit) + ")"};
    case route::outcome::bad_address:
      return {501, "5.1.3", "Bad recipient address syntax"};
    default:
      // Deliverable, or no send connector matches yet relaying is allowed: the
      // categorizer fails it later with a "no route" DSN, as the connector permits.
      return {250, "2.1.5", "Recipient OK"};
  }
}

std::string receiver::postmaster_address() {
  if (!policies_ || !policies_->routes) return {};
  for (const auto& d : policies_->routes->accepted_domains())
    if (d.kind == route::domain_kind::authoritative && !d.name.starts_with("*.")) return "postmaster@" + d.name;
  return {};
}

auth::failure_limiter& receiver::auth_limiter(const connector_policy& policy) {
  auto& slot = limiters_[&policy];
  if (!slot) slot = auth_limiters_->for_connector(policy.name, static_cast<int>(policy.auth_max_failures));
  return *slot;
}

void receiver::retire(session* s) {
  retired_.push_back(s);
  reaper_.send();
}

void receiver::reap() {
  auto batch = std::move(retired_);
  retired_.clear();
  for (session* s : batch) {
    auto it = sessions_.find(s);
    if (it == sessions_.end()) continue;
    sessions_.erase(it);
  }
}

void receiver::stop_accepting(void (session::*each)()) {
  shutting_down_ = true;
  for (auto& [binding, l] : listeners_) l->close();
  std::vector<session*> all;
  for (auto& [ptr, slot] : sessions_) all.push_back(ptr);
  for (session* s : all) (s->*each)();
}

void receiver::drain() { stop_accepting(&session::drain); }

void receiver::shutdown() { stop_accepting(&session::shutdown); }

void receiver::log_protocol(const connector_policy& policy, uint64_t session, uint32_t sequence,
                            std::string_view local, std::string_view remote, log::event kind, std::string_view data) {
  auto& slot = pending_logs_[policy.protocol_log.get()];
  if (!slot.first) slot.first = policy.protocol_log;
  log::append_event(slot.second, policy.name, session, sequence, local, remote, kind, data);
}

void receiver::track(const log::tracking_record& record) { tracking_.add(record); }

void receiver::flush_logs() {
  for (auto& [file, slot] : pending_logs_) {
    if (slot.second.empty()) continue;
    std::string batch;
    batch.swap(slot.second);
    // The work owns the batch and keeps the file open; append() rotates and counts drops.
    net::queue_work(loop_, [file = slot.first, lines = std::move(batch)] { file->append(lines); }, [] {});
  }
  // Files of earlier generations are dropped once idle, so a reload can close them.
  std::erase_if(pending_logs_, [&](const auto& entry) { return entry.second.first.use_count() == 1; });
}

}  // namespace sluice::smtpd
