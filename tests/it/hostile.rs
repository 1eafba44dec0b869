//! Hostile backups (issue 9): `cryptbak restore`, `verify` and `ls` against backups crafted
//! with the backup's real key, so that names *decrypt* to `..`, `/`, NUL and the like,
//! `.name` and `gocryptfs.diriv` files lie, tar streams repeat paths, hard-link outside
//! or through symlinks, and DEST holds symlinks pointing outside.
//!
//! For every case: a clear error naming the path, a non-zero exit, nothing written
//! outside DEST, no partial file under a final name, and every good entry restored.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cryptbak::format::config::Config;
use cryptbak::format::content::{seal_symlink, ContentCipher, FileEncryptor, FileIvs};
use cryptbak::format::keys;
use cryptbak::format::names::eme::Eme;
use cryptbak::format::names::NameCodec;
use cryptbak::format::pathiv::{derive, symlink_iv_path, Purpose};
use sha2::{Digest, Sha256};

use crate::restore_util::{cryptbak, export, passfile, show, tempdir, PW};

const CONF: &str = "gocryptfs.conf";

// ---------------------------------------------------------------- the forge

/// A real export of a small tree, and the keys to forge more entries into copies of it.
struct Forge {
    t: tempfile::TempDir,
    pw: PathBuf,
    exp: PathBuf,
    codec: NameCodec,
    eme: Eme,
    cipher: ContentCipher,
    /// A directory outside every DEST whose contents must never change.
    outside: PathBuf,
}

/// The good entries of every fixture; each must come out of every hostile restore intact.
const GOOD: &[(&str, &[u8])] = &[
    ("good", b"good data\n"),
    ("dir/inner", b"inner\n"),
    ("LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL", b"long name\n"),
];

impl Forge {
    fn new(label: &str) -> Forge {
        let t = tempdir(&format!("hostile-{label}"));
        let pw = passfile(t.path());
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        for (p, data) in GOOD {
            let p = src.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }
        let exp = t.path().join("exp");
        export(&src, &exp, &pw, &[]);
        let cfg = Config::load(&exp.join(CONF)).unwrap();
        let master = cfg.unlock(PW.as_bytes()).unwrap();
        let f = cfg.format();
        assert!(f.hkdf && f.raw64 && f.dir_iv && f.aes_siv);
        let nk = keys::name_key(&master, true);
        let codec = NameCodec::new(&nk, true, true, None);
        let eme = Eme::new(&nk);
        let cipher = ContentCipher::new(keys::siv_key(&master, true));
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("victim"), b"original").unwrap();
        Forge {
            t,
            pw,
            exp,
            codec,
            eme,
            cipher,
            outside,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.t.path().join(name)
    }

    /// The encrypted name of any byte string (even a forbidden one) in directory `parent`
    /// of a reverse-made tree: PKCS#7, EME with the path-derived dir IV, base64url.
    fn raw_cname(&self, parent: &[u8], plain: &[u8]) -> String {
        let pad = 16 - plain.len() % 16;
        let mut p = plain.to_vec();
        p.resize(plain.len() + pad, pad as u8);
        URL_SAFE_NO_PAD.encode(self.eme.encrypt(&derive(parent, Purpose::DirIv), &p))
    }

    /// The cpath of a valid plaintext path (all components short).
    fn cpath(&self, plain: &str) -> Vec<u8> {
        let mut c: Vec<u8> = Vec::new();
        for comp in plain.split('/') {
            let n = self
                .codec
                .encrypt(&derive(&c, Purpose::DirIv), comp.as_bytes());
            assert!(!self.codec.is_long(&n));
            if !c.is_empty() {
                c.push(b'/');
            }
            c.extend_from_slice(n.as_bytes());
        }
        c
    }

    /// File content as a reverse view shows it at `cpath`.
    fn file_ct(&self, cpath: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FileEncryptor::new(&self.cipher)
            .encrypt(&FileIvs::for_path(cpath), &mut &data[..], &mut out)
            .unwrap();
        out
    }

    /// A symlink target as a reverse view shows it at `cpath`.
    fn symlink_ct(&self, cpath: &[u8], target: &[u8]) -> String {
        let nonce = derive(&symlink_iv_path(cpath), Purpose::SymlinkIv);
        URL_SAFE_NO_PAD.encode(seal_symlink(&self.cipher, &nonce, target))
    }

    /// A fresh copy of the export.
    fn copy(&self, label: &str) -> PathBuf {
        let copy = self.path(&format!("exp_{label}"));
        let st = Command::new("cp")
            .arg("-a")
            .arg(&self.exp)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(st.success());
        copy
    }

    fn restore(&self, backup: &Path, dest: &Path, extra: &[&str]) -> Output {
        let mut c = cryptbak();
        c.args(["restore", "--no-progress", "--passfile"])
            .arg(&self.pw)
            .args(extra)
            .arg(backup)
            .arg(dest);
        run_timed(&mut c)
    }

    /// The outside directory is untouched and DEST has no staging leftovers.
    fn check_contained(&self, dest: &Path, what: &str) {
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsStr::new("victim")], "{what}: outside changed");
        assert_eq!(
            fs::read(self.outside.join("victim")).unwrap(),
            b"original",
            "{what}"
        );
        // Nothing appeared next to DEST either (a `..` name would land there).
        let mut top: Vec<_> = fs::read_dir(self.t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("exp") && !n.starts_with("out_") && !n.ends_with(".tar"))
            .collect();
        top.sort();
        assert_eq!(
            top,
            ["outside", "pw", "src"],
            "{what}: written next to DEST"
        );
        if dest.exists() {
            for e in walk_all(dest) {
                let n = e.file_name().unwrap_or_default().to_string_lossy();
                assert!(
                    !n.starts_with(".cryptbak"),
                    "{what}: staging or temp left: {}",
                    e.display()
                );
            }
        }
    }

    /// Every good entry came out intact.
    fn check_good(&self, dest: &Path, what: &str) {
        for (p, data) in GOOD {
            assert_eq!(
                fs::read(dest.join(p)).unwrap_or_default(),
                *data,
                "{what}: good entry {p} not restored"
            );
        }
    }
}

/// Runs a command with a time limit (a hostile input must not make cryptbak hang).
fn run_timed(c: &mut Command) -> Output {
    let out = crate::util::run(c);
    assert!(
        out.status.code().is_some(),
        "killed by a signal (panic or crash?)\n{}",
        show(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "panic:\n{}", show(&out));
    out
}

/// The error lines of a run (warnings and the summary left out).
fn error_lines(o: &Output) -> Vec<String> {
    err(o)
        .lines()
        .filter(|l| l.starts_with("cryptbak: error:"))
        .map(String::from)
        .collect()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// All paths below `root`, not following symlinks.
fn walk_all(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// The names in the root of a good restore.
fn good_root() -> Vec<String> {
    let mut v: Vec<String> = GOOD
        .iter()
        .map(|(p, _)| p.split('/').next().unwrap().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Plaintext names of the entries of DEST's root (sorted, staging excluded).
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------- tar writing

/// A minimal pax tar writer that writes whatever it is told: any path bytes (`..`,
/// absolute, NUL), any type flag, any size field, entries in any order.
#[derive(Default)]
struct RawTar {
    buf: Vec<u8>,
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = 1 + key.len() + 1 + value.len() + 1;
    let mut n = body_len + 1;
    loop {
        let total = n.to_string().len() + body_len;
        if total == n {
            break;
        }
        n = total;
    }
    let mut r = format!("{n} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

fn ustar_header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    let mode = if typeflag == b'5' { 0o755 } else { 0o644 };
    h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", size.min(0o77777777777)).as_bytes());
    h[136..148].copy_from_slice(format!("{:011o}\0", 1_600_000_000u64).as_bytes());
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

impl RawTar {
    fn pad(&mut self) {
        let r = self.buf.len() % 512;
        if r != 0 {
            self.buf.resize(self.buf.len() + 512 - r, 0);
        }
    }

    /// One member: a pax header carrying the exact path (and link target), then the
    /// ustar header and `data`.
    fn raw(
        &mut self,
        path: &[u8],
        typeflag: u8,
        data: &[u8],
        link: &[u8],
        extra: &[(&str, &[u8])],
    ) {
        let mut pax = pax_record("path", path);
        if !link.is_empty() {
            pax.extend(pax_record("linkpath", link));
        }
        for (k, v) in extra {
            pax.extend(pax_record(k, v));
        }
        self.buf
            .extend_from_slice(&ustar_header(b"PaxHeader", b'x', pax.len() as u64, b""));
        self.buf.extend_from_slice(&pax);
        self.pad();
        self.buf.extend_from_slice(&ustar_header(
            b"placeholder",
            typeflag,
            data.len() as u64,
            b"",
        ));
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn dir(&mut self, path: &[u8]) {
        self.raw(path, b'5', b"", b"", &[]);
    }

    fn file(&mut self, path: &[u8], data: &[u8]) {
        self.raw(path, b'0', data, b"", &[]);
    }

    fn symlink(&mut self, path: &[u8], target: &[u8]) {
        self.raw(path, b'2', b"", target, &[]);
    }

    fn hardlink(&mut self, path: &[u8], target: &[u8]) {
        self.raw(path, b'1', b"", target, &[]);
    }

    /// Every entry of a ciphertext directory, parents first, names sorted.
    fn tree(&mut self, root: &Path) {
        let mut all: Vec<PathBuf> = walk_all(root);
        all.sort();
        for p in all {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                self.dir(&rel);
            } else if md.file_type().is_symlink() {
                self.symlink(&rel, fs::read_link(&p).unwrap().as_os_str().as_bytes());
            } else {
                self.file(&rel, &fs::read(&p).unwrap());
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.resize(self.buf.len() + 1024, 0);
        self.buf
    }
}

impl Forge {
    /// A tar of the fixture export, then `more` entries.
    fn tar_with(&self, label: &str, more: impl FnOnce(&mut RawTar)) -> PathBuf {
        let mut t = RawTar::default();
        t.tree(&self.exp);
        more(&mut t);
        let p = self.path(&format!("{label}.tar"));
        fs::write(&p, t.finish()).unwrap();
        p
    }

    /// A tar of any ciphertext directory, parents first.
    fn tar_of(&self, dir: &Path, label: &str) -> PathBuf {
        let mut t = RawTar::default();
        t.tree(dir);
        let p = self.path(&format!("{label}.tar"));
        fs::write(&p, t.finish()).unwrap();
        p
    }

    fn verify(&self, backup: &Path) -> Output {
        let mut c = cryptbak();
        c.args(["verify", "--passfile"]).arg(&self.pw).arg(backup);
        run_timed(&mut c)
    }

    fn ls(&self, backup: &Path) -> Output {
        let mut c = cryptbak();
        c.args(["ls", "-r", "--passfile"]).arg(&self.pw).arg(backup);
        run_timed(&mut c)
    }

    fn restore_tar(&self, tar: &Path, dest: &Path, extra: &[&str]) -> Output {
        let mut e = vec!["--tar"];
        e.extend_from_slice(extra);
        self.restore(tar, dest, &e)
    }
}

// ---------------------------------------------------------------- 1. forbidden names

const FORBIDDEN: &[(&str, &[u8])] = &[
    ("dotdot", b".."),
    ("dot", b"."),
    ("empty", b""),
    ("slash", b"x/../../outside/evil"),
    ("abs", b"/etc/evil"),
    ("nul", b"ev\0il"),
];

/// Names that decrypt (with the real key and the right dir IV) to `..`, `.`, the empty
/// name, a name with `/` or NUL: as short names, as long names (`gocryptfs.longname.*`
/// with a matching `.name`), as files and as directories holding a file; in a
/// directory backup and in a tar stream.
#[test]
fn hostile_forbidden_names() {
    let f = Forge::new("names");
    let copy = f.copy("names");
    // (entry, content, .name content)
    type Planted = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);
    let mut planted: Vec<Planted> = Vec::new();
    for (label, bad) in FORBIDDEN {
        // As a short name (a file).
        let c = f.raw_cname(b"", bad);
        planted.push((
            c.clone().into_bytes(),
            f.file_ct(c.as_bytes(), b"evil"),
            None,
        ));
        // As a long name: pad it past the threshold when possible, else wrap a short cname.
        let mut long = bad.to_vec();
        if !bad.is_empty() && *label != "dot" && *label != "dotdot" {
            long.resize(long.len() + 200, b'z');
        }
        let lc = f.raw_cname(b"", &long);
        let h = format!(
            "gocryptfs.longname.{}",
            URL_SAFE_NO_PAD.encode(Sha256::digest(&lc))
        );
        planted.push((
            h.clone().into_bytes(),
            f.file_ct(h.as_bytes(), b"evil"),
            Some(lc.into_bytes()),
        ));
    }
    for (entry, data, name) in &planted {
        let p = copy.join(OsStr::from_bytes(entry));
        fs::write(&p, data).unwrap();
        if let Some(n) = name {
            let mut nf = entry.clone();
            nf.extend_from_slice(b".name");
            fs::write(copy.join(OsStr::from_bytes(&nf)), n).unwrap();
        }
    }
    // As directories inside `dir`, each holding a file: contents of a directory named
    // `..` must not land next to `dir` (or next to DEST).
    let dir_c = f.cpath("dir");
    for (_, bad) in FORBIDDEN {
        let c = f.raw_cname(&dir_c, bad);
        let dcp = [&dir_c[..], b"/", c.as_bytes()].concat();
        fs::create_dir(copy.join(OsStr::from_bytes(&dcp))).unwrap();
        let fc = f.codec.encrypt(&derive(&dcp, Purpose::DirIv), b"payload");
        let fcp = [&dcp[..], b"/", fc.as_bytes()].concat();
        fs::write(copy.join(OsStr::from_bytes(&fcp)), f.file_ct(&fcp, b"evil")).unwrap();
        fs::write(
            copy.join(OsStr::from_bytes(&dcp)).join("gocryptfs.diriv"),
            derive(&dcp, Purpose::DirIv),
        )
        .unwrap();
    }
    let check = |o: &Output, out: &Path, what: &str| {
        assert_eq!(code(o), 26, "{what}\n{}", show(o));
        let e = err(o);
        assert_eq!(
            e.matches("decrypts to a forbidden name").count(),
            18,
            "{what}\n{e}"
        );
        f.check_contained(out, what);
        f.check_good(out, what);
        assert_eq!(names_in(out), good_root(), "{what}");
        assert_eq!(names_in(&out.join("dir")), ["inner"], "{what}");
    };
    let out = f.path("out_names");
    let o = f.restore(&copy, &out, &[]);
    check(&o, &out, "directory");
    let tar = f.tar_of(&copy, "names");
    let out = f.path("out_names_tar");
    let o = f.restore_tar(&tar, &out, &[]);
    check(&o, &out, "tar");
    // verify names them too; ls lists the good ones and reports the rest.
    let o = f.verify(&copy);
    assert_eq!(code(&o), 26, "{}", show(&o));
    assert_eq!(
        err(&o).matches("forbidden name").count(),
        18,
        "{}",
        show(&o)
    );
    let o = f.ls(&copy);
    assert_ne!(code(&o), 0, "{}", show(&o));
    assert_eq!(
        err(&o).matches("forbidden name").count(),
        18,
        "{}",
        show(&o)
    );
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    for (p, _) in GOOD {
        assert!(listed.contains(p), "{listed}");
    }
}

// ---------------------------------------------------------------- 2. .name files

/// The long-named fixture entry (`LLL…`) of a copy: (entry name, its `.name` file name).
fn long_entry(dir: &Path) -> (String, String) {
    let n = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("gocryptfs.longname.") && !n.ends_with(".name"))
        .expect("long name in the fixture");
    let nf = format!("{n}.name");
    (n, nf)
}

/// Add a long-named file whose `.name` holds `name` and whose hash matches it.
fn add_long(f: &Forge, dir: &Path, name: &[u8]) {
    let h = format!(
        "gocryptfs.longname.{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(name))
    );
    fs::write(dir.join(&h), f.file_ct(h.as_bytes(), b"evil")).unwrap();
    fs::write(dir.join(format!("{h}.name")), name).unwrap();
}

/// `.name` files that are empty, not base64, hash to another name, belong to no entry,
/// are missing, are a directory or a FIFO: each is reported with the entry's path, and
/// only that entry is left out; the same from a tar stream.
#[test]
fn hostile_name_files() {
    let f = Forge::new("namefiles");
    type Damage = Box<dyn Fn(&Forge, &Path)>;
    let long_name = f
        .codec
        .encrypt(&derive(b"", Purpose::DirIv), GOOD[2].0.as_bytes());
    let cases: Vec<(&str, Damage, i32, &str, bool)> = vec![
        // (label, damage, exit code, message, the long-named good entry survives)
        (
            "empty",
            Box::new(|_, d| fs::write(d.join(long_entry(d).1), b"").unwrap()),
            26,
            "does not match the hashed name",
            false,
        ),
        (
            "empty_hashed",
            Box::new(|f, d| add_long(f, d, b"")),
            26,
            "cannot decrypt name",
            true,
        ),
        (
            "not_base64",
            Box::new(|f, d| add_long(f, d, b"!!not*base64~~")),
            26,
            "not valid base64",
            true,
        ),
        (
            "other_hash",
            Box::new(move |f, d| {
                // A valid long name of another entry: its hash is not this entry's.
                let other = f.codec.encrypt(&derive(b"", Purpose::DirIv), &[b'Q'; 200]);
                fs::write(d.join(long_entry(d).1), other).unwrap();
            }),
            26,
            "does not match the hashed name",
            false,
        ),
        (
            "orphan",
            Box::new(move |_, d| {
                let h = format!(
                    "gocryptfs.longname.{}.name",
                    URL_SAFE_NO_PAD.encode(Sha256::digest(b"nobody"))
                );
                fs::write(d.join(h), b"nobody").unwrap();
            }),
            0,
            "",
            true,
        ),
        (
            "missing",
            Box::new(|_, d| fs::remove_file(d.join(long_entry(d).1)).unwrap()),
            26,
            "is missing",
            false,
        ),
        (
            "directory",
            Box::new(|_, d| {
                let nf = d.join(long_entry(d).1);
                fs::remove_file(&nf).unwrap();
                fs::create_dir(&nf).unwrap();
            }),
            26,
            "not a regular file",
            false,
        ),
    ];
    let _ = long_name;
    for (label, damage, want, needle, long_ok) in &cases {
        let copy = f.copy(label);
        damage(&f, &copy);
        let tar = f.tar_of(&copy, label);
        for (how, o, out) in [
            (
                "dir",
                f.restore(&copy, &f.path(&format!("out_{label}")), &[]),
                f.path(&format!("out_{label}")),
            ),
            (
                "tar",
                f.restore_tar(&tar, &f.path(&format!("out_{label}_tar")), &[]),
                f.path(&format!("out_{label}_tar")),
            ),
        ] {
            let what = format!("{label} ({how})");
            eprintln!("== {what}\n{}", err(&o));
            assert_eq!(code(&o), *want, "{what}\n{}", show(&o));
            assert!(
                err(&o).contains(needle),
                "{what}: wanted {needle:?}\n{}",
                show(&o)
            );
            // One line for the entry (two when the .name file itself cannot be read).
            let lines = error_lines(&o);
            assert!(
                lines.len() <= 2 && !err(&o).contains(".name.name"),
                "{what}\n{}",
                show(&o)
            );
            f.check_contained(&out, &what);
            if *long_ok {
                f.check_good(&out, &what);
            } else {
                assert_eq!(fs::read(out.join("good")).unwrap(), GOOD[0].1, "{what}");
                assert_eq!(
                    fs::read(out.join("dir/inner")).unwrap(),
                    GOOD[1].1,
                    "{what}"
                );
                assert!(!out.join(GOOD[2].0).exists(), "{what}");
            }
        }
    }
}

/// Runs cryptbak restore with an address-space limit, so that reading a huge file into
/// memory fails loudly instead of passing unnoticed.
fn restore_limited(f: &Forge, backup: &Path, dest: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("ulimit -v 1500000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_cryptbak"))
        .args(["restore", "--no-progress", "--passfile"])
        .arg(&f.pw)
        .args(extra)
        .arg(backup)
        .arg(dest)
        .stdin(Stdio::null());
    let start = std::time::Instant::now();
    let o = run_timed(&mut c);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}\n{}",
        start.elapsed(),
        show(&o)
    );
    o
}

/// A sparse file of `len` bytes (no disk space, but reading it all takes memory and time).
fn sparse(p: &Path, len: u64) {
    let _ = fs::remove_file(p);
    let f = fs::File::create(p).unwrap();
    f.set_len(len).unwrap();
}

/// The small files of the format (`.name`, `gocryptfs.diriv`, `gocryptfs.conf`) as huge
/// files or FIFOs: refused without reading them into memory and without hanging.
#[test]
fn hostile_small_files_huge_or_fifo() {
    let f = Forge::new("smallfiles");
    let dir_c = f.cpath("dir");
    let diriv = |d: &Path| d.join(OsStr::from_bytes(&dir_c)).join("gocryptfs.diriv");
    const HUGE: u64 = 4 << 30;
    const ALL3: &[&str] = &["good", "dir/inner", GOOD[2].0];
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Damage, i32, &str, &[&str])> = vec![
        (
            "huge_name",
            Box::new(|d| sparse(&d.join(long_entry(d).1), HUGE)),
            26,
            ".name",
            &["good", "dir/inner"],
        ),
        (
            "fifo_name",
            Box::new(|d| {
                let p = d.join(long_entry(d).1);
                fs::remove_file(&p).unwrap();
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &p,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o644),
                    0,
                )
                .unwrap();
            }),
            26,
            "not a regular file",
            &["good", "dir/inner"],
        ),
        (
            "huge_diriv",
            Box::new(|d| sparse(&diriv(d), HUGE)),
            26,
            "gocryptfs.diriv",
            ALL3,
        ),
        (
            "fifo_diriv",
            Box::new(|d| {
                let p = diriv(d);
                fs::remove_file(&p).unwrap();
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &p,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o644),
                    0,
                )
                .unwrap();
            }),
            26,
            "not a regular file",
            ALL3,
        ),
    ];
    for (label, damage, want, needle, good) in &cases {
        let copy = f.copy(label);
        damage(&copy);
        let out = f.path(&format!("out_{label}"));
        let o = restore_limited(&f, &copy, &out, &[]);
        eprintln!("== {label}\n{}", err(&o));
        assert_eq!(code(&o), *want, "{label}\n{}", show(&o));
        assert!(
            err(&o).contains(needle),
            "{label}: wanted {needle:?}\n{}",
            show(&o)
        );
        if label.starts_with("huge") {
            assert_eq!(error_lines(&o).len(), 1, "{label}\n{}", show(&o));
        }
        f.check_contained(&out, label);
        // verify and ls read the same files: no hang there either, and a report.
        for o in [f.verify(&copy), f.ls(&copy)] {
            assert_ne!(code(&o), 0, "{label}\n{}", show(&o));
            assert!(!error_lines(&o).is_empty(), "{label}\n{}", show(&o));
        }
        for p in *good {
            let data = GOOD.iter().find(|(g, _)| g == p).unwrap().1;
            assert_eq!(fs::read(out.join(p)).unwrap(), data, "{label}: {p}");
        }
    }
    // A 50 MB .name member in a tar stream.
    let copy = f.copy("huge_name_tar");
    fs::write(copy.join(long_entry(&copy).1), vec![b'A'; 50 << 20]).unwrap();
    let tar = f.tar_of(&copy, "huge_name");
    let out = f.path("out_huge_name_tar");
    let o = restore_limited(&f, &tar, &out, &["--tar"]);
    assert_eq!(code(&o), 26, "{}", show(&o));
    assert_eq!(error_lines(&o).len(), 1, "{}", show(&o));
    assert!(
        err(&o).contains("larger than any encrypted name"),
        "{}",
        show(&o)
    );
    f.check_contained(&out, "huge .name in a tar");

    // The config itself, as a FIFO and as a huge file: a config error, nothing written.
    for (label, fifo) in [("fifo_conf", true), ("huge_conf", false)] {
        let copy = f.copy(label);
        let p = copy.join(CONF);
        fs::remove_file(&p).unwrap();
        if fifo {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &p,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap();
        } else {
            sparse(&p, HUGE);
        }
        let out = f.path(&format!("out_{label}"));
        let o = restore_limited(&f, &copy, &out, &[]);
        eprintln!("== {label}\n{}", err(&o));
        assert_eq!(code(&o), 23, "{label}\n{}", show(&o));
        assert_eq!(err(&o).lines().count(), 1, "{label}\n{}", show(&o));
        assert!(!out.exists(), "{label}");
    }
}

// ---------------------------------------------------------------- 3. gocryptfs.diriv

/// What a `gocryptfs.diriv` can be turned into.
type PathDamage = Box<dyn Fn(&Path)>;

fn diriv_damages() -> Vec<(&'static str, PathDamage)> {
    vec![
        ("empty", Box::new(|p: &Path| fs::write(p, b"").unwrap())),
        (
            "short",
            Box::new(|p: &Path| fs::write(p, [7u8; 15]).unwrap()),
        ),
        (
            "long",
            Box::new(|p: &Path| fs::write(p, [7u8; 17]).unwrap()),
        ),
        ("missing", Box::new(|p: &Path| fs::remove_file(p).unwrap())),
        (
            "directory",
            Box::new(|p: &Path| {
                fs::remove_file(p).unwrap();
                fs::create_dir(p).unwrap();
                fs::write(p.join("x"), b"x").unwrap();
            }),
        ),
    ]
}

/// Reverse-made trees do not need the stored dir IV (it is recomputed from the path and
/// checked against it): a bad one is reported, the names are still restored.
#[test]
fn hostile_diriv_reverse() {
    let f = Forge::new("diriv");
    let dir_c = f.cpath("dir");
    for (label, damage) in diriv_damages() {
        let copy = f.copy(label);
        for d in [copy.clone(), copy.join(OsStr::from_bytes(&dir_c))] {
            let p = d.join("gocryptfs.diriv");
            let mut perm = fs::metadata(&p).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
            fs::set_permissions(&p, perm).unwrap();
            damage(&p);
        }
        let tar = f.tar_of(&copy, label);
        for (how, tar_mode) in [("dir", false), ("tar", true)] {
            let what = format!("{label} ({how})");
            let out = f.path(&format!("out_{label}_{how}"));
            let o = if tar_mode {
                f.restore_tar(&tar, &out, &[])
            } else {
                f.restore(&copy, &out, &[])
            };
            eprintln!("== {what}\n{}", err(&o));
            let want = if label == "missing" { 0 } else { 26 };
            assert_eq!(code(&o), want, "{what}\n{}", show(&o));
            if label != "missing" {
                let n = err(&o)
                    .lines()
                    .filter(|l| l.contains("gocryptfs.diriv"))
                    .count();
                assert_eq!(n, 2, "{what}\n{}", show(&o));
            }
            f.check_contained(&out, &what);
            f.check_good(&out, &what);
            assert_eq!(names_in(&out), good_root(), "{what}");
        }
    }
}

/// A forward-mode gocryptfs directory needs the stored dir IV (it is random): a bad one
/// makes that directory's names unrecoverable, which is reported, and nothing else is lost.
#[test]
fn hostile_diriv_forward() {
    if !crate::restore_util::have_gocryptfs("hostile_diriv_forward") {
        return;
    }
    let t = tempdir("hostile-fwdiriv");
    let pw = passfile(t.path());
    let cipher = t.path().join("cipher");
    fs::create_dir(&cipher).unwrap();
    crate::gocryptfs::init_forward(&cipher, &pw, &[]);
    let mnt = t.path().join("mnt");
    let mut m = crate::restore_util::Mount::new(
        &[OsStr::new("-passfile"), pw.as_os_str(), cipher.as_os_str()],
        &mnt,
    );
    fs::write(mnt.join("top"), b"top\n").unwrap();
    fs::create_dir_all(mnt.join("sub/deeper")).unwrap();
    fs::write(mnt.join("sub/a"), b"a\n").unwrap();
    fs::write(mnt.join("sub/deeper/b"), b"b\n").unwrap();
    fs::create_dir(mnt.join("other")).unwrap();
    fs::write(mnt.join("other/c"), b"c\n").unwrap();
    m.unmount();
    // The ciphertext directory of `sub`: the one whose listing has a subdirectory.
    let sub_c = fs::read_dir(&cipher)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.is_dir()
                && fs::read_dir(p)
                    .unwrap()
                    .any(|e| e.unwrap().file_type().unwrap().is_dir())
        })
        .unwrap();
    let sub_name = sub_c.file_name().unwrap().to_string_lossy().into_owned();
    let f = Forge::new("fwdiriv-fixture"); // for its tar writer
    for (label, damage) in diriv_damages() {
        let copy = t.path().join(format!("copy_{label}"));
        assert!(Command::new("cp")
            .arg("-a")
            .arg(&cipher)
            .arg(&copy)
            .status()
            .unwrap()
            .success());
        let p = copy.join(&sub_name).join("gocryptfs.diriv");
        let mut perm = fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
        fs::set_permissions(&p, perm).unwrap();
        damage(&p);
        let tar = f.tar_of(&copy, &format!("fw_{label}"));
        for (how, tar_mode) in [("dir", false), ("tar", true)] {
            let what = format!("{label} ({how})");
            let out = t.path().join(format!("out_{label}_{how}"));
            let mut c = cryptbak();
            c.args(["restore", "--no-progress", "--passfile"]).arg(&pw);
            if tar_mode {
                c.arg("--tar").arg(&tar);
            } else {
                c.arg(&copy);
            }
            c.arg(&out);
            let o = run_timed(&mut c);
            eprintln!("== {what}\n{}", err(&o));
            assert_eq!(code(&o), 26, "{what}\n{}", show(&o));
            let e = err(&o);
            assert!(
                e.lines()
                    .any(|l| l.contains(&sub_name) && l.contains("cannot be decrypted")),
                "{what}\n{e}"
            );
            // The damaged dir IV (when there is one) and its consequence; nothing else.
            let want_lines = if label == "missing" { 1 } else { 2 };
            assert_eq!(error_lines(&o).len(), want_lines, "{what}\n{e}");
            assert!(!e.contains("warning"), "{what}\n{e}");
            assert_eq!(fs::read(out.join("top")).unwrap(), b"top\n", "{what}");
            assert_eq!(fs::read(out.join("other/c")).unwrap(), b"c\n", "{what}");
            // `sub` itself is restored (its name is in the root), its entries are not.
            assert_eq!(fs::read_dir(out.join("sub")).unwrap().count(), 0, "{what}");
        }
    }
}

// ---------------------------------------------------------------- 4. symlinks and DEST

/// `--force` into a DEST that holds symlinks (to outside files, outside directories,
/// dangling ones) where the backup has files and directories, and a directory of its
/// own: nothing is written through them, nothing existing is changed (not even the
/// existing directory's mode and times), the rest is restored.
#[test]
fn hostile_dest_symlinks_force() {
    let f = Forge::new("destlinks");
    let out = f.path("out_force");
    fs::create_dir(&out).unwrap();
    // `good` -> an outside file, `LLL…` -> dangling into outside, `dir` is a real
    // directory whose `inner` is a symlink to the outside victim.
    symlink(f.outside.join("victim"), out.join("good")).unwrap();
    symlink(f.outside.join("created"), out.join(GOOD[2].0)).unwrap();
    fs::create_dir(out.join("dir")).unwrap();
    symlink(f.outside.join("victim"), out.join("dir/inner")).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut fs::metadata(out.join("dir")).unwrap().permissions(),
        0o700,
    );
    fs::set_permissions(
        out.join("dir"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    crate::restore_util::set_mtime(&out.join("dir"), 1_000_000_000, 0);
    let before = fs::symlink_metadata(out.join("dir")).unwrap();
    let o = f.restore(&f.exp, &out, &["--force"]);
    eprintln!("{}", err(&o));
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert_eq!(error_lines(&o).len(), 3, "{}", show(&o));
    assert!(
        err(&o).matches("already exists; not overwritten").count() == 3,
        "{}",
        show(&o)
    );
    f.check_contained(&out, "force");
    for p in ["good", "dir/inner", GOOD[2].0] {
        assert!(
            fs::symlink_metadata(out.join(p))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{p}"
        );
    }
    let after = fs::symlink_metadata(out.join("dir")).unwrap();
    assert_eq!(
        (after.mode(), after.mtime(), after.uid()),
        (before.mode(), before.mtime(), before.uid()),
        "an existing directory's metadata was changed"
    );
    // The same from a tar stream.
    let out = f.path("out_force_tar");
    fs::create_dir(&out).unwrap();
    symlink(&f.outside, out.join("dir")).unwrap();
    let tar = f.tar_of(&f.exp, "force");
    let o = f.restore_tar(&tar, &out, &["--force"]);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("not a directory"), "{}", show(&o));
    f.check_contained(&out, "force tar");
    assert_eq!(fs::read(out.join("good")).unwrap(), GOOD[0].1);
}

/// DEST given through a symlinked parent directory is the user's choice and is
/// followed; below DEST nothing is.
#[test]
fn hostile_dest_parent_symlink() {
    let f = Forge::new("destparent");
    let real = f.path("out_real");
    fs::create_dir(&real).unwrap();
    let via = f.path("out_via");
    symlink(&real, &via).unwrap();
    let o = f.restore(&f.exp, &via.join("dest"), &[]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    f.check_good(&real.join("dest"), "via symlink");
    f.check_contained(&real.join("dest"), "via symlink");
}

/// A tar stream fed through a pipe: while cryptbak waits for the rest of the stream,
/// the directory it just created in DEST is replaced by a symlink to the outside.
/// Entries that belong below it are not written through the symlink.
#[test]
fn hostile_dest_dir_swapped_mid_run() {
    let f = Forge::new("midrun");
    let dir_c = f.cpath("dir");
    let inner_c = f.cpath("dir/inner");
    let mut first = RawTar::default();
    let mut second = RawTar::default();
    let mut all = walk_all(&f.exp);
    all.sort();
    for p in all {
        let rel = p
            .strip_prefix(&f.exp)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let t = if rel.starts_with(&inner_c) {
            &mut second
        } else {
            &mut first
        };
        if p.is_dir() {
            t.dir(&rel);
        } else {
            t.file(&rel, &fs::read(&p).unwrap());
        }
    }
    let out = f.path("out_midrun");
    let mut c = cryptbak();
    c.args(["restore", "--no-progress", "--tar", "--passfile"])
        .arg(&f.pw)
        .arg("-")
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&first.buf).unwrap();
    stdin.flush().unwrap();
    let d = out.join("dir");
    let start = std::time::Instant::now();
    while !d.is_dir() {
        assert!(start.elapsed().as_secs() < 30, "dir never created");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    fs::rename(&d, f.path("out_moved")).unwrap();
    symlink(&f.outside, &d).unwrap();
    stdin.write_all(&second.finish()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    eprintln!("{}", err(&o));
    assert_eq!(code(&o), 2, "{}", show(&o));
    let _ = dir_c;
    f.check_contained(&out, "midrun");
    assert_eq!(fs::read_dir(f.path("out_moved")).unwrap().count(), 0);
    assert_eq!(fs::read(out.join("good")).unwrap(), GOOD[0].1);
}

/// The backup has a symlink `sym -> OUTSIDE` and also entries below `sym/`: a tar stream
/// in both orders, and a directory backup where a long-name alias of the same plaintext
/// name is a directory. Nothing is written through the symlink.
#[test]
fn hostile_symlink_then_entries_below_it() {
    let f = Forge::new("symbelow");
    let s = f.codec.encrypt(&derive(b"", Purpose::DirIv), b"sym");
    let target = f.outside.as_os_str().as_bytes();
    let link_ct = f.symlink_ct(s.as_bytes(), target);
    let below = |parent: &[u8], name: &[u8]| -> Vec<u8> {
        let c = f.codec.encrypt(&derive(parent, Purpose::DirIv), name);
        [parent, b"/", c.as_bytes()].concat()
    };
    let sf = below(s.as_bytes(), b"f");
    let sdf = below(&below(s.as_bytes(), b"d"), b"f2");
    let sd = below(s.as_bytes(), b"d");
    type Order<'a> = (&'static str, Box<dyn Fn(&mut RawTar) + 'a>);
    let orders: [Order; 3] = [
        (
            "link_first",
            Box::new(|t| {
                t.symlink(s.as_bytes(), link_ct.as_bytes());
                t.dir(s.as_bytes());
                t.file(&sf, &f.file_ct(&sf, b"evil"));
                t.dir(&sd);
                t.file(&sdf, &f.file_ct(&sdf, b"evil"));
            }),
        ),
        (
            "entries_first",
            Box::new(|t| {
                t.file(&sf, &f.file_ct(&sf, b"evil"));
                t.file(&sdf, &f.file_ct(&sdf, b"evil"));
                t.symlink(s.as_bytes(), link_ct.as_bytes());
            }),
        ),
        (
            "dir_first",
            Box::new(|t| {
                t.dir(s.as_bytes());
                t.file(&sf, &f.file_ct(&sf, b"evil"));
                t.symlink(s.as_bytes(), link_ct.as_bytes());
                t.dir(&sd);
                t.file(&sdf, &f.file_ct(&sdf, b"evil"));
            }),
        ),
    ];
    for (label, add) in &orders {
        let tar = f.tar_with(label, |t| add(t));
        let out = f.path(&format!("out_{label}"));
        let o = f.restore_tar(&tar, &out, &[]);
        eprintln!("== {label}\n{}", err(&o));
        assert_ne!(code(&o), 0, "{label}\n{}", show(&o));
        assert!(!error_lines(&o).is_empty(), "{label}\n{}", show(&o));
        f.check_contained(&out, label);
        f.check_good(&out, label);
        let m = fs::symlink_metadata(out.join("sym")).unwrap();
        if m.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(out.join("sym")).unwrap(),
                f.outside,
                "{label}"
            );
        } else {
            // The directory won: it holds what the backup put below it, and that is all.
            assert!(m.is_dir(), "{label}");
            assert_eq!(fs::read(out.join("sym/f")).unwrap(), b"evil", "{label}");
        }
    }

    // A directory backup: `sym` the symlink, and a long-name alias that decrypts to `sym`
    // too and is a directory holding `f`.
    let copy = f.copy("alias");
    symlink(OsStr::new(&link_ct), copy.join(&s)).unwrap();
    let h = format!(
        "gocryptfs.longname.{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(s.as_bytes()))
    );
    fs::create_dir(copy.join(&h)).unwrap();
    fs::write(copy.join(format!("{h}.name")), &s).unwrap();
    fs::write(
        copy.join(&h).join("gocryptfs.diriv"),
        derive(h.as_bytes(), Purpose::DirIv),
    )
    .unwrap();
    let hf = below(h.as_bytes(), b"f");
    fs::write(copy.join(OsStr::from_bytes(&hf)), f.file_ct(&hf, b"evil")).unwrap();
    for run in 0..5 {
        let out = f.path(&format!("out_alias{run}"));
        let o = f.restore(&copy, &out, &[]);
        assert_ne!(code(&o), 0, "{}", show(&o));
        f.check_contained(&out, "alias");
        f.check_good(&out, "alias");
    }
}

// ---------------------------------------------------------------- 5. a path twice

/// A tar stream naming the same path twice, with different contents or types: the first
/// one stays, the second is reported and never replaces it.
#[test]
fn hostile_tar_same_path_twice() {
    let f = Forge::new("twice");
    let x = f.cpath("x");
    let other = f.cpath("good");
    let ct = |data: &[u8]| f.file_ct(&x, data);
    let xlink = f.symlink_ct(&x, f.outside.join("victim").as_os_str().as_bytes());
    let below = {
        let c = f.codec.encrypt(&derive(&x, Purpose::DirIv), b"below");
        [&x[..], b"/", c.as_bytes()].concat()
    };
    type Twice<'a> = Box<dyn Fn(&mut RawTar) + 'a>;
    // (label, entries, what DEST/x must be afterwards)
    let cases: Vec<(&str, Twice, &str)> = vec![
        (
            "file_file",
            Box::new(|t| {
                t.file(&x, &ct(b"first"));
                t.file(&x, &ct(b"second"));
            }),
            "file:first",
        ),
        (
            "file_dir",
            Box::new(|t| {
                t.file(&x, &ct(b"first"));
                t.dir(&x);
                t.file(&below, &f.file_ct(&below, b"below"));
            }),
            "file:first",
        ),
        (
            "dir_file",
            Box::new(|t| {
                t.dir(&x);
                t.file(&below, &f.file_ct(&below, b"below"));
                t.file(&x, &ct(b"second"));
            }),
            "dir",
        ),
        (
            "symlink_file",
            Box::new(|t| {
                t.symlink(&x, xlink.as_bytes());
                t.file(&x, &ct(b"second"));
            }),
            "symlink",
        ),
        (
            "file_hardlink",
            Box::new(|t| {
                t.file(&x, &ct(b"first"));
                t.hardlink(&x, &other);
            }),
            "file:first",
        ),
    ];
    for (label, add, want) in &cases {
        let tar = f.tar_with(label, |t| add(t));
        let out = f.path(&format!("out_{label}"));
        let o = f.restore_tar(&tar, &out, &[]);
        eprintln!("== {label}\n{}", err(&o));
        assert_eq!(code(&o), 2, "{label}\n{}", show(&o));
        assert_eq!(error_lines(&o).len(), 1, "{label}\n{}", show(&o));
        assert!(err(&o).contains("/x: "), "{label}\n{}", show(&o));
        f.check_contained(&out, label);
        f.check_good(&out, label);
        let p = out.join("x");
        let m = fs::symlink_metadata(&p).unwrap();
        match *want {
            "dir" => {
                assert!(m.is_dir(), "{label}");
                assert_eq!(fs::read(p.join("below")).unwrap(), b"below", "{label}");
            }
            "symlink" => assert!(m.file_type().is_symlink(), "{label}"),
            w => {
                assert!(m.is_file(), "{label}");
                assert_eq!(m.nlink(), 1, "{label}");
                assert_eq!(
                    fs::read(&p).unwrap(),
                    w.strip_prefix("file:").unwrap().as_bytes()
                );
            }
        }
    }

    // The .name file of a long name twice: once right, once another (valid) name.
    let (e, nf) = long_entry(&f.exp);
    let right = fs::read(f.exp.join(&nf)).unwrap();
    let wrong = f.codec.encrypt(&derive(b"", Purpose::DirIv), &[b'W'; 200]);
    for (label, names) in [
        (
            "name_right_first",
            [right.clone(), wrong.clone().into_bytes()],
        ),
        (
            "name_wrong_first",
            [wrong.clone().into_bytes(), right.clone()],
        ),
    ] {
        let mut t = RawTar::default();
        let mut all = walk_all(&f.exp);
        all.sort();
        for p in all {
            let rel = p
                .strip_prefix(&f.exp)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            if rel == nf.as_bytes() {
                continue;
            }
            if p.is_dir() {
                t.dir(&rel);
            } else {
                t.file(&rel, &fs::read(&p).unwrap());
            }
        }
        for n in &names {
            t.file(nf.as_bytes(), n);
        }
        let _ = &e;
        let tar = f.path(&format!("{label}.tar"));
        fs::write(&tar, t.finish()).unwrap();
        let out = f.path(&format!("out_{label}"));
        let o = f.restore_tar(&tar, &out, &[]);
        eprintln!("== {label}\n{}", err(&o));
        assert_eq!(code(&o), 26, "{label}\n{}", show(&o));
        assert!(
            err(&o).contains("does not match the hashed name"),
            "{label}\n{}",
            show(&o)
        );
        f.check_contained(&out, label);
        f.check_good(&out, label);
    }
}

// ---------------------------------------------------------------- 6. hard links

/// Tar hard links pointing outside, to absolute paths, to nothing, to a directory, to a
/// later entry, to a symlink that points outside, to a file that was in DEST before the
/// run: only links to what this run restored from the stream are made.
#[test]
fn hostile_tar_hard_links() {
    let f = Forge::new("tarlinks");
    let good = f.cpath("good");
    let name = |n: &str| f.cpath(n);
    let sym = name("sym");
    let sym_ct = f.symlink_ct(&sym, f.outside.join("victim").as_os_str().as_bytes());
    let later = name("later");
    let tar = f.tar_with("links", |t| {
        t.hardlink(&name("up"), b"../outside/victim");
        t.hardlink(
            &name("abs"),
            f.outside.join("victim").as_os_str().as_bytes(),
        );
        t.hardlink(&name("garbage"), b"notbase64!");
        t.hardlink(&name("absent"), &name("never_in_stream"));
        t.hardlink(&name("preexisting_link"), &name("preexisting"));
        t.hardlink(&name("to_dir"), &name("dir"));
        t.hardlink(&name("to_later"), &later);
        t.file(&later, &f.file_ct(&later, b"later\n"));
        t.symlink(&sym, sym_ct.as_bytes());
        t.hardlink(&name("to_sym"), &sym);
        t.hardlink(&name("to_good"), &good);
        t.hardlink(&name("chain"), &name("to_good"));
    });
    let out = f.path("out_links");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("preexisting"), b"the user's file").unwrap();
    let o = f.restore_tar(&tar, &out, &["--force"]);
    eprintln!("{}", err(&o));
    assert_eq!(code(&o), 2, "{}", show(&o));
    f.check_contained(&out, "tar links");
    f.check_good(&out, "tar links");
    let e = err(&o);
    assert_eq!(e.matches("refused").count(), 2, "{e}");
    for bad in ["garbage", "absent", "preexisting_link", "to_dir"] {
        assert!(!out.join(bad).exists(), "{bad}");
        assert!(e.contains(&format!("/{bad}: ")), "{bad} not named:\n{e}");
    }
    assert_eq!(
        fs::symlink_metadata(out.join("preexisting"))
            .unwrap()
            .nlink(),
        1,
        "a link to a file that was not in the backup"
    );
    assert_eq!(error_lines(&o).len(), 6, "{e}");
    let ino = |p: &str| fs::symlink_metadata(out.join(p)).unwrap().ino();
    assert_eq!(fs::read(out.join("to_later")).unwrap(), b"later\n");
    assert_eq!(ino("to_later"), ino("later"));
    assert_eq!(ino("to_good"), ino("good"));
    assert_eq!(ino("chain"), ino("good"));
    assert_eq!(ino("to_sym"), ino("sym"));
    assert_eq!(
        fs::read_link(out.join("to_sym")).unwrap(),
        f.outside.join("victim")
    );
}

/// Hard links in a directory backup: one whose other name lies outside the backup is
/// restored as a plain file; with --force into a DEST that already has one of the names,
/// the other name still gets the backup's content (never the file that was in DEST); a
/// hard-linked file holding another path's content is taken out under every name.
#[test]
fn hostile_dir_hard_links() {
    let f = Forge::new("dirlinks");
    // Other name outside the backup.
    let copy = f.copy("outer");
    fs::hard_link(
        copy.join(OsStr::from_bytes(&f.cpath("good"))),
        f.path("exp_outer_other_name"),
    )
    .unwrap();
    let out = f.path("out_outer");
    let o = f.restore(&copy, &out, &[]);
    assert_eq!(code(&o), 0, "{}", show(&o));
    f.check_good(&out, "outer");
    assert_eq!(fs::metadata(out.join("good")).unwrap().nlink(), 1);

    // a and b are one file; DEST already has an `a` of its own.
    let copy = f.copy("pair");
    let (a, b) = (f.cpath("a"), f.cpath("b"));
    fs::write(
        copy.join(OsStr::from_bytes(&a)),
        f.file_ct(&a, b"backup's a\n"),
    )
    .unwrap();
    fs::hard_link(
        copy.join(OsStr::from_bytes(&a)),
        copy.join(OsStr::from_bytes(&b)),
    )
    .unwrap();
    for run in 0..4 {
        let out = f.path(&format!("out_pair{run}"));
        fs::create_dir(&out).unwrap();
        fs::write(out.join("a"), b"the user's a\n").unwrap();
        let o = f.restore(&copy, &out, &["--force"]);
        eprintln!("{}", err(&o));
        assert_eq!(code(&o), 2, "{}", show(&o));
        assert_eq!(error_lines(&o).len(), 1, "{}", show(&o));
        assert_eq!(fs::read(out.join("a")).unwrap(), b"the user's a\n");
        assert_eq!(fs::read(out.join("b")).unwrap(), b"backup's a\n");
        assert_eq!(fs::metadata(out.join("a")).unwrap().nlink(), 1);
        f.check_good(&out, "pair");
    }

    // a and b are one file, and a's name is damaged: b still gets the content (whichever
    // name the directory walk meets first; it runs in parallel, hence several runs).
    let copy = f.copy("badname");
    let bad = b"AAAAAAAAAAAAAAAAAAAAAA".to_vec(); // base64 of 16 bytes, bad padding
    fs::write(
        copy.join(OsStr::from_bytes(&b)),
        f.file_ct(&b, b"b's content\n"),
    )
    .unwrap();
    fs::hard_link(
        copy.join(OsStr::from_bytes(&b)),
        copy.join(OsStr::from_bytes(&bad)),
    )
    .unwrap();
    let mut t = RawTar::default();
    t.tree(&f.exp);
    t.file(&bad, &f.file_ct(&b, b"b's content\n"));
    t.hardlink(&b, &bad);
    let tar_bad = f.path("badname.tar");
    fs::write(&tar_bad, t.finish()).unwrap();
    for run in 0..5 {
        let out = f.path(&format!("out_badname{run}"));
        let o = if run == 0 {
            f.restore_tar(&tar_bad, &out, &[])
        } else {
            f.restore(&copy, &out, &[])
        };
        eprintln!("{}", err(&o));
        assert_ne!(code(&o), 0, "{}", show(&o));
        assert_eq!(
            fs::read(out.join("b")).unwrap(),
            b"b's content\n",
            "{}",
            show(&o)
        );
        assert_eq!(names_in(&out).len(), good_root().len() + 1, "{}", show(&o));
        f.check_good(&out, "badname");
        f.check_contained(&out, "badname");
    }

    // a and b are one file whose content belongs to another path (`good`).
    let copy = f.copy("moved");
    fs::copy(
        f.exp.join(OsStr::from_bytes(&f.cpath("good"))),
        copy.join(OsStr::from_bytes(&a)),
    )
    .unwrap();
    fs::hard_link(
        copy.join(OsStr::from_bytes(&a)),
        copy.join(OsStr::from_bytes(&b)),
    )
    .unwrap();
    let tar = f.tar_of(&copy, "moved");
    let mut t = RawTar::default();
    t.tree(&f.exp);
    t.file(&a, &fs::read(copy.join(OsStr::from_bytes(&a))).unwrap());
    t.hardlink(&b, &a);
    let tar_ab = f.path("moved_ab.tar");
    fs::write(&tar_ab, t.finish()).unwrap();
    let _ = tar;
    for (how, o, out) in [
        (
            "dir",
            f.restore(&copy, &f.path("out_moved"), &[]),
            f.path("out_moved"),
        ),
        (
            "tar",
            f.restore_tar(&tar_ab, &f.path("out_moved_tar"), &[]),
            f.path("out_moved_tar"),
        ),
    ] {
        eprintln!("== {how}\n{}", err(&o));
        assert_eq!(code(&o), 26, "{how}\n{}", show(&o));
        assert!(err(&o).contains("moved or swapped"), "{how}\n{}", show(&o));
        assert!(!out.join("a").exists(), "{how}");
        assert!(
            !out.join("b").exists(),
            "{how}: the other name kept the moved content"
        );
        f.check_good(&out, how);
        f.check_contained(&out, how);
    }
}

// ---------------------------------------------------------------- 7. tar oddities

/// A file cut off by the end of the stream, exactly at a block boundary (so every block
/// that is there authenticates), and a file whose pax size claims more than follows:
/// neither appears under its name.
#[test]
fn hostile_tar_truncated_member() {
    let f = Forge::new("truncated");
    let big = f.cpath("big");
    let data: Vec<u8> = (0..3 * 4096).map(|i| (i % 251) as u8).collect();
    let ct = f.file_ct(&big, &data);
    let mut t = RawTar::default();
    t.tree(&f.exp);
    // The header says the whole file, the stream stops after two of its three blocks.
    let cut = 18 + 2 * 4128;
    t.raw(
        &big,
        b'0',
        &ct[..cut],
        b"",
        &[("size", ct.len().to_string().as_bytes())],
    );
    // No padding, no end-of-archive blocks: the stream just stops after block 1.
    let mut bytes = t.buf;
    bytes.truncate(bytes.len() - (512 - cut % 512) % 512);
    let tar = f.path("truncated.tar");
    fs::write(&tar, &bytes).unwrap();
    let out = f.path("out_truncated");
    let o = f.restore_tar(&tar, &out, &[]);
    eprintln!("{}", err(&o));
    assert_ne!(code(&o), 0, "{}", show(&o));
    assert!(
        !out.join("big").exists(),
        "a truncated file appeared under its name"
    );
    assert!(
        err(&o).contains(&format!("{}", OsStr::from_bytes(&big).to_string_lossy()))
            || err(&o).contains("/big"),
        "{}",
        show(&o)
    );
    f.check_good(&out, "truncated");
    f.check_contained(&out, "truncated");
}

/// Absurd pax values (times at the ends of i64, sizes that overflow, uids beyond u32),
/// unknown and GNU-specific member types: each is reported or tolerated, never a panic,
/// and the good entries are restored.
#[test]
fn hostile_tar_absurd_headers() {
    let f = Forge::new("absurd");
    let n = |s: &str| f.cpath(s);
    let file = |t: &mut RawTar, name: &str, extra: &[(&str, &[u8])]| {
        let c = n(name);
        let ct = f.file_ct(&c, name.as_bytes());
        t.raw(&c, b'0', &ct, b"", extra);
    };
    let tar = f.tar_with("absurd", |t| {
        file(t, "mtime_min", &[("mtime", b"-9223372036854775808.5")]);
        file(
            t,
            "mtime_max",
            &[("mtime", b"9223372036854775807.999999999")],
        );
        file(t, "mtime_junk", &[("mtime", b"1e99"), ("atime", b"-1.-5")]);
        file(
            t,
            "uid_huge",
            &[("uid", b"99999999999999999999999"), ("gid", b"4294967296")],
        );
        t.raw(b"nul\0in/the path", b'0', b"x", b"", &[]);
        t.raw(&n("global"), b'g', b"17 comment=hello\n", b"", &[]);
        t.raw(&n("volume"), b'V', b"", b"", &[]);
        t.raw(&n("unknown"), b'Z', b"zzz", b"", &[]);
        t.raw(
            &n("contiguous"),
            b'7',
            &f.file_ct(&n("contiguous"), b"c"),
            b"",
            &[],
        );
    });
    let out = f.path("out_absurd");
    let o = f.restore_tar(&tar, &out, &[]);
    eprintln!("{}", err(&o));
    assert_ne!(code(&o), 0, "{}", show(&o));
    let e = err(&o);
    for needle in [
        "'V' (86)",
        "'Z' (90)",
        "nul\\u{0}in",
        "pax global header ignored",
    ] {
        assert!(e.contains(needle), "{needle}\n{e}");
    }
    f.check_good(&out, "absurd");
    f.check_contained(&out, "absurd");
    assert_eq!(fs::read(out.join("contiguous")).unwrap(), b"c");
    assert_eq!(fs::read(out.join("mtime_junk")).unwrap(), b"mtime_junk");
    assert_eq!(fs::read(out.join("uid_huge")).unwrap(), b"uid_huge");
}

/// 2000 nested directories in a tar stream, parents first and deepest first: no stack
/// overflow, everything restored.
#[test]
fn hostile_tar_deep_nesting() {
    let f = Forge::new("deep");
    const DEPTH: usize = 2000;
    let mut cpaths: Vec<Vec<u8>> = Vec::new();
    let mut c: Vec<u8> = Vec::new();
    for _ in 0..DEPTH {
        let name = f.codec.encrypt(&derive(&c, Purpose::DirIv), b"d");
        if !c.is_empty() {
            c.push(b'/');
        }
        c.extend_from_slice(name.as_bytes());
        cpaths.push(c.clone());
    }
    let leaf = {
        let name = f.codec.encrypt(&derive(&c, Purpose::DirIv), b"leaf");
        [&c[..], b"/", name.as_bytes()].concat()
    };
    let plain_leaf: PathBuf = (0..DEPTH).map(|_| "d").chain(["leaf"]).collect();
    for (label, reverse) in [("parents_first", false), ("deepest_first", true)] {
        let tar = f.tar_with(label, |t| {
            if reverse {
                t.file(&leaf, &f.file_ct(&leaf, b"deep\n"));
                for c in cpaths.iter().rev() {
                    t.dir(c);
                }
            } else {
                for c in &cpaths {
                    t.dir(c);
                }
                t.file(&leaf, &f.file_ct(&leaf, b"deep\n"));
            }
        });
        let out = f.path(&format!("out_{label}"));
        let t0 = std::time::Instant::now();
        let o = f.restore_tar(&tar, &out, &["-q"]);
        assert_eq!(code(&o), 0, "{label}\n{}", show(&o));
        // Read it back without PATH_MAX trouble: one component at a time.
        let mut cur = fs::File::open(&out).unwrap();
        for comp in plain_leaf.iter() {
            let _ = &cur;
            cur = fs::File::open(format!(
                "/proc/self/fd/{}/{}",
                std::os::fd::AsRawFd::as_raw_fd(&cur),
                comp.to_string_lossy()
            ))
            .unwrap();
        }
        let mut s = String::new();
        std::io::Read::read_to_string(&mut cur, &mut s).unwrap();
        assert_eq!(s, "deep\n", "{label}");
        assert!(t0.elapsed().as_secs() < 60, "{label}: {:?}", t0.elapsed());
        f.check_good(&out, label);
        // Leave nothing this deep for the temp dir cleanup (remove_dir_all copes, but slowly).
        assert!(Command::new("rm")
            .arg("-rf")
            .arg(&out)
            .status()
            .unwrap()
            .success());
    }
}

/// A GNU long-name member and a pax header that claim (and deliver) a gigabyte: the tar
/// reader would hold all of it in memory. Refused after a bounded amount, under a 500 MB
/// address-space limit; what came before in the stream is restored.
#[test]
fn hostile_tar_huge_header_records() {
    let f = Forge::new("hugehdr");
    for (label, typeflag, name) in [
        ("longname", b'L', &b"././@LongLink"[..]),
        ("pax", b'x', b"PaxHeader"),
    ] {
        let mut head = RawTar::default();
        head.tree(&f.exp);
        const HUGE: u64 = 1 << 30;
        head.buf
            .extend_from_slice(&ustar_header(name, typeflag, HUGE, b""));
        let out = f.path(&format!("out_{label}"));
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("ulimit -v 500000 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_cryptbak"))
            .args(["restore", "--no-progress", "--tar", "--passfile"])
            .arg(&f.pw)
            .arg("-")
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            stdin.write_all(&head.buf)?;
            // `path=aaaa…` records: valid pax, and a valid (if absurd) long name.
            let mut chunk = b"1073741824 path=".to_vec();
            chunk.resize(1 << 20, b'a');
            let mut sent = 0u64;
            while sent < HUGE {
                stdin.write_all(&chunk)?;
                chunk.fill(b'a');
                sent += chunk.len() as u64;
            }
            std::io::Result::Ok(())
        });
        let start = std::time::Instant::now();
        let o = child.wait_with_output().unwrap();
        let _ = writer.join();
        eprintln!("== {label} ({:?})\n{}", start.elapsed(), err(&o));
        assert!(o.status.code().is_some(), "{label}: killed\n{}", show(&o));
        assert_ne!(code(&o), 0, "{label}\n{}", show(&o));
        assert!(err(&o).contains("refused"), "{label}\n{}", show(&o));
        f.check_good(&out, label);
        f.check_contained(&out, label);
    }
}

/// A GNU sparse member: a 512-byte header that expands to as many zeros as it likes.
/// Refused with a reason (a ciphertext written by export has no holes).
#[test]
fn hostile_tar_gnu_sparse() {
    let f = Forge::new("sparse");
    let name = f.cpath("sparse");
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(b"00000000000\0"); // nothing stored
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = b'S';
    h[257..265].copy_from_slice(b"ustar  \0");
    // One sparse chunk: 0 bytes at offset 64 MiB (in a real bomb: any size).
    let real = format!("{:011o}\0", 64u64 << 20);
    h[386..398].copy_from_slice(real.as_bytes());
    h[398..410].copy_from_slice(b"00000000000\0");
    h[483..495].copy_from_slice(real.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let tar = f.tar_with("sparse", |t| t.buf.extend_from_slice(&h));
    let out = f.path("out_sparse");
    let o = f.restore_tar(&tar, &out, &[]);
    eprintln!("{}", err(&o));
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("sparse member refused"), "{}", show(&o));
    assert!(!out.join("sparse").exists());
    f.check_good(&out, "sparse");
    f.check_contained(&out, "sparse");
}
