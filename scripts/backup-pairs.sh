#!/usr/bin/env bash
# Alternating backups by two builds of this repository from one state, each timed with GNU time
# (wall, user, system, peak RSS): the A/B behind docs/PERFORMANCE.md's backup rows.
#
#   scripts/backup-pairs.sh BUILD_A BUILD_B [PAIRS] [--size 500M]
#
# BUILD_A and BUILD_B are checkouts with dist/ built (a `git worktree` of an older commit, and this
# one). Works in a new folder under ${BENCH_DIR:-/tmp}: makes the retention bench's corpus, then for
# each pair (4 by default) runs, A then B, a first backup into an empty share, and an incremental
# one after round 2's changes (the bench's ~3%: 14 MiB of edits that make ~250 MiB of files read
# again). Each run starts from the same saved home and share: what a run added is removed after it.
set -euo pipefail
a=$(realpath "${1:?usage: scripts/backup-pairs.sh BUILD_A BUILD_B [PAIRS] [--size 500M]}")
b=$(realpath "${2:?usage: scripts/backup-pairs.sh BUILD_A BUILD_B [PAIRS] [--size 500M]}")
pairs=${3:-4}
size=500M
[ "${4:-}" = --size ] && size=${5:?--size takes a size}
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/ensure-built.sh"
work=$(mktemp -d "${BENCH_DIR:-/tmp}/azsbackup-backup-pairs-XXXXXX")
trap 'rm -rf "$work"' EXIT
unset NODE_EXTRA_CA_CERTS
azs() { node --max-semi-space-size=2 --interrupt-budget=1081344 "$1/bin/azsbackup.js" "${@:2}" --output json; }
node "$repo/dist/tools/bench.js" --make-corpus "$work/corpus" --size "$size"

# Two set-ups, each its own home and share: "first" stays empty, "incremental" holds one backup of
# the corpus before round 2's changes. Each run starts from its set-up's saved state: the home as
# saved, and the share's files then (a run's additions are removed after it).
setup() {
  mkdir "$work/share-$1"
  export AZSBACKUP_HOME="$work/home-$1"
  azs "$b" Set-BackupShare -Path "$work/share-$1" -SkipValidation >/dev/null
  azs "$b" Register-InfrastructureRole -Name Corpus -Provider directory -Path "$work/corpus" >/dev/null
}
save() { cp -a "$work/home-$1" "$work/saved-home-$1" && (cd "$work/share-$1" && find . | sort) >"$work/saved-share-$1"; }
back_to() {
  rm -rf "$work/home-$1" && cp -a "$work/saved-home-$1" "$work/home-$1"
  (cd "$work/share-$1" && find . | sort | comm -13 "$work/saved-share-$1" - | sort -r | while read -r f; do
    if [ -d "$f" ]; then rmdir "$f"; else rm -f "$f"; fi
  done)
}
timed() { # SETUP BUILD
  back_to "$1"
  cat $(find "$work/corpus" -type f) >/dev/null
  AZSBACKUP_HOME="$work/home-$1" /usr/bin/time -f "$1 $2: %e s wall, %U s user, %S s system, %M KB peak" \
    node --max-semi-space-size=2 --interrupt-budget=1081344 "$2/bin/azsbackup.js" Start-InfrastructureBackup --output json >/dev/null
}
AZSBACKUP_ENCRYPTIONKEY=$(AZSBACKUP_HOME="$work/home-key" azs "$b" New-EncryptionKey | node -pe 'JSON.parse(require("fs").readFileSync(0)).Key')
export AZSBACKUP_ENCRYPTIONKEY
setup first
setup incremental
azs "$b" Start-InfrastructureBackup >/dev/null
node "$repo/dist/tools/bench.js" --churn "$work/corpus" --round 2 --size "$size" >/dev/null
save first
save incremental
for _ in $(seq 1 "$pairs"); do
  for build in "$a" "$b"; do timed first "$build"; done
  for build in "$a" "$b"; do timed incremental "$build"; done
done
