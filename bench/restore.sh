#!/usr/bin/env bash
# Restore speed: `cryptbak restore` against the FUSE way (`gocryptfs` forward mount of the
# backup + `cp -a` out of it + unmount), on the same reverse-made backup, for two trees:
#   big:   1 GiB in 10 files of 100 MiB
#   small: 5000 files of 1..16 KiB in 50 directories
# Each is timed 3 times; the median is reported, with the ratio (FUSE time / cryptbak time).
# Caches are warm for both (dropping them would disturb other users of the machine).
#
# Usage: bench/restore.sh [WORKDIR]      (needs gocryptfs, fusermount, /dev/fuse; ~4 GiB free)
#   CRYPTBAK=path/to/cryptbak   use this binary instead of building target/release/cryptbak
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${CRYPTBAK:-target/release/cryptbak}
if [ -z "${CRYPTBAK:-}" ]; then
  cargo build --release --quiet
fi
command -v gocryptfs >/dev/null || { echo "gocryptfs is not installed"; exit 1; }
[ -e /dev/fuse ] || { echo "no /dev/fuse: cannot run the FUSE side"; exit 1; }

WORK=${1:-$(mktemp -d /tmp/cryptbak-bench-restore.XXXXXX)}
mkdir -p "$WORK"
MNT="$WORK/mnt"
cleanup() {
  fusermount -u "$MNT" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
echo "bench pw" > "$WORK/pw"

make_big() {
  mkdir -p "$1"
  for i in $(seq 0 9); do
    head -c $((100 * 1024 * 1024)) /dev/urandom > "$1/file$i"
  done
}

make_small() {
  mkdir -p "$1"
  python3 - "$1" <<'EOF'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(7)
for d in range(50):
    os.makedirs(f"{root}/dir{d}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/dir{d}/f{f}", "wb") as fh:
            fh.write(os.urandom(rnd.randint(1024, 16384)))
EOF
}

now() { date +%s.%N; }

median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

bench_tree() {
  local name=$1 maker=$2
  local src="$WORK/$name-src" bak="$WORK/$name-bak" out="$WORK/$name-out"
  $maker "$src"
  "$BIN" init -q --scryptn 10 --passfile "$WORK/pw" "$src"
  "$BIN" export -q --passfile "$WORK/pw" "$src" "$bak"
  local bytes; bytes=$(du -sb --exclude=.gocryptfs.reverse.conf "$src" | cut -f1)
  local files; files=$(find "$src" -type f ! -name .gocryptfs.reverse.conf | wc -l)
  local ours=() fuse=()
  for run in 1 2 3; do
    rm -rf "$out"
    local t0; t0=$(now)
    "$BIN" restore -q --passfile "$WORK/pw" "$bak" "$out"
    sync -f "$out"
    local t1; t1=$(now)
    ours+=("$(echo "$t1 - $t0" | bc -l)")
    diff -rq --exclude=.gocryptfs.reverse.conf "$src" "$out" >/dev/null || { echo "MISMATCH after cryptbak restore"; exit 1; }

    rm -rf "$out"; mkdir -p "$MNT"
    t0=$(now)
    gocryptfs -q -ro -passfile "$WORK/pw" "$bak" "$MNT"
    cp -a "$MNT/." "$out"
    fusermount -u "$MNT"
    sync -f "$out"
    t1=$(now)
    fuse+=("$(echo "$t1 - $t0" | bc -l)")
    diff -rq --exclude=.gocryptfs.reverse.conf "$src" "$out" >/dev/null || { echo "MISMATCH after gocryptfs + cp -a"; exit 1; }
  done
  local mo mf; mo=$(median "${ours[@]}"); mf=$(median "${fuse[@]}")
  printf '%-6s %6d files %8.1f MiB | cryptbak restore %7.2f s (%6.1f MiB/s) | gocryptfs+cp -a %7.2f s (%6.1f MiB/s) | ratio %.2fx   [runs: %s | %s]\n' \
    "$name" "$files" "$(echo "$bytes/1048576" | bc -l)" \
    "$mo" "$(echo "$bytes/1048576/$mo" | bc -l)" \
    "$mf" "$(echo "$bytes/1048576/$mf" | bc -l)" \
    "$(echo "$mf/$mo" | bc -l)" "${ours[*]}" "${fuse[*]}"
  rm -rf "$src" "$bak" "$out"
}

echo "machine: $(nproc) cores, $(uname -r), $(gocryptfs -version | head -1)"
bench_tree big make_big
bench_tree small make_small
