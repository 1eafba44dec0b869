#!/usr/bin/env bash
# Build cryptbak, back up an example tree, and prove the backup with a real gocryptfs:
#   bash examples/quickstart.sh
# Works on a fresh machine with Rust; uses gocryptfs (forward mount) if it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/cryptbak
work=$(mktemp -d)
trap 'fusermount -u "$work/mnt" 2>/dev/null || true; rm -rf "$work"' EXIT

# An example home directory: text, a big file, a long name, a symlink, nested dirs.
src=$work/home
mkdir -p "$src/Documents/taxes" "$src/Photos"
echo "hello" > "$src/Documents/notes.txt"
seq 1 100000 > "$src/Documents/taxes/2025.csv"
head -c 5000000 /dev/urandom > "$src/Photos/holiday.jpg"
touch "$src/Documents/$(printf 'a%.0s' {1..200})"
ln -s Documents/notes.txt "$src/notes-link"

echo "correct horse battery staple" > "$work/pw"
"$bin" init --passfile "$work/pw" --scryptn 12 "$src"
"$bin" export --passfile "$work/pw" "$src" "$work/backup"
echo
echo "== the encrypted backup (what gocryptfs -reverse would show):"
ls -la "$work/backup"

if command -v gocryptfs >/dev/null && [ -e /dev/fuse ]; then
  mkdir "$work/mnt"
  gocryptfs -q -passfile "$work/pw" "$work/backup" "$work/mnt" 2>/dev/null
  # The forward mount shows the plaintext; the source's config became the backup's
  # gocryptfs.conf, which a forward mount uses and does not show.
  diff -r -x .gocryptfs.reverse.conf "$src" "$work/mnt"
  echo "== gocryptfs mounts the backup and shows exactly the source: OK"
  fusermount -u "$work/mnt"
else
  echo "(install gocryptfs and fuse3 to check the backup with a real gocryptfs mount)"
fi

echo
echo "== a second run rewrites only what changed:"
echo "more" >> "$src/Documents/notes.txt"
"$bin" export -v --passfile "$work/pw" "$src" "$work/backup"
