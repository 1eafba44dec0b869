//! Helpers of the restore tests: running cryptbak, building varied plaintext trees,
//! comparing trees exactly, and driving the real gocryptfs (unmounted on drop).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PW: &str = "restore test password";

pub fn cryptbak() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cryptbak"));
    c.stdin(Stdio::null());
    c
}

pub fn show(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run and require exit code `code`.
pub fn expect(c: &mut Command, code: i32) -> Output {
    let o = c.output().expect("start command");
    assert_eq!(o.status.code(), Some(code), "{c:?}\n{}", show(&o));
    o
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn tempdir(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("cryptbak-restore-{label}-"))
        .tempdir()
        .expect("temp dir")
}

pub fn passfile(dir: &Path) -> PathBuf {
    let p = dir.join("pw");
    fs::write(&p, format!("{PW}\n")).unwrap();
    p
}

pub fn set_mtime(p: &Path, sec: i64, nsec: u32) {
    let t = filetime::FileTime::from_unix_time(sec, nsec);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// A tree with the things that tend to break: block-boundary sizes, long and odd names,
/// a long-named directory, symlinks of every kind, unusual modes, nanosecond mtimes,
/// empty and read-only directories, hard links.
pub fn varied_tree(root: &Path, with_special: bool) {
    fs::create_dir_all(root).unwrap();
    let data = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 31 % 253) as u8).collect() };
    for n in [0usize, 1, 4095, 4096, 4097, 3 * 4096 + 7, 300_000] {
        fs::write(root.join(format!("size_{n}")), data(n)).unwrap();
    }
    fs::write(root.join(os(b"caf\xc3\xa9 \xff\xfe weird\nname")), b"odd").unwrap();
    fs::write(root.join("gocryptfs.conf"), b"not the config").unwrap();
    let long = "L".repeat(200);
    fs::write(root.join(&long), b"long file").unwrap();
    let ld = root.join("D".repeat(190));
    fs::create_dir(&ld).unwrap();
    fs::write(ld.join("inside"), data(5000)).unwrap();
    fs::write(ld.join("M".repeat(180)), b"long in long").unwrap();
    symlink("inside", ld.join("rel")).unwrap();
    let sub = root.join("sub/deeper/deepest");
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join("leaf"), b"leaf\n").unwrap();
    symlink("../../../size_1", root.join("sub/up")).unwrap();
    symlink("/etc/hostname", root.join("sub/abs")).unwrap();
    symlink("does/not/exist", root.join("sub/dangling")).unwrap();
    symlink("T".repeat(1000), root.join("sub/longtarget")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    let exe = root.join("sub/script.sh");
    fs::write(&exe, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o750)).unwrap();
    let secret = root.join("sub/secret");
    fs::write(&secret, b"s").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o400)).unwrap();
    fs::hard_link(root.join("size_4097"), root.join("sub/hardlink")).unwrap();
    if with_special {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("sub/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
    }
    // Times last, children before parents.
    for (i, p) in walk(root).iter().rev().enumerate() {
        set_mtime(
            p,
            1_600_000_000 + i as i64 * 1000,
            (i as u32 * 7919) % 1_000_000_000,
        );
    }
    let ro = root.join("readonly");
    fs::create_dir(&ro).unwrap();
    fs::write(ro.join("f"), b"in a read-only dir").unwrap();
    set_mtime(&ro.join("f"), 1_500_000_000, 1);
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    set_mtime(&ro, 1_500_000_000, 2);
    fs::set_permissions(root.join("sub/deeper"), fs::Permissions::from_mode(0o2710)).unwrap();
    set_mtime(root, 1_400_000_000, 3);
}

/// All paths below `root` (root included), parents before children, sorted.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            let mut kids: Vec<PathBuf> = fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            kids.sort();
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// Compare two trees: names, types, permissions, contents, symlink targets, mtimes
/// (to the nanosecond unless `second_mtimes`), device numbers. `skip` names are ignored
/// in the root of `a`.
pub fn assert_same_tree(a: &Path, b: &Path, skip: &[&str], second_mtimes: bool) {
    let rel = |root: &Path, p: &Path| p.strip_prefix(root).unwrap().to_path_buf();
    let wa: Vec<PathBuf> = walk(a)
        .into_iter()
        .filter(|p| !skip.iter().any(|s| rel(a, p) == Path::new(s)))
        .collect();
    let wb = walk(b);
    let na: Vec<PathBuf> = wa.iter().map(|p| rel(a, p)).collect();
    let nb: Vec<PathBuf> = wb.iter().map(|p| rel(b, p)).collect();
    assert_eq!(
        na,
        nb,
        "different entries in {} and {}",
        a.display(),
        b.display()
    );
    for (pa, pb) in wa.iter().zip(&wb) {
        let (ma, mb) = (
            fs::symlink_metadata(pa).unwrap(),
            fs::symlink_metadata(pb).unwrap(),
        );
        let what = pa.display();
        assert_eq!(ma.mode(), mb.mode(), "mode of {what}");
        assert_eq!(ma.rdev(), mb.rdev(), "rdev of {what}");
        let ft = ma.file_type();
        if ft.is_file() {
            assert_eq!(
                fs::read(pa).unwrap(),
                fs::read(pb).unwrap(),
                "content of {what}"
            );
            assert_eq!(ma.nlink(), mb.nlink(), "link count of {what}");
        } else if ft.is_symlink() {
            assert_eq!(
                fs::read_link(pa).unwrap(),
                fs::read_link(pb).unwrap(),
                "target of {what}"
            );
        }
        assert_eq!(ma.mtime(), mb.mtime(), "mtime of {what}");
        if !second_mtimes {
            assert_eq!(ma.mtime_nsec(), mb.mtime_nsec(), "mtime ns of {what}");
        }
        if rustix::process::geteuid().is_root() {
            assert_eq!(
                (ma.uid(), ma.gid()),
                (mb.uid(), mb.gid()),
                "owner of {what}"
            );
        }
    }
}

/// cryptbak init + export of `src` into `dest`.
pub fn export(src: &Path, dest: &Path, pw: &Path, init_extra: &[&str]) {
    let mut c = cryptbak();
    c.args(["init", "-q", "--scryptn", "10", "--passfile"])
        .arg(pw)
        .args(init_extra)
        .arg(src);
    expect(&mut c, 0);
    let mut c = cryptbak();
    c.args(["export", "-q", "--passfile"])
        .arg(pw)
        .arg(src)
        .arg(dest);
    expect(&mut c, 0);
}

pub fn restore_cmd(pw: &Path, backup: &Path, dest: &Path) -> Command {
    let mut c = cryptbak();
    c.args(["restore", "-q", "--passfile"])
        .arg(pw)
        .arg(backup)
        .arg(dest);
    c
}

// ---------------------------------------------------------------- real gocryptfs

/// `false` (after a loud line) if this machine has no FUSE; panics if FUSE is there but
/// the default gocryptfs oracle is not: that is an installation bug, not a reason to skip.
pub fn have_gocryptfs(test: &str) -> bool {
    crate::gocryptfs::require_gocryptfs(test)
}

/// Runs the default gocryptfs oracle (2.6.1) with these arguments; panics on failure.
pub fn gocryptfs(args: &[&OsStr]) -> Output {
    let o = crate::gocryptfs::Oracle::DEFAULT
        .command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run gocryptfs");
    assert!(o.status.success(), "gocryptfs {args:?}\n{}", show(&o));
    o
}

/// A gocryptfs mount, unmounted on drop.
pub struct Mount(pub PathBuf);

impl Mount {
    pub fn new(args: &[&OsStr], mnt: &Path) -> Mount {
        fs::create_dir_all(mnt).unwrap();
        let mut a: Vec<&OsStr> = vec![OsStr::new("-q")];
        a.extend_from_slice(args);
        a.push(mnt.as_os_str());
        gocryptfs(&a);
        Mount(mnt.to_path_buf())
    }

    pub fn unmount(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        for _ in 0..50 {
            let ok = Command::new("fusermount")
                .arg("-u")
                .arg(&self.0)
                .stderr(Stdio::null())
                .status()
                .or_else(|_| Command::new("fusermount3").arg("-u").arg(&self.0).status())
                .is_ok_and(|s| s.success());
            if ok {
                self.0 = PathBuf::new();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("cannot unmount {}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = Command::new("fusermount")
                .arg("-u")
                .arg("-z")
                .arg(&self.0)
                .status();
        }
    }
}

// ---------------------------------------------------------------- raw tar pieces

/// A ustar header with exactly these name bytes (no checks: `..`, absolute paths).
pub fn ustar_header(name: &[u8], typeflag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A tar archive without its end-of-archive zero blocks (and record padding), so more
/// members can be appended.
pub fn without_end_blocks(mut tar: Vec<u8>) -> Vec<u8> {
    while tar.len() >= 512 && tar[tar.len() - 512..].iter().all(|&b| b == 0) {
        tar.truncate(tar.len() - 512);
    }
    tar
}
