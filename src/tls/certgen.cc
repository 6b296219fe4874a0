// certgen.cc: key and X.509 certificate generation with the OpenSSL 3 API.
#include "tls/certgen.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tls/ossl.h"

namespace sluice::tls {
namespace {

using namespace detail;

pkey_ptr generate_key(key_type type) {
  if (type == key_type::p256) return pkey_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  return pkey_ptr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)));
}

bool add_ext(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  x509_ext_ptr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

pkey_ptr read_key(const std::string& pem) {
  bio_ptr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return pkey_ptr(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
}

x509_ptr read_cert(const std::string& pem) {
  bio_ptr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return x509_ptr(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

bool issue_certificate(const cert_request& req, key_and_cert& out, std::string& error) {
  ERR_clear_error();
  pkey_ptr key = generate_key(req.key);
  if (!key) { error = error_text("key generation failed"); return false; }

  pkey_ptr issuer_key;
  x509_ptr issuer_cert;
  if (req.issuer) {
    issuer_key = read_key(req.issuer->key_pem);
    issuer_cert = read_cert(req.issuer->cert_pem);
    if (!issuer_key || !issuer_cert) { error = error_text("cannot read issuer key or certificate"); return false; }
  }

  x509_ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    error = error_text("X509_new failed");
    return false;
  }
  // A random 127-bit serial: unique without keeping state, positive as RFC 5280 requires.
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) { error = error_text("RAND_bytes failed"); return false; }
  serial_bytes[0] &= 0x7f;
  bn_ptr serial_bn(BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr));
  asn1_int_ptr serial(serial_bn ? BN_to_ASN1_INTEGER(serial_bn.get(), nullptr) : nullptr);
  if (!serial || X509_set_serialNumber(cert.get(), serial.get()) != 1) {
    error = error_text("cannot set serial number");
    return false;
  }
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), req.not_before) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), req.not_after)) {
    error = error_text("cannot set validity");
    return false;
  }

  X509_NAME* subject = X509_get_subject_name(cert.get());
  std::string cn = req.common_name.size() <= 64 ? req.common_name : std::string();
  if (cn.empty() && req.names.empty()) cn = "sluice";
  if (!cn.empty() &&
      X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1) {
    error = error_text("cannot set subject");
    return false;
  }
  X509_NAME* issuer_name = issuer_cert ? X509_get_subject_name(issuer_cert.get()) : subject;
  if (X509_set_issuer_name(cert.get(), issuer_name) != 1 || X509_set_pubkey(cert.get(), key.get()) != 1) {
    error = error_text("cannot set issuer or public key");
    return false;
  }

  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer_cert ? issuer_cert.get() : cert.get(), cert.get(), nullptr, nullptr, 0);
  std::string san;
  for (const auto& name : req.names) {
    if (!san.empty()) san += ',';
    san += (is_ip_literal(name) ? "IP:" : "DNS:") + name;
  }
  bool ok = add_ext(cert.get(), &v3, NID_subject_key_identifier, "hash");
  if (issuer_cert) ok = ok && add_ext(cert.get(), &v3, NID_authority_key_identifier, "keyid:always");
  if (req.is_ca) {
    ok = ok && add_ext(cert.get(), &v3, NID_basic_constraints, "critical,CA:TRUE") &&
         add_ext(cert.get(), &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    // keyEncipherment only means something for RSA key exchange (TLS 1.2 RSA suites).
    std::string usage = req.key == key_type::rsa2048 ? "critical,digitalSignature,keyEncipherment"
                                                      : "critical,digitalSignature";
    ok = ok && add_ext(cert.get(), &v3, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(cert.get(), &v3, NID_key_usage, usage) &&
         add_ext(cert.get(), &v3, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (!san.empty()) ok = ok && add_ext(cert.get(), &v3, NID_subject_alt_name, san);
  if (!ok) { error = error_text("cannot add extensions"); return false; }

  EVP_PKEY* signer = issuer_key ? issuer_key.get() : key.get();
  if (X509_sign(cert.get(), signer, EVP_sha256()) <= 0) { error = error_text("signing failed"); return false; }

  bio_ptr kb(BIO_new(BIO_s_mem())), cb(BIO_new(BIO_s_mem()));
  if (!kb || !cb ||
      PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_X509(cb.get(), cert.get()) != 1) {
    error = error_text("PEM encoding failed");
    return false;
  }
  out.key_pem = bio_text(kb.get());
  out.cert_pem = bio_text(cb.get());
  return true;
}

bool write_file_atomic(const std::string& path, const std::string& pem, unsigned mode, std::string& error) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  // O_EXCL with the final mode from the start: the key is never readable by others,
  // not even between creation and a later chmod.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) { error = tmp + ": " + std::strerror(errno); return false; }
  size_t done = 0;
  while (done < pem.size()) {
    ssize_t n = ::write(fd, pem.data() + done, pem.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    error = tmp + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

bool make_self_signed(const std::string& dir, const std::string& hostname, cert_files& out,
                      std::string& error, key_type key) {
  out.cert_file = dir + "/cert.pem";
  out.key_file = dir + "/key.pem";
  out.created = false;
  if (file_exists(out.cert_file) && file_exists(out.key_file)) return true;
  // First start: the directory (next to the queue) usually does not exist yet. 0700,
  // because it holds a private key.
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    error = dir + ": " + ec.message();
    return false;
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    error = dir + ": not a directory";
    return false;
  }
  ::chmod(dir.c_str(), 0700);
  // Only one of the pair exists (a crash between the two renames, or a deleted file):
  // it cannot be trusted to match, so both are regenerated.
  cert_request req;
  req.common_name = hostname;
  req.names = {hostname};
  req.key = key;
  key_and_cert pair;
  if (!issue_certificate(req, pair, error)) return false;
  if (!write_file_atomic(out.key_file, pair.key_pem, 0600, error)) return false;
  if (!write_file_atomic(out.cert_file, pair.cert_pem, 0644, error)) return false;
  out.created = true;
  return true;
}

}  // namespace sluice::tls
