#!/usr/bin/env bash
# Remote destinations (issue 15), side by side against one local S3 server (s3s-fs on
# 127.0.0.1): a first run into an empty bucket and a no-change run, for
#   1. cryptbak export straight to s3://
#   2. rclone sync of a prepared local cryptbak DEST   (the two-step flow of today)
#   3. gocryptfs -reverse + rclone sync of the mount  (the FUSE flow)
# Each command runs BENCH_RUNS times; the table gives the median wall time and the peak
# RSS (GNU time; for the gocryptfs flow also the gocryptfs daemon's own peak, VmHWM),
# and s3s-fs's CPU time over all runs of each command (the server shares the machine).
# Then, unless BENCH_LARGE=0, one export of a single large file (BENCH_LARGE_MIB,
# default 1024) for cryptbak's peak memory with a file far larger than its buffers.
#
#   sudo bench/remote.sh                     small corpus at BENCH_SCALE (default 0.1)
#
# Environment: BENCH_DIR, BENCH_SCALE, BENCH_RUNS, CRYPTBAK as for bench/run.sh;
#   RCLONE_FLAGS        extra rclone flags for both peers (default: none, rclone's own
#                       defaults: --transfers 4 --checkers 8)
#   CRYPTBAK_S3_EXPORT  the cryptbak command, with {SRC} and {URL} placeholders (default
#                       '$CRYPTBAK export -q --no-progress --passfile $pw {SRC} {URL}')
#   TRANSFERS_SWEEP     e.g. "2 4 8 16": also measure cryptbak with each --transfers N
#   BENCH_LARGE, BENCH_LARGE_MIB   see above
# Needs root (FUSE), gocryptfs, rclone, s3s-fs (bash .ci/s3s-fs installs it).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/cryptbak-bench}
BENCH_SCALE=${BENCH_SCALE:-0.1}
BENCH_RUNS=${BENCH_RUNS:-3}
RCLONE_FLAGS=${RCLONE_FLAGS:-}
scale_tag=$(printf '%s' "$BENCH_SCALE" | tr -c '0-9a-zA-Z' '_')
small=$BENCH_DIR/corpus-$scale_tag/small
src=$BENCH_DIR/corpus-$scale_tag/small-flat
pw=$BENCH_DIR/password
work=$BENCH_DIR/remote-$scale_tag
mnt=$BENCH_DIR/mnt-remote
results=$BENCH_DIR/results-$scale_tag
umount_cmd=$(command -v fusermount3 || command -v fusermount)

if [ -z "${CRYPTBAK:-}" ]; then
  (cd "$repo" && cargo build --release --quiet)
  CRYPTBAK=$repo/target/release/cryptbak
fi
CRYPTBAK_S3_EXPORT=${CRYPTBAK_S3_EXPORT:-"$CRYPTBAK export -q --no-progress --passfile $pw {SRC} {URL}"}
TRANSFERS_SWEEP=${TRANSFERS_SWEEP:-}
BENCH_LARGE=${BENCH_LARGE:-1}
BENCH_LARGE_MIB=${BENCH_LARGE_MIB:-1024}

mkdir -p "$BENCH_DIR" "$results" "$mnt"
[ -e "$pw" ] || echo "benchmark password" > "$pw"
if [ ! -e "$small.done" ]; then
  rm -rf "$small"
  mkdir -p "$(dirname "$small")"
  echo "== generating the small corpus (scale $BENCH_SCALE) in $small" >&2
  python3 "$repo/bench/gen_corpus.py" small "$small" "$BENCH_SCALE"
  gocryptfs -init -reverse -q -scryptn 10 -passfile "$pw" "$small" >/dev/null
  touch "$small.done"
fi
# s3s-fs keeps each object's metadata in a file of its root named after the base64 of
# the key, so a key longer than about 160 bytes fails (ENAMETOOLONG, HTTP 500) with
# every client. The small corpus is five levels deep (ciphertext keys up to ~265
# bytes): this bench uses the same files one level deep (top directory/name, same
# bytes, modes and mtimes; a clash gets a numeric suffix) so that every key fits.
if [ ! -e "$src.done" ]; then
  rm -rf "$src"
  python3 - "$small" "$src" <<'PY'
import os, shutil, sys
small, flat = sys.argv[1], sys.argv[2]
os.mkdir(flat)
shutil.copy2(os.path.join(small, ".gocryptfs.reverse.conf"), flat)
for top in sorted(os.listdir(small)):
    tp = os.path.join(small, top)
    if not os.path.isdir(tp) or os.path.islink(tp):
        continue
    os.mkdir(os.path.join(flat, top))
    for d, dirs, files in os.walk(tp):
        dirs.sort()
        for f in sorted(files):
            dst, n = os.path.join(flat, top, f), 0
            while os.path.lexists(dst):
                n += 1
                dst = os.path.join(flat, top, f"{n}.{f}")
            shutil.copy2(os.path.join(d, f), dst, follow_symlinks=False)
PY
  touch "$src.done"
fi

# ---- the S3 server ------------------------------------------------------------------
# A fresh s3s-fs (empty root, new port) for every measured first + no-change pair:
# s3s-fs keeps the metadata of all its buckets as files in ONE directory of its root,
# and gets slower as that fills, so a shared server would favour whoever runs first.
s3s=$(bash "$repo/.ci/s3s-fs")
rm -rf "$work"
mkdir -p "$work"
s3pid=
cleanup() {
  mountpoint -q "$mnt" && "$umount_cmd" -u "$mnt" || true
  [ -z "$s3pid" ] || kill "$s3pid" 2>/dev/null || true
}
trap cleanup EXIT
# cryptbak's metadata cache of the buckets (the no-change run uses it instead of a HEAD
# per object), kept with the rest of this benchmark.
export CRYPTBAK_CACHE_DIR=$work/cache
# What cryptbak (AWS variables) and rclone (remote T:, from the environment) use.
export AWS_ACCESS_KEY_ID=bench-key AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
unset AWS_CA_BUNDLE  # rclone 1.60 refuses to start with it on a plain-http endpoint
export RCLONE_CONFIG=$work/no-rclone.conf RCLONE_CONFIG_T_TYPE=s3 RCLONE_CONFIG_T_PROVIDER=Other
export RCLONE_CONFIG_T_ACCESS_KEY_ID=bench-key RCLONE_CONFIG_T_SECRET_ACCESS_KEY=bench-secret
export RCLONE_CONFIG_T_FORCE_PATH_STYLE=true

# fresh_server: stop the previous server, start one on an empty root ($root) with the
# bucket $b. Whole buckets, not prefixes: rclone HEADs a prefix to see whether it names
# a file, s3s-fs answers 500 for a key that is a directory on its disk, and rclone then
# spends ~80 s in retry backoff before listing (real S3 answers 404 at once). That
# would measure s3s-fs, not rclone.
server_n=0
fresh_server() {
  [ -z "$s3pid" ] || { kill "$s3pid"; wait "$s3pid" 2>/dev/null || true; }
  server_n=$((server_n + 1))
  root=$work/s3root-$server_n
  b=bench
  mkdir -p "$root/$b"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$s3s" --host 127.0.0.1 --port "$port" --access-key bench-key --secret-key bench-secret "$root" \
    >>"$work/s3s-fs.log" 2>&1 &
  s3pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port RCLONE_CONFIG_T_ENDPOINT=http://127.0.0.1:$port
}

# s3s-fs's CPU time so far, in clock ticks (utime + stime).
server_ticks() { awk '{print $14 + $15}' "/proc/$s3pid/stat"; }

# measure LABEL CMD: one run, appends "label wall_s peak_rss_kb server_ticks" to
# $work/times. A failing command stops the benchmark: its time would mean nothing.
measure() {
  local label=$1 cmd=$2 t0
  t0=$(server_ticks)
  if ! /usr/bin/time -f "%e %M" -o "$work/time.1" sh -c "$cmd" >/dev/null 2>>"$work/commands.log"; then
    echo "FAILED: $label: $cmd (see $work/commands.log)" >&2
    exit 1
  fi
  echo "$label $(cat "$work/time.1") $(( $(server_ticks) - t0 ))" >> "$work/times"
}

# Everyone must have uploaded the same files as the local DEST, byte for byte (checked
# on s3s-fs's disk, where object KEY of bucket B is the file B/KEY; rclone does not copy
# symlinks, cryptbak stores them as KEY.rclonelink objects, so regular files only): a
# benchmark of a wrong result is worthless. Then the server's root goes.
sums() { (cd "$1" && find . -type f ! -name '*.rclonelink' -exec md5sum {} + | sort -k2); }
check_bucket() { # label
  if [ "$(sums "$root/$b")" != "$(sums "$dest")" ]; then
    echo "FAILED: $1: the bucket differs from the cryptbak DEST ($root/$b)" >&2
    exit 1
  fi
  rm -rf "$root"
}

# The local cryptbak DEST for peer 2, prepared once (untimed: peer 2 measures the sync).
dest=$work/dest
echo "== preparing the local cryptbak DEST" >&2
"$CRYPTBAK" export -q --passfile "$pw" "$src" "$dest"

gc_rss=$work/gocryptfs-rss
# gocryptfs in the foreground in the background, so that its own peak RSS can be read
# before the unmount; the timed command is mount + rclone sync + unmount.
gc_sync() { # bucket
  cat <<SH
gocryptfs -reverse -fg -q -passfile $pw $src $mnt 2>>$work/gocryptfs.log & gpid=\$!
for _ in \$(seq 200); do mountpoint -q $mnt && break; sleep 0.05; done
rclone sync $RCLONE_FLAGS $mnt T:$1; rc=\$?
awk '/VmHWM/ {print \$2}' /proc/\$gpid/status >> $gc_rss
$umount_cmd -u $mnt; wait \$gpid; exit \$rc
SH
}

# pair LABEL CMD: first run into a fresh server's empty bucket, then the no-change run.
pair() {
  fresh_server
  local cmd=${2//\{BUCKET\}/$b}
  measure "$1:first" "$cmd"
  measure "$1:no-change" "$cmd"
  check_bucket "$1"
}

cb_cmd=${CRYPTBAK_S3_EXPORT//\{SRC\}/$src}
cb_cmd=${cb_cmd//\{URL\}/s3://\{BUCKET\}}
jobs=("cryptbak-export-s3|$cb_cmd")
for t in $TRANSFERS_SWEEP; do
  jobs+=("cryptbak-export-s3--transfers-$t|$cb_cmd --transfers $t")
done
jobs+=("rclone-sync-of-dest|rclone sync $RCLONE_FLAGS $dest T:{BUCKET}")
jobs+=("gocryptfs-reverse+rclone-sync|GC_SYNC")

: > "$work/times"
for run in $(seq "$BENCH_RUNS"); do
  echo "== run $run of $BENCH_RUNS" >&2
  # A different command goes first in every round (the machine is shared).
  n=${#jobs[@]}
  for i in $(seq 0 $((n - 1))); do
    job=${jobs[$(( (i + run - 1) % n ))]}
    label=${job%%|*} cmd=${job#*|}
    if [ "$cmd" = GC_SYNC ]; then
      fresh_server
      measure "$label:first" "$(gc_sync "$b")"
      measure "$label:no-change" "$(gc_sync "$b")"
      check_bucket "$label"
    else
      pair "$label" "$cmd"
    fi
  done
done
echo "every bucket held the same files as the cryptbak DEST" >&2

files=$(find "$src" -type f | wc -l)
bytes=$(du -sb "$dest" | cut -f1)
{
  echo "corpus: small, scale $BENCH_SCALE: $files files, $bytes bytes of ciphertext; $BENCH_RUNS runs;"
  echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc))"
  echo
  echo "| command | run | median s | min s | peak RSS MiB | s3s-fs CPU s (median) |"
  echo "|---|---|---:|---:|---:|---:|"
  python3 - "$work/times" "$gc_rss" <<'PY'
import statistics, sys
rows = {}
tick = 100.0  # USER_HZ
for line in open(sys.argv[1]):
    label, wall, rss, ticks = line.split()
    rows.setdefault(label, []).append((float(wall), int(rss), int(ticks) / tick))
try:
    gc = [int(x) for x in open(sys.argv[2]).read().split()]
except FileNotFoundError:
    gc = []
for label, v in rows.items():
    cmd, run = label.split(":")
    walls = [w for w, _, _ in v]
    rss = max(r for _, r, _ in v) / 1024
    server = statistics.median(s for _, _, s in v)
    extra = f" (+ gocryptfs {max(gc) / 1024:.0f})" if cmd.startswith("gocryptfs") and gc else ""
    print(f"| {cmd} | {run} | {statistics.median(walls):.2f} | {min(walls):.2f} | {rss:.0f}{extra} | {server:.2f} |")
PY
} | tee "$results/remote.md"

# Peak memory with one file much larger than every buffer (multipart upload, parts of
# 8 MiB, 2 in flight): bounded by the buffers, not by the file.
if [ "$BENCH_LARGE" = 1 ]; then
  big=$work/large-src
  mkdir -p "$big"
  cp "$small/.gocryptfs.reverse.conf" "$big/"
  head -c "$((BENCH_LARGE_MIB << 20))" /dev/urandom > "$big/one-large-file"
  fresh_server
  cmd=${CRYPTBAK_S3_EXPORT//\{SRC\}/$big}
  cmd=${cmd//\{URL\}/s3://$b}
  : > "$work/times"
  measure "cryptbak-export-s3-one-${BENCH_LARGE_MIB}MiB-file:first" "$cmd"
  read -r _ wall rss _ < "$work/times"
  echo "one ${BENCH_LARGE_MIB} MiB file: ${wall} s, peak RSS $((rss / 1024)) MiB" | tee -a "$results/remote.md"
  rm -rf "$big" "$root"
fi
