#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need when it is missing
# (Debian's compiler, samba, smbclient, PostgreSQL, sqlite3, zstd; PowerShell 7 and Pester), builds, and runs
# the typecheck and then every vitest suite, Pester's included (test/powershell/powershell.test.ts runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

# The compiler and Python build better-sqlite3 and our addons when npm ci runs (no prebuilt binaries).
scripts/ensure-packages.sh g++:g++ make:make python3:python3 smbd:samba smbclient:smbclient pg_ctlcluster:postgresql \
  zstd:zstd openssl:openssl sqlite3:sqlite3 tar:tar strace:strace fincore:util-linux setfacl:acl getfattr:attr
bash scripts/setup-powershell.sh >&2
scripts/ensure-built.sh
# The typecheck covers the tests and scripts too (tsconfig.json): a test that no longer matches the
# code it drives fails here, with the line, before any suite runs.
echo "azsbackup: typecheck (tsc --noEmit over src, cmdlets, test, scripts)" >&2
npx tsc --noEmit -p .
# Biome lints (biome.jsonc says which rules and why) and checks the formatting, 140 columns at most.
echo "azsbackup: lint and format check (biome)" >&2
npx biome check --assist-enabled=false .
exec npx vitest run "$@"
