// context.h: TLS contexts (an SSL_CTX each): server certificates, SNI, client verification policy.
// Untrusted input: the SNI host name a remote client sends (matched against the configured map).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct ssl_ctx_st;  // OpenSSL's SSL_CTX, kept out of this header

namespace sluice::tls {

enum class protocol { tls1_2, tls1_3 };
// "1.2", "TLSv1.2", "1.3", "TLSv1.3" (the configuration's min_version); false otherwise.
bool parse_protocol(std::string_view text, protocol& out);

// What an outbound session demands of the peer.
//  opportunistic: encrypt if possible, do not verify (the caller may fall back to plaintext).
//  mandatory:     TLS must be negotiated, the certificate is not verified.
//  verified:      the chain must lead to a trusted CA and the name must match the host.
// The first two behave identically inside a session (both still record the verification
// result for logging); they differ in what the delivery layer does when TLS is missing.
enum class verify_policy { opportunistic, mandatory, verified };

// Whether a server asks connecting clients for a certificate.
//  request: ask, accept any (or none); peer_verified() says whether it chained to the CA.
//  require: the handshake fails unless the client presents a certificate that verifies.
enum class client_certs { none, request, require };

struct cert_pair {
  std::string chain_file;  // PEM: leaf certificate first, then intermediates
  std::string key_file;    // PEM private key
};

struct sni_entry {
  std::string name;        // "mail.example.com" or "*.example.com" (one label), case-insensitive
  cert_pair pair;
};

struct server_options {
  cert_pair pair;                   // the default certificate (no SNI or no match)
  std::vector<sni_entry> sni;       // alternatives selected by the client's server name
  protocol minimum = protocol::tls1_2;
  protocol maximum = protocol::tls1_3;
  std::string ciphers;              // TLS 1.2 cipher list; "" keeps OpenSSL's default
  std::string ciphersuites;         // TLS 1.3 suites; "" keeps OpenSSL's default
  client_certs client_auth = client_certs::none;
  std::string client_ca_file;       // trust anchors for client certificates; "" = system store
};

struct client_options {
  verify_policy policy = verify_policy::opportunistic;
  std::string ca_file;              // "" means the system trust store
  protocol minimum = protocol::tls1_2;
  protocol maximum = protocol::tls1_3;
  std::string ciphers;
  std::string ciphersuites;
  cert_pair client_cert;            // optional certificate to present; empty paths for none
};

// An immutable, shareable SSL_CTX. Certificates are read once, at construction; a
// configuration reload builds a new context for new sessions while existing sessions
// keep the one they started with (each session holds a shared_ptr to its context).
// A context may be used by sessions on several threads at once.
class context {
 public:
  // nullptr on failure, with `error` saying which file or setting was wrong.
  static std::shared_ptr<const context> make_server(const server_options& opts, std::string& error);
  static std::shared_ptr<const context> make_client(const client_options& opts, std::string& error);

  struct private_tag {};  // keeps construction to the factories above
  explicit context(private_tag) {}
  ~context();
  context(const context&) = delete;
  context& operator=(const context&) = delete;

  bool is_server() const { return server_; }
  verify_policy policy() const { return policy_; }
  ssl_ctx_st* native() const { return ctx_; }
  // The context whose certificate serves `server_name` (exact match first, then one-label
  // wildcard), or nullptr to keep the default one.
  ssl_ctx_st* for_server_name(std::string_view server_name) const;

 private:
  ssl_ctx_st* ctx_ = nullptr;
  bool server_ = false;
  verify_policy policy_ = verify_policy::opportunistic;
  std::vector<std::pair<std::string, ssl_ctx_st*>> sni_;  // lower-case name → context, owned
};

}  // namespace sluice::tls
