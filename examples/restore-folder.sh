#!/usr/bin/env bash
# Get one folder back from an encrypted backup, without FUSE:
#   examples/restore-folder.sh /var/backups/home-crypt Documents/taxes /tmp/taxes
# BACKUP may be a cryptbak export, a copy of a gocryptfs -reverse mount, or any
# gocryptfs directory. Exit code 26 means some files failed authentication: they are
# named on stderr and were not restored; everything else was.
set -euo pipefail
backup=${1:?usage: restore-folder.sh BACKUP PATH DEST}
path=${2:?usage: restore-folder.sh BACKUP PATH DEST}
dest=${3:?usage: restore-folder.sh BACKUP PATH DEST}
passfile=${CRYPTBAK_PASSFILE:-$HOME/.config/cryptbak/password}
cryptbak=${CRYPTBAK:-cryptbak}

# What is there?
"$cryptbak" ls --passfile "$passfile" "$backup" "$path"
# Restore just that folder (or file) into DEST.
"$cryptbak" restore --passfile "$passfile" --path "$path" "$backup" "$dest"
