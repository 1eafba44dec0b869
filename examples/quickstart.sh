#!/usr/bin/env bash
# Quickstart: build cryptbak, back up an example home directory, look at the backup,
# change one file and back up again, and check the backup with a real gocryptfs.
#
#   bash examples/quickstart.sh [DIR]
#
# The example stays in DIR (default: ./cryptbak-quickstart) so you can look around;
# the last lines say how, and how to delete it. CRYPTBAK=/path/to/cryptbak skips the build.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(realpath -m "${1:-$PWD/cryptbak-quickstart}")

if [ -n "${CRYPTBAK:-}" ]; then
  bin=$CRYPTBAK
else
  echo "== Building cryptbak (cargo build --release --locked; the first build takes a few minutes)"
  (cd "$repo" && cargo build --release --locked)
  bin=$repo/target/release/cryptbak
fi
say() { printf '\n== %s\n' "$*"; }

say "Making an example home directory in $work/home"
rm -rf "$work"
mkdir -p "$work"
src=$work/home
mkdir -p "$src/Documents/taxes" "$src/Photos"
echo "hello" > "$src/Documents/notes.txt"
seq 1 100000 > "$src/Documents/taxes/2025.csv"
head -c 5000000 /dev/urandom > "$src/Photos/holiday.jpg"
touch "$src/Documents/a-file-whose-name-is-too-long-for-gocryptfs-to-store-encrypted-$(printf 'x%.0s' {1..150})"
ln -s Documents/notes.txt "$src/notes-link"
echo "correct horse battery staple" > "$work/password"
chmod 600 "$work/password"

say "cryptbak init: a gocryptfs -reverse config for it (home/.gocryptfs.reverse.conf)"
"$bin" init --passfile "$work/password" --scryptn 12 "$src"

say "cryptbak export home backup: the encrypted view of home, as gocryptfs -reverse shows it"
"$bin" export --passfile "$work/password" "$src" "$work/backup"

say "What the backup holds: encrypted names (the contents are encrypted too)"
ls -l "$work/backup"

say "cryptbak ls: the same backup, decrypted (nothing is written)"
"$bin" ls -r --passfile "$work/password" "$work/backup"

say "Changing one file (Documents/notes.txt) and exporting again: only it is rewritten"
echo "more notes" >> "$src/Documents/notes.txt"
"$bin" export -v --passfile "$work/password" "$src" "$work/backup"

if command -v gocryptfs >/dev/null && [ -e /dev/fuse ]; then
  say "A real gocryptfs mounts the backup and shows exactly the source"
  mkdir -p "$work/mnt"
  gocryptfs -q -nosyslog -passfile "$work/password" "$work/backup" "$work/mnt"
  # The source's config became the backup's gocryptfs.conf, which a forward mount uses
  # and does not show.
  if diff -r -x .gocryptfs.reverse.conf "$src" "$work/mnt"; then
    echo "OK: identical"
  fi
  fusermount3 -u "$work/mnt" 2>/dev/null || fusermount -u "$work/mnt"
else
  say "(Install gocryptfs and fuse3 to check the backup with a real gocryptfs mount.)"
fi

cat <<EOF

== Done. The example is in $work:
   home/       the plaintext          backup/    its encrypted backup
   password    the password (in real use: a file only you can read)
Look around:
   ls -lR $work/backup
   $bin ls -r --passfile $work/password $work/backup
   $bin restore --passfile $work/password $work/backup $work/restored
   mkdir $work/mnt && gocryptfs -passfile $work/password $work/backup $work/mnt
       (and fusermount -u $work/mnt when done)
Delete it:
   rm -rf $work
EOF
