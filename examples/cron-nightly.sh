#!/usr/bin/env bash
# Nightly encrypted backup: update the encrypted copy, then ship only what changed.
# Install as a cron job, for example:
#   15 2 * * *  /usr/local/bin/cron-nightly.sh /home/archie /var/backups/archie-crypt backuphost:archie-crypt
# The password file must be readable by the cron user only (chmod 600).
set -euo pipefail
src=${1:?usage: cron-nightly.sh SRC CRYPT_COPY [RSYNC_TARGET]}
crypt=${2:?usage: cron-nightly.sh SRC CRYPT_COPY [RSYNC_TARGET]}
target=${3:-}
passfile=${CRYPTBAK_PASSFILE:-$HOME/.config/cryptbak/password}
cryptbak=${CRYPTBAK:-cryptbak}

# -q: only errors reach cron's mail. Exit code 2 means some files could not be read:
# the rest is backed up and the list of failures is on stderr.
status=0
"$cryptbak" export -q --max-delete "${MAX_DELETE:-10000}" --passfile "$passfile" "$src" "$crypt" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
  echo "cryptbak export failed with exit code $status; not shipping" >&2
  exit "$status"
fi
if [ -n "$target" ]; then
  rsync -aH --delete "$crypt/" "$target/"
fi
exit "$status"
