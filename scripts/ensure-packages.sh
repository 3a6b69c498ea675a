#!/usr/bin/env bash
# Installs the Debian packages behind the given commands when a command is missing, as root on a
# fresh machine. Arguments are command:package pairs, e.g. g++:g++ smbd:samba.
set -euo pipefail
need=()
for pair in "$@"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "azsbackup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need[@]}" >&2
fi
