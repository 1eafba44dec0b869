#!/usr/bin/env bash
# Writes the seed corpus (fuzz/seeds/<target>/) from a real export made with the key
# the harness uses, so the fuzzer starts from inputs that get past authentication.
# Usage: fuzz/make-seeds.sh [path/to/cryptbak]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")"
bin=${1:-}
if [ -z "$bin" ]; then
  (cd .. && cargo build -q --release)
  bin=../target/release/cryptbak
fi
key=$(sed -n 's/.*"\([0-9a-f-]\{71\}\)".*/\1/p' src/lib.rs)
[ -n "$key" ] || { echo "make-seeds: MASTER_KEY_HEX not found in src/lib.rs" >&2; exit 1; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/src/dir/sub"
printf 'hello\n' >"$t/src/a"
head -c 9000 /dev/zero | tr '\0' 'z' >"$t/src/dir/big"
ln -s ../a "$t/src/dir/lnk"
ln "$t/src/a" "$t/src/dir/hard"
: >"$t/src/dir/sub/empty"
printf 'x' >"$t/src/$(printf 'L%.0s' $(seq 180))"
mkfifo "$t/src/fifo"
touch -d @1500000000 "$t/src"/* "$t/src/dir"/*

rm -rf seeds && mkdir -p seeds/{config,names,content,restore_tar,restore_tar_entries}
"$bin" export -q --masterkey "$key" --tar - "$t/src" 2>/dev/null >seeds/restore_tar/export.tar
"$bin" export -q --masterkey "$key" "$t/src" "$t/exp" 2>/dev/null
for opt in "" --deterministic-names --plaintextnames "--longnamemax 62"; do
  d=$(mktemp -d -p "$t")
  printf 'pw\n' >"$t/pw"
  # shellcheck disable=SC2086
  "$bin" init -q --scryptn 10 --passfile "$t/pw" $opt "$d" >/dev/null 2>&1
  cp "$d/.gocryptfs.reverse.conf" "seeds/config/init${opt// /}.conf"
done
python3 - "$t/exp" <<'PY'
import os, sys
exp = sys.argv[1]
diriv = open(os.path.join(exp, "gocryptfs.diriv"), "rb").read()
for i, name in enumerate(sorted(os.listdir(exp))):
    if name.startswith("gocryptfs."):
        continue
    open(f"seeds/names/root-{i}", "wb").write(b"\x01" + diriv + name.encode())
    p = os.path.join(exp, name)
    if os.path.isfile(p) and not os.path.islink(p):
        open(f"seeds/content/root-{i}", "wb").write(b"\x00" + open(p, "rb").read())
for dirpath, _, files in os.walk(exp):
    for f in files:
        p = os.path.join(dirpath, f)
        if f.endswith(".name"):
            open("seeds/names/longname", "wb").write(b"\x01" + diriv + open(p, "rb").read())
        elif f != "gocryptfs.diriv" and os.path.isfile(p) and not os.path.islink(p):
            open(f"seeds/content/{f[:20]}", "wb").write(b"\x00" + open(p, "rb").read())
PY
# Structured target: random bytes are random entry lists.
python3 - <<'PY'
import random
random.seed(1)
for i, n in enumerate([64, 256, 512, 1024, 2048, 4096]):
    open(f"seeds/restore_tar_entries/random-{i}", "wb").write(bytes(random.randrange(256) for _ in range(n)))
PY
ls seeds/*/ | head -40
