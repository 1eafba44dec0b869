//! Trees deeper than PATH_MAX: plaintext and ciphertext paths over 4096 bytes. gocryptfs
//! shows them (FUSE works a name at a time) and a `tar -c` of its mount copies them;
//! the export, which reaches everything through directory handles, must give the same
//! tree. Built and compared a directory handle at a time too (Python's `dir_fd`), since
//! no path-based tool can reach the bottom.

use std::path::Path;
use std::process::Command;

use crate::gocryptfs::{require_gocryptfs, Mount};
use crate::util::*;

/// Levels of the deep tree, and the length of each level's name: 30 × 151 bytes of
/// plaintext path; each name encrypts to 214 characters, so the view's paths are over
/// 6000 bytes too.
const LEVELS: usize = 30;
const NAME_LEN: usize = 150;

/// Builds the tree given as argv[1] (an existing directory) a handle at a time.
const BUILD: &str = r#"
import os, sys
levels, name_len = int(sys.argv[2]), int(sys.argv[3])
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for level in range(levels):
    name = ("L%02d" % level) + "x" * (name_len - 3)
    os.mkdir(name, 0o750, dir_fd=fd)
    with open(os.open("file%02d" % level, os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd), "wb") as f:
        f.write(b"level %d\n" % level * (level * 97 % 5000 + 1))
    os.symlink("../" * level + "target", "link%02d" % level, dir_fd=fd)
    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.utime("file%02d" % level, ns=(1, 1_500_000_000_000_000_000 + level), dir_fd=fd)
    os.close(fd)
    fd = sub
with open(os.open("bottom", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "wb") as f:
    f.write(b"the bottom\n" * 1000)
"#;

/// Prints one line per entry of a tree, sorted: path, type, permissions, owner, size
/// (not for directories), mtime in ns, and a SHA-256 of the content or symlink target.
/// `dir PATH` walks a directory a handle at a time; `tar FILE` reads a tar archive.
const MANIFEST: &str = r#"
import hashlib, os, stat, sys, tarfile
lines = []
def line(path, t, perm, uid, gid, size, mtime_ns, digest):
    lines.append("%s %s %o %d %d %s %d %s" % (ascii(path), t, perm, uid, gid, size if t == "f" else "-", mtime_ns, digest))
def walk(fd, rel):
    for name in os.listdir(fd):
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        path = rel + "/" + name if rel else name
        digest, t = "", "?"
        if stat.S_ISDIR(st.st_mode):
            t = "d"
        elif stat.S_ISLNK(st.st_mode):
            t, digest = "l", hashlib.sha256(os.fsencode(os.readlink(name, dir_fd=fd))).hexdigest()
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd), "rb") as f:
                for chunk in iter(lambda: f.read(1 << 16), b""):
                    h.update(chunk)
            t, digest = "f", h.hexdigest()
        line(path, t, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, digest)
        if t == "d":
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            walk(sub, path)
            os.close(sub)
def ns(member):
    text = member.pax_headers.get("mtime")
    if text is None:
        return int(member.mtime) * 10**9
    sec, _, frac = text.partition(".")
    return int(sec) * 10**9 + int((frac + "000000000")[:9]) * (-1 if sec.startswith("-") else 1)
if sys.argv[1] == "dir":
    root = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY)
    st = os.fstat(root)
    line(".", "d", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, 0, st.st_mtime_ns, "")
    walk(root, "")
else:
    with tarfile.open(sys.argv[2]) as tar:
        for m in tar:
            path = m.name[2:] if m.name.startswith("./") else m.name
            path = path.rstrip("/") or "."
            digest, t = "", "?"
            if m.isdir():
                t = "d"
            elif m.issym():
                t, digest = "l", hashlib.sha256(os.fsencode(m.linkname)).hexdigest()
            elif m.isfile():
                t, digest = "f", hashlib.sha256(tar.extractfile(m).read()).hexdigest()
            line(path, t, m.mode, m.uid, m.gid, m.size, ns(m), digest)
print("\n".join(sorted(lines)))
"#;

fn python(script: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    run_ok(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .args(args),
    )
    .stdout
}

fn manifest(kind: &str, path: &Path) -> String {
    String::from_utf8(python(MANIFEST, &[kind.as_ref(), path.as_os_str()])).unwrap()
}

#[test]
fn paths_longer_than_path_max_export_like_a_tar_of_the_mount() {
    if !require_gocryptfs("paths_longer_than_path_max_export_like_a_tar_of_the_mount") {
        return;
    }
    let w = Work::new("deep");
    python(
        BUILD,
        &[
            w.src.as_os_str(),
            LEVELS.to_string().as_ref(),
            NAME_LEN.to_string().as_ref(),
        ],
    );
    init_fast(&w.src, &w.pw);

    // The reference: `tar -c` of the reverse mount (GNU tar walks by handles, so it
    // reaches the bottom; no tar can extract such a tree again, so it is read as it is).
    let m = Mount::reverse(&w.src, &w.pw, &[]);
    let reference = w.path("mount.tar");
    run_ok(
        Command::new("tar")
            .args(["--format=posix", "-C"])
            .arg(m.path())
            .arg("-cf")
            .arg(&reference)
            .arg("."),
    );
    // And the mount itself, walked a handle at a time.
    let mounted = manifest("dir", m.path());
    drop(m);
    let want = manifest("tar", &reference);
    assert_eq!(mounted, want, "tar -c copied the mount whole");

    let dest = w.path("dest");
    export_ok(&w.src, &dest, &w.pw, &[]);
    let got = manifest("dir", &dest);
    let longest = got
        .lines()
        .map(|l| l.split(' ').next().unwrap().len())
        .max()
        .unwrap();
    assert!(longest > 6000, "the view's paths reach {longest} bytes");
    assert_eq!(
        want.lines().count(),
        got.lines().count(),
        "as many entries as the mount shows"
    );
    for (a, b) in want.lines().zip(got.lines()) {
        assert_eq!(a, b, "the export differs from the mount");
    }

    // An incremental run over it changes nothing, and the tar stream holds the same.
    let out = export_ok(&w.src, &dest, &w.pw, &[std::ffi::OsStr::new("-v")]);
    assert!(out.stdout.is_empty(), "{}", show_output(&out));
    assert_eq!(manifest("dir", &dest), got);
    let tar = w.path("deep.tar");
    run_ok(
        cryptbak()
            .args(["export", "-q", "--passfile"])
            .arg(&w.pw)
            .arg("--tar")
            .arg(&tar)
            .arg(&w.src),
    );
    assert_eq!(
        manifest("tar", &tar),
        want,
        "--tar holds what the mount shows"
    );
}
