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
mkdir "$work/share"
export AZSBACKUP_HOME="$work/home"
AZSBACKUP_ENCRYPTIONKEY=$(azs "$b" New-EncryptionKey | node -pe 'JSON.parse(require("fs").readFileSync(0)).Key')
export AZSBACKUP_ENCRYPTIONKEY
azs "$b" Set-BackupShare -Path "$work/share" -SkipValidation >/dev/null
azs "$b" Register-InfrastructureRole -Name Corpus -Provider directory -Path "$work/corpus" >/dev/null

# The state before a run: the home as saved, and the share's files then; a run's additions go after it.
save() { rm -rf "$work/home-$1" && cp -a "$work/home" "$work/home-$1" && (cd "$work/share" && find . | sort) >"$work/share-$1"; }
back_to() {
  rm -rf "$work/home" && cp -a "$work/home-$1" "$work/home"
  (cd "$work/share" && find . | sort | comm -13 "$work/share-$1" - | sort -r | while read -r f; do
    if [ -d "$f" ]; then rmdir "$f"; else rm -f "$f"; fi
  done)
}
timed() { # LABEL BUILD STATE
  back_to "$3"
  cat $(find "$work/corpus" -type f) >/dev/null
  /usr/bin/time -f "$1 $2: %e s wall, %U s user, %S s system, %M KB peak" \
    node --max-semi-space-size=2 --interrupt-budget=1081344 "$2/bin/azsbackup.js" Start-InfrastructureBackup --output json >/dev/null
}
save empty
azs "$b" Start-InfrastructureBackup >/dev/null
node "$repo/dist/tools/bench.js" --churn "$work/corpus" --round 2 --size "$size" >/dev/null
save changed
for _ in $(seq 1 "$pairs"); do
  for build in "$a" "$b"; do timed first "$build" empty; done
  for build in "$a" "$b"; do timed incremental "$build" changed; done
done
