#!/usr/bin/env bash
# Installs the npm dependencies when missing and builds dist/ when it is missing or older than the
# sources, so the README's commands work on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "azsbackup: installing npm dependencies (npm ci; native addons compile, about 2 minutes)" >&2
  npm ci --no-audit --no-fund >&2
fi
# npm ci compiles our addons; a node_modules from before one of them existed did not, and a
# changed source (or the helpers they share) needs them built again.
for source in src/native/*.c; do
  addon=$(basename "$source" .c)
  built=src/native/build/Release/${addon//-/_}.node
  if [ ! -f "$built" ] || [ "$source" -nt "$built" ] || [ src/native/napi-helpers.h -nt "$built" ]; then
    npm run --silent install >&2
    break
  fi
done
newest_source=$(find src cmdlets manifests scripts/build.mjs scripts/build-tools.ts scripts/bench.ts scripts/bench-corpus.ts scripts/bench-retention.ts test/support package.json -type f -newer dist/manifests.json 2>/dev/null | head -1 || true)
# The typecheck reads cmdlets/generated/parameters.d.ts, which the build writes from the manifests
# (it is not in git): a tree without it builds, whatever the age of dist/.
if [ ! -f dist/manifests.json ] || [ ! -f cmdlets/generated/parameters.d.ts ] || [ -n "$newest_source" ]; then
  npm run --silent build >&2
fi
