#!/usr/bin/env bash
# The backup and restore drill on the embedded default: sample roles and a local folder as share.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-built.sh
exec node scripts/demo.mjs "$@"
