//! Deterministic builders for varied plaintext trees, and `compare_trees`,
//! which lists every difference between two trees.

use std::collections::BTreeMap;
use std::fs::{self, File, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use crate::util::{esc, os, run_ok};

// ---------------------------------------------------------------------------
// PRNG

/// xorshift64* — deterministic, no dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

// ---------------------------------------------------------------------------
// Builder

/// Creates entries below a root, addressed by relative byte paths.
pub struct Builder {
    pub root: PathBuf,
    pub rng: Rng,
    pub root_user: bool,
}

/// Which optional parts a varied tree gets.
#[derive(Clone, Copy, Debug)]
pub struct VariedOpts {
    pub seed: u64,
    /// A plaintext `gocryptfs.conf` file in the root (collides with the
    /// config file in plaintextnames mode, FORMAT.md §15).
    pub root_gocryptfs_conf: bool,
}

impl Default for VariedOpts {
    fn default() -> Self {
        VariedOpts {
            seed: 1,
            root_gocryptfs_conf: true,
        }
    }
}

impl Builder {
    pub fn new(root: &Path, seed: u64) -> Builder {
        Builder {
            root: root.to_path_buf(),
            rng: Rng::new(seed),
            root_user: crate::util::is_root(),
        }
    }

    pub fn p(&self, rel: &[u8]) -> PathBuf {
        self.root.join(os(rel))
    }

    pub fn dir(&mut self, rel: &[u8]) {
        fs::create_dir_all(self.p(rel)).unwrap_or_else(|e| panic!("mkdir {}: {e}", esc(rel)));
    }

    pub fn file(&mut self, rel: &[u8], content: &[u8]) {
        fs::write(self.p(rel), content).unwrap_or_else(|e| panic!("write {}: {e}", esc(rel)));
    }

    /// A file of `size` pseudo-random bytes.
    pub fn rfile(&mut self, rel: &[u8], size: usize) {
        let c = self.rng.bytes(size);
        self.file(rel, &c);
    }

    pub fn symlink(&mut self, rel: &[u8], target: &[u8]) {
        symlink(os(target), self.p(rel)).unwrap_or_else(|e| panic!("symlink {}: {e}", esc(rel)));
    }

    pub fn fifo(&mut self, rel: &[u8]) {
        run_ok(Command::new("mkfifo").arg(self.p(rel)));
    }

    /// A character device (only as root; returns false if not possible).
    pub fn chardev(&mut self, rel: &[u8], major: u32, minor: u32) -> bool {
        if !self.root_user {
            return false;
        }
        Command::new("mknod")
            .arg(self.p(rel))
            .arg("c")
            .arg(major.to_string())
            .arg(minor.to_string())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// A unix domain socket file (the listener is closed at once). Bound
    /// under a short name first (sun_path is limited to 108 bytes).
    pub fn socket(&mut self, rel: &[u8]) {
        let tmp = self.root.join(".sock.tmp");
        std::os::unix::net::UnixListener::bind(&tmp)
            .unwrap_or_else(|e| panic!("bind {}: {e}", tmp.display()));
        fs::rename(&tmp, self.p(rel)).unwrap_or_else(|e| panic!("rename socket {}: {e}", esc(rel)));
    }

    pub fn chmod(&mut self, rel: &[u8], mode: u32) {
        fs::set_permissions(self.p(rel), fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", esc(rel)));
    }

    /// lchown, only when running as root (no-op otherwise).
    pub fn chown(&mut self, rel: &[u8], uid: u32, gid: u32) {
        if self.root_user {
            lchown(self.p(rel), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("lchown {}: {e}", esc(rel)));
        }
    }

    pub fn hardlink(&mut self, existing: &[u8], new: &[u8]) {
        fs::hard_link(self.p(existing), self.p(new))
            .unwrap_or_else(|e| panic!("link {} {}: {e}", esc(existing), esc(new)));
    }

    /// Gives every entry (root included) a pseudo-random mtime with
    /// nanoseconds. Call last: creating entries changes directory mtimes.
    pub fn set_all_mtimes(&mut self) {
        let root = self.root.clone();
        let mut all = Vec::new();
        walk(&root, b"", &mut all);
        // Children before parents does not matter (setting times does not
        // touch the parent), but keep it stable anyway.
        for (i, (rel, md)) in all.iter().enumerate() {
            let secs = 1_000_000_000 + self.rng.below(800_000_000);
            let nanos = match i % 17 {
                0 => 0,
                1 => 999_999_999,
                _ => self.rng.below(1_000_000_000),
            };
            set_mtime(&self.p(rel), md, secs, nanos as u32);
        }
    }
}

/// Sets mtime (and atime) of one entry, not following symlinks.
pub fn set_mtime(path: &Path, md: &fs::Metadata, secs: u64, nanos: u32) {
    let ft = md.file_type();
    if ft.is_file() || ft.is_dir() {
        let t = UNIX_EPOCH + Duration::new(secs, nanos);
        let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        f.set_times(FileTimes::new().set_modified(t).set_accessed(t))
            .unwrap_or_else(|e| panic!("set_times {}: {e}", path.display()));
    } else {
        // symlinks, fifos, devices: must not be opened.
        run_ok(
            Command::new("touch")
                .arg("-h")
                .arg("-d")
                .arg(format!("@{secs}.{nanos:09}"))
                .arg(path),
        );
    }
}

/// A name of exactly `len` bytes (ASCII), distinct per `tag`.
pub fn name_of_len(tag: &str, len: usize) -> Vec<u8> {
    let mut n = format!("{tag}{len}_").into_bytes();
    if n.len() > len {
        n = b"abcdefghijklmnopqrstuvwxyz".to_vec();
    }
    let fill = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut i = 0;
    while n.len() < len {
        n.push(fill[i % fill.len()]);
        i += 1;
    }
    n.truncate(len);
    n
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    v.push(b'/');
    v.extend_from_slice(b);
    v
}

/// File sizes around the 4096-byte block boundaries.
pub const SIZES: &[usize] = &[
    0,
    1,
    15,
    16,
    17,
    4095,
    4096,
    4097,
    8191,
    8192,
    8193,
    3 * 4096 + 5,
    (1 << 20) + 7,
];

/// Name lengths (bytes) that the varied tree uses.
pub const NAME_LENS: &[usize] = &[
    1, 2, 15, 16, 17, 31, 32, 33, 62, 63, 64, 100, 150, 175, 176, 200, 254, 255,
];

/// Builds the big varied tree (see the module docs of the test plan: block
/// boundaries, name lengths, unicode, invalid UTF-8, reserved gocryptfs names,
/// deep paths, long-named dirs, symlinks, modes, owners, fifos, mtimes).
/// Contains no hard links.
pub fn build_varied(root: &Path, opts: VariedOpts) -> Builder {
    let mut b = Builder::new(root, opts.seed);

    // --- sizes
    b.dir(b"sizes");
    for &s in SIZES {
        let n = format!("sizes/size_{s}");
        b.rfile(n.as_bytes(), s);
    }
    b.file(b"sizes/zeros_8192", &[0u8; 8192]);
    b.file(b"sizes/zeros_4097", &[0u8; 4097]);

    // --- name lengths (files and dirs)
    b.dir(b"names");
    for &l in NAME_LENS {
        let n = cat(b"names", &name_of_len("f", l));
        let size = l % 50;
        b.rfile(&n, size);
    }
    for &l in &[62usize, 63, 64, 175, 176, 255] {
        let d = cat(b"names", &name_of_len("D", l));
        b.dir(&d);
        b.rfile(&cat(&d, b"inner"), 100);
    }
    // 255 bytes of two-byte characters (127 x U+00E9 + 'x')
    let mut n255 = "é".repeat(127).into_bytes();
    n255.push(b'x');
    assert_eq!(n255.len(), 255);
    b.rfile(&cat(b"names", &n255), 7);

    // --- unicode: NFC and NFD spellings of the same name side by side
    b.dir(b"unicode");
    b.rfile("unicode/caf\u{e9}".as_bytes(), 10);
    b.rfile("unicode/cafe\u{301}".as_bytes(), 11);
    b.rfile("unicode/日本語のファイル名".as_bytes(), 12);
    b.rfile("unicode/emoji_😀_🎉".as_bytes(), 13);
    b.dir("unicode/dir_\u{c5}ngstr\u{f6}m".as_bytes());
    b.rfile("unicode/dir_\u{c5}ngstr\u{f6}m/x".as_bytes(), 5);
    b.dir("unicode/dir_A\u{30a}ngstro\u{308}m".as_bytes());
    b.rfile("unicode/dir_A\u{30a}ngstro\u{308}m/x".as_bytes(), 6);

    // --- invalid UTF-8
    b.dir(b"badutf8");
    b.rfile(b"badutf8/bad\xff\xfename", 20);
    b.rfile(b"badutf8/\x80", 21);
    b.rfile(b"badutf8/latin1-\xe9t\xe9", 22);
    b.dir(b"badutf8/dir\xc3\x28");
    b.rfile(b"badutf8/dir\xc3\x28/f\xf0\x28\x8c\xbc", 23);
    b.symlink(b"badutf8/link\xfe", b"target\xff\xfe");

    // --- reserved-looking and odd names
    b.dir(b"special");
    for n in [
        &b"gocryptfs.diriv"[..],
        b"gocryptfs.conf",
        b".gocryptfs.reverse.conf",
        b"gocryptfs.longname.x",
        b"gocryptfs.longname.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.name",
        b"gocryptfs.conf.tmp",
        b" leading space",
        b"trailing space ",
        b"with space",
        b"new\nline",
        b"back\\slash",
        b"tab\there",
        b"quote\"'`",
        b"...",
        b".hidden",
        b"-dash",
        b"*?[glob]",
        b"%percent%",
        b"\x01ctrl\x7f",
    ] {
        b.rfile(&cat(b"special", n), 33);
    }
    b.rfile(b"gocryptfs.diriv", 16);
    b.rfile(b"gocryptfs.longname.rootfile", 40);
    if opts.root_gocryptfs_conf {
        b.rfile(b"gocryptfs.conf", 50);
    }

    // --- deep path: 15 levels
    let mut deep = b"deep".to_vec();
    b.dir(&deep);
    for i in 1..15 {
        deep = cat(&deep, format!("level{i:02}").as_bytes());
        b.dir(&deep);
        if i % 5 == 0 {
            b.rfile(&cat(&deep, b"mid"), 4100);
        }
    }
    b.rfile(&cat(&deep, b"leaf.txt"), 5000);
    b.symlink(&cat(&deep, b"up"), b"../../../../..");

    // --- long-named dirs with content
    let ld = name_of_len("LONGDIR", 180);
    b.dir(&ld);
    b.rfile(&cat(&ld, b"short"), 300);
    b.rfile(&cat(&ld, &name_of_len("longfile", 200)), 4097);
    b.dir(&cat(&ld, b"sub"));
    b.rfile(&cat(&cat(&ld, b"sub"), b"f"), 1);
    let nested = cat(&ld, &name_of_len("NESTED", 190));
    b.dir(&nested);
    b.rfile(&cat(&nested, b"inner"), 8193);
    b.rfile(&cat(&nested, &name_of_len("innerlong", 176)), 17);
    b.symlink(&cat(&nested, b"rel"), b"../short");
    b.symlink(&cat(&ld, b"link_rel"), b"short");
    b.symlink(&cat(&ld, b"link_abs"), b"/usr/share");
    b.symlink(&cat(&ld, &name_of_len("longlink", 177)), b"sub/f");
    b.fifo(&cat(&ld, &name_of_len("longfifo", 181)));
    b.dir(&cat(&ld, b"emptysub"));

    // --- symlinks
    b.dir(b"links");
    b.symlink(b"links/rel", b"../sizes/size_1");
    b.symlink(b"links/abs", b"/etc/passwd");
    b.symlink(b"links/dangling", b"does/not/exist");
    b.symlink(b"links/todir", b"../deep");
    b.symlink(b"links/self", b"self");
    b.symlink(b"links/dot", b".");
    b.symlink(b"links/weird", b"weird\ntarget with spaces\\");
    let mut t1000 = b"../".to_vec();
    t1000.extend(name_of_len("t", 997));
    b.symlink(b"links/target1000", &t1000);
    // Longest target whose encryption (4095 chars) still fits a symlink.
    b.symlink(b"links/target3039", &name_of_len("edge", 3039));
    b.symlink(&cat(b"links", &name_of_len("longnamedlink", 200)), b"short");
    b.symlink(
        &cat(b"links", &name_of_len("longnamelongtarget", 176)),
        &t1000,
    );
    b.symlink(b"rootlink", b"links");

    // --- modes and owners
    b.dir(b"modes");
    for (n, m) in [
        (&b"modes/f0600"[..], 0o600),
        (b"modes/f0755", 0o755),
        (b"modes/f0444", 0o444),
        (b"modes/f0640", 0o640),
        (b"modes/f0400", 0o400),
    ] {
        b.rfile(n, 100);
        b.chmod(n, m);
    }
    b.dir(b"modes/d0700");
    b.rfile(b"modes/d0700/f", 9);
    b.chmod(b"modes/d0700", 0o700);
    b.dir(b"modes/sticky");
    b.rfile(b"modes/sticky/f", 9);
    b.chmod(b"modes/sticky", 0o1777);
    b.dir(b"modes/d0555");
    b.rfile(b"modes/d0555/f", 9);
    b.rfile(b"modes/owned", 77);
    b.chown(b"modes/owned", 1234, 5678);
    b.dir(b"modes/owned_dir");
    b.rfile(b"modes/owned_dir/f", 3);
    b.chown(b"modes/owned_dir", 2000, 3000);
    b.symlink(b"modes/owned_link", b"owned");
    b.chown(b"modes/owned_link", 4321, 8765);
    // chown clears setuid/setgid: chmod after chown
    b.rfile(b"modes/setuid", 50);
    b.chown(b"modes/setuid", 1234, 5678);
    b.chmod(b"modes/setuid", 0o4755);
    b.rfile(b"modes/setgid", 50);
    b.chmod(b"modes/setgid", 0o2750);
    b.rfile(b"modes/all_bits", 5);
    b.chmod(b"modes/all_bits", 0o7777);
    b.chmod(b"modes/d0555", 0o555);

    // --- empty dirs
    b.dir(b"empty");
    b.dir(b"empty_nested/a/b/c");

    // --- a dir with 300 small files
    b.dir(b"many");
    for i in 0..300 {
        let s = (b.rng.below(200)) as usize;
        b.rfile(format!("many/f{i:03}").as_bytes(), s);
    }

    // --- special files
    b.fifo(b"fifo");
    b.fifo(b"special/fifo in sub");
    b.chardev(b"chardev", 1, 3);
    b.chardev(b"special/chardev_long_named_is_not_needed", 1, 5);
    // (sockets are covered by interop_export::export_special_files only, so
    // that a decision about them shows up in one test, not in all of them)

    // the root directory itself gets an unusual mode
    b.chmod(b"", 0o751);

    b.set_all_mtimes();
    b
}

/// A small tree with hard links (nlink > 1), including a long-named link and
/// links in different directories.
pub fn build_hardlink_tree(root: &Path) -> Builder {
    let mut b = Builder::new(root, 7);
    b.rfile(b"a", 10_000);
    b.dir(b"sub");
    b.hardlink(b"a", b"sub/a_link");
    b.hardlink(b"a", &name_of_len("a_long_link", 190));
    let ld = name_of_len("LONGDIR", 180);
    b.dir(&ld);
    b.hardlink(b"a", &cat(&ld, b"a_in_longdir"));
    b.rfile(b"sub/b", 4096);
    b.hardlink(b"sub/b", b"b_link");
    b.rfile(b"single", 123);
    b.rfile(b"empty_a", 0);
    b.hardlink(b"empty_a", b"sub/empty_b");
    b.set_all_mtimes();
    b
}

/// `ndirs` directories with `per_dir` files each, random small sizes.
pub fn build_many_files(root: &Path, ndirs: usize, per_dir: usize) -> Builder {
    let mut b = Builder::new(root, 99);
    for d in 0..ndirs {
        let dn = format!("dir{d:02}");
        b.dir(dn.as_bytes());
        for f in 0..per_dir {
            let s = b.rng.below(6000) as usize;
            let n = if f % 37 == 0 {
                let mut n = format!("{dn}/").into_bytes();
                n.extend(name_of_len(&format!("long{f}_"), 180));
                n
            } else {
                format!("{dn}/file{f:04}.dat").into_bytes()
            };
            b.rfile(&n, s);
        }
    }
    b.set_all_mtimes();
    b
}

// ---------------------------------------------------------------------------
// Comparison

/// Metadata of one entry that `compare_trees` looks at.
#[derive(Clone, Debug)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub rdev: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
}

impl Meta {
    fn from(md: &fs::Metadata) -> Meta {
        Meta {
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            mtime: md.mtime(),
            mtime_nsec: md.mtime_nsec(),
            rdev: md.rdev(),
            nlink: md.nlink(),
            dev: md.dev(),
            ino: md.ino(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.mode & 0o170000 {
            0o100000 => "file",
            0o040000 => "dir",
            0o120000 => "symlink",
            0o010000 => "fifo",
            0o020000 => "chardev",
            0o060000 => "blockdev",
            0o140000 => "socket",
            _ => "unknown",
        }
    }
}

/// Recursively collects (relative path, metadata) of everything below
/// `dir`, including `dir` itself as the empty path. Does not follow symlinks.
pub fn walk(dir: &Path, rel: &[u8], out: &mut Vec<(Vec<u8>, fs::Metadata)>) {
    let full = if rel.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(os(rel))
    };
    let md =
        fs::symlink_metadata(&full).unwrap_or_else(|e| panic!("lstat {}: {e}", full.display()));
    let is_dir = md.is_dir();
    out.push((rel.to_vec(), md));
    if is_dir {
        let mut names: Vec<Vec<u8>> = fs::read_dir(&full)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", full.display()))
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() { n } else { cat(rel, &n) };
            walk(dir, &r, out);
        }
    }
}

/// All entries of a tree by relative path.
pub fn scan(root: &Path) -> BTreeMap<Vec<u8>, Meta> {
    let mut v = Vec::new();
    walk(root, b"", &mut v);
    v.into_iter().map(|(p, md)| (p, Meta::from(&md))).collect()
}

/// Options for `compare_trees_with`.
#[derive(Default, Clone, Debug)]
pub struct CompareOpts {
    /// Relative paths ignored on both sides (with everything below them).
    pub ignore: Vec<Vec<u8>>,
    /// Do not compare the contents (and size) of regular files whose nlink
    /// is > 1 on side A (hard links, FORMAT.md §10), nor of `.name` files
    /// that belong to them.
    pub skip_multilink_content: bool,
}

/// One difference found by `compare_trees_with`.
#[derive(Clone, Debug)]
pub struct Diff {
    pub path: Vec<u8>,
    pub what: String,
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", show_rel(&self.path), self.what)
    }
}

/// Displays a relative path ("." for the root), escaped.
pub fn show_rel(p: &[u8]) -> String {
    if p.is_empty() {
        ".".to_string()
    } else {
        esc(p)
    }
}

/// Every difference between trees `a` and `b` (empty = identical): names,
/// type, full st_mode, uid/gid, size (files and symlinks), mtime in s and ns,
/// contents, symlink targets, rdev. Ignores atime, ctime, inode numbers,
/// nlink and directory sizes.
pub fn compare_trees(a: &Path, b: &Path) -> Vec<String> {
    compare_trees_with(a, b, &CompareOpts::default())
        .iter()
        .map(|d| d.to_string())
        .collect()
}

fn ignored(p: &[u8], opts: &CompareOpts) -> bool {
    opts.ignore
        .iter()
        .any(|i| p == i.as_slice() || (p.len() > i.len() && p.starts_with(i) && p[i.len()] == b'/'))
}

/// How many entries of `a` a comparison with `opts` looks at (for the counts in the
/// compatibility matrix).
pub fn count_compared(a: &Path, opts: &CompareOpts) -> usize {
    scan(a).keys().filter(|p| !ignored(p, opts)).count()
}

/// `compare_trees` with options; returns structured differences.
pub fn compare_trees_with(a: &Path, b: &Path, opts: &CompareOpts) -> Vec<Diff> {
    let ma = scan(a);
    let mb = scan(b);
    let mut diffs = Vec::new();
    let mut d = |path: &[u8], what: String| {
        diffs.push(Diff {
            path: path.to_vec(),
            what,
        })
    };

    // .name files whose long-named entry is hard-linked on side A
    let mut skip_content: Vec<Vec<u8>> = Vec::new();
    if opts.skip_multilink_content {
        for (p, m) in &ma {
            if m.kind() == "file" && m.nlink > 1 {
                skip_content.push(p.clone());
                let mut n = p.clone();
                n.extend_from_slice(b".name");
                skip_content.push(n);
            }
        }
    }

    for (p, x) in &ma {
        if ignored(p, opts) {
            continue;
        }
        let Some(y) = mb.get(p) else {
            d(p, format!("only in A ({})", x.kind()));
            continue;
        };
        if x.kind() != y.kind() {
            d(p, format!("type differs: A={} B={}", x.kind(), y.kind()));
            continue;
        }
        if x.mode != y.mode {
            d(p, format!("mode differs: A={:o} B={:o}", x.mode, y.mode));
        }
        if (x.uid, x.gid) != (y.uid, y.gid) {
            d(
                p,
                format!("owner differs: A={}:{} B={}:{}", x.uid, x.gid, y.uid, y.gid),
            );
        }
        if (x.mtime, x.mtime_nsec) != (y.mtime, y.mtime_nsec) {
            d(
                p,
                format!(
                    "mtime differs: A={}.{:09} B={}.{:09}",
                    x.mtime, x.mtime_nsec, y.mtime, y.mtime_nsec
                ),
            );
        }
        let pa = a.join(os(p));
        let pb = b.join(os(p));
        match x.kind() {
            "file" => {
                if skip_content.contains(p) {
                    continue;
                }
                if x.size != y.size {
                    d(p, format!("size differs: A={} B={}", x.size, y.size));
                }
                let (ca, cb) = match (fs::read(&pa), fs::read(&pb)) {
                    (Ok(ca), Ok(cb)) => (ca, cb),
                    (ra, rb) => {
                        d(
                            p,
                            format!(
                                "read error: A={} B={}",
                                ra.map(|_| "ok".to_string())
                                    .unwrap_or_else(|e| e.to_string()),
                                rb.map(|_| "ok".to_string())
                                    .unwrap_or_else(|e| e.to_string())
                            ),
                        );
                        continue;
                    }
                };
                if ca != cb {
                    let first = ca
                        .iter()
                        .zip(cb.iter())
                        .position(|(u, v)| u != v)
                        .unwrap_or(ca.len().min(cb.len()));
                    let ndiff = ca.iter().zip(cb.iter()).filter(|(u, v)| u != v).count();
                    let mut what = format!(
                        "content differs: first at byte {first} ({ndiff} bytes differ in the \
                         common prefix; lengths A={} B={})",
                        ca.len(),
                        cb.len()
                    );
                    if ca.len() <= 300 && cb.len() <= 300 {
                        what.push_str(&format!("\n      A={}\n      B={}", esc(&ca), esc(&cb)));
                    }
                    d(p, what);
                }
            }
            "symlink" => {
                if x.size != y.size {
                    d(
                        p,
                        format!("symlink size differs: A={} B={}", x.size, y.size),
                    );
                }
                let ta = fs::read_link(&pa).map(|t| t.as_os_str().as_bytes().to_vec());
                let tb = fs::read_link(&pb).map(|t| t.as_os_str().as_bytes().to_vec());
                match (ta, tb) {
                    (Ok(ta), Ok(tb)) if ta == tb => {}
                    (Ok(ta), Ok(tb)) => d(
                        p,
                        format!(
                            "symlink target differs:\n      A={}\n      B={}",
                            short(&ta),
                            short(&tb)
                        ),
                    ),
                    (ta, tb) => d(p, format!("readlink: A={ta:?} B={tb:?}")),
                }
            }
            "chardev" | "blockdev" if x.rdev != y.rdev => {
                d(p, format!("rdev differs: A={:#x} B={:#x}", x.rdev, y.rdev));
            }
            _ => {}
        }
    }
    for (p, y) in &mb {
        if !ignored(p, opts) && !ma.contains_key(p) {
            d(p, format!("only in B ({})", y.kind()));
        }
    }
    diffs
}

fn short(b: &[u8]) -> String {
    if b.len() <= 200 {
        esc(b)
    } else {
        format!(
            "{}...{} ({} bytes)",
            esc(&b[..80]),
            esc(&b[b.len() - 40..]),
            b.len()
        )
    }
}

/// Formats a diff list for a panic message (at most `max` entries).
pub fn format_diffs(diffs: &[Diff], max: usize, annotate: &dyn Fn(&[u8]) -> String) -> String {
    let mut s = format!("{} difference(s):\n", diffs.len());
    for d in diffs.iter().take(max) {
        s.push_str(&format!("  - {d}\n"));
        let a = annotate(&d.path);
        if !a.is_empty() {
            s.push_str(&format!("      (plaintext: {a})\n"));
        }
    }
    if diffs.len() > max {
        s.push_str(&format!("  ... and {} more\n", diffs.len() - max));
    }
    s
}

// ---------------------------------------------------------------------------
// Self-tests: compare_trees must see every kind of difference.

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gocryptfs::cp_a;
    use crate::util::TestDir;

    fn copy(a: &Path) -> TestDir {
        let b = TestDir::new("copy");
        let out = cp_a(a, b.path());
        assert!(out.status.success(), "{}", crate::util::show_output(&out));
        b
    }

    fn expect_diff(a: &Path, b: &Path, path: &[u8], needle: &str) {
        let diffs = compare_trees_with(a, b, &CompareOpts::default());
        assert!(
            diffs
                .iter()
                .any(|d| d.path == path && d.what.contains(needle)),
            "expected a '{needle}' difference at {}, got:\n{}",
            esc(path),
            format_diffs(&diffs, 50, &|_| String::new())
        );
        assert_eq!(diffs.len(), 1, "exactly one difference expected: {diffs:?}");
    }

    #[test]
    fn tree_varied_builds_and_copies_identically() {
        let a = TestDir::new("varied");
        build_varied(a.path(), VariedOpts::default());
        let all = scan(a.path());
        assert!(all.len() > 400, "tree too small: {}", all.len());
        // spot checks of the builder
        let m = &all[&b"modes/setuid".to_vec()];
        assert_eq!(m.mode & 0o7777, 0o4755);
        assert_eq!(all[&b"modes/sticky".to_vec()].mode & 0o7777, 0o1777);
        assert_eq!(all[&b"fifo".to_vec()].kind(), "fifo");
        assert!(all.contains_key("unicode/caf\u{e9}".as_bytes()));
        assert!(all.contains_key("unicode/cafe\u{301}".as_bytes()));
        assert!(all
            .values()
            .any(|m| m.mtime_nsec != 0 && m.kind() == "symlink"));
        let b = copy(a.path());
        let diffs = compare_trees(a.path(), b.path());
        assert!(
            diffs.is_empty(),
            "cp -a copy differs:\n{}",
            diffs.join("\n")
        );
    }

    fn all_has_chardev(p: &Path) -> bool {
        fs::symlink_metadata(p.join("chardev")).is_ok()
    }

    #[test]
    fn tree_compare_detects_each_kind_of_difference() {
        let a = TestDir::new("base");
        let root_user = build_varied(a.path(), VariedOpts::default()).root_user;

        // one byte of content, same size, same mtime
        let b = copy(a.path());
        let f = b.join("sizes/size_8193");
        let md = fs::symlink_metadata(&f).unwrap();
        let mut c = fs::read(&f).unwrap();
        c[4096] ^= 1;
        fs::write(&f, &c).unwrap();
        set_mtime(&f, &md, md.mtime() as u64, md.mtime_nsec() as u32);
        expect_diff(
            a.path(),
            b.path(),
            b"sizes/size_8193",
            "content differs: first at byte 4096",
        );

        // one nanosecond of mtime
        let b = copy(a.path());
        let f = b.join("modes/f0600");
        let md = fs::symlink_metadata(&f).unwrap();
        let ns = (md.mtime_nsec() as u32 + 1) % 1_000_000_000;
        set_mtime(&f, &md, md.mtime() as u64, ns);
        expect_diff(a.path(), b.path(), b"modes/f0600", "mtime differs");

        // mtime of a symlink
        let b = copy(a.path());
        let f = b.join("links/abs");
        let md = fs::symlink_metadata(&f).unwrap();
        set_mtime(&f, &md, md.mtime() as u64 + 1, md.mtime_nsec() as u32);
        expect_diff(a.path(), b.path(), b"links/abs", "mtime differs");

        // mode (setuid bit dropped)
        let b = copy(a.path());
        fs::set_permissions(b.join("modes/setuid"), fs::Permissions::from_mode(0o755)).unwrap();
        expect_diff(a.path(), b.path(), b"modes/setuid", "mode differs");

        // mode of the root directory
        let b = copy(a.path());
        let md = fs::symlink_metadata(b.path()).unwrap();
        fs::set_permissions(b.path(), fs::Permissions::from_mode(0o711)).unwrap();
        set_mtime(b.path(), &md, md.mtime() as u64, md.mtime_nsec() as u32);
        expect_diff(a.path(), b.path(), b"", "mode differs");

        // symlink target
        let b = copy(a.path());
        let l = b.join("links/rel");
        let md = fs::symlink_metadata(&l).unwrap();
        let dir = l.parent().unwrap().to_path_buf();
        let dmd = fs::symlink_metadata(&dir).unwrap();
        fs::remove_file(&l).unwrap();
        symlink("../sizes/size_0", &l).unwrap();
        set_mtime(&l, &md, md.mtime() as u64, md.mtime_nsec() as u32);
        set_mtime(&dir, &dmd, dmd.mtime() as u64, dmd.mtime_nsec() as u32);
        let diffs = compare_trees(a.path(), b.path());
        assert!(
            diffs.iter().any(|d| d.contains("symlink target differs")),
            "{diffs:?}"
        );

        // owner
        if root_user {
            let b = copy(a.path());
            lchown(b.join("modes/owned_link"), Some(1), None).unwrap();
            expect_diff(a.path(), b.path(), b"modes/owned_link", "owner differs");
        }

        // device numbers
        if root_user && all_has_chardev(a.path()) {
            let b = copy(a.path());
            let p = b.join("chardev");
            let md = fs::symlink_metadata(&p).unwrap();
            let dmd = fs::symlink_metadata(b.path()).unwrap();
            fs::remove_file(&p).unwrap();
            run_ok(Command::new("mknod").arg(&p).arg("c").arg("1").arg("7"));
            fs::set_permissions(&p, fs::Permissions::from_mode(md.mode() & 0o7777)).unwrap();
            set_mtime(&p, &md, md.mtime() as u64, md.mtime_nsec() as u32);
            set_mtime(b.path(), &dmd, dmd.mtime() as u64, dmd.mtime_nsec() as u32);
            expect_diff(a.path(), b.path(), b"chardev", "rdev differs");
        }

        // an extra entry and a missing one (directory mtimes restored)
        let b = copy(a.path());
        let dir = b.join("special");
        let dmd = fs::symlink_metadata(&dir).unwrap();
        fs::write(dir.join("extra"), b"x").unwrap();
        set_mtime(&dir, &dmd, dmd.mtime() as u64, dmd.mtime_nsec() as u32);
        expect_diff(a.path(), b.path(), b"special/extra", "only in B");
        expect_diff(b.path(), a.path(), b"special/extra", "only in A");

        // a file that became a dir
        let b = copy(a.path());
        let dir = b.join("badutf8");
        let dmd = fs::symlink_metadata(&dir).unwrap();
        let p = dir.join(os(b"\x80"));
        fs::remove_file(&p).unwrap();
        fs::create_dir(&p).unwrap();
        set_mtime(&dir, &dmd, dmd.mtime() as u64, dmd.mtime_nsec() as u32);
        expect_diff(a.path(), b.path(), b"badutf8/\x80", "type differs");

        // ignore list hides exactly the ignored subtree
        let opts = CompareOpts {
            ignore: vec![b"badutf8/\x80".to_vec()],
            ..Default::default()
        };
        assert!(compare_trees_with(a.path(), b.path(), &opts).is_empty());
    }
}
