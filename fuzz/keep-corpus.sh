#!/usr/bin/env bash
# Minimizes each target's fuzzing corpus (corpus/<target>, grown by `cargo fuzz run`)
# with `cargo fuzz cmin` and keeps the result in kept/<target>/, which `cargo test`
# replays. Inputs larger than MAX_KEEP bytes are left out to keep the repository small.
# Usage: fuzz/keep-corpus.sh [target...]   (default: all targets; needs nightly)
set -euo pipefail
cd "$(dirname "$0")"
max=${MAX_KEEP:-16384}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config names content restore_tar restore_tar_entries)
for t in "${targets[@]}"; do
  [ -d "corpus/$t" ] || { echo "keep-corpus: no corpus/$t, skipped" >&2; continue; }
  cargo +nightly fuzz cmin -O "$t" "corpus/$t" >/dev/null 2>&1
  rm -rf "kept/$t" && mkdir -p "kept/$t"
  find "corpus/$t" -type f -size -"$((max + 1))"c -exec cp {} "kept/$t/" \;
  echo "$t: $(ls "kept/$t" | wc -l) inputs, $(du -sh "kept/$t" | cut -f1)"
done
