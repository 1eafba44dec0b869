#!/usr/bin/env python3
"""Deterministic benchmark corpora for bench/run.sh.

    gen_corpus.py large DIR SCALE   20 files, 2 GiB × SCALE in total (videos, images)
    gen_corpus.py small DIR SCALE   50 000 × SCALE entries, ~1.1 GB × SCALE, a home
                                    directory's size mix over 5 directory levels

The same arguments always give the same tree: names, sizes, bytes, symlinks and
mtimes all come from fixed seeds. DIR must not exist yet.
"""

import math
import os
import random
import sys

GIB = 1 << 30
# File bytes are slices of one pseudo-random pool (incompressible, fast to write).
POOL = memoryview(random.Random(0xC0FFEE).randbytes(8 << 20))
# Fixed timestamps: 2024-01-01 plus a few seconds per entry.
T0 = 1_704_067_200 * 10**9


def write_file(path, size, rng):
    off = rng.randrange(len(POOL))
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(POOL) - off, 1 << 20)
            f.write(POOL[off : off + n])
            left -= n
            off = (off + n) % len(POOL)


def set_times(path, i):
    t = T0 + i * 1_000_000_007
    os.utime(path, ns=(t, t), follow_symlinks=False)


def large(root, scale):
    rng = random.Random(1)
    total = int(2 * GIB * scale)
    # 20 files of uneven, unaligned sizes that add up to `total`.
    weights = [rng.uniform(0.5, 1.5) for _ in range(20)]
    sizes = [int(total * w / sum(weights)) for w in weights]
    sizes[-1] += total - sum(sizes)
    os.makedirs(os.path.join(root, "Videos", "2023"))
    os.makedirs(os.path.join(root, "Images"))
    for i, size in enumerate(sizes):
        if i < 12:
            path = os.path.join(root, "Videos", "2023", f"clip-{i:02d}.mkv")
        elif i < 16:
            path = os.path.join(root, "Videos", f"movie-{i:02d}.mp4")
        else:
            path = os.path.join(root, "Images", f"disk-{i:02d}.img")
        write_file(path, size, rng)
        set_times(path, i)
    for i, d in enumerate(["Videos/2023", "Videos", "Images", ""]):
        set_times(os.path.join(root, d), 100 + i)


SYLLABLES = "ka lo mi ne ru sa to vi da fe go hu ja ke li mo nu pa re si ta we xo yu zi".split()
EXTS = (
    [".txt"] * 6 + [".jpg"] * 5 + [".png"] * 3 + [".pdf"] * 3 + [".json"] * 2
    + [".py", ".rs", ".c", ".h", ".md", ".html", ".css", ".js", ".mp3", ".docx", ".xlsx",
       ".zip", ".gz", ".o", ".log", ".conf", ".ini", ".svg", ".csv", ""]
)
ODD_NAMES = ["Überweisung 2023", "résumé final", "notes (copy)", "日本語のファイル", "a b  c",
             "weird'quote", "semi;colon", "#hash#", "~backup", "UPPER lower"]


def make_name(rng, taken, is_dir):
    while True:
        r = rng.random()
        if r < 0.002:
            # A name long enough for gocryptfs long-name hashing (> 175 bytes).
            name = "-".join(rng.choice(SYLLABLES) for _ in range(rng.randint(62, 80)))
        elif r < 0.01:
            name = rng.choice(ODD_NAMES) + str(rng.randint(0, 99))
        else:
            parts = rng.randint(1, 4)
            name = "_".join(
                "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))
                for _ in range(parts)
            )
            if rng.random() < 0.2:
                name += str(rng.randint(0, 2025))
        if not is_dir:
            name += rng.choice(EXTS)
        if rng.random() < 0.03:
            name = "." + name
        if name not in taken and len(name.encode()) <= 255:
            taken.add(name)
            return name


def small(root, scale):
    rng = random.Random(2)
    n_entries = max(50, round(50_000 * scale))
    target = int(1.1e9 * scale)

    # Five directory levels below the root, branching 8, 5, 4, 3, 3 (2128 directories).
    dirs = [root]
    names_in = {root: set()}
    frontier = [root]
    for fanout in [8, 5, 4, 3, 3]:
        nxt = []
        for d in frontier:
            for _ in range(fanout):
                p = os.path.join(d, make_name(rng, names_in[d], True))
                os.mkdir(p)
                names_in[p] = set()
                nxt.append(p)
        dirs += nxt
        frontier = nxt

    # Sizes: log-normal, median ~3 KB (most files are small, a few are large), 1% empty,
    # then scaled so the total is `target`.
    n_links = n_entries // 200
    n_files = n_entries - n_links
    raw = []
    for _ in range(n_files):
        if rng.random() < 0.01:
            raw.append(0.0)
        else:
            raw.append(min(math.exp(rng.gauss(math.log(3000), 2.0)), 256e6))
    k = target / sum(raw)
    sizes = [int(s * k) for s in raw]

    i = 0
    files = []
    for size in sizes:
        d = rng.choice(dirs)
        p = os.path.join(d, make_name(rng, names_in[d], False))
        write_file(p, size, rng)
        set_times(p, i)
        files.append(p)
        i += 1
    for _ in range(n_links):
        d = rng.choice(dirs)
        p = os.path.join(d, make_name(rng, names_in[d], False))
        target_file = rng.choice(files)
        os.symlink(os.path.relpath(target_file, d), p)
        set_times(p, i)
        i += 1
    # Directory mtimes last, deepest first (creating entries changed them).
    for d in sorted(dirs, key=lambda p: -p.count(os.sep)):
        set_times(d, i)
        i += 1


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("large", "small"):
        sys.exit(__doc__)
    kind, root, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
    os.makedirs(root)
    (large if kind == "large" else small)(root, scale)


if __name__ == "__main__":
    main()
