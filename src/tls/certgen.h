// certgen.h: key and X.509 certificate generation (self-signed or CA-issued) with the OpenSSL 3 API.
#pragma once
#include <string>
#include <vector>

namespace sluice::tls {

enum class key_type { rsa2048, p256 };

// A private key and its certificate, both PEM text.
struct key_and_cert {
  std::string key_pem;
  std::string cert_pem;
};

struct cert_request {
  std::string common_name;               // subject CN; omitted when longer than 64 octets
  std::vector<std::string> names;        // subjectAltName: host names, or IP literals (IP SAN)
  key_type key = key_type::rsa2048;
  bool is_ca = false;                    // basicConstraints CA:TRUE, keyCertSign
  // Validity relative to now, in seconds. Negative not_after makes an expired certificate.
  long not_before = -3600;               // an hour of slack for peers with slow clocks
  long not_after = 3650L * 24 * 3600;
  const key_and_cert* issuer = nullptr;  // nullptr: self-signed
};

// Generates a fresh key and a certificate for it, signed by the issuer (or itself).
bool issue_certificate(const cert_request& req, key_and_cert& out, std::string& error);

// Writes `pem` to `path` atomically (temporary file + rename) with the given mode.
bool write_file_atomic(const std::string& path, const std::string& pem, unsigned mode,
                       std::string& error);

// Paths of the pair make_self_signed() uses or created.
struct cert_files {
  std::string cert_file;
  std::string key_file;
  bool created = false;  // false: both already existed and were left alone
};

// The `certificate = "auto"` case: if dir/cert.pem and dir/key.pem do not both exist,
// generate a key and a ten-year self-signed certificate for `hostname` (CN and SAN)
// and write them (key mode 0600, certificate 0644). A missing directory is created
// (mode 0700). For "auto" SNI entries use one directory per name (dir/<name>).
bool make_self_signed(const std::string& dir, const std::string& hostname, cert_files& out,
                      std::string& error, key_type key = key_type::rsa2048);

}  // namespace sluice::tls
