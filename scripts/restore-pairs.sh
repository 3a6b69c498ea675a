#!/usr/bin/env bash
# Alternating restores, ours then restic's, of one backup of a folder, each timed with GNU time
# (wall, user, system, peak RSS): the quick A/B behind docs/PERFORMANCE.md's restore rows.
#
#   scripts/restore-pairs.sh CORPUS [PAIRS]      # e.g. a corpus kept by `npm run bench -- --keep`
#
# Works in a new folder under ${BENCH_DIR:-/tmp}: copies CORPUS there, backs it up once with each
# tool, then restores PAIRS times (4 by default), ours into the registered path from a fresh
# AZSBACKUP_HOME (as after losing the machine), restic's into a new folder. Restored trees are moved
# aside, not deleted (deleting thousands of files slows ext4's next file creations for a while),
# and the folder is removed at the end.
set -euo pipefail
corpus=$(realpath "${1:?usage: scripts/restore-pairs.sh CORPUS [PAIRS]}")
pairs=${2:-4}
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/ensure-built.sh"
"$repo/scripts/ensure-packages.sh" restic:restic
work=$(mktemp -d "${BENCH_DIR:-/tmp}/azsbackup-pairs-XXXXXX")
trap 'rm -rf "$work"' EXIT
unset NODE_EXTRA_CA_CERTS
azs() { node --max-semi-space-size=2 --interrupt-budget=1081344 "$repo/bin/azsbackup.js" "$@" --output json; }
export AZSBACKUP_HOME="$work/home" RESTIC_PASSWORD=bench RESTIC_REPOSITORY="$work/restic"
mkdir -p "$work/share" "$work/aside"
cp -a "$corpus" "$work/corpus"
AZSBACKUP_ENCRYPTIONKEY=$(azs New-EncryptionKey | node -pe 'JSON.parse(require("fs").readFileSync(0)).Key')
export AZSBACKUP_ENCRYPTIONKEY
azs Set-BackupShare -Path "$work/share" -SkipValidation >/dev/null
azs Register-InfrastructureRole -Name Corpus -Provider directory -Path "$work/corpus" >/dev/null
name=$(azs Start-InfrastructureBackup | node -pe 'JSON.parse(require("fs").readFileSync(0)).Name')
restic init -q && restic backup -q "$work/corpus"
for i in $(seq 1 "$pairs"); do
  mv "$work/corpus" "$work/aside/corpus-$i"
  sync
  AZSBACKUP_HOME="$work/fresh-$i" /usr/bin/time -f "ours   %e s wall, %U s user, %S s system, %M KiB peak" \
    node --max-semi-space-size=2 --interrupt-budget=1081344 "$repo/bin/azsbackup.js" Restore-AzsBackup -Name "$name" \
    -Path "$work/share" -EncryptionKey - --output json <<<"$AZSBACKUP_ENCRYPTIONKEY" >/dev/null 2>"$work/stderr" ||
    { cat "$work/stderr" >&2; exit 1; }
  grep -v '^{"Warning"' "$work/stderr" >&2 || true
  sync
  /usr/bin/time -f "restic %e s wall, %U s user, %S s system, %M KiB peak" restic restore latest -q --target "$work/aside/restic-$i"
done
