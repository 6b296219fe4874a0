// resolver.cc: one c-ares channel driven by net::poll and net::timer; MX then address lookups, cached and coalesced.
// Untrusted input: DNS responses (c-ares parses the records; message.cc reads the TTLs).
#include "dns/resolver.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <mutex>
#include <span>
#include <unordered_map>

#include "dns/answer.h"
#include "dns/cache.h"

namespace sluice::dns {

namespace {

constexpr int type_a = ns_t_a;
constexpr int type_aaaa = ns_t_aaaa;
constexpr int type_mx = ns_t_mx;

uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

std::string_view type_name(int type) {
  switch (type) {
    case type_a: return "A";
    case type_aaaa: return "AAAA";
    default: return "MX";
  }
}

std::string describe(int status) {
  switch (status) {
    case ARES_ESERVFAIL: return "SERVFAIL";
    case ARES_EREFUSED: return "REFUSED";
    case ARES_ETIMEOUT: return "timed out";
    case ARES_ENOTFOUND: return "NXDOMAIN";
    case ARES_ENODATA: return "no records";
    case ARES_ECONNREFUSED: return "connection refused";
    default: return ares_strerror(status);
  }
}

std::string ip_literal(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
    if (text.size() > 5 && std::string_view(text.data(), 5) == "IPv6:") text.remove_prefix(5);
  }
  std::string s(text);
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) return address_text(AF_INET, buf);
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return address_text(AF_INET6, buf);
  return {};
}

// What one name's A (and AAAA) questions came to.
struct address_result {
  lookup_status status = lookup_status::ok;
  std::vector<std::string> addresses;  // IPv4 first: IPv6 reachability to MX hosts is still the less certain
  std::string detail;
  uint32_t ttl_s = UINT32_MAX;
};

}  // namespace

class resolver::impl {
 public:
  impl(net::loop& l, resolver_settings settings, std::string& error);
  ~impl();

  void resolve_mail_domain(std::string domain, std::function<void(destination&&)> done);
  void resolve_host(std::string name,
                    std::function<void(lookup_status, std::vector<std::string>, std::string)> done);
  resolver_stats stats;
  bool busy() const { return !inflight_.empty() || !jobs_.empty() || !ready_.empty(); }

 private:
  using waiter = std::function<void(const answer&)>;
  // One question on the wire; every lookup that asks it meanwhile waits on it. Owned by
  // inflight_ until c-ares answers; c-ares holds a raw pointer to it as the query's arg.
  struct inflight {
    impl* owner = nullptr;
    std::string key;
    int type = 0;
    std::vector<waiter> waiters;
  };
  struct mail_job;

  void query(const std::string& name, int type, waiter w);
  static void on_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  void lookup_addresses(const std::string& name, std::function<void(address_result&&)> done);
  void on_mx(mail_job* job, const answer& a);
  void next_host(mail_job* job);
  void finish(mail_job* job);

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable);
  void on_socket(int fd, int status, int events);
  void after_ares();
  void deliver(std::function<void()> fn);
  void flush();

  net::loop& loop_;
  resolver_settings settings_;
  ares_channel channel_ = nullptr;
  bool destroying_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::mt19937_64 rng_{std::random_device{}()};
  answer_cache cache_;
  std::unordered_map<std::string, std::unique_ptr<inflight>> inflight_;
  std::unordered_map<uint64_t, std::unique_ptr<mail_job>> jobs_;
  uint64_t next_job_ = 1;
  std::unordered_map<int, std::unique_ptr<net::poll>> polls_;  // one per open c-ares socket
  // Polls c-ares closed while their own callback may still be on the stack; freed by flush().
  std::vector<std::unique_ptr<net::poll>> retired_;
  // c-ares timeouts are checked on a tick while questions are out, rather than re-arming
  // a timer from inside its own callback (net::timer::start replaces the running callback).
  net::timer tick_;
  bool ticking_ = false, tick_started_ = false;
  // User callbacks run from this zero timer, never from inside resolve_* or c-ares.
  net::timer flush_timer_;
  bool flush_armed_ = false, flush_started_ = false;
  std::vector<std::function<void()>> ready_;
};

struct resolver::impl::mail_job {
  uint64_t id = 0;
  std::string domain;
  std::function<void(destination&&)> done;
  destination dest;
  std::vector<mx_record> plan;
  size_t next = 0;
  size_t collected = 0;
  std::string temporary_detail;  // the first host whose lookup failed temporarily
};

resolver::impl::impl(net::loop& l, resolver_settings settings, std::string& error)
    : loop_(l), settings_(std::move(settings)), cache_(settings_.cache_entries), tick_(l), flush_timer_(l) {
  static std::once_flag library;
  static int library_status = ARES_SUCCESS;
  std::call_once(library, [] { library_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (library_status != ARES_SUCCESS) {
    error = std::string("c-ares library init: ") + ares_strerror(library_status);
    return;
  }
  std::vector<ares_addr_port_node> nodes(settings_.servers.size());
  for (size_t i = 0; i < settings_.servers.size(); ++i) {
    std::string address, why;
    uint16_t port = 0;
    if (!parse_server(settings_.servers[i], address, port, why)) {
      error = "DNS server " + settings_.servers[i] + ": " + why;
      return;
    }
    auto& n = nodes[i];
    n.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
    n.family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
    inet_pton(n.family, address.c_str(), n.family == AF_INET ? static_cast<void*>(&n.addr.addr4)
                                                             : static_cast<void*>(&n.addr.addr6));
    n.udp_port = n.tcp_port = port;
  }
  ares_options options{};
  options.timeout = static_cast<int>(std::max<uint32_t>(settings_.timeout_ms, 1));
  options.tries = static_cast<int>(std::max<uint32_t>(settings_.tries, 1));
  options.sock_state_cb = &impl::on_sock_state;
  options.sock_state_cb_data = this;
  // NOCHECKRESP: c-ares 1.18 turns a SERVFAIL or REFUSED it has retried into
  // ECONNREFUSED; we want the server's own answer in the DEFER log, and a resolver that
  // says SERVFAIL once will mostly say it again. Timeouts still move to the next server.
  options.flags = ARES_FLAG_NOCHECKRESP;
  int rc = ares_init_options(&channel_, &options,
                             ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS);
  if (rc != ARES_SUCCESS) {
    channel_ = nullptr;
    error = std::string("c-ares init: ") + ares_strerror(rc);
    return;
  }
  if (!nodes.empty() && (rc = ares_set_servers_ports(channel_, nodes.data())) != ARES_SUCCESS) {
    ares_destroy(channel_);
    channel_ = nullptr;
    error = std::string("c-ares servers: ") + ares_strerror(rc);
  }
}

resolver::impl::~impl() {
  destroying_ = true;
  *alive_ = false;
  // Stop watching before c-ares closes its sockets, so the loop never polls a dead fd.
  for (auto& [fd, p] : polls_) p->stop();
  // ares_destroy answers every query with ARES_EDESTRUCTION; on_answer ignores those.
  if (channel_ != nullptr) ares_destroy(channel_);
}

// ---- questions, the cache and coalescing ----

void resolver::impl::query(const std::string& name, int type, waiter w) {
  std::string key = std::to_string(type) + ' ' + name;
  if (auto hit = cache_.find(key, now_ms())) {
    ++stats.cache_hits;
    w(*hit);
    return;
  }
  ++stats.cache_misses;
  if (auto it = inflight_.find(key); it != inflight_.end()) {
    it->second->waiters.push_back(std::move(w));
    return;
  }
  if (channel_ == nullptr) {
    answer a;
    a.error = ARES_ENOTINITIALIZED;
    w(a);
    return;
  }
  auto q = std::make_unique<inflight>();
  q->owner = this;
  q->key = key;
  q->type = type;
  q->waiters.push_back(std::move(w));
  inflight* raw = q.get();
  inflight_.emplace(std::move(key), std::move(q));
  // c-ares copies the name; it may call on_answer before returning (e.g. no usable server).
  ares_query(channel_, name.c_str(), ns_c_in, type, &impl::on_answer, raw);
  after_ares();
}

void resolver::impl::on_answer(void* arg, int status, int, unsigned char* abuf, int alen) {
  auto* q = static_cast<inflight*>(arg);
  impl* self = q->owner;
  if (status == ARES_EDESTRUCTION || self->destroying_) return;
  auto node = self->inflight_.extract(q->key);  // the question is ours now; waiters may ask it anew
  std::span<const uint8_t> message(abuf, abuf != nullptr && alen > 0 ? static_cast<size_t>(alen) : 0);
  answer a = make_answer(q->type, status, message, self->settings_.max_ttl_s, self->settings_.negative_ttl_s);
  self->cache_.insert(q->key, a, now_ms());
  for (auto& w : q->waiters) w(a);
}

// ---- addresses of one name ----

void resolver::impl::lookup_addresses(const std::string& name, std::function<void(address_result&&)> done) {
  struct state {
    std::string name;
    std::function<void(address_result&&)> done;
    int pending = 0;
    std::vector<std::string> v4, v6;
    std::string failure;  // the first temporary failure, for the detail
    bool exists = false;   // some family answered records or NODATA
    uint32_t ttl = UINT32_MAX;
  };
  auto st = std::make_shared<state>();
  st->name = name;
  st->done = std::move(done);
  st->pending = settings_.ipv6 ? 2 : 1;
  auto on = [st](int type, const answer& a) {
    if (a.kind == answer_kind::failed) {
      if (st->failure.empty()) st->failure = std::string(type_name(type)) + " lookup for " + st->name + ": " + describe(a.error);
    } else {
      st->exists = st->exists || a.kind != answer_kind::nxdomain;
      st->ttl = std::min(st->ttl, a.ttl_s);
      (type == type_a ? st->v4 : st->v6) = a.addresses;
    }
    if (--st->pending != 0) return;
    address_result r;
    r.ttl_s = st->ttl;
    r.addresses = std::move(st->v4);
    r.addresses.insert(r.addresses.end(), st->v6.begin(), st->v6.end());
    if (!r.addresses.empty()) {
      r.status = lookup_status::ok;
    } else if (!st->failure.empty()) {
      r.status = lookup_status::temporary;
      r.detail = st->failure;
    } else if (!st->exists) {
      r.status = lookup_status::nxdomain;
      r.detail = "address lookup for " + st->name + ": NXDOMAIN";
    } else {
      r.status = lookup_status::no_addresses;
      r.detail = "address lookup for " + st->name + ": no A/AAAA records";
    }
    auto finished = std::move(st->done);
    finished(std::move(r));
  };
  query(name, type_a, [on](const answer& a) { on(type_a, a); });
  if (settings_.ipv6) query(name, type_aaaa, [on](const answer& a) { on(type_aaaa, a); });
}

// ---- mail domains ----

void resolver::impl::resolve_mail_domain(std::string domain, std::function<void(destination&&)> done) {
  ++stats.lookups;
  auto job = std::make_unique<mail_job>();
  job->id = next_job_++;
  job->domain = normalize_name(domain);
  job->done = std::move(done);
  mail_job* raw = job.get();
  jobs_.emplace(raw->id, std::move(job));
  if (raw->domain.empty()) {
    raw->dest.status = lookup_status::nxdomain;
    raw->dest.detail = "empty mail domain";
    finish(raw);
    return;
  }
  raw->dest.ttl_s = UINT32_MAX;
  query(raw->domain, type_mx, [this, raw](const answer& a) { on_mx(raw, a); });
}

void resolver::impl::on_mx(mail_job* job, const answer& a) {
  destination& d = job->dest;
  const std::string prefix = "MX lookup for " + job->domain + ": ";
  switch (a.kind) {
    case answer_kind::failed:
      d.status = lookup_status::temporary;
      d.detail = prefix + describe(a.error);
      return finish(job);
    case answer_kind::nxdomain:
      d.status = lookup_status::nxdomain;
      d.detail = prefix + "NXDOMAIN (the domain does not exist)";
      d.ttl_s = a.ttl_s;
      return finish(job);
    case answer_kind::nodata:
      d.implicit_mx = true;
      d.ttl_s = a.ttl_s;
      job->plan.push_back({0, job->domain});
      for (const auto& self : settings_.self_names) {
        if (normalize_name(self) == job->domain) {
          d.status = lookup_status::loops_to_self;
          d.detail = prefix + "no MX, and the domain itself is this host (mail loops back to myself)";
          return finish(job);
        }
      }
      break;
    case answer_kind::records: {
      d.ttl_s = a.ttl_s;
      mx_plan plan = plan_mx(a.mx, settings_.self_names, rng_);
      if (plan.status == lookup_status::null_mx) {
        d.status = plan.status;
        d.detail = prefix + "null MX (RFC 7505): the domain accepts no mail";
        return finish(job);
      }
      if (plan.status == lookup_status::loops_to_self) {
        d.status = plan.status;
        d.detail = prefix + "the best MX is this host (mail loops back to myself)";
        return finish(job);
      }
      job->plan = std::move(plan.hosts);
      break;
    }
  }
  d.site_key = site_key(job->plan, d.implicit_mx, job->domain);
  next_host(job);
}

void resolver::impl::next_host(mail_job* job) {
  size_t limit = settings_.max_addresses == 0 ? SIZE_MAX : settings_.max_addresses;
  if (job->next >= job->plan.size() || job->collected >= limit) return finish(job);
  const mx_record& host = job->plan[job->next++];
  lookup_addresses(host.host, [this, job, host, limit](address_result&& r) {
    destination& d = job->dest;
    if (r.status == lookup_status::temporary && job->temporary_detail.empty()) job->temporary_detail = r.detail;
    if (!r.addresses.empty()) {
      d.ttl_s = std::min(d.ttl_s, r.ttl_s);
      size_t take = std::min(r.addresses.size(), limit - job->collected);
      r.addresses.resize(take);
      job->collected += take;
      d.hosts.push_back({host.host, host.preference, std::move(r.addresses)});
    }
    next_host(job);
  });
}

void resolver::impl::finish(mail_job* job) {
  destination& d = job->dest;
  if (d.status == lookup_status::ok && d.hosts.empty()) {
    d.site_key.clear();
    if (!job->temporary_detail.empty()) {
      d.status = lookup_status::temporary;
      d.detail = job->temporary_detail;
    } else {
      d.status = lookup_status::no_addresses;
      d.detail = d.implicit_mx ? "no MX and no A/AAAA for " + job->domain
                               : "no A/AAAA for any MX host of " + job->domain;
    }
  }
  if (d.status != lookup_status::ok) d.hosts.clear();
  if (d.ttl_s == UINT32_MAX) d.ttl_s = 0;
  if (d.status == lookup_status::temporary) ++stats.failures;
  auto node = jobs_.extract(job->id);
  deliver([owned = std::shared_ptr<mail_job>(std::move(node.mapped()))] {
    owned->done(std::move(owned->dest));
  });
}

// ---- single hosts ----

void resolver::impl::resolve_host(std::string name,
                                  std::function<void(lookup_status, std::vector<std::string>, std::string)> done) {
  ++stats.lookups;
  if (std::string literal = ip_literal(name); !literal.empty()) {
    deliver([done = std::move(done), literal] { done(lookup_status::ok, {literal}, ""); });
    return;
  }
  std::string host = normalize_name(name);
  if (host.empty()) {
    deliver([done = std::move(done)] { done(lookup_status::nxdomain, {}, "empty host name"); });
    return;
  }
  lookup_addresses(host, [this, done = std::move(done)](address_result&& r) mutable {
    if (settings_.max_addresses != 0 && r.addresses.size() > settings_.max_addresses) {
      r.addresses.resize(settings_.max_addresses);
    }
    if (r.status == lookup_status::temporary) ++stats.failures;
    deliver([done = std::move(done), r = std::move(r)]() mutable {
      done(r.status, std::move(r.addresses), std::move(r.detail));
    });
  });
}

// ---- driving c-ares from the loop ----

void resolver::impl::on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
  auto* self = static_cast<impl*>(data);
  auto it = self->polls_.find(fd);
  if (readable == 0 && writable == 0) {
    // c-ares is about to close fd: stop now, free later (we may be inside its callback).
    if (it == self->polls_.end()) return;
    it->second->stop();
    self->retired_.push_back(std::move(it->second));
    self->polls_.erase(it);
    if (!self->destroying_) self->deliver(nullptr);
    return;
  }
  if (self->destroying_) return;
  if (it == self->polls_.end()) it = self->polls_.emplace(fd, std::make_unique<net::poll>(self->loop_, fd)).first;
  int events = (readable != 0 ? net::poll::readable : 0) | (writable != 0 ? net::poll::writable : 0);
  // A descriptor libuv cannot watch is left to c-ares's own timeout, which fails the query.
  it->second->start(events, [self, fd = static_cast<int>(fd)](int status, int ev) { self->on_socket(fd, status, ev); });
}

void resolver::impl::on_socket(int fd, int status, int events) {
  // On a poll error let c-ares read and write the socket, so it sees the error itself.
  bool all = status < 0;
  ares_process_fd(channel_, all || (events & net::poll::readable) ? fd : ARES_SOCKET_BAD,
                  all || (events & net::poll::writable) ? fd : ARES_SOCKET_BAD);
  after_ares();
}

void resolver::impl::after_ares() {
  if (channel_ == nullptr || destroying_) return;
  timeval tv{};
  bool pending = ares_timeout(channel_, nullptr, &tv) != nullptr;
  if (pending && !ticking_) {
    ticking_ = true;
    if (tick_started_) {
      tick_.again();
    } else {
      tick_started_ = true;
      uint64_t tick = std::clamp<uint64_t>(settings_.timeout_ms / 10, 5, 100);
      tick_.start(tick, tick, [this] {
        ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        after_ares();
      });
    }
  } else if (!pending && ticking_) {
    ticking_ = false;
    tick_.stop();
  }
}

void resolver::impl::deliver(std::function<void()> fn) {
  if (fn) ready_.push_back(std::move(fn));
  if (flush_armed_) return;
  flush_armed_ = true;
  if (flush_started_) {
    flush_timer_.again();
  } else {
    flush_started_ = true;
    flush_timer_.start(0, 0, [this] { flush(); });
  }
}

void resolver::impl::flush() {
  flush_armed_ = false;
  retired_.clear();
  auto batch = std::move(ready_);
  ready_.clear();
  auto alive = alive_;
  for (auto& fn : batch) {
    fn();
    if (!*alive) return;  // a callback destroyed the resolver: the rest are cancelled
  }
}

// ---- the public face ----

resolver::resolver(net::loop& l, resolver_settings settings, std::string& error)
    : impl_(std::make_unique<impl>(l, std::move(settings), error)) {}

resolver::~resolver() = default;

void resolver::resolve_mail_domain(std::string domain, std::function<void(destination&&)> done) {
  impl_->resolve_mail_domain(std::move(domain), std::move(done));
}

void resolver::resolve_host(std::string name,
                            std::function<void(lookup_status, std::vector<std::string>, std::string)> done) {
  impl_->resolve_host(std::move(name), std::move(done));
}

const resolver_stats& resolver::stats() const { return impl_->stats; }

bool resolver::busy() const { return impl_->busy(); }

bool parse_server(std::string_view text, std::string& address, uint16_t& port, std::string& error) {
  std::string_view host = text, port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      error = "missing ']'";
      return false;
    }
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        error = "expected ':' and a port after ']'";
        return false;
      }
      port_text = rest.substr(1);
      if (port_text.empty()) {
        error = "empty port";
        return false;
      }
    }
  } else if (size_t colon = text.find(':'); colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (port_text.empty()) {
      error = "empty port";
      return false;
    }
  }
  std::string h(host);
  unsigned char buf[sizeof(struct in6_addr)];
  bool v4 = inet_pton(AF_INET, h.c_str(), buf) == 1;
  bool v6 = !v4 && inet_pton(AF_INET6, h.c_str(), buf) == 1;
  if (!v4 && !v6) {
    error = "'" + h + "' is not an IP address";
    return false;
  }
  if (v4 && !text.empty() && text.front() == '[') {
    error = "brackets are for IPv6 addresses";
    return false;
  }
  unsigned value = 53;
  if (!port_text.empty()) {
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 || value > 65535) {
      error = "bad port '" + std::string(port_text) + "'";
      return false;
    }
  }
  address = h;
  port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace sluice::dns
