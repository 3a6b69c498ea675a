#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need when it is missing
# (Debian's samba, smbclient, PostgreSQL, sqlite3, zstd; PowerShell 7 and Pester), builds, and runs
# every vitest suite, Pester's included (test/powershell.test.ts runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in smbd:samba smbclient:smbclient pg_ctlcluster:postgresql zstd:zstd openssl:openssl sqlite3:sqlite3 tar:tar; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "azsbackup tests: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need[@]}" >&2
fi
bash scripts/setup-powershell.sh >&2
scripts/ensure-built.sh
exec npx vitest run "$@"
