#!/usr/bin/env bash
# cryptbak versus gocryptfs -reverse (+ cp -a / rsync -a) and plain cp/rsync, warm cache.
#
#   sudo bench/run.sh                       full size: 2 GiB large + 50 000-file small corpus
#   sudo BENCH_SCALE=0.1 bench/run.sh       a tenth of that (quick check)
#
# Environment:
#   BENCH_DIR           where corpora and outputs live (default /var/tmp/cryptbak-bench)
#   BENCH_SCALE         corpus size factor (default 1)
#   BENCH_RUNS          measured runs per command (default 3; one warm-up run each)
#   BENCH_ONLY          "large" or "small" to run one corpus only
#   BENCH_OUT           where the copies are written (default $BENCH_DIR/out, the same
#                       disk); a tmpfs such as /dev/shm/cryptbak-bench takes the disk out
#                       of the measurement (needs RAM for two copies of a corpus)
#   CRYPTBAK            cryptbak binary (default: cargo build --release of this checkout)
#   BENCH_PREPARE_ONLY  1: only generate the corpora (e.g. while the machine is busy)
#   CRYPTBAK_BASELINE   optional second cryptbak binary measured side by side (e.g. an
#                       older build), shown as "cryptbak export (baseline)"
#
# Needs root (FUSE mounts). Installs hyperfine, GNU time, rsync, gocryptfs and fuse3
# with apt-get if they are missing. No caches are dropped: every command runs with the
# source in the page cache (the warm-up run makes sure of that). Outputs are deleted
# before each run (untimed). Corpora are generated once per scale and reused.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/cryptbak-bench}
BENCH_SCALE=${BENCH_SCALE:-1}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_ONLY=${BENCH_ONLY:-}
CRYPTBAK_BASELINE=${CRYPTBAK_BASELINE:-}

if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh needs root (gocryptfs -reverse FUSE mounts)" >&2
  exit 1
fi

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v rsync >/dev/null || need+=(rsync)
command -v gocryptfs >/dev/null || need+=(gocryptfs)
command -v fusermount3 >/dev/null || command -v fusermount >/dev/null || need+=(fuse3)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
umount_cmd=$(command -v fusermount3 || command -v fusermount)

if [ -z "${CRYPTBAK:-}" ]; then
  (cd "$repo" && cargo build --release --quiet)
  CRYPTBAK=$repo/target/release/cryptbak
fi
[ -x "$CRYPTBAK" ] || { echo "no cryptbak binary at $CRYPTBAK" >&2; exit 1; }

scale_tag=$(printf '%s' "$BENCH_SCALE" | tr -c '0-9a-zA-Z' '_')
corpora=$BENCH_DIR/corpus-$scale_tag
out=${BENCH_OUT:-$BENCH_DIR/out}
mnt=$BENCH_DIR/mnt
results=$BENCH_DIR/results-$scale_tag
pw=$BENCH_DIR/password
mkdir -p "$corpora" "$out" "$mnt" "$results"
rm -f "$results"/*.json "$results"/table.md
mountpoint -q "$mnt" && "$umount_cmd" -u "$mnt"
trap 'mountpoint -q "$mnt" && "$umount_cmd" -u "$mnt" || true' EXIT
echo "benchmark password" > "$pw"

# Generate a corpus (once) and give it a gocryptfs -reverse config. scrypt cost 2^10:
# the key derivation (which both tools pay once per run) should not dominate the small
# runs or cryptbak's peak RSS.
prepare_corpus() {
  local kind=$1 src=$corpora/$1
  if [ ! -e "$src.done" ]; then
    rm -rf "$src"
    echo "== generating $kind corpus (scale $BENCH_SCALE) in $src" >&2
    python3 "$repo/bench/gen_corpus.py" "$kind" "$src" "$BENCH_SCALE"
    gocryptfs -init -reverse -q -scryptn 10 -passfile "$pw" "$src" >/dev/null
    touch "$src.done"
  fi
}

plain_bytes() {
  find "$1" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}'
}

# cp -a of a reverse mount, as one timed command (mount, copy, unmount).
gc_cp() { # src dest
  echo "gocryptfs -reverse -q -passfile $pw $1 $mnt 2>>$results/gocryptfs.log && cp -a $mnt/. $2; rc=\$?; $umount_cmd -u $mnt; exit \$rc"
}
gc_rsync() { # src dest
  echo "gocryptfs -reverse -q -passfile $pw $1 $mnt 2>>$results/gocryptfs.log && rsync -a --delete $mnt/ $2/; rc=\$?; $umount_cmd -u $mnt; exit \$rc"
}

peak_rss_kb() { # command...
  /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'
}

# One hyperfine invocation per scenario: commands side by side, JSON for the table.
# Arguments: scenario-name then triples of (label, prepare, command).
run_scenario() {
  local scenario=$1
  shift
  local args=() json=$results/$scenario.json
  while [ $# -gt 0 ]; do
    args+=(--prepare "$2" -n "$1" "$3")
    shift 3
  done
  echo "== $scenario" >&2
  hyperfine --warmup 1 --runs "$BENCH_RUNS" --style basic --export-json "$json" "${args[@]}" >&2
}

cb="$CRYPTBAK export -q --passfile $pw"
# The cost of durability (the syncfs before deleting and at the end): the same export
# without it, side by side.
cb_nosync="$cb --no-sync"
base="${CRYPTBAK_BASELINE:+$CRYPTBAK_BASELINE export -q --passfile $pw}"

{
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc)); $(uptime -p)"
} > "$results/load.txt"

if [ "${BENCH_PREPARE_ONLY:-}" = 1 ]; then
  for kind in large small; do
    if [ -z "$BENCH_ONLY" ] || [ "$BENCH_ONLY" = "$kind" ]; then
      prepare_corpus "$kind"
    fi
  done
  exit 0
fi

declare -A BYTES RSS
for kind in large small; do
  if [ -n "$BENCH_ONLY" ] && [ "$BENCH_ONLY" != "$kind" ]; then
    continue
  fi
  prepare_corpus "$kind"
  src=$corpora/$kind
  BYTES[$kind]=$(plain_bytes "$src")
  o=$out/$kind
  rm -rf "$o"
  mkdir -p "$o"

  # Each prepare step deletes every copy but cryptbak's, so at most two copies exist at
  # once; gocryptfs runs last, and its copy is compared with cryptbak's afterwards.
  others="$o/base $o/gc $o/cp"
  others="$others $o/ns"
  scen=(
    "cryptbak export" "rm -rf $o/cb $others" "$cb $src $o/cb"
    "cryptbak export --no-sync" "rm -rf $others" "$cb_nosync $src $o/ns"
  )
  if [ -n "$base" ]; then
    scen+=("cryptbak export (baseline)" "rm -rf $others" "$base $src $o/base")
  fi
  scen+=(
    "cp -a (plaintext)" "rm -rf $others && mkdir $o/cp" "cp -a $src/. $o/cp"
    "gocryptfs -reverse + cp -a" "rm -rf $others && mkdir $o/gc" "$(gc_cp "$src" "$o/gc")"
  )
  run_scenario "$kind-fresh" "${scen[@]}"

  # The benchmark is only meaningful if cryptbak wrote what gocryptfs shows.
  if diff -r --no-dereference "$o/cb" "$o/gc" >/dev/null; then
    echo "$kind: cryptbak output is identical to the gocryptfs -reverse view (diff -r)" >> "$results/load.txt"
  else
    echo "$kind: WARNING: cryptbak output differs from the gocryptfs -reverse view" | tee -a "$results/load.txt" >&2
  fi
  RSS[$kind-fresh]=$(rm -rf "$o/cb" "$o/gc" && peak_rss_kb $cb "$src" "$o/cb")
  rm -rf "$o/cb"

  if [ "$kind" = small ]; then
    # No-change incremental runs against up-to-date copies made here (untimed).
    rm -rf "$o/cb-inc" "$o/base-inc" "$o/rs-inc" "$o/plain-inc"
    $cb "$src" "$o/cb-inc"
    mkdir -p "$o/rs-inc" "$o/plain-inc"
    sh -c "$(gc_rsync "$src" "$o/rs-inc")"
    rsync -a --delete "$src/" "$o/plain-inc/"
    rm -rf "$o/ns-inc"
    $cb_nosync "$src" "$o/ns-inc"
    scen=(
      "cryptbak export (no change)" "true" "$cb $src $o/cb-inc"
      "cryptbak export --no-sync (no change)" "true" "$cb_nosync $src $o/ns-inc"
    )
    if [ -n "$base" ]; then
      $base "$src" "$o/base-inc"
      scen+=("cryptbak export (baseline, no change)" "true" "$base $src $o/base-inc")
    fi
    scen+=(
      "gocryptfs -reverse + rsync -a (no change)" "true" "$(gc_rsync "$src" "$o/rs-inc")"
      "rsync -a plaintext (no change)" "true" "rsync -a --delete $src/ $o/plain-inc/"
    )
    run_scenario "$kind-nochange" "${scen[@]}"
    RSS[$kind-nochange]=$(peak_rss_kb $cb "$src" "$o/cb-inc")
  fi
  rm -rf "$o"
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$results/load.txt"

# The table: medians, ratios to cryptbak, throughput of plaintext bytes.
{
  echo
  echo "## cryptbak benchmark ($(date -u +%Y-%m-%dT%H:%MZ), scale $BENCH_SCALE, $BENCH_RUNS runs + 1 warm-up, warm cache)"
  echo
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
  echo "- cryptbak: $CRYPTBAK ($(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?'))${CRYPTBAK_BASELINE:+; baseline: $CRYPTBAK_BASELINE}"
  echo "- $(gocryptfs -version 2>/dev/null | head -1); $(cp --version | head -1); $(rsync --version | head -1)"
  echo "- copies written to $out ($(df --output=fstype "$out" | tail -1))"
  sed 's/^/- /' "$results/load.txt"
  for kind in large small; do
    [ -n "${BYTES[$kind]:-}" ] || continue
    echo "- $kind corpus: $(find "$corpora/$kind" -type f | wc -l) files, $(find "$corpora/$kind" -type d | wc -l) dirs, ${BYTES[$kind]} plaintext bytes"
  done
  echo
  echo "| scenario | command | median s | min s | max s | MB/s | × cryptbak |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for json in "$results"/*-fresh.json "$results"/*-nochange.json; do
    [ -e "$json" ] || continue
    scenario=$(basename "$json" .json)
    kind=${scenario%%-*}
    python3 - "$json" "$scenario" "${BYTES[$kind]:-0}" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["results"]
scenario, nbytes = sys.argv[2], int(float(sys.argv[3]))
ref = data[0]["median"]
for r in data:
    med = r["median"]
    rate = f"{nbytes / med / 1e6:.0f}" if "no change" not in r["command"] else "–"
    print(f"| {scenario} | {r['command']} | {med:.3f} | {r['min']:.3f} | {r['max']:.3f} | {rate} | {med / ref:.2f} |")
PY
  done
  echo
  echo "Peak RSS of cryptbak export (/usr/bin/time -v, separate run):"
  for k in "${!RSS[@]}"; do
    echo "- $k: $((RSS[$k] / 1024)) MiB"
  done | sort
  echo
  echo "Hyperfine JSON with every run: $results/"
} | tee "$results/table.md"
