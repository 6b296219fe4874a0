// engine.cc: the delivery engine of one loop: hop-to-site binding, scheduling under limits, outcomes, retries.
// Untrusted input: DNS answers and remote replies (data only: stored, logged, never executed).
#include "delivery/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "delivery/outbound.h"
#ifdef SLUICE_HAVE_IDNA
#include "route/idna.h"
#endif

namespace sluice::delivery {

namespace {

// How often waiting items, suspensions, rate limits and idle connections are looked at.
constexpr uint64_t tick_ms = 100;
// A hop stays bound to the site of a DNS answer for the answer's TTL (its smallest, MX
// and address records together), so a domain that moves its MX is followed as soon as
// its zone says, as Postfix's lookup per delivery would. The floor only stops TTL 0
// answers from costing a lookup per message of a burst; it is kept short because an
// administrator who lowers a TTL to one second before a move expects that second.
constexpr int64_t min_binding_ms = 1'000;
constexpr int64_t smart_host_binding_ms = 60'000;

}  // namespace

engine::engine(net::loop& loop, unsigned producer, store::queue_store& store, dns::resolver& resolver,
               site_registry& registry)
    : loop_(loop),
      producer_(producer),
      registry_(registry),
      store_(store),
      resolver_(&resolver),
      rng_(std::random_device{}()),
      tick_(loop) {
  tick_.start(tick_ms, tick_ms, [this] { tick(); });
}

engine::~engine() {
  tick_.stop();
  // Connections close without callbacks reaching us (smtp_connection's destructor).
  outbounds_.clear();
  dead_.clear();
}

int64_t engine::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void engine::set_config(std::shared_ptr<const config::config> cfg, std::shared_ptr<const send_tls> tls,
                        std::shared_ptr<const route::table> routes) {
  cfg_ = std::move(cfg);
  tls_ = std::move(tls);
  routes_ = std::move(routes);
  ++config_epoch_;
  // A reload is the administrator's word that something changed: suspended sites get a
  // fresh start, as after a restart.
  for (auto& [key, s] : sites_) s->streak = failure_streak{};
  // Idle connections were opened under the old settings (TLS policy, the old DNS answer):
  // the next message connects afresh. Connections carrying a message finish it.
  close_idle();
  const auto& d = cfg_->delivery;
  retry_.first_ms = int64_t{d.retry_first_s} * 1000;
  retry_.max_ms = int64_t{d.retry_max_s} * 1000;
  retry_.expire_ms = static_cast<int64_t>(d.expire_after_s) * 1000;
  dsn_retry_ = retry_;
  dsn_retry_.expire_ms = std::min<int64_t>(retry_.expire_ms, int64_t{cfg_->dsn.expire_after_s} * 1000);
  // A mailbox configured (or changed) by this generation takes the local mail waiting for one.
  for (auto& [id, h] : hops_)
    if (h->kind == route::hop_key_kind::local && !h->ready.empty()) pump_local(*h);
}

const config::send_connector* engine::connector(std::string_view name) const {
  if (!cfg_) return nullptr;
  const auto* sc = cfg_->find_send_connector(name);
  return sc && sc->enabled ? sc : nullptr;
}

config::delivery_limits engine::limits_for(const config::send_connector& sc, std::string_view domain) const {
  config::delivery_limits l = sc.limits.apply(cfg_->delivery.limits);
  for (const auto& o : cfg_->delivery.domains)
    if (o.domain == domain) l = o.limits.apply(l);
  return l;
}

engine::hop& engine::hop_for(uint64_t hop_id, const std::string& key) {
  auto& slot = hops_[hop_id];
  if (!slot) {
    slot = std::make_unique<hop>();
    slot->id = hop_id;
    slot->key = key;
    const auto parts = route::parse_hop_key(key);
    slot->kind = parts.kind;
    slot->connector = std::string(parts.name);
    slot->domain = std::string(parts.domain);
    stats_.hops = hops_.size();
#ifdef SLUICE_HAVE_IDNA
    // An SMTPUTF8 recipient's domain may be in U-labels; DNS knows the A-label form.
    if (route::has_non_ascii(slot->domain))
      if (auto ascii = route::domain_to_ascii(slot->domain)) slot->domain = std::move(*ascii);
#endif
  }
  return *slot;
}

void engine::add(hop_item&& item) {
  hop& h = hop_for(item.hop_id, item.hop_key);
  ++items_;
  ++h.items;
  work w{item.hop_id, item.id, item.recipients, item.received_at_ms, item.attempts};
  if (item.next_attempt_ms > now_ms())
    waiting_.emplace(item.next_attempt_ms, w);
  else
    make_ready(h, std::move(w));
}

void engine::forget(const work& w) {
  --items_;
  auto it = hops_.find(w.hop_id);
  if (it == hops_.end()) return;
  hop& h = *it->second;
  // A hop with nothing left is dropped, so a relay that has sent to millions of domains
  // does not keep one entry per domain for ever; the next item for it makes a new one.
  if (--h.items != 0 || h.resolving) return;
  if (h.in_site && h.bound) std::erase(h.bound->hops, &h);
  if (h.bound) registry_.unbind_hop(h.key);
  hops_.erase(it);
  stats_.hops = hops_.size();
}

std::string_view engine::hop_key_of(uint64_t hop_id) const {
  auto it = hops_.find(hop_id);
  return it == hops_.end() ? std::string_view() : std::string_view(it->second->key);
}

void engine::make_ready(hop& h, work&& w) {
  if (!suspended_.empty() && suspended(h, now_ms())) {
    parked_[h.id].push_back(std::move(w));
    return;
  }
  h.ready.push_back(std::move(w));
  if (h.kind == route::hop_key_kind::local) return pump_local(h);
  if (h.kind != route::hop_key_kind::dns && h.kind != route::hop_key_kind::smart_host) return;
  if (h.bound && h.epoch == config_epoch_ && now_ms() < h.bound_until_ms) {
    if (h.bound->streak.suspended(now_ms())) {
      const work w = std::move(h.ready.back());
      h.ready.pop_back();
      settle_all(w, suspended_reply(*h.bound), "");
      return;
    }
    enqueue(*h.bound, h);
    pump(*h.bound);
  } else {
    bind(h);
  }
}

void engine::bind(hop& h) {
  if (h.resolving || stopping_) return;
  const config::send_connector* sc = connector(h.connector);
  if (sc == nullptr) {
    // The connector was removed or disabled by a reload: keep the mail and say why.
    const smtp::reply r{451, "4.4.4", fmt::format("send connector \"{}\" is not configured or disabled", h.connector)};
    auto ready = std::move(h.ready);
    h.ready.clear();
    for (const auto& w : ready) reroute(w, r);
    return;
  }
  h.resolving = true;
  const uint64_t id = h.id, epoch = config_epoch_;
  if (h.kind == route::hop_key_kind::dns) {
    resolver_->resolve_mail_domain(h.domain, [this, id, epoch](dns::destination&& d) { resolved(id, std::move(d), epoch); });
    return;
  }
  // Smart hosts: every name's addresses, gathered into one destination of equal-rank hosts.
  struct gather {
    dns::destination d;
    std::size_t left = 0;
    dns::lookup_status worst = dns::lookup_status::ok;
    std::string detail;
  };
  auto g = std::make_shared<gather>();
  g->left = sc->smart_hosts.size();
  g->d.hosts.resize(sc->smart_hosts.size());
  g->d.site_key = "smarthost";
  if (g->left == 0) {
    g->d.status = dns::lookup_status::no_addresses;
    g->d.detail = "no smart hosts configured";
    resolved(id, std::move(g->d), epoch);
    return;
  }
  for (std::size_t i = 0; i < sc->smart_hosts.size(); ++i) {
    g->d.hosts[i].name = sc->smart_hosts[i].host;
    resolver_->resolve_host(sc->smart_hosts[i].host, [this, g, i, id, epoch](dns::lookup_status st, std::vector<std::string> addrs,
                                                                            std::string detail) {
      if (st == dns::lookup_status::ok) {
        g->d.hosts[i].addresses = std::move(addrs);
      } else {
        if (g->worst != dns::lookup_status::temporary) g->worst = st;
        g->detail = std::move(detail);
      }
      if (--g->left != 0) return;
      std::erase_if(g->d.hosts, [](const dns::mx_host& h) { return h.addresses.empty(); });
      if (g->d.hosts.empty()) {
        g->d.status = g->worst == dns::lookup_status::ok ? dns::lookup_status::no_addresses : dns::lookup_status::temporary;
        g->d.detail = "smart hosts: " + g->detail;
      }
      resolved(id, std::move(g->d), epoch);
    });
  }
}

void engine::resolved(uint64_t hop_id, dns::destination&& d, uint64_t epoch) {
  auto it = hops_.find(hop_id);
  if (it == hops_.end()) return;
  hop& h = *it->second;
  h.resolving = false;
  if (stopping_) return;
  const config::send_connector* sc = connector(h.connector);
  if (epoch != config_epoch_ || sc == nullptr) {
    bind(h);  // the configuration changed while we asked: ask again under the new one
    return;
  }
  if (d.status != dns::lookup_status::ok) {
    const smtp::reply r{dns::reply_code(d.status), std::string(dns::enhanced_status(d.status)), d.detail};
    auto ready = std::move(h.ready);
    h.ready.clear();
    for (const auto& w : ready) settle_all(w, r, "");
    return;
  }
  const bool smart = h.kind == route::hop_key_kind::smart_host;
  site& s = site_for(h.connector + "|" + d.site_key, *sc, h.domain);
  s.smart_host = smart;
  s.hosts.clear();
  for (std::size_t i = 0; i < d.hosts.size(); ++i) {
    auto& mx = d.hosts[i];
    uint16_t port = sc->port;
    if (smart) {
      for (const auto& sh : sc->smart_hosts)
        if (sh.host == mx.name) port = sh.port;
    }
    s.hosts.push_back({std::move(mx.name), smart ? uint16_t{0} : mx.preference, port, std::move(mx.addresses)});
  }
  if (h.bound != &s && h.in_site && h.bound) std::erase(h.bound->hops, &h), h.in_site = false;
  h.bound = &s;
  registry_.bind_hop(h.key, s.key);
  h.epoch = epoch;
  h.bound_until_ms = now_ms() + (smart ? smart_host_binding_ms : std::max<int64_t>(min_binding_ms, int64_t{d.ttl_s} * 1000));
  if (!h.ready.empty()) {
    enqueue(s, h);
    pump(s);
  }
}

engine::site& engine::site_for(const std::string& key, const config::send_connector& sc, std::string_view domain) {
  auto& slot = sites_[key];
  if (!slot) {
    slot = std::make_unique<site>();
    slot->key = key;
    slot->connector = sc.name;
    slot->shared = registry_.find(key);
    stats_.sites = static_cast<uint32_t>(sites_.size());
  }
  set_limits(*slot, limits_for(sc, domain));
  return *slot;
}

void engine::set_limits(site& s, const config::delivery_limits& limits) {
  s.limits = limits;
  // Every loop configures the shared buckets with the same values from the same generation.
  s.shared->connect_rate.configure(s.limits.connection_rate);
  s.shared->message_rate.configure(s.limits.message_rate);
  s.streak.configure(s.limits.failures_before_suspend, int64_t{s.limits.suspend_s} * 1000);
}

smtp::reply engine::suspended_reply(const site& s) const {
  const int64_t left_s = std::max<int64_t>(1, (s.streak.suspended_until_ms() - now_ms() + 999) / 1000);
  return {451, "4.4.1", fmt::format("delivery to {} suspended for {} s after {} failed connections in a row: {}",
                                    s.key, left_s, s.limits.failures_before_suspend, s.last_failure)};
}

void engine::suspend(site& s, const std::string& why) {
  ++stats_.suspensions;
  s.last_failure = why;
  const smtp::reply r = suspended_reply(s);
  std::fprintf(stderr, "sluiced: delivery: %s\n", r.text.c_str());
  while (!s.hops.empty()) {
    hop* h = s.hops.front();
    s.hops.pop_front();
    h->in_site = false;
    auto ready = std::move(h->ready);
    h->ready.clear();
    for (const auto& w : ready) settle_all(w, r, "");
  }
}

void engine::enqueue(site& s, hop& h) {
  if (h.in_site || h.ready.empty()) return;
  s.hops.push_back(&h);
  h.in_site = true;
}

bool engine::next_work(site& s, work& out) {
  if (s.hops.empty() || stopping_) return false;
  if (!s.shared->message_rate.try_take(now_ms())) return false;
  hop* h = s.hops.front();
  s.hops.pop_front();
  out = std::move(h->ready.front());
  h->ready.pop_front();
  if (h->ready.empty())
    h->in_site = false;
  else
    s.hops.push_back(h);  // round robin between the site's domains
  return true;
}

void engine::pump(site& s) {
  // A connection that fails at once re-enters through closed(): the loop below carries on
  // instead, so a site whose every address is unusable does not recurse once per item.
  if (stopping_ || s.pumping) return;
  const int64_t now = now_ms();
  if (s.streak.suspended(now)) return;
  s.pumping = true;
  pump_site(s, now);
  s.pumping = false;
}

void engine::pump_site(site& s, int64_t now) {
  const uint32_t max_total = cfg_->delivery.max_outbound_connections;
  while (!s.hops.empty()) {
    if (!s.idle.empty()) {
      outbound* o = s.idle.back();
      s.idle.pop_back();
      if (!o->wake()) {
        s.idle.push_back(o);
        return;
      }
      continue;
    }
    // Slots first (daemon-wide: other loops may deliver to this site too), then the rate.
    if (s.shared->connect_rate.wait_ms(now) > 0) return;
    if (!s.shared->connections.try_take(s.limits.max_connections)) return;
    if (!registry_.connections().try_take(max_total)) {
      s.shared->connections.give_back();
      return;
    }
    work w;
    if (!s.shared->connect_rate.try_take(now) || !next_work(s, w)) {
      s.shared->connections.give_back();
      registry_.connections().give_back();
      return;
    }
    open_connection(s, std::move(w));
  }
}

void engine::open_connection(site& s, work&& first) {
  const int64_t now = now_ms();
  // RFC 5321 5.1: hosts in preference order, equal preferences in random order (shuffled
  // per connection, so connections spread over them), each host's addresses in order.
  std::vector<const site_host*> order;
  for (const auto& h : s.hosts) order.push_back(&h);
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j < order.size() && order[j]->preference == order[i]->preference) ++j;
    std::shuffle(order.begin() + static_cast<std::ptrdiff_t>(i), order.begin() + static_cast<std::ptrdiff_t>(j), rng_);
    i = j;
  }
  std::vector<target> targets, skipped;
  for (const site_host* h : order) {
    if (!h->unix_path.empty()) targets.push_back({h->name, "", 0, false, h->unix_path});
    auto broken = broken_tls_.find(h->name);
    const bool skip_tls = broken != broken_tls_.end() && broken->second > now;
    for (const auto& a : h->addresses) {
      target t{h->name, a, h->port, skip_tls};
      auto dead = unreachable_.find(fmt::format("{}:{}", a, h->port));
      (dead != unreachable_.end() && dead->second > now ? skipped : targets).push_back(std::move(t));
    }
  }
  // Addresses known to be down are tried last, not never: the list may be stale.
  for (auto& t : skipped) targets.push_back(std::move(t));
  ++s.open;
  ++open_total_;
  stats_.connections_open = open_total_;
  stats_.connections_peak = std::max(stats_.connections_peak, open_total_);
  outbounds_.push_back(std::make_unique<outbound>(*this, s, std::move(first), std::move(targets)));
  outbounds_.back()->start();
}

connection_settings engine::settings_for(const site& s, const std::string& host_name) const {
  connection_settings c;
  const config::send_connector* sc = connector(s.connector);
  const auto& d = cfg_->delivery;
  c.helo = sc && !sc->helo.empty() ? sc->helo : !d.helo.empty() ? d.helo : cfg_->server.hostname;
  c.tls = sc ? sc->tls : route::tls_policy::opportunistic;
  // The mailbox server is this organisation's, on loopback or a Unix socket: LHLO, no TLS.
  c.lmtp = s.lmtp;
  if (s.lmtp) c.tls = route::tls_policy::none;
  if (c.tls == route::tls_policy::partner) {
    auto it = tls_->verified.find(s.connector);
    if (it != tls_->verified.end()) c.tls_ctx = it->second;
  } else if (c.tls != route::tls_policy::none) {
    c.tls_ctx = tls_->unverified;
  }
  c.tls_name = sc && !sc->tls_verify_name.empty() ? sc->tls_verify_name : host_name;
  c.chunking = sc && sc->chunking ? *sc->chunking : d.chunking;
  if (sc && s.smart_host) {
    c.auth_user = sc->auth_user;
    c.auth_password = sc->auth_password;
  }
  const auto& t = d.timeouts;
  auto ms = [](uint32_t s) { return s * 1000; };
  c.timeouts = {ms(t.connect_s), ms(t.greeting_s), ms(t.helo_s), ms(t.starttls_s), ms(t.helo_s), ms(t.mail_s),
                ms(t.rcpt_s), ms(t.data_s), ms(t.data_block_s), ms(t.final_dot_s), ms(t.rset_s), ms(t.quit_s)};
  return c;
}

std::unique_ptr<store::message_view> engine::open_item(const work& w) {
  std::string error;
  auto view = store_.open_delivery(w.hop_id, w.id, error);
  if (!view) {
    if (!error.empty()) std::fprintf(stderr, "sluiced: delivery: reading %s: %s\n", w.id.text().c_str(), error.c_str());
    forget(w);  // already gone (delivered, or removed): nothing to record
  } else if (view->item.held || removing_.count(w.id.value)) {
    // Held by the administrator: parked here until released (the stored flag is the truth,
    // so an item held while it waited, or recovered held at start, is caught the same way).
    // Being removed: parked until the removal takes it (or gives it back, end_removal).
    held_.insert_or_assign({w.id.value, w.hop_id}, w);
    view.reset();
  } else if (auto f = failing_.find(w.id.value); f != failing_.end()) {
    view.reset();
    fail_item(w, f->second.uid);  // removed with a DSN after a connection had taken it
  } else {
    // From here until its outcome commits, the item's attempt is in progress (a bounce
    // rule's failure too: it ends the same way).
    attempting_.insert({w.id.value, w.hop_id});
    if (!bounces_.empty() && bounce_at_attempt(w, *view)) view.reset();  // its outcome is on its way to the store
  }
  return view;
}

void engine::settle_all(const work& w, const smtp::reply& r, std::string_view remote_mta) {
  if (auto view = open_item(w)) settle_all(w, *view, r, remote_mta);
}

void engine::settle_all(const work& w, const store::message_view& view, const smtp::reply& r,
                        std::string_view remote_mta) {
  attempt_result result;
  result.remote_mta = std::string(remote_mta);
  for (uint32_t idx : view.item.recipients) result.recipients.push_back({idx, outcome_of(r), r});
  record(w, view, std::move(result));
}

void engine::reroute(const work& w, const smtp::reply& r) {
  auto view = open_item(w);
  if (!view) return;
  if (!routes_ || !forward_) return settle_all(w, *view, r, "");
  auto req = std::make_unique<pending_reroute>();
  req->id = w.id;
  req->hop_id = w.hop_id;
  req->now_ms = now_ms();
  req->old = w;
  const auto& env = view->envelope;
  std::vector<std::pair<std::string, std::vector<uint32_t>>> by_key;
  for (uint32_t idx : view->item.recipients) {
    if (idx >= env.recipients.size()) continue;
    const auto d = routes_->route_recipient(env.recipients[idx].address, view->meta.body_size, 0);
    if (!route::deliverable(d.result)) {
      store::report_entry f;
      f.recipient = idx;
      f.status = std::string(route::enhanced_status(d.result));
      f.reason = std::string(route::reason(d.result));
      f.diagnostic = fmt::format("550 {} {} (re-routed: {})", f.status, f.reason, r.text);
      f.at_ms = req->now_ms;
      req->failed.push_back(std::move(f));
      continue;
    }
    std::string key = routes_->hop_key(d.hop);
    auto it = std::find_if(by_key.begin(), by_key.end(), [&](const auto& e) { return e.first == key; });
    if (it == by_key.end()) it = by_key.insert(by_key.end(), {std::move(key), {}});
    it->second.push_back(idx);
  }
  const std::string_view old_key = hop_key_of(w.hop_id);
  // The table still routes it here: nothing to move to.
  if (req->failed.empty() && by_key.size() == 1 && by_key.front().first == old_key) return settle_all(w, *view, r, "");
  for (auto& [key, rcpts] : by_key) req->items.push_back({key, std::move(rcpts), 0});
  std::vector<uint32_t> moved;
  for (const auto& item : req->items) moved.insert(moved.end(), item.recipients.begin(), item.recipients.end());
  std::string where;
  for (const auto& item : req->items) where += (where.empty() ? "" : ", ") + item.hop_key;
  if (!moved.empty()) track(log::tracking_event::route, *view, moved, old_key, "re-routed to " + where + ": " + r.text);
  if (!req->failed.empty()) {
    std::vector<uint32_t> failed;
    for (const auto& f : req->failed) failed.push_back(f.recipient);
    track(log::tracking_event::fail, *view, failed, old_key, req->failed.front().diagnostic);
  }
  view.reset();
  submit(std::move(req));
}

void engine::rerouted(store::reroute_request& done) {
  std::unique_ptr<pending_reroute> owned(static_cast<pending_reroute*>(&done));
  if (done.result == store::reroute_status::ok || done.result == store::reroute_status::not_found) {
    attempt_ended(owned->old, 0);
    if (done.result == store::reroute_status::ok)
      for (const auto& item : done.items)
        forward_(hop_item{item.hop_id, done.id, static_cast<uint32_t>(item.recipients.size()), owned->old.received_at_ms, 0,
                          owned->old.attempts, item.hop_key});
    forget(owned->old);
    return;
  }
  ++stats_.store_retries;
  std::fprintf(stderr, "sluiced: delivery: re-routing %s: %s (retrying)\n", done.id.text().c_str(), done.error.c_str());
  owned->result = store::reroute_status::pending;
  owned->error.clear();
  for (auto& item : owned->items) item.hop_id = 0;
  owned->retry_at_ms = now_ms() + store_retry_ms;
  unsent_reroutes_.push_back(std::move(owned));
}

// Borrowed by the store until take_delivered() / take_rerouted() hands it back; a full
// lane keeps it here, handed in again after the next completions.
void engine::submit(std::unique_ptr<pending_deliver> req) {
  if (!store_.deliver(producer_, req.get())) return unsent_.push_back(std::move(req));
  req.release();
  ++in_store_;
}

void engine::submit(std::unique_ptr<pending_reroute> req) {
  if (!store_.reroute(producer_, req.get())) return unsent_reroutes_.push_back(std::move(req));
  req.release();
  ++in_store_;
}

template <class Pending>
void engine::resubmit(std::vector<std::unique_ptr<Pending>>& waiting, int64_t now) {
  auto all = std::move(waiting);
  waiting.clear();
  for (auto& r : all) {
    if (r->retry_at_ms > now)
      waiting.push_back(std::move(r));
    else
      submit(std::move(r));
  }
}

void engine::poll() {
  store::deliver_request* done[256];
  std::size_t n;
  while ((n = store_.take_delivered(producer_, done, 256)) != 0) {
    for (std::size_t i = 0; i < n; ++i) {
      --in_store_;
      completed(*done[i]);
    }
  }
  store::control_request* controls[16];
  while ((n = store_.take_controlled(producer_, controls, 16)) != 0) {
    for (std::size_t i = 0; i < n; ++i) {
      --in_store_;
      controlled(*controls[i]);
    }
  }
  store::reroute_request* moved[64];
  while ((n = store_.take_rerouted(producer_, moved, 64)) != 0) {
    for (std::size_t i = 0; i < n; ++i) {
      --in_store_;
      rerouted(*moved[i]);
    }
  }
  const int64_t now = now_ms();
  resubmit(unsent_reroutes_, now);
  resubmit(unsent_, now);
}

void engine::closed(outbound& o) {
  site& s = o.owner();
  --s.open;
  --open_total_;
  s.shared->connections.give_back();
  registry_.connections().give_back();
  stats_.connections_open = open_total_;
  std::erase(s.idle, &o);
  for (auto it = outbounds_.begin(); it != outbounds_.end(); ++it) {
    if (it->get() == &o) {
      dead_.push_back(std::move(*it));  // destroyed on the next tick: we are inside its callback
      outbounds_.erase(it);
      break;
    }
  }
  pump(s);
}

void engine::tick() {
  dead_.clear();
  const int64_t now = now_ms();
  while (!waiting_.empty() && waiting_.begin()->first <= now && !stopping_) {
    work w = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    auto it = hops_.find(w.hop_id);
    if (it != hops_.end()) make_ready(*it->second, std::move(w));
  }
  if (!suspended_.empty() || !failing_.empty() || !bounces_.empty() || !removing_.empty()) tick_actions(now);
  for (auto& [key, s] : sites_) {
    // Idle connections past their time are closed; the rest wait for work.
    for (std::size_t i = 0; i < s->idle.size();) {
      outbound* o = s->idle[i];
      if (stopping_ || now - o->idle_since_ms() >= int64_t{cfg_->delivery.idle_timeout_s} * 1000) {
        s->idle.erase(s->idle.begin() + static_cast<std::ptrdiff_t>(i));
        o->quit();
      } else {
        ++i;
      }
    }
    if (!s->hops.empty()) pump(*s);  // suspensions ended, rate limits refilled
  }
  if (!unsent_.empty() || !unsent_reroutes_.empty()) poll();
  if (stopping_ && now >= stop_deadline_ms_ && !outbounds_.empty()) {
    // abort() reports synchronously and the engine drops the connection from outbounds_.
    std::vector<outbound*> open;
    for (auto& o : outbounds_) open.push_back(o.get());
    for (outbound* o : open) o->abort();
  }
  std::erase_if(broken_tls_, [now](const auto& e) { return e.second <= now; });
  std::erase_if(unreachable_, [now](const auto& e) { return e.second <= now; });
}

void engine::shutdown(uint32_t deadline_ms) {
  stopping_ = true;
  stop_deadline_ms_ = now_ms() + deadline_ms;
  close_idle();
}

void engine::close_idle() {
  for (auto& [key, s] : sites_) {
    auto idle = std::move(s->idle);
    s->idle.clear();
    for (outbound* o : idle) o->quit();
  }
}

bool engine::idle() const {
  // Stopping, outcomes the store keeps refusing (a full map) are not waited for: the items
  // stay queued as they were before the attempt, so a restart can only repeat a delivery,
  // never lose one, and SIGTERM still ends the daemon.
  const bool unsent = !unsent_.empty() || !unsent_reroutes_.empty();
  return outbounds_.empty() && maildir_jobs_ == 0 && in_store_ == 0 && (!unsent || (stopping_ && now_ms() >= stop_deadline_ms_));
}

}  // namespace sluice::delivery
