#!/usr/bin/env bash
# check_peers.sh: before the suite runs, checks that every program the tests drive is here and can do what they ask.
# Untrusted input: none (it only runs local programs and reads their answers).
# A missing peer fails here, naming the Debian package that brings it, instead of as a
# test failure deep in the suite. third_party/packages.txt lists the same packages, so
# `make test` (install.sh first) normally finds everything.
set -uo pipefail
missing=()
need() {  # need PACKAGE WHAT: record a missing package with what it was needed for
  missing+=("$1 ($2)")
}

if command -v swaks >/dev/null 2>&1; then
  support=$(swaks --support 2>&1)
  # swaks prints one line a feature: "=== NAME supported" or "*** NAME not available: requires MODULE".
  has() { grep -q "^=== $1 supported" <<<"$support"; }
  has "TLS" || need libnet-ssleay-perl "swaks STARTTLS"
  has "IPv6" || need libio-socket-inet6-perl "swaks over IPv6"
  has "Basic AUTH" || need perl "swaks AUTH PLAIN/LOGIN (MIME::Base64)"
else
  need swaks "SMTP test client"
fi
perl -MIO::Socket::SSL -e 1 >/dev/null 2>&1 || need libio-socket-ssl-perl "TLS sockets for the perl clients"
command -v openssl >/dev/null 2>&1 || need openssl "s_client / s_server TLS peers"
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import smtplib, ssl, socket' >/dev/null 2>&1 || need python3 "smtplib with ssl"
else
  need python3 "smtplib client"
fi
# Debian installs dnsmasq in /usr/sbin, often outside a non-root PATH; the fixture looks there too.
if command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; then
  dnsmasq_bin=$(command -v dnsmasq 2>/dev/null || echo /usr/sbin/dnsmasq)
  "$dnsmasq_bin" --test --no-resolv --no-hosts --conf-file=/dev/null >/dev/null 2>&1 ||
    need dnsmasq-base "DNS server for the resolver tests (dnsmasq --test failed)"
else
  need dnsmasq-base "DNS server for the resolver tests"
fi
# delivery_peer_test.cc runs a private Postfix: postconf for its defaults, the master
# daemon it starts in the foreground (also in /usr/sbin, outside a non-root PATH).
postconf_bin=$(command -v postconf 2>/dev/null || echo /usr/sbin/postconf)
if [ -x "$postconf_bin" ]; then
  daemon_dir=$("$postconf_bin" -d -h daemon_directory 2>/dev/null)
  [ -x "$daemon_dir/master" ] || need postfix "smtpd peer for the delivery tests (no master in '$daemon_dir')"
  getent passwd postfix >/dev/null 2>&1 || need postfix "smtpd peer for the delivery tests (no postfix user)"
else
  need postfix "smtpd peer for the delivery tests"
fi
# lmtp_test.cc runs a private Dovecot LMTP server (tests/integration/dovecot.h): the master
# from dovecot-core (in /usr/sbin) and the lmtp service from dovecot-lmtpd beside its other
# services (Debian's libexec directory, /usr/lib/dovecot), which the master starts by name.
dovecot_bin=$(command -v dovecot 2>/dev/null || echo /usr/sbin/dovecot)
if [ -x "$dovecot_bin" ] && "$dovecot_bin" --version >/dev/null 2>&1; then
  [ -x /usr/lib/dovecot/lmtp ] || need dovecot-lmtpd "LMTP server for the LMTP delivery tests (no /usr/lib/dovecot/lmtp)"
else
  need dovecot-core "LMTP server for the LMTP delivery tests (no working dovecot)"
fi
# metrics_test.cc parses /metrics with prometheus_client's own parser, from Debian's python3
# (/usr/bin/python3: a python3 earlier on PATH, such as pyenv's, does not see Debian's modules).
debian_python=/usr/bin/python3
[ -x "$debian_python" ] || debian_python=python3
"$debian_python" -c 'from prometheus_client.parser import text_string_to_metric_families' >/dev/null 2>&1 ||
  need python3-prometheus-client "Prometheus text parser for the metrics endpoint test"
# systemd_test.cc checks the shipped unit offline with systemd-analyze (verify, security).
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze security --help 2>/dev/null | grep -q -- '--offline' ||
    need systemd "systemd-analyze security --offline for the unit file test (systemd 252 or later)"
else
  need systemd "systemd-analyze for the unit file test"
fi
# tests/sanitize/run.sh builds build-asan (ASan+UBSan) and build-tsan (TSan) with g++: their
# runtimes come with gcc's development files; a probe link finds one missing before a long build.
probe=$(mktemp -d)
printf 'int main() { return 0; }\n' >"$probe/p.cc"
for san in address,undefined:libasan8 thread:libtsan2; do
  # shellcheck disable=SC2086  # CXX may be a launcher and a compiler
  ${CXX:-g++} -fsanitize="${san%%:*}" "$probe/p.cc" -o "$probe/p" >/dev/null 2>&1 && "$probe/p" ||
    need "${san#*:}" "g++ -fsanitize=${san%%:*} for the sanitizer runs (tests/sanitize)"
done
rm -rf "$probe"

if [ ${#missing[@]} -ne 0 ]; then
  echo "sluice tests: missing test peers:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "sluice tests: run 'bash third_party/install.sh' as root (or: apt-get install ${missing[*]%% *})" >&2
  exit 1
fi
