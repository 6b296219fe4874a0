// context.cc: building server and client SSL_CTXs, SNI selection.
// Untrusted input: the SNI host name from the ClientHello.
#include "tls/context.h"

#include <algorithm>
#include <cctype>

#include "tls/ossl.h"

namespace sluice::tls {
namespace {

using namespace detail;

int version_of(protocol p) { return p == protocol::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Settings every context shares: protocol range, cipher choice, options.
bool configure_common(SSL_CTX* ctx, protocol minimum, protocol maximum, const std::string& ciphers,
                      const std::string& ciphersuites, std::string& error) {
  if (version_of(minimum) > version_of(maximum)) {
    error = "minimum TLS version is above the maximum";
    return false;
  }
  if (SSL_CTX_set_min_proto_version(ctx, version_of(minimum)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, version_of(maximum)) != 1) {
    error = error_text("cannot set protocol versions");
    return false;
  }
  if (!ciphers.empty() && SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    error = error_text("invalid cipher list \"" + ciphers + "\"");
    return false;
  }
  if (!ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, ciphersuites.c_str()) != 1) {
    error = error_text("invalid TLS 1.3 ciphersuites \"" + ciphersuites + "\"");
    return false;
  }
  // Renegotiation from an untrusted peer is a cheap way to make us do handshake work.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Idle SMTP sessions are common and numerous: give their buffers back between records.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return true;
}

bool load_pair(SSL_CTX* ctx, const cert_pair& pair, std::string& error) {
  if (SSL_CTX_use_certificate_chain_file(ctx, pair.chain_file.c_str()) != 1) {
    error = error_text("cannot load certificate chain " + pair.chain_file);
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, pair.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = error_text("cannot load private key " + pair.key_file);
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    error = error_text("private key " + pair.key_file + " does not match certificate " + pair.chain_file);
    return false;
  }
  return true;
}

// `request` mode accepts whatever the client presents; the outcome is still recorded
// in the session's verify result for logging and policy.
int accept_any_client_cert(int, X509_STORE_CTX*) { return 1; }

ssl_ctx_ptr make_server_ctx(const server_options& opts, const cert_pair& pair, std::string& error) {
  ERR_clear_error();
  ssl_ctx_ptr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) { error = error_text("SSL_CTX_new failed"); return nullptr; }
  if (!configure_common(ctx.get(), opts.minimum, opts.maximum, opts.ciphers, opts.ciphersuites, error))
    return nullptr;
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_dh_auto(ctx.get(), 1);
  static const unsigned char sid_ctx[] = "sluice";
  SSL_CTX_set_session_id_context(ctx.get(), sid_ctx, sizeof sid_ctx - 1);
  if (!load_pair(ctx.get(), pair, error)) return nullptr;

  if (opts.client_auth != client_certs::none) {
    if (opts.client_ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
        error = error_text("cannot load the system trust store for client certificates");
        return nullptr;
      }
    } else {
      if (SSL_CTX_load_verify_locations(ctx.get(), opts.client_ca_file.c_str(), nullptr) != 1) {
        error = error_text("cannot load client CA file " + opts.client_ca_file);
        return nullptr;
      }
      // The CA names sent in CertificateRequest help clients with several certificates
      // choose; with the system store the list would be hundreds of names, so none is sent.
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opts.client_ca_file.c_str());
      if (names) SSL_CTX_set_client_CA_list(ctx.get(), names);
    }
    if (opts.client_auth == client_certs::require)
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    else
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, accept_any_client_cert);
  }
  return ctx;
}

int on_server_name(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const context*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  if (SSL_CTX* alt = self->for_server_name(name)) SSL_set_SSL_CTX(ssl, alt);
  // An unknown name gets the default certificate rather than a failed handshake:
  // SMTP clients rarely verify, and a mismatch is better than no encryption.
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

bool parse_protocol(std::string_view text, protocol& out) {
  if (text.starts_with("TLSv") || text.starts_with("tlsv")) text.remove_prefix(4);
  if (text == "1.2") { out = protocol::tls1_2; return true; }
  if (text == "1.3") { out = protocol::tls1_3; return true; }
  return false;
}

context::~context() {
  for (auto& [name, ctx] : sni_) SSL_CTX_free(ctx);
  SSL_CTX_free(ctx_);
}

ssl_ctx_st* context::for_server_name(std::string_view server_name) const {
  if (sni_.empty() || server_name.empty() || server_name.size() > 253) return nullptr;
  std::string name = lower(server_name);
  if (name.back() == '.') name.pop_back();
  for (const auto& [pattern, ctx] : sni_)
    if (pattern == name) return ctx;
  // "*.example.com" covers exactly one label: "a.example.com", not "a.b.example.com".
  size_t dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return nullptr;
  std::string wildcard = "*" + name.substr(dot);
  for (const auto& [pattern, ctx] : sni_)
    if (pattern == wildcard) return ctx;
  return nullptr;
}

std::shared_ptr<const context> context::make_server(const server_options& opts, std::string& error) {
  auto self = std::make_shared<context>(private_tag{});
  self->server_ = true;
  ssl_ctx_ptr main = make_server_ctx(opts, opts.pair, error);
  if (!main) return nullptr;
  self->ctx_ = main.release();
  for (const auto& entry : opts.sni) {
    if (entry.name.empty()) {
      error = "SNI entry without a name";
      return nullptr;
    }
    ssl_ctx_ptr alt = make_server_ctx(opts, entry.pair, error);
    if (!alt) {
      error = "SNI " + entry.name + ": " + error;
      return nullptr;
    }
    std::string name = lower(entry.name);
    if (name.back() == '.') name.pop_back();
    self->sni_.emplace_back(std::move(name), alt.release());
  }
  if (!self->sni_.empty()) {
    SSL_CTX_set_tlsext_servername_callback(self->ctx_, on_server_name);
    SSL_CTX_set_tlsext_servername_arg(self->ctx_, self.get());
  }
  return self;
}

std::shared_ptr<const context> context::make_client(const client_options& opts, std::string& error) {
  ERR_clear_error();
  auto self = std::make_shared<context>(private_tag{});
  self->policy_ = opts.policy;
  ssl_ctx_ptr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) { error = error_text("SSL_CTX_new failed"); return nullptr; }
  if (!configure_common(ctx.get(), opts.minimum, opts.maximum, opts.ciphers, opts.ciphersuites, error))
    return nullptr;
  // Trust anchors are loaded for every policy so that opportunistic sessions can still
  // log whether the peer would have verified.
  if (!opts.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), opts.ca_file.c_str(), nullptr) != 1) {
      error = error_text("cannot load CA file " + opts.ca_file);
      return nullptr;
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1 && opts.policy == verify_policy::verified) {
    error = error_text("cannot load the system trust store");
    return nullptr;
  }
  ERR_clear_error();
  SSL_CTX_set_verify(ctx.get(), opts.policy == verify_policy::verified ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                     nullptr);
  if (!opts.client_cert.chain_file.empty() && !load_pair(ctx.get(), opts.client_cert, error)) return nullptr;
  self->ctx_ = ctx.release();
  return self;
}

}  // namespace sluice::tls
