#!/usr/bin/env bash
# The backup and restore drill on the embedded default: sample roles and a local folder as share.
set -euo pipefail
cd "$(dirname "$0")/.."
# better-sqlite3 (the Identity role) compiles from source when npm ci runs; tar is the directory provider's.
scripts/ensure-packages.sh g++:g++ make:make python3:python3 tar:tar
scripts/ensure-built.sh
exec node scripts/demo.mjs "$@"
