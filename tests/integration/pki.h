// pki.h: a throw-away certificate authority for TLS tests, made with the openssl command line.
#pragma once
#include <criterion/criterion.h>
#include <stdlib.h>

#include <string>

#include "harness.h"

namespace sluice::testing {

// Certificates made at test time with the openssl command line: a CA, a server
// certificate for mx.good.test signed by it, an expired one for the same name, and a
// client certificate (CN=partner.client.test) for connectors that require one.
struct pki {
  std::string dir;
  pki() {
    char tmpl[] = "/tmp/sluice-pki-XXXXXX";
    dir = ::mkdtemp(tmpl);
    std::string d = dir;
    std::string script =
        "set -e; cd " + d + "\n"
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=Test-CA 2>/dev/null\n"
        "openssl req -newkey rsa:2048 -nodes -keyout good.key -out good.csr -subj /CN=mx.good.test 2>/dev/null\n"
        "printf 'subjectAltName=DNS:mx.good.test\\n' > san.ext\n"
        "openssl x509 -req -in good.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out good.pem -days 2 -extfile san.ext 2>/dev/null\n"
        // An expired certificate: valid from 10 days ago to 5 days ago.
        "openssl req -newkey rsa:2048 -nodes -keyout old.key -out old.csr -subj /CN=mx.good.test 2>/dev/null\n"
        "openssl x509 -req -in old.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out old.pem -extfile san.ext "
        "-not_before $(date -u -d '-10 days' +%Y%m%d%H%M%SZ) -not_after $(date -u -d '-5 days' +%Y%m%d%H%M%SZ) 2>/dev/null"
        " || openssl x509 -req -in old.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out old.pem -extfile san.ext -days -1 2>/dev/null\n"
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=partner.client.test 2>/dev/null\n"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 2>/dev/null\n";
    auto r = run("bash -c '" + escape(script) + "'");
    cr_assert_eq(r.status, 0, "openssl failed: %s", r.output.c_str());
  }
  ~pki() { run("rm -rf " + dir); }
  static std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out;
  }
};

}  // namespace sluice::testing
