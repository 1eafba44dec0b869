#!/usr/bin/env bash
# Nightly-run benchmark: 1 % of the small corpus changed since the last run, side by side:
# incremental `cryptbak export` into an up-to-date DEST, `rsync -a` from a gocryptfs
# -reverse mount into an up-to-date copy (what users do today), and plaintext rsync.
#
#   sudo bench/incremental.sh          (after bench/run.sh generated the corpus)
#
# Same environment as bench/run.sh (BENCH_DIR, BENCH_SCALE, BENCH_RUNS, BENCH_OUT, CRYPTBAK).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/cryptbak-bench}
BENCH_SCALE=${BENCH_SCALE:-1}
BENCH_RUNS=${BENCH_RUNS:-3}
scale_tag=$(printf '%s' "$BENCH_SCALE" | tr -c '0-9a-zA-Z' '_')
src=$BENCH_DIR/corpus-$scale_tag/small
out=${BENCH_OUT:-$BENCH_DIR/out}/incremental
mnt=$BENCH_DIR/mnt
pw=$BENCH_DIR/password
results=$BENCH_DIR/results-$scale_tag
[ -e "$src" ] || { echo "no corpus at $src: run bench/run.sh first (BENCH_PREPARE_ONLY=1 is enough)" >&2; exit 1; }
if [ -z "${CRYPTBAK:-}" ]; then
  (cd "$repo" && cargo build --release --quiet)
  CRYPTBAK=$repo/target/release/cryptbak
fi
umount_cmd=$(command -v fusermount3 || command -v fusermount)
mkdir -p "$out" "$mnt" "$results"
trap 'mountpoint -q "$mnt" && "$umount_cmd" -u "$mnt" || true' EXIT

# Every 100th regular file (sorted, so the same files every time) gets one more byte and
# a new mtime before each measured run of each command.
list=$results/one-percent.txt
(cd "$src" && find . -type f ! -name .gocryptfs.reverse.conf | sort | awk 'NR % 100 == 0') > "$list"
change="cd $src && while IFS= read -r f; do printf x >> \"\$f\"; done < $list"

gc_rsync="gocryptfs -reverse -q -passfile $pw $src $mnt 2>/dev/null && rsync -a --delete $mnt/ $out/rs/; rc=\$?; $umount_cmd -u $mnt; exit \$rc"
cb="$CRYPTBAK export -q --passfile $pw $src $out/cb"
plain="rsync -a --delete $src/ $out/plain/"

echo "== bringing the three copies up to date (untimed)" >&2
sh -c "$cb"; sh -c "$gc_rsync"; sh -c "$plain"

echo "== 1 % changed ($(wc -l < "$list") of $(find "$src" -type f | wc -l) files), $BENCH_RUNS runs each" >&2
hyperfine --warmup 1 --runs "$BENCH_RUNS" --style basic --export-json "$results/small-1pct.json" \
  --prepare "$change" -n "cryptbak export (1% changed)" "$cb" \
  --prepare "$change" -n "gocryptfs -reverse + rsync -a (1% changed)" "$gc_rsync" \
  --prepare "$change" -n "rsync -a plaintext (1% changed)" "$plain" >&2

python3 - "$results/small-1pct.json" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"]
base = statistics.median(r[0]["times"])
print("| scenario | command | median s | min s | × cryptbak |")
print("|---|---|---:|---:|---:|")
for x in r:
    m = statistics.median(x["times"])
    print(f"| small-1pct | {x['command']} | {m:.3f} | {min(x['times']):.3f} | {m / base:.2f} |")
PY
# Every prepare step changed the source again, so bring both encrypted copies up to date
# once more (untimed); then they must be identical.
sh -c "$cb"; sh -c "$gc_rsync"
diff -r --no-dereference "$out/cb" "$out/rs" >/dev/null 2>&1 && echo "cryptbak DEST equals the rsync'ed reverse view" >&2 || echo "WARNING: cryptbak DEST differs from the rsync'ed reverse view" >&2
