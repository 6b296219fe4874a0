// ossl.h: RAII owners for OpenSSL objects and error-queue formatting (internal to src/tls).
#pragma once
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <memory>
#include <string>

namespace sluice::tls::detail {

template <auto fn>
struct deleter {
  template <typename T>
  void operator()(T* p) const { fn(p); }
};

using bio_ptr = std::unique_ptr<BIO, deleter<BIO_free_all>>;
using bn_ptr = std::unique_ptr<BIGNUM, deleter<BN_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, deleter<X509_free>>;
using x509_name_ptr = std::unique_ptr<X509_NAME, deleter<X509_NAME_free>>;
using x509_ext_ptr = std::unique_ptr<X509_EXTENSION, deleter<X509_EXTENSION_free>>;
using asn1_int_ptr = std::unique_ptr<ASN1_INTEGER, deleter<ASN1_INTEGER_free>>;
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, deleter<SSL_CTX_free>>;
using ssl_ptr = std::unique_ptr<SSL, deleter<SSL_free>>;

// Drains this thread's OpenSSL error queue into one line, prefixed by `what`.
inline std::string error_text(const std::string& what) {
  std::string out = what;
  unsigned long e;
  bool first = true;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += first ? ": " : "; ";
    out += buf;
    first = false;
  }
  return out;
}

// The contents of a memory BIO as a string.
inline std::string bio_text(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

// An IPv4 or IPv6 literal: certificates name it in an IP SAN, and it is never sent as SNI.
inline bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace sluice::tls::detail
