// stream.h: one plain-or-TLS byte stream over a net::connection, shared by every SMTP endpoint.
// Untrusted input: every byte the remote peer sends (decrypted here when TLS is on, then handed on unexamined).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "net/connection.h"
#include "tls/context.h"
#include "tls/session.h"

namespace sluice::stream {

// Why a stream stopped delivering input.
enum class end_reason {
  peer_closed,  // the peer closed the socket, or it failed; detail says which
  tls_closed,   // the peer sent TLS close_notify: no more input will come
  tls_failed,   // the handshake or a record failed; detail is OpenSSL's reason
};

// The owner's side of a stream. Callbacks run on the loop thread. The owner may close()
// or destroy the stream from inside any of them: the stream touches nothing of itself
// after a callback that did so.
class stream_handler {
 public:
  virtual ~stream_handler() = default;
  // Plaintext from the peer, valid only during the call (it points into the loop's read
  // buffer or the stream's decryption buffer).
  virtual void on_input(std::string_view plaintext) = 0;
  // No more input will come. The owner should close() the stream (any TLS alert for the
  // peer has already been queued).
  virtual void on_end(end_reason why, std::string_view detail) = 0;
  // The TLS handshake has completed; called once, before the first decrypted input.
  virtual void on_secured() {}
  // Output back-pressure has cleared: the peer took what was queued and input flows again.
  virtual void on_writable() {}
};

// The pump between a socket and a protocol machine: read bytes, decrypt if TLS is on,
// hand plaintext to the handler; take plaintext, encrypt if TLS is on, queue it on the
// socket. It also owns the two reasons to stop reading:
//  - back-pressure: a peer that sends without reading our replies would make us queue
//    them without bound, so input pauses while more than `output_limit` bytes wait for
//    the kernel, and resumes when they have drained;
//  - the owner's holds (a submit waiting for the store, a password check on the
//    threadpool): pipelined input waits in the kernel's buffer, not in ours.
//
// Buffer ownership: send(std::string&&) takes the string (without TLS it is the very
// buffer libuv writes, so a reply moves from the state machine to the socket with no
// copy); send(std::string_view) copies. Either may be called again at once.
// send_borrowed() copies nothing: see there for how long the caller keeps the bytes.
class byte_stream final : private net::connection_handler {
 public:
  static constexpr size_t default_output_limit = 256 * 1024;

  explicit byte_stream(std::unique_ptr<net::connection> conn, size_t output_limit = default_output_limit);
  ~byte_stream() override;  // closes the connection (queued writes still go out)
  byte_stream(const byte_stream&) = delete;
  byte_stream& operator=(const byte_stream&) = delete;

  // Starts reading; `handler` must outlive the stream or its close().
  void start(stream_handler& handler);

  void send(std::string&& plaintext);
  void send(std::string_view plaintext);
  // Zero-copy send of bytes the caller pins (a message body in the LMDB map). Plaintext:
  // libuv writes straight from `p`, so the caller keeps the bytes alive and unchanged
  // until on_writable() has reported the queue drained, queued_output() is 0, or the
  // stream is closed: close() never lets a borrowed write go on after it returns (it
  // closes at once, dropping unsent bytes, when borrowed bytes may still be queued).
  // TLS: OpenSSL encrypts from `p` into the record during the call and keeps nothing.
  // Before the handshake is done the bytes would have to wait in a copy; they are
  // counted as copied then.
  void send_borrowed(const char* p, size_t n);
  // Several borrowed pieces at once: one socket write in plaintext (the same lifetime rule).
  void send_borrowed(std::span<const std::string_view> pieces);

  // What went out by which path, for tests and counters: `borrowed`: send_borrowed()
  // bytes that went out from the caller's memory; `copied`: bytes any send copied into
  // a plaintext buffer of its own first (send(std::string_view) without TLS, plaintext
  // held until the handshake is done); `moved`: send(std::string&&) strings taken over
  // without TLS. (Other TLS sends encrypt from the caller's bytes and count nowhere.)
  struct send_stats {
    uint64_t borrowed = 0;
    uint64_t copied = 0;
    uint64_t moved = 0;
  };
  const send_stats& stats() const { return stats_; }

  // From now on everything is encrypted both ways. A server calls it once its plaintext
  // 220 to STARTTLS has been sent; a client once it has read the server's 220 (its
  // ClientHello goes out at once). The context decides the side. Client side:
  // `peer_name` is sent as SNI and checked against the certificate as the context's
  // verification policy says; `resume` offers a session saved from an earlier connection.
  // A session the context refuses at once (verified, but no peer name) is failed on
  // return: tls()->failed(), and no callback has run (the caller is mid-protocol).
  void start_tls(std::shared_ptr<const tls::context> ctx, std::string_view peer_name = {},
                 const tls::saved_session& resume = {});
  // The TLS session once start_tls() has run, for its summary, version and peer
  // certificate; nullptr on a plaintext stream.
  const tls::session* tls() const { return tls_.get(); }
  bool secured() const { return tls_ != nullptr && tls_->handshake_done(); }

  // Owner holds on input; they nest, and reading resumes when every hold is released
  // (and no back-pressure remains).
  void hold_input();
  void release_input();
  bool output_blocked() const { return output_blocked_; }
  size_t queued_output() const;

  // Sends TLS close_notify if TLS is up, lets queued output finish, then closes the
  // socket. No callback runs afterwards. Safe to call twice.
  void close();
  bool closed() const { return closed_; }

  const net::endpoint& local() const { return conn_->local(); }
  const net::endpoint& peer() const { return conn_->peer(); }

  // Outbound: connects, then hands over a plaintext stream (not yet started), or nullptr
  // and the error's text.
  using connected_fn = std::function<void(std::unique_ptr<byte_stream>, std::string_view error)>;
  static void connect(net::loop& l, const net::endpoint& to, connected_fn done,
                      size_t output_limit = default_output_limit);

 private:
  // net::connection_handler
  void on_read(std::string_view data) override;
  void on_read_end(int status) override;
  void on_drained() override;

  void read_tls(std::string_view ciphertext);
  void flush_ciphertext();
  void write_tls(std::string_view plaintext, bool borrowed);
  void after_write();
  void update_reading();

  std::unique_ptr<net::connection> conn_;
  stream_handler* handler_ = nullptr;
  std::unique_ptr<tls::session> tls_;
  std::string plain_;   // decrypted input, reused between reads
  std::string cipher_;  // encrypted output being assembled
  size_t output_limit_;
  unsigned holds_ = 0;
  bool output_blocked_ = false;
  bool reading_ = false;
  bool in_read_ = false;  // on_read is running: update_reading() waits for its end
  bool secured_reported_ = false;
  bool closed_ = false;
  bool borrowed_queued_ = false;  // plaintext borrowed writes may still be in libuv's queue
  send_stats stats_;
  // Points at a flag on the stack of the callback in progress, so that callback can see
  // that the handler destroyed the stream under it.
  bool* destroyed_ = nullptr;
};

}  // namespace sluice::stream
