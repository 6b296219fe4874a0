// session.cc: OpenSSL over memory BIOs: handshake driving, record encryption and decryption.
// Untrusted input: ciphertext from the remote peer (parsed by OpenSSL).
#include "tls/session.h"

#include <arpa/inet.h>

#include <climits>

#include "metrics/daemon.h"
#include "tls/ossl.h"

namespace sluice::tls {
namespace {

using namespace detail;

std::string name_text(X509_NAME* name) {
  if (!name) return {};
  bio_ptr b(BIO_new(BIO_s_mem()));
  if (!b || X509_NAME_print_ex(b.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  return bio_text(b.get());
}

constexpr size_t max_chunk = INT_MAX / 2;  // OpenSSL's lengths are ints

}  // namespace

session::session(std::shared_ptr<const context> ctx, std::string_view peer_name, const saved_session& resume)
    : ctx_(std::move(ctx)) {
  ERR_clear_error();
  if (!ctx_) { fail("no TLS context"); return; }
  server_ = ctx_->is_server();
  ssl_ = SSL_new(ctx_->native());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !rbio_ || !wbio_) {
    if (rbio_) BIO_free(rbio_);
    if (wbio_) BIO_free(wbio_);
    rbio_ = wbio_ = nullptr;
    fail(detail::error_text("cannot create TLS session"));
    return;
  }
  // An empty read BIO means "no data yet", not end of file.
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);  // ownership of both BIOs moves to the SSL
  if (server_) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  if (resume.ptr_) SSL_set_session(ssl_, resume.ptr_.get());  // a stale session just means a full handshake
  std::string host(peer_name);
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty()) {
    if (ctx_->policy() == verify_policy::verified) fail("verified TLS needs the peer's host name");
    return;
  }
  // The name is checked under every policy so that unverified sessions can still log
  // whether the certificate matched; only `verified` aborts on a mismatch.
  if (is_ip_literal(host)) {
    // RFC 6066 3: SNI carries host names only, never address literals.
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, host.c_str());
    SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl_, host.c_str()) != 1) fail(detail::error_text("invalid peer host name"));
  }
}

session::~session() {
  // OpenSSL treats an SSL freed without a completed shutdown as broken and makes its
  // session unresumable. SMTP peers often close after QUIT without close_notify, which
  // is no fault of the session, so only a failed session keeps that treatment.
  if (ssl_ && done_ && !failed_) SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);
}

void session::fail(const std::string& what) {
  if (failed_) return;
  failed_ = true;
  error_ = what;
}

void session::advance() {
  if (failed_ || done_ || !ssl_) return;
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    done_ = true;
    metrics::daemon().tls_handshakes.with({SSL_get_version(ssl_), "ok"}).inc();
    flush_pending();
    return;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
  std::string what = detail::error_text("TLS handshake failed");
  long vr = SSL_get_verify_result(ssl_);
  if (vr != X509_V_OK && SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE)
    what += std::string(" (certificate verification: ") + X509_verify_cert_error_string(vr) + ")";
  metrics::daemon().tls_handshakes.with({SSL_get_version(ssl_), "failed"}).inc();
  fail(what);
}

void session::flush_pending() {
  if (pending_.empty() || failed_) return;
  std::string data = std::move(pending_);
  pending_.clear();
  write_plaintext(data);
}

void session::feed_ciphertext(std::string_view bytes) {
  if (failed_ || !ssl_) return;
  while (!bytes.empty()) {
    size_t n = std::min(bytes.size(), max_chunk);
    // A memory BIO grows as needed; a write can only fail when memory runs out.
    if (BIO_write(rbio_, bytes.data(), static_cast<int>(n)) != static_cast<int>(n)) {
      fail("out of memory buffering TLS input");
      return;
    }
    bytes.remove_prefix(n);
  }
  advance();
}

size_t session::read_plaintext(std::string& out) {
  advance();
  if (failed_ || !done_ || peer_closed_) return 0;
  size_t total = 0;
  char buf[16384];  // one TLS record's worth of plaintext
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      total += static_cast<size_t>(n);
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      break;
    }
    fail(detail::error_text("TLS read failed"));
    break;
  }
  return total;
}

void session::write_plaintext(std::string_view data) {
  if (failed_ || !ssl_ || shutdown_sent_ || data.empty()) return;
  if (!done_) {
    pending_.append(data);
    advance();
    return;
  }
  while (!data.empty()) {
    size_t n = std::min(data.size(), max_chunk);
    ERR_clear_error();
    // Without partial-write mode and with a memory BIO that always accepts, SSL_write
    // either writes all of `n` or fails for good.
    int rc = SSL_write(ssl_, data.data(), static_cast<int>(n));
    if (rc <= 0) {
      fail(detail::error_text("TLS write failed"));
      return;
    }
    data.remove_prefix(static_cast<size_t>(rc));
  }
}

size_t session::take_ciphertext(std::string& out) {
  advance();  // a client's first call produces the ClientHello
  if (!wbio_) return 0;
  size_t pending = BIO_ctrl_pending(wbio_);
  if (pending == 0) return 0;
  size_t old = out.size();
  out.resize(old + pending);
  int n = BIO_read(wbio_, out.data() + old, static_cast<int>(std::min(pending, max_chunk)));
  out.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t session::pending_ciphertext() const { return wbio_ ? BIO_ctrl_pending(wbio_) : 0; }

void session::close_notify() {
  if (!ssl_ || shutdown_sent_ || failed_ || !done_) return;
  shutdown_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

std::string session::version() const { return ssl_ && done_ ? SSL_get_version(ssl_) : ""; }

std::string session::cipher() const {
  const char* name = ssl_ && done_ ? SSL_get_cipher_name(ssl_) : nullptr;
  return name ? name : "";
}

std::string session::peer_subject() const {
  X509* cert = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  return cert ? name_text(X509_get_subject_name(cert)) : "";
}

std::string session::peer_issuer() const {
  X509* cert = ssl_ ? SSL_get0_peer_certificate(ssl_) : nullptr;
  return cert ? name_text(X509_get_issuer_name(cert)) : "";
}

bool session::peer_verified() const {
  return ssl_ && done_ && SSL_get0_peer_certificate(ssl_) && SSL_get_verify_result(ssl_) == X509_V_OK;
}

std::string session::verify_result() const {
  if (!ssl_ || !SSL_get0_peer_certificate(ssl_)) return "no certificate";
  long vr = SSL_get_verify_result(ssl_);
  return vr == X509_V_OK ? "ok" : X509_verify_cert_error_string(vr);
}

std::string session::sni() const {
  const char* name = ssl_ && server_ ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
  return name ? name : "";
}

int session::cipher_bits() const {
  return ssl_ && done_ ? SSL_get_cipher_bits(ssl_, nullptr) : 0;
}

std::string session::summary() const {
  if (!ssl_ || !done_) return {};
  int alg_bits = 0;
  int bits = SSL_get_cipher_bits(ssl_, &alg_bits);
  return "version=" + version() + " cipher=" + cipher() + " bits=" + std::to_string(bits) + "/" +
         std::to_string(alg_bits);
}

bool session::resumed() const { return ssl_ && done_ && SSL_session_reused(ssl_) == 1; }

saved_session session::save() const {
  saved_session out;
  if (!ssl_ || server_ || !done_) return out;
  SSL_SESSION* sess = SSL_get1_session(ssl_);
  if (!sess) return out;
  if (SSL_SESSION_is_resumable(sess) != 1) {
    SSL_SESSION_free(sess);
    return out;
  }
  out.ptr_ = std::shared_ptr<ssl_session_st>(sess, SSL_SESSION_free);
  return out;
}

}  // namespace sluice::tls
