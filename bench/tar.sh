#!/usr/bin/env bash
# Benchmark of `cryptbak export --tar -` against `tar -c` of a real `gocryptfs -reverse`
# mount, in the same run, on two corpora: one 2 GiB file, and 100 000 small files.
# Reports wall time, plaintext throughput and peak RSS (GNU time) of both sides.
#
#   bash bench/tar.sh [WORKDIR]
#
# Needs: cargo, gocryptfs, fusermount, GNU tar, /usr/bin/time (package `time`), perl,
# openssl, ~3 GB free in WORKDIR (default: a fresh directory under /tmp, removed at the
# end). The corpora are generated deterministically (fixed-key AES-CTR stream, fixed
# pseudo-random sizes), so runs on different machines read the same bytes.
# Both sides read from the page cache (each corpus is read once before timing), and
# both outputs go through `wc -c`, so neither side can skip the data.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in gocryptfs fusermount tar perl openssl; do
  command -v "$tool" >/dev/null || { echo "bench/tar.sh: $tool is required" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench/tar.sh: /usr/bin/time is required (apt-get install time)" >&2; exit 1; }

# CRYPTBAK=/path/to/binary skips the release build; BENCH_BIG_BYTES and BENCH_SMALL_DIRS
# shrink the corpora (for trying the script itself; the defaults are the benchmark).
if [ -n "${CRYPTBAK:-}" ]; then
  bin=$CRYPTBAK
else
  cargo build --release --quiet
  bin=$PWD/target/release/cryptbak
fi
big_bytes=${BENCH_BIG_BYTES:-2147483648}
small_dirs=${BENCH_SMALL_DIRS:-1000}

work=${1:-$(mktemp -d /tmp/cryptbak-bench-tar.XXXXXX)}
mkdir -p "$work"
mnt=$work/mnt
cleanup() {
  fusermount -u "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$mnt"
pw=$work/pw
echo "bench password" > "$pw"

rows=()

now() { date +%s.%N; }
# a - b, and a / b / 1e6, without bc
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s / 1e6 }'; }

# peak RSS in MB from a GNU time -v report
rss_mb() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }

# bench NAME SRC: time both sides on one corpus
bench() {
  local name=$1 src=$2
  local plain_bytes
  plain_bytes=$(du -sb --apparent-size "$src" | cut -f1)
  gocryptfs -init -reverse -q -scryptn 10 -passfile "$pw" "$src" >/dev/null
  # Warm the page cache so both sides read the same way.
  tar -cf - -C "$src" . | wc -c >/dev/null

  # cryptbak: only the export process is measured by time(1).
  local t0 t1 out
  t0=$(now)
  out=$( { /usr/bin/time -v -o "$work/time.cryptbak" \
      "$bin" export -q --passfile "$pw" --tar - "$src"; } | wc -c)
  t1=$(now)
  local c_secs c_rss
  c_secs=$(minus "$t1" "$t0")
  c_rss=$(rss_mb "$work/time.cryptbak")
  rows+=("$(printf '%-12s %-30s %8.2f %9s %9s %12d' "$name" "cryptbak export --tar -" "$c_secs" \
    "$(mbps "$plain_bytes" "$c_secs")" "$c_rss" "$out")")

  # gocryptfs -reverse + tar -c of the mount. time(1) measures tar; the daemon's
  # peak RSS (VmHWM) is read from /proc after the run.
  gocryptfs -reverse -q -nosyslog -passfile "$pw" "$src" "$mnt"
  local gpid
  # The daemon re-executes itself as `gocryptfs -fg -notifypid=N <our arguments>`.
  gpid=$(pgrep -f -n -- "-reverse -q -nosyslog -passfile $pw $src $mnt" || true)
  t0=$(now)
  out=$( { /usr/bin/time -v -o "$work/time.tar" tar -cf - -C "$mnt" .; } | wc -c)
  t1=$(now)
  local g_secs g_rss d_rss="?"
  g_secs=$(minus "$t1" "$t0")
  g_rss=$(rss_mb "$work/time.tar")
  if [ -n "$gpid" ] && [ -r "/proc/$gpid/status" ]; then
    d_rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$gpid/status")
  fi
  fusermount -u "$mnt"
  rows+=("$(printf '%-12s %-30s %8.2f %9s %9s %12d' "$name" "gocryptfs -reverse + tar -c" "$g_secs" \
    "$(mbps "$plain_bytes" "$g_secs")" "$g_rss+$d_rss" "$out")")
  rm -f "$src/.gocryptfs.reverse.conf"
}

echo "== corpus 1: one 2 GiB file (AES-CTR stream with a zero key)"
big=$work/big
mkdir -p "$big"
# openssl complains about the closed pipe once head has its 2 GiB; that is expected.
openssl enc -aes-128-ctr -nosalt -K 00000000000000000000000000000000 \
  -iv 00000000000000000000000000000000 -in /dev/zero 2>/dev/null \
  | head -c "$big_bytes" > "$big/big.bin" || true
[ "$(stat -c %s "$big/big.bin")" = "$big_bytes" ] || { echo "corpus generation failed" >&2; exit 1; }
bench "2GiB-file" "$big"
rm -rf "$big"

echo "== corpus 2: 100 000 small files (1 000 dirs x 100, 0..8191 bytes)"
small=$work/small
mkdir -p "$small"
perl -e '
  my ($root, $dirs) = @ARGV;
  my $x = 88172645463325252;              # xorshift64, fixed seed
  sub rnd { $x ^= ($x << 13) & 0xFFFFFFFFFFFFFFFF; $x ^= $x >> 7;
            $x ^= ($x << 17) & 0xFFFFFFFFFFFFFFFF; return $x; }
  my $pool = join "", map { chr(rnd() & 255) } 1 .. 65536;
  for my $d (0 .. $dirs - 1) {
    my $dir = sprintf "%s/d%03d", $root, $d;
    mkdir $dir or die "$dir: $!";
    for my $f (0 .. 99) {
      my $size = rnd() % 8192;
      my $off = rnd() % (65536 - 8192);
      open my $fh, ">", sprintf("%s/f%03d.dat", $dir, $f) or die $!;
      print $fh substr($pool, $off, $size);
      close $fh;
    }
  }' "$small" "$small_dirs"
bench "100k-files" "$small"

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1e6 }' /proc/meminfo) RAM, $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-12s %-30s %8s %9s %9s %12s\n' corpus tool "wall s" "MB/s" "RSS MB" "tar bytes"
printf '%s\n' "${rows[@]}"
echo "(MB/s = plaintext bytes / wall time; RSS for gocryptfs = tar + gocryptfs daemon)"
