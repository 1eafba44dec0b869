//! `cryptbak verify`: clean backups pass without any plaintext being written, every kind
//! of tampering is named with exit code 26, and `--source` lists the differences.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::gocryptfs::{copy_view, init_reverse, require_gocryptfs, Mount};
use crate::util::{cryptbak, export_ok, run_code, run_ok, write_passfile, TestDir};

const LONG: &str = "a-file-with-a-rather-long-name-that-gocryptfs-has-to-hash-into-a-longname-file-because-its-encrypted-form-exceeds-the-limit-of-255-characters-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

struct Fixture {
    t: TestDir,
    pw: PathBuf,
    src: PathBuf,
    dest: PathBuf,
}

impl Fixture {
    /// A source with small, empty, multi-block, long-named files, a subdirectory and a
    /// symlink, initialised and exported.
    fn new(label: &str) -> Fixture {
        let t = TestDir::new(label);
        let pw = write_passfile(t.path());
        let src = t.join("src");
        fs::create_dir_all(src.join("sub/deeper")).unwrap();
        fs::write(src.join("small.txt"), b"hello\n").unwrap();
        fs::write(src.join("empty"), b"").unwrap();
        let big: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 251) as u8).collect();
        fs::write(src.join("big.bin"), &big).unwrap();
        fs::write(src.join("sub/a.txt"), b"AAAAAAAA").unwrap();
        fs::write(src.join("sub/b.txt"), b"BBBBBBBB").unwrap();
        fs::write(src.join("sub/deeper").join(LONG), b"long").unwrap();
        symlink("../small.txt", src.join("sub/link")).unwrap();
        run_ok(
            cryptbak()
                .args(["init", "-q", "--scryptn", "10", "--passfile"])
                .arg(&pw)
                .arg(&src),
        );
        let dest = t.join("dest");
        export_ok(&src, &dest, &pw, &[]);
        Fixture { t, pw, src, dest }
    }

    /// The backup file of a plaintext path.
    fn cfile(&self, plain: &str) -> PathBuf {
        let o = run_ok(
            cryptbak()
                .arg("encrypt-path")
                .arg("--passfile")
                .arg(&self.pw)
                .arg(&self.src)
                .arg(plain),
        );
        let c = String::from_utf8(o.stdout).unwrap();
        self.dest.join(c.trim_end_matches('\n'))
    }

    fn verify(&self) -> Command {
        let mut c = cryptbak();
        c.arg("verify").arg("--passfile").arg(&self.pw);
        c
    }

    /// `verify BACKUP`, expecting `code`; returns stderr.
    fn expect(&self, code: i32) -> String {
        let o = run_code(self.verify().arg(&self.dest), code);
        String::from_utf8_lossy(&o.stderr).into_owned()
    }
}

/// Every file below `root` with its size, mtime and content.
fn snapshot(root: &Path) -> Vec<(PathBuf, u64, i64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.push((p.clone(), m.size(), m.mtime_nsec(), content));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 1;
    fs::write(path, b).unwrap();
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn verify_clean_export_writes_nothing() {
    let f = Fixture::new("verify-clean");
    let before = snapshot(&f.dest);
    // An empty working directory and TMPDIR: nothing may appear in them.
    let cwd = TestDir::new("verify-cwd");
    let tmp = TestDir::new("verify-tmp");
    let o = run_ok(
        f.verify()
            .arg(&f.dest)
            .current_dir(cwd.path())
            .env("TMPDIR", tmp.path()),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("reverse-made") && err.contains("; OK"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    assert_eq!(snapshot(&f.dest), before, "verify changed the backup");
    assert_eq!(fs::read_dir(cwd.path()).unwrap().count(), 0);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);

    // --json: one summary object on stdout.
    let o = run_ok(f.verify().arg("--json").arg(&f.dest));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["files"], 6);
    assert_eq!(v["layout"], "reverse");
    assert_eq!(v["integrity_errors"], 0);
    assert!(v["bytes_authenticated"].as_u64().unwrap() > 3 * 4096);

    // Wrong password: exit 12, nothing checked.
    let bad = f.t.join("badpw");
    fs::write(&bad, "nope\n").unwrap();
    run_code(
        cryptbak()
            .arg("verify")
            .arg("--passfile")
            .arg(&bad)
            .arg(&f.dest),
        12,
    );
}

#[test]
fn verify_flipped_bit_names_block_and_plaintext() {
    let f = Fixture::new("verify-bit");
    let c = f.cfile("big.bin");
    flip(&c, 18 + 4128 + 100);
    let err = f.expect(26);
    assert!(err.contains(&name(&c)), "{err}");
    assert!(err.contains("block 1 of 4 does not authenticate"), "{err}");
    assert!(err.contains("[plaintext: big.bin]"), "{err}");
}

#[test]
fn verify_flipped_header() {
    let f = Fixture::new("verify-header");
    let c = f.cfile("big.bin");
    flip(&c, 7);
    let err = f.expect(26);
    assert!(
        err.contains(&name(&c)) && err.contains("every block"),
        "{err}"
    );
}

#[test]
fn verify_truncated_file() {
    let f = Fixture::new("verify-trunc");
    let c = f.cfile("big.bin");
    let b = fs::read(&c).unwrap();
    fs::write(&c, &b[..b.len() - 50]).unwrap();
    let err = f.expect(26);
    assert!(err.contains(&name(&c)) && err.contains("block 3"), "{err}");
}

#[test]
fn verify_swapped_files() {
    let f = Fixture::new("verify-swap");
    let (a, b) = (f.cfile("sub/a.txt"), f.cfile("sub/b.txt"));
    let (ba, bb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    fs::write(&a, bb).unwrap();
    fs::write(&b, ba).unwrap();
    let err = f.expect(26);
    assert!(err.contains("moved or swapped"), "{err}");
    assert!(err.contains(&name(&a)) && err.contains(&name(&b)), "{err}");
    assert!(err.contains("[plaintext: sub/a.txt]"), "{err}");
}

#[test]
fn verify_tampered_name() {
    let f = Fixture::new("verify-name");
    let c = f.cfile("small.txt");
    // Another valid base64 name: it does not decrypt, or (rarely) decrypts to another
    // name whose path does not match the file's IVs; either way it is found.
    let mut n = name(&c).into_bytes();
    n[0] = if n[0] == b'A' { b'B' } else { b'A' };
    let renamed = c.with_file_name(String::from_utf8(n).unwrap());
    fs::rename(&c, &renamed).unwrap();
    let err = f.expect(26);
    assert!(err.contains(&name(&renamed)), "{err}");
}

#[test]
fn verify_tampered_name_file() {
    let f = Fixture::new("verify-namefile");
    let c = f.cfile(&format!("sub/deeper/{LONG}"));
    assert!(
        name(&c).starts_with("gocryptfs.longname."),
        "{}",
        c.display()
    );
    let nf = c.with_file_name(format!("{}.name", name(&c)));
    flip(&nf, 10);
    let err = f.expect(26);
    assert!(
        err.contains(&name(&c)) && err.contains(".name file does not match"),
        "{err}"
    );
}

#[test]
fn verify_tampered_diriv() {
    let f = Fixture::new("verify-diriv");
    let dir = f.cfile("sub");
    flip(&dir.join("gocryptfs.diriv"), 3);
    let err = f.expect(26);
    assert!(err.contains("gocryptfs.diriv does not match"), "{err}");
    assert!(
        err.contains(&name(&dir)) && err.contains("[plaintext: sub]"),
        "{err}"
    );
}

#[test]
fn verify_tampered_symlink() {
    let f = Fixture::new("verify-symlink");
    let c = f.cfile("sub/link");
    let t = fs::read_link(&c).unwrap();
    let mut t = t.into_os_string().into_string().unwrap().into_bytes();
    t[20] = if t[20] == b'A' { b'B' } else { b'A' };
    fs::remove_file(&c).unwrap();
    symlink(String::from_utf8(t).unwrap(), &c).unwrap();
    let err = f.expect(26);
    assert!(
        err.contains(&name(&c)) && err.contains("symlink target"),
        "{err}"
    );
}

#[test]
fn verify_source_lists_differences() {
    let f = Fixture::new("verify-source");
    let source = || {
        let mut c = f.verify();
        c.arg("--source").arg(&f.src).arg(&f.dest);
        c
    };
    let o = run_ok(&mut source());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("identical to"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    fs::write(f.src.join("small.txt"), b"hello, changed\n").unwrap();
    fs::write(f.src.join("new.txt"), b"new").unwrap();
    fs::remove_file(f.src.join("sub/b.txt")).unwrap();
    let before = snapshot(&f.dest);
    let o = run_code(&mut source(), 2);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("DOES NOT MATCH"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let has = |prefix: &str, plain: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && l.ends_with(&format!(" {plain}")))
    };
    assert!(has(">f+++++++++ ", "new.txt"), "{out}");
    assert!(has("*deleting ", "sub/b.txt"), "{out}");
    assert!(has(">f", "small.txt"), "{out}");
    assert_eq!(
        snapshot(&f.dest),
        before,
        "verify --source changed the backup"
    );

    // Authentication failures win over differences.
    flip(&f.cfile("big.bin"), 30);
    run_code(&mut source(), 26);
}

/// Hard links share the IVs of one of their names: not a "moved file".
#[test]
fn verify_hard_links() {
    let t = TestDir::new("verify-hardlinks");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("h1"), b"shared").unwrap();
    fs::hard_link(src.join("h1"), src.join("d/h2")).unwrap();
    run_ok(
        cryptbak()
            .args(["init", "-q", "--scryptn", "10", "--passfile"])
            .arg(&pw)
            .arg(&src),
    );
    let dest = t.join("dest");
    export_ok(&src, &dest, &pw, &[]);
    run_ok(
        cryptbak()
            .arg("verify")
            .arg("--passfile")
            .arg(&pw)
            .arg(&dest),
    );
}

#[test]
fn verify_copy_of_gocryptfs_reverse_mount() {
    if !require_gocryptfs("verify_copy_of_gocryptfs_reverse_mount") {
        return;
    }
    let t = TestDir::new("verify-gocryptfs");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("dir/file"), vec![7u8; 10_000]).unwrap();
    fs::write(src.join("x"), b"x").unwrap();
    fs::write(src.join(LONG), b"long").unwrap();
    symlink("dir/file", src.join("link")).unwrap();
    init_reverse(&src, &pw, &[]);
    let m = Mount::reverse(&src, &pw, &[]);
    let copy = copy_view(&m);
    drop(m);
    let o = run_ok(
        cryptbak()
            .arg("verify")
            .arg("--passfile")
            .arg(&pw)
            .arg(copy.path()),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("reverse-made") && err.contains("; OK"),
        "{err}"
    );
    // A forward-mode gocryptfs directory (AES-GCM, random IVs) verifies too.
    let fwd = t.join("fwd");
    fs::create_dir(&fwd).unwrap();
    crate::gocryptfs::init_forward(&fwd, &pw, &[]);
    let m = Mount::forward(&fwd, &pw);
    fs::write(m.path().join("f"), vec![1u8; 9000]).unwrap();
    fs::create_dir(m.path().join("d")).unwrap();
    symlink("../f", m.path().join("d/l")).unwrap();
    m.unmount();
    let o = run_ok(
        cryptbak()
            .arg("verify")
            .arg("--passfile")
            .arg(&pw)
            .arg(&fwd),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("forward-mode, AES-GCM; OK"), "{err}");
    // And the copy of the reverse mount is what cryptbak would write for the same source.
    run_ok(
        cryptbak()
            .arg("verify")
            .arg("--passfile")
            .arg(&pw)
            .arg("--source")
            .arg(&src)
            .arg(copy.path()),
    );
}
