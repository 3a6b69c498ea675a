#!/usr/bin/env bash
# Makes sure the SMB tests can run: smbd, smbpasswd and smbclient from Debian's packages.
# The tests start their own private smbd instances (test/support/samba.ts); nothing is started here,
# and the machine's own smb.conf and services are left alone.
set -euo pipefail

missing=()
command -v smbd >/dev/null 2>&1 || [ -x /usr/sbin/smbd ] || missing+=(samba)
command -v smbclient >/dev/null 2>&1 || missing+=(smbclient)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "samba.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

smbd --version
smbclient --version
