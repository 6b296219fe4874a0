// session.h: one TLS connection as a pure byte transformer (OpenSSL over two memory BIOs).
// Untrusted input: every ciphertext byte fed in comes from the remote peer.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "tls/context.h"

struct ssl_st;          // OpenSSL's SSL
struct bio_st;          // OpenSSL's BIO
struct ssl_session_st;  // OpenSSL's SSL_SESSION

namespace sluice::tls {

// A client's negotiated session, kept to resume later connections to the same host
// and skip the full handshake (a delivery pool reconnecting to one next hop). Immutable
// and shareable; use it only with the same client context and peer name.
class saved_session {
 public:
  saved_session() = default;
  explicit operator bool() const { return ptr_ != nullptr; }

 private:
  friend class session;
  std::shared_ptr<ssl_session_st> ptr_;
};

// A TLS session that never touches a socket and never blocks. The socket layer moves
// bytes; the session transforms them:
//
//   on socket read:   feed_ciphertext(bytes); read_plaintext(text) → SMTP; take_ciphertext(out) → socket
//   to send:          write_plaintext(reply);  take_ciphertext(out) → socket
//   client start:     take_ciphertext(out) → socket (the ClientHello)
//
// After every call the caller should take_ciphertext(): handshake messages, alerts and
// session tickets appear there as well as encrypted application data.
//
// Buffer ownership: the caller owns every buffer it passes in and may reuse it as soon
// as the call returns (the session copies input into its BIOs). Output is appended to
// the caller's std::string; the session keeps no reference to it.
//
// One session belongs to one thread (one loop); the context it holds may be shared.
class session {
 public:
  // Server side: `ctx` must be a server context; `peer_name` is ignored.
  // Client side: `peer_name` is sent as SNI (unless it is an IP literal) and is the name
  // the certificate must match. A `verified` context without a peer name fails at once.
  // `resume` (client side, optional) offers a session saved from an earlier connection.
  explicit session(std::shared_ptr<const context> ctx, std::string_view peer_name = {},
                   const saved_session& resume = {});
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  // Bytes received from the socket. Advances the handshake when it is in progress.
  void feed_ciphertext(std::string_view bytes);
  // Appends all plaintext that can be decrypted now; returns how many bytes.
  size_t read_plaintext(std::string& out);
  // Encrypts `data` (held back until the handshake completes if it is still running).
  void write_plaintext(std::string_view data);
  // Appends the bytes to send to the peer; returns how many.
  size_t take_ciphertext(std::string& out);
  // Bytes take_ciphertext() would return now.
  size_t pending_ciphertext() const;

  bool handshake_done() const { return done_; }
  // The handshake or a record failed; error_text() says why (verification failures
  // name the reason). Any alert for the peer is still available from take_ciphertext().
  bool failed() const { return failed_; }
  const std::string& error_text() const { return error_; }
  // Queue our close_notify alert. Safe to call at any time, and more than once.
  void close_notify();
  // The peer sent close_notify: no more plaintext will arrive.
  bool peer_closed() const { return peer_closed_; }

  // Valid once handshake_done().
  std::string version() const;        // "TLSv1.3"
  std::string cipher() const;         // "TLS_AES_256_GCM_SHA384"
  std::string peer_subject() const;   // RFC 2253 subject of the peer certificate, "" if none
  std::string peer_issuer() const;
  bool peer_verified() const;         // a certificate was presented and it verified (chain and name)
  std::string verify_result() const;  // "ok", "no certificate", or OpenSSL's reason
  std::string sni() const;            // server side: the name the client asked for, "" if none
  int cipher_bits() const;            // symmetric key strength, 0 before the handshake
  // For Received: headers and logs, in Postfix's form:
  // "version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256"
  std::string summary() const;
  bool is_server() const { return server_; }
  // The handshake resumed an earlier session (abbreviated handshake).
  bool resumed() const;
  // Client side: the session to offer next time; empty if the server gave none. With
  // TLS 1.3 the server's tickets follow the handshake, so call this after the first
  // read_plaintext() that saw server data (for SMTP: after the EHLO reply).
  saved_session save() const;

 private:
  void advance();
  void flush_pending();
  void fail(const std::string& what);

  std::shared_ptr<const context> ctx_;
  ssl_st* ssl_ = nullptr;   // owns both BIOs
  bio_st* rbio_ = nullptr;  // ciphertext from the peer, read by OpenSSL
  bio_st* wbio_ = nullptr;  // ciphertext for the peer, written by OpenSSL
  std::string pending_;     // plaintext written before the handshake completed
  std::string error_;
  bool server_ = false;
  bool done_ = false;
  bool failed_ = false;
  bool peer_closed_ = false;
  bool shutdown_sent_ = false;
};

}  // namespace sluice::tls
