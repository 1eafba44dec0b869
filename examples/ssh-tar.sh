#!/usr/bin/env bash
# Encrypted backup straight to another machine as one tar archive, with no temporary
# copy anywhere; the other machine only ever sees ciphertext:
#   examples/ssh-tar.sh /home/archie backuphost /backup/archie.tar
# To read it back: `mkdir d && tar -x -C d -f archie.tar`, then `gocryptfs d MNT`
# (with the password). See docs/tar.md.
set -uo pipefail
src=${1:?usage: ssh-tar.sh SRC HOST REMOTE_FILE}
host=${2:?usage: ssh-tar.sh SRC HOST REMOTE_FILE}
remote=${3:?usage: ssh-tar.sh SRC HOST REMOTE_FILE}
passfile=${CRYPTBAK_PASSFILE:-$HOME/.config/cryptbak/password}
cryptbak=${CRYPTBAK:-cryptbak}

# With pipefail the pipeline fails when cryptbak fails, even though `ssh` succeeded:
# exit 1 means the archive is incomplete (for example the connection dropped), so the
# previous archive is kept. Exit 2 means some files could not be read (listed on
# stderr): the archive is complete apart from those, and replaces the previous one.
status=0
"$cryptbak" export -q --passfile "$passfile" --tar - "$src" \
  | ssh "$host" "cat > '$remote.new'" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
  echo "backup failed (exit code $status); $host:$remote is unchanged" >&2
  exit "$status"
fi
ssh "$host" "mv '$remote.new' '$remote'"
exit "$status"
