#!/usr/bin/env bash
# install.sh: installs the Debian packages named in packages.txt that are missing, and the sluice system user.
# Untrusted input: none (the manifest is ours). Run as root it uses apt-get; otherwise
# it lists what is missing and how to install it, and fails.
# Usage: install.sh [--bench]   (--bench adds the packages of the [bench] section)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
manifest="$here/packages.txt"
with_bench=0
[ "${1:-}" = "--bench" ] && with_bench=1
missing=()
section=main
while read -r pkg _pc _min; do
  case "$pkg" in
    '#') [ "${_pc:-}" = "[bench]" ] && section=bench; continue ;;
    ''|'#'*) continue ;;
  esac
  [ "$section" = bench ] && [ "$with_bench" = 0 ] && continue
  # python3 may come from elsewhere (pyenv): a working interpreter is enough.
  if [ "$pkg" = python3 ] && command -v python3 >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done < "$manifest"
# sluiced started as root drops to the system user "sluice" once it listens (src/main/privileges.h):
# made here, so that `make run` as root works on a fresh machine. No home, no login shell.
if [ "$(id -u)" -eq 0 ] && ! getent passwd sluice >/dev/null 2>&1; then
  echo "sluice: creating the system user and group sluice" >&2
  if command -v adduser >/dev/null 2>&1; then
    adduser --system --group --no-create-home --home /var/lib/sluice --quiet sluice
  else
    useradd --system --user-group --no-create-home --home-dir /var/lib/sluice --shell /usr/sbin/nologin sluice
  fi
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "sluice: missing Debian packages: ${missing[*]}" >&2
  echo "sluice: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "sluice: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix is only a test and benchmark peer here: install it unconfigured, so that it neither
# asks questions nor starts a system mail service; tests and bench scripts run private instances.
if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
# Dovecot likewise: the tests run private instances, so the package must not start the
# system's. Where no policy-rc.d already keeps services from starting (containers have one),
# one that refuses every start is put in place for this install only.
if printf '%s\n' "${missing[@]}" | grep -qx 'dovecot-core' && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# sluice third_party/install.sh: no service starts during this install\nexit 101\n' \
    >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
