// stream.cc: the read → decrypt → handler and send → encrypt → socket pump, with back-pressure.
// Untrusted input: peer bytes; ciphertext goes to OpenSSL, plaintext to the handler, nothing is parsed here.
#include "stream/stream.h"

namespace sluice::stream {

namespace {

// Marks the stream's death for a callback still running on its stack.
class destruction_watch {
 public:
  explicit destruction_watch(bool*& slot) : slot_(slot), outer_(slot) { slot_ = &destroyed_; }
  ~destruction_watch() {
    if (!destroyed_) slot_ = outer_;
    // Nested watches: tell the outer callback too.
    else if (outer_ != nullptr) *outer_ = true;
  }
  bool destroyed() const { return destroyed_; }

 private:
  bool*& slot_;
  bool* outer_;
  bool destroyed_ = false;
};

}  // namespace

byte_stream::byte_stream(std::unique_ptr<net::connection> conn, size_t output_limit)
    : conn_(std::move(conn)), output_limit_(output_limit) {}

byte_stream::~byte_stream() {
  if (destroyed_ != nullptr) *destroyed_ = true;
  close();
}

void byte_stream::start(stream_handler& handler) {
  handler_ = &handler;
  reading_ = true;
  conn_->start_reading(this);
}

void byte_stream::send(std::string&& plaintext) {
  if (closed_) return;
  if (tls_) return send(std::string_view(plaintext));  // encrypted into a new buffer anyway
  stats_.moved += plaintext.size();
  conn_->write(std::move(plaintext));
  after_write();
}

void byte_stream::send(std::string_view plaintext) {
  if (closed_) return;
  if (!tls_) {
    stats_.copied += plaintext.size();
    conn_->write(std::string(plaintext));
  } else {
    write_tls(plaintext, false);
  }
  after_write();
}

void byte_stream::send_borrowed(const char* p, size_t n) {
  if (closed_ || n == 0) return;
  if (!tls_) {
    stats_.borrowed += n;
    borrowed_queued_ = true;
    conn_->write_borrowed(p, n);
  } else {
    write_tls(std::string_view(p, n), true);
  }
  after_write();
}

void byte_stream::send_borrowed(std::span<const std::string_view> pieces) {
  if (closed_ || pieces.empty()) return;
  if (!tls_) {
    for (auto p : pieces) stats_.borrowed += p.size();
    borrowed_queued_ = true;
    conn_->write_borrowed(pieces);
  } else {
    // Every piece into the session, then one flush: one socket write for the records.
    for (auto p : pieces) {
      if (p.empty()) continue;
      (tls_->handshake_done() ? stats_.borrowed : stats_.copied) += p.size();
      tls_->write_plaintext(p);
    }
    flush_ciphertext();
  }
  after_write();
}

// SSL_write reads the caller's bytes and encrypts them into the record; only plaintext
// written before the handshake is done waits in a copy (the session's pending buffer).
void byte_stream::write_tls(std::string_view plaintext, bool borrowed) {
  if (!plaintext.empty()) {
    if (!tls_->handshake_done()) stats_.copied += plaintext.size();
    else if (borrowed) stats_.borrowed += plaintext.size();
    tls_->write_plaintext(plaintext);
  }
  flush_ciphertext();
}

void byte_stream::start_tls(std::shared_ptr<const tls::context> ctx, std::string_view peer_name,
                            const tls::saved_session& resume) {
  if (closed_) return;
  tls_ = std::make_unique<tls::session>(std::move(ctx), peer_name, resume);
  secured_reported_ = false;
  flush_ciphertext();  // a client's ClientHello; nothing for a server
}

void byte_stream::flush_ciphertext() {
  if (tls_->pending_ciphertext() == 0) return;
  cipher_.clear();
  tls_->take_ciphertext(cipher_);
  conn_->write(std::move(cipher_));
}

void byte_stream::after_write() {
  if (!output_blocked_ && conn_->write_queue_size() > output_limit_) {
    output_blocked_ = true;
    update_reading();
  }
}

void byte_stream::hold_input() {
  ++holds_;
  update_reading();
}

void byte_stream::release_input() {
  if (holds_ > 0) --holds_;
  update_reading();
}

size_t byte_stream::queued_output() const { return conn_->write_queue_size(); }

void byte_stream::update_reading() {
  // Inside a read callback no further read can come before it returns, so the socket's
  // read state is settled once, afterwards: a hold taken and released by the same input
  // (a sink answering at once) then costs no epoll_ctl pair.
  if (closed_ || in_read_) return;
  bool want = holds_ == 0 && !output_blocked_;
  if (want == reading_) return;
  reading_ = want;
  if (want) conn_->resume_reading();
  else conn_->pause_reading();
}

void byte_stream::close() {
  if (closed_) return;
  if (tls_ && !tls_->failed()) {
    tls_->close_notify();
    flush_ciphertext();
  }
  closed_ = true;
  handler_ = nullptr;
  // A borrowed write still queued would read the caller's memory after close() has
  // returned, when the caller may already have let it go: drop it instead.
  if (borrowed_queued_ && conn_->write_queue_size() > 0) conn_->close_now();
  else conn_->close();
}

void byte_stream::on_read(std::string_view data) {
  if (closed_) return;
  destruction_watch watch(destroyed_);
  in_read_ = true;
  if (!tls_) handler_->on_input(data);
  else read_tls(data);
  if (watch.destroyed()) return;
  in_read_ = false;
  update_reading();
}

void byte_stream::read_tls(std::string_view ciphertext) {
  tls_->feed_ciphertext(ciphertext);
  plain_.clear();
  tls_->read_plaintext(plain_);
  destruction_watch watch(destroyed_);
  if (tls_->handshake_done() && !secured_reported_) {
    secured_reported_ = true;
    handler_->on_secured();
    if (watch.destroyed() || closed_) return;
  }
  if (!plain_.empty()) {
    handler_->on_input(plain_);
    if (watch.destroyed() || closed_) return;
  }
  // Handshake messages, session tickets and alerts produced by the bytes just fed.
  flush_ciphertext();
  if (tls_->failed()) {
    handler_->on_end(end_reason::tls_failed, tls_->error_text());
  } else if (tls_->peer_closed()) {
    handler_->on_end(end_reason::tls_closed, "TLS close_notify");
  }
}

void byte_stream::on_read_end(int status) {
  if (closed_) return;
  reading_ = false;
  handler_->on_end(end_reason::peer_closed, net::is_end_of_stream(status)
                                                ? std::string("connection closed")
                                                : "connection closed: " + net::status_text(status));
}

void byte_stream::on_drained() {
  borrowed_queued_ = false;
  if (closed_ || !output_blocked_) return;
  output_blocked_ = false;
  update_reading();
  handler_->on_writable();
}

void byte_stream::connect(net::loop& l, const net::endpoint& to, connected_fn done, size_t output_limit) {
  net::connect(l, to, [done = std::move(done), output_limit](std::unique_ptr<net::connection> c, int status) {
    if (!c) {
      done(nullptr, "connect: " + net::status_text(status));
      return;
    }
    done(std::make_unique<byte_stream>(std::move(c), output_limit), {});
  });
}

}  // namespace sluice::stream
