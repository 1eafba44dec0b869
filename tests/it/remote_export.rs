//! `cryptbak export SRC s3://…` and `sftp://…` end to end, against real servers on
//! 127.0.0.1 (s3s-fs and OpenSSH's sshd, tests/it/servers.rs): what lands on the
//! server equals the directory export byte for byte (with markers and metadata on S3),
//! a change re-uploads exactly one object, vanished entries are deleted, a run killed
//! with -9 converges on the next, the options behave as for a directory, and failures
//! say what failed (and never show a credential).
//!
//! Trees here keep paths short: s3s-fs fails keys longer than about 160 bytes
//! (docs/remote.md), which one test uses on purpose.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cryptbak::remote::{Options, Store};

use crate::gocryptfs::{require_gocryptfs, Mount};
use crate::restore_util::set_mtime;
use crate::servers::{S3Server, SshServer, ACCESS_KEY, SECRET_KEY};
use crate::util::{
    cryptbak, export_ok, init_fast, run, run_code, run_ok, show_output, while_frozen, Work,
};

/// Deterministic bytes.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[2] ^ seed)
        .collect()
}

/// A tree with every kind of entry, short names: sizes around the 4 KiB block, an
/// empty file, nested and read-only directories, symlinks, a hard link, a long name
/// (its key is the short hashed one), modes and nanosecond mtimes; a FIFO when
/// `fifo` (SFTP cannot make one).
pub fn tree(root: &Path, fifo: bool) {
    fs::create_dir_all(root.join("d1/d2/d3")).unwrap();
    fs::create_dir(root.join("ro")).unwrap();
    let files: [(&str, Vec<u8>); 8] = [
        ("a.txt", b"hello\n".to_vec()),
        ("empty", Vec::new()),
        ("blk", data(4096, 1)),
        ("blk1", data(4097, 2)),
        ("d1/f", data(70_000, 3)),
        ("d1/d2/g", data(123, 4)),
        ("ro/in", b"inside a read-only directory".to_vec()),
        ("h1", data(5000, 5)),
    ];
    for (p, d) in &files {
        fs::write(root.join(p), d).unwrap();
    }
    fs::write(root.join("L".repeat(200)), b"a long name").unwrap();
    fs::hard_link(root.join("h1"), root.join("d1/h2")).unwrap();
    symlink("a.txt", root.join("l")).unwrap();
    symlink("d1/d2", root.join("d1/ld")).unwrap();
    if fifo {
        run_ok(Command::new("mkfifo").arg(root.join("d1/fifo")));
    }
    fs::set_permissions(root.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(root.join("blk"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("d1"), fs::Permissions::from_mode(0o750)).unwrap();
    let mut all = crate::restore_util::walk(root);
    all.reverse(); // children before parents
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 1000, 1 + i as u32 * 7919);
    }
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
}

/// One of the two servers, as the CLI reaches it.
pub enum Srv {
    S3(S3Server),
    Sftp(SshServer),
}

impl Srv {
    pub fn s3(label: &str) -> Srv {
        Srv::S3(S3Server::start(label))
    }
    pub fn sftp(label: &str) -> Srv {
        Srv::Sftp(SshServer::start(label))
    }

    pub fn url(&self, sub: &str) -> String {
        match self {
            Srv::S3(s) => s.location(sub).to_string(),
            Srv::Sftp(s) => s.location(sub).to_string(),
        }
    }

    /// Where `sub` lies on the server's disk (s3s-fs: object `k` is the file `k`).
    pub fn disk(&self, sub: &str) -> PathBuf {
        match self {
            Srv::S3(s) => s.object_path(sub),
            Srv::Sftp(s) => s.data.join(sub),
        }
    }

    /// The environment a user would set: credentials and endpoint, or the ssh command.
    pub fn env(&self, c: &mut Command) {
        for v in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            cryptbak::remote::SSH_VAR,
        ] {
            c.env_remove(v);
        }
        match self {
            Srv::S3(s) => {
                c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                    .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
                    .env("AWS_ENDPOINT_URL", s.endpoint())
                    .env("AWS_REGION", "us-east-1")
                    // The metadata cache of this server's locations, beside its storage.
                    .env("CRYPTBAK_CACHE_DIR", s.root.with_file_name("cache"));
            }
            Srv::Sftp(s) => {
                c.env(
                    cryptbak::remote::SSH_VAR,
                    format!("ssh -F {}", s.ssh_config.display()),
                );
            }
        }
    }

    pub fn export(&self, w: &Work, sub: &str, extra: &[&str]) -> Command {
        let mut c = cryptbak();
        c.arg("export").arg("--passfile").arg(&w.pw);
        c.args(extra).arg(&w.src).arg(self.url(sub));
        self.env(&mut c);
        c
    }

    pub fn store(&self, sub: &str) -> Store {
        let (loc, env) = match self {
            Srv::S3(s) => (s.location(sub), s.env()),
            Srv::Sftp(s) => (s.location(sub), s.env()),
        };
        Store::open(&loc, &env, Options::default()).unwrap()
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, Srv::S3(_))
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The regular files of a tree on disk with their bytes (the lock and s3s-fs's own
/// bookkeeping are not part of the tree).
pub fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for p in crate::restore_util::walk(root) {
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_file() {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel != ".cryptbak-lock" {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn dirs(root: &Path) -> Vec<String> {
    crate::restore_util::walk(root)
        .into_iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().is_dir())
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The directory export of the same source, for comparison.
fn dir_export(w: &Work, name: &str) -> PathBuf {
    let dest = w.path(name);
    export_ok(&w.src, &dest, &w.pw, &[OsStr::new("-q")]);
    dest
}

/// What an S3 export must hold, from the directory export `dest`: every regular file
/// as an object with the same bytes, every symlink as `<path>.rclonelink` holding its
/// target, every FIFO or device as an empty object. Returns them by key, and the keys
/// of the special files.
fn s3_objects(dest: &Path) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let mut want = BTreeMap::new();
    let mut specials = Vec::new();
    for p in crate::restore_util::walk(dest) {
        let rel = p.strip_prefix(dest).unwrap().to_string_lossy().into_owned();
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        if ft.is_file() {
            want.insert(rel.clone(), fs::read(&p).unwrap());
        } else if ft.is_symlink() {
            let t = fs::read_link(&p).unwrap();
            want.insert(
                format!("{rel}.rclonelink"),
                t.as_os_str().as_encoded_bytes().to_vec(),
            );
        } else if !ft.is_dir() {
            want.insert(rel.clone(), Vec::new());
            specials.push(rel.clone());
        }
    }
    (want, specials)
}

/// The S3 export holds [`s3_objects`] of the directory export `dest`, every directory
/// as a marker (a directory on s3s-fs's disk), and each object's metadata (HEAD)
/// matches `dest` to the nanosecond.
fn assert_s3_equals_dir_export(srv: &Srv, prefix: &str, dest: &Path) {
    let (want, specials) = s3_objects(dest);
    let root = srv.disk(prefix);
    let got = files(&root);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the objects differ from the directory export's files"
    );
    for (k, v) in &want {
        assert!(
            &got[k] == v,
            "{k}: the object's bytes differ from the directory export's"
        );
    }
    assert_eq!(dirs(&root), dirs(dest), "the directory markers");
    // Metadata, to the nanosecond, in rclone's keys.
    let store = srv.store(prefix);
    for rel in want.keys() {
        let path = dest.join(rel.strip_suffix(".rclonelink").unwrap_or(rel));
        let md = fs::symlink_metadata(&path).unwrap();
        let st = store.stat(rel).unwrap().unwrap();
        let m = st.meta;
        let t = m
            .mtime
            .unwrap_or_else(|| panic!("{rel}: no mtime metadata"));
        assert_eq!(
            (t.sec, t.nsec as i64),
            (md.mtime(), md.mtime_nsec()),
            "{rel}: mtime"
        );
        assert_eq!(m.mode, Some(md.mode()), "{rel}: mode");
        assert_eq!(
            (m.uid, m.gid),
            (Some(md.uid()), Some(md.gid())),
            "{rel}: owner"
        );
        if specials.contains(rel) {
            assert_eq!(m.rdev, Some(md.rdev()), "{rel}: rdev");
        }
    }
}

/// What an SFTP export must hold: the directory export's tree, with the same types,
/// bytes, symlink targets, hard links (one inode), modes, and mtimes to the second
/// (SFTP v3; a symlink's own time cannot be set over SFTP).
fn assert_sftp_equals_dir_export(srv: &Srv, sub: &str, dest: &Path) {
    let root = srv.disk(sub);
    let rel = |base: &Path, p: &Path| p.strip_prefix(base).unwrap().to_path_buf();
    let a: Vec<PathBuf> = crate::restore_util::walk(dest);
    let b: Vec<PathBuf> = crate::restore_util::walk(&root)
        .into_iter()
        .filter(|p| rel(&root, p) != Path::new(".cryptbak-lock"))
        .collect();
    let na: Vec<PathBuf> = a.iter().map(|p| rel(dest, p)).collect();
    let nb: Vec<PathBuf> = b.iter().map(|p| rel(&root, p)).collect();
    assert_eq!(na, nb, "the entries differ from the directory export's");
    let mut inodes_a = BTreeMap::new();
    let mut inodes_b = BTreeMap::new();
    for (pa, pb) in a.iter().zip(&b) {
        let (ma, mb) = (
            fs::symlink_metadata(pa).unwrap(),
            fs::symlink_metadata(pb).unwrap(),
        );
        let what = rel(dest, pa).display().to_string();
        assert_eq!(ma.mode(), mb.mode(), "{what}: mode");
        if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(pa).unwrap(),
                fs::read_link(pb).unwrap(),
                "{what}"
            );
            continue;
        }
        assert_eq!(ma.mtime(), mb.mtime(), "{what}: mtime (seconds)");
        if ma.is_file() {
            assert!(
                fs::read(pa).unwrap() == fs::read(pb).unwrap(),
                "{what}: bytes"
            );
            inodes_a
                .entry(ma.ino())
                .or_insert_with(Vec::new)
                .push(what.clone());
            inodes_b.entry(mb.ino()).or_insert_with(Vec::new).push(what);
        }
    }
    let groups = |m: BTreeMap<u64, Vec<String>>| {
        let mut v: Vec<Vec<String>> = m.into_values().collect();
        v.sort();
        v
    };
    assert_eq!(groups(inodes_a), groups(inodes_b), "hard links");
}

fn assert_equals_dir_export(srv: &Srv, sub: &str, dest: &Path) {
    if srv.is_s3() {
        assert_s3_equals_dir_export(srv, sub, dest)
    } else {
        assert_sftp_equals_dir_export(srv, sub, dest)
    }
}

/// (inode, size, mtime) of every regular file on the server's disk below `sub`: a
/// file whose stamp changes was written again (s3s-fs and SFTP both write a new file
/// and rename it into place).
fn stamps(srv: &Srv, sub: &str) -> BTreeMap<String, (u64, u64, i64, i64)> {
    let root = srv.disk(sub);
    files(&root)
        .into_keys()
        .map(|k| {
            let md = fs::symlink_metadata(root.join(&k)).unwrap();
            (k, (md.ino(), md.size(), md.mtime(), md.mtime_nsec()))
        })
        .collect()
}

fn changed(
    a: &BTreeMap<String, (u64, u64, i64, i64)>,
    b: &BTreeMap<String, (u64, u64, i64, i64)>,
) -> Vec<String> {
    let mut out: Vec<String> = b
        .iter()
        .filter(|(k, v)| a.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(a.keys().filter(|k| !b.contains_key(*k)).cloned());
    out.sort();
    out
}

/// The JSON summary object of an `--json` run.
fn summary(o: &Output) -> serde_json::Value {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary\n{}", show_output(o)))
}

/// Export, change, export again, for one server: the Proof list of issue 15.
fn export_update_delete(srv: &Srv) {
    let w = Work::new("remote-export");
    tree(&w.src, srv.is_s3());
    init_fast(&w.src, &w.pw);
    let sub = "back/home";

    // A first run into an empty location: the directory export's tree.
    let o = run_ok(&mut srv.export(&w, sub, &["--json"]));
    let s = summary(&o);
    assert_eq!(s["errors"], 0, "{}", show_output(&o));
    assert_equals_dir_export(srv, sub, &dir_export(&w, "dest1"));

    // Nothing changed: nothing written, nothing deleted, not one object touched.
    let before = stamps(srv, sub);
    let o = run_ok(&mut srv.export(&w, sub, &["--json"]));
    let s = summary(&o);
    assert_eq!(
        (s["written"].as_u64(), s["deleted"].as_u64()),
        (Some(0), Some(0)),
        "{}",
        show_output(&o)
    );
    assert_eq!(
        changed(&before, &stamps(srv, sub)),
        Vec::<String>::new(),
        "a no-change run wrote"
    );

    // One file changed in place (its directory's time stays): exactly one object.
    let f = w.src.join("d1/f");
    let md = fs::metadata(&f).unwrap();
    let mut bytes = fs::read(&f).unwrap();
    bytes[100] ^= 1;
    bytes.extend_from_slice(b"more");
    fs::write(&f, &bytes).unwrap();
    set_mtime(&f, md.mtime() + 5, 0);
    let o = run_ok(&mut srv.export(&w, sub, &["--json"]));
    let s = summary(&o);
    assert_eq!(s["written"], 1, "{}", show_output(&o));
    let after = stamps(srv, sub);
    let ch = changed(&before, &after);
    assert_eq!(ch.len(), 1, "exactly one object re-uploaded: {ch:?}");
    assert_equals_dir_export(srv, sub, &dir_export(&w, "dest2"));

    // Vanished entries are deleted: a file, a symlink, a directory with contents.
    fs::remove_file(w.src.join("a.txt")).unwrap();
    fs::remove_file(w.src.join("d1/ld")).unwrap();
    fs::set_permissions(w.src.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(w.src.join("ro")).unwrap();
    let o = run_ok(&mut srv.export(&w, sub, &["-v"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("*deleting   a.txt"), "{}", show_output(&o));
    assert!(out.contains("*deleting   ro"), "{}", show_output(&o));
    assert_equals_dir_export(srv, sub, &dir_export(&w, "dest3"));

    // A file that becomes a symlink and a symlink that becomes a file (on S3 they
    // live under different keys: the old one must go).
    fs::remove_file(w.src.join("blk")).unwrap();
    symlink("d1", w.src.join("blk")).unwrap();
    fs::remove_file(w.src.join("l")).unwrap();
    fs::write(w.src.join("l"), b"now a file").unwrap();
    run_ok(&mut srv.export(&w, sub, &["-q"]));
    assert_equals_dir_export(srv, sub, &dir_export(&w, "dest4"));

    // The lock is gone after every run.
    assert!(!srv.disk(sub).join(".cryptbak-lock").exists());
}

#[test]
fn s3_export_equals_the_directory_export_and_updates_incrementally() {
    export_update_delete(&Srv::s3("export"));
}

#[test]
fn sftp_export_equals_the_directory_export_and_updates_incrementally() {
    export_update_delete(&Srv::sftp("export"));
}

/// `rclone copy --metadata --links` of the prefix gives the directory export's files,
/// symlinks, modes and mtimes, and a real gocryptfs mounts the copy and shows the
/// source.
#[test]
fn s3_rclone_copy_of_an_export_mounts_with_gocryptfs() {
    if !require_gocryptfs("s3_rclone_copy_of_an_export_mounts_with_gocryptfs") {
        return;
    }
    let srv = S3Server::start("rclone-export");
    let s = Srv::S3(srv);
    let w = Work::new("remote-rclone");
    tree(&w.src, false);
    init_fast(&w.src, &w.pw);
    run_ok(&mut s.export(&w, "p", &["-q"]));
    let dest = dir_export(&w, "dest");
    let copy = w.path("copy");
    let Srv::S3(srv) = &s else { unreachable!() };
    let mut cmd = Command::new("rclone");
    srv.rclone_env(&mut cmd);
    // One low-level retry: s3s-fs answers 500 to rclone's HEAD of the prefix itself
    // (a directory on its disk), which rclone would otherwise retry for a minute.
    cmd.args([
        "copy",
        "--metadata",
        "--links",
        "--low-level-retries",
        "1",
        "T:bkt/p",
    ])
    .arg(&copy);
    run_ok(&mut cmd);
    for p in crate::restore_util::walk(&dest) {
        let rel = p.strip_prefix(&dest).unwrap();
        let q = copy.join(rel);
        let (a, b) = (
            fs::symlink_metadata(&p).unwrap(),
            fs::symlink_metadata(&q).unwrap(),
        );
        let what = rel.display();
        if a.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&p).unwrap(),
                fs::read_link(&q).unwrap(),
                "{what}"
            );
        } else if a.is_file() {
            assert!(
                fs::read(&p).unwrap() == fs::read(&q).unwrap(),
                "{what}: bytes"
            );
            assert_eq!(
                (a.mtime(), a.mtime_nsec()),
                (b.mtime(), b.mtime_nsec()),
                "{what}: mtime"
            );
            assert_eq!(a.mode(), b.mode(), "{what}: mode");
        } else {
            assert!(b.is_dir(), "{what}: a directory");
        }
    }
    let mnt = Mount::forward(&copy, &w.pw);
    for p in crate::restore_util::walk(&w.src) {
        let rel = p.strip_prefix(&w.src).unwrap();
        if rel == Path::new(".gocryptfs.reverse.conf") {
            continue;
        }
        let q = mnt.path().join(rel);
        let a = fs::symlink_metadata(&p).unwrap();
        let b = fs::symlink_metadata(&q)
            .unwrap_or_else(|e| panic!("{} in the mount: {e}", rel.display()));
        if a.is_file() {
            assert!(
                fs::read(&p).unwrap() == fs::read(&q).unwrap(),
                "{}",
                rel.display()
            );
        } else if a.file_type().is_symlink() {
            assert_eq!(fs::read_link(&p).unwrap(), fs::read_link(&q).unwrap());
        } else {
            assert!(b.is_dir(), "{}", rel.display());
        }
    }
}

/// kill -9 in the middle of a big upload: whatever exists under a final key is
/// complete; the next run (told that the lock is stale) converges.
fn killed_run_converges(srv: &Srv) {
    let w = Work::new("remote-kill");
    tree(&w.src, srv.is_s3());
    // Big enough for S3's multipart (8 MiB parts) and a visible temporary on SFTP.
    fs::write(w.src.join("big"), data(20 << 20, 9)).unwrap();
    init_fast(&w.src, &w.pw);
    let sub = "k";
    let s3root = match srv {
        Srv::S3(s) => Some(s.root.clone()),
        Srv::Sftp(_) => None,
    };
    let disk = srv.disk(sub);
    // Busy while an upload is provably unfinished: s3s-fs keeps a multipart upload's
    // parts as `.upload_id-<id>.part-<n>` in its root; SFTP writes a temporary file.
    let busy = || -> Option<PathBuf> {
        match &s3root {
            Some(root) => fs::read_dir(root).ok()?.flatten().find_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (n.starts_with(".upload_id-") && n.contains(".part-")).then(|| e.path())
            }),
            None => crate::util::growing_file(&disk, ".cryptbak-tmp-", 1 << 20),
        }
    };
    let mut killed = false;
    for _ in 0..5 {
        let child = srv
            .export(&w, sub, &["-q", "--no-progress", "--break-lock"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if while_frozen(child, busy, |pid| {
            run_ok(Command::new("kill").args(["-KILL", &pid.to_string()]));
        })
        .is_some()
        {
            killed = true;
            break;
        }
        // Finished before the big upload could be caught: start over.
        fs::write(w.src.join("big"), data(20 << 20, 10)).unwrap();
    }
    assert!(killed, "never caught a run in the middle of an upload");
    // Everything under a final key is whole: equal to the directory export's file.
    let fresh = dir_export(&w, "fresh");
    let want = if srv.is_s3() {
        s3_objects(&fresh).0
    } else {
        files(&fresh)
    };
    for (k, v) in files(&disk) {
        if k.contains(".cryptbak-tmp-") {
            continue;
        }
        assert!(
            want.get(&k) == Some(&v),
            "{k}: incomplete or wrong after kill -9 ({} bytes; the directory export has {:?})",
            v.len(),
            want.get(&k).map(Vec::len)
        );
    }
    // The dead run's lock stops the next one, with a way out.
    let o = run_code(&mut srv.export(&w, sub, &["-q"]), 1);
    let e = stderr(&o);
    assert!(
        e.contains("another run holds the lock") && e.contains("--break-lock"),
        "{e}"
    );
    run_ok(&mut srv.export(&w, sub, &["-q", "--break-lock"]));
    assert_equals_dir_export(srv, sub, &fresh);
    assert!(
        !files(&disk).keys().any(|k| k.contains(".cryptbak-tmp-")),
        "temporary files left"
    );
}

#[test]
fn s3_killed_run_converges() {
    killed_run_converges(&Srv::s3("kill"));
}

#[test]
fn sftp_killed_run_converges() {
    killed_run_converges(&Srv::sftp("kill"));
}

/// -n, --no-delete, --max-delete and --checksum as for a directory.
fn options_behave_as_for_a_directory(srv: &Srv) {
    let w = Work::new("remote-opts");
    tree(&w.src, false);
    init_fast(&w.src, &w.pw);
    let sub = "o";
    // A dry run into an empty location writes nothing, not even the lock.
    let o = run_ok(&mut srv.export(&w, sub, &["-n"]));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(">f+++++++++ a.txt"),
        "{}",
        show_output(&o)
    );
    assert!(!srv.disk(sub).exists() || files(&srv.disk(sub)).is_empty());
    run_ok(&mut srv.export(&w, sub, &["-q"]));
    let before = stamps(srv, sub);

    fs::remove_file(w.src.join("a.txt")).unwrap();
    fs::remove_file(w.src.join("blk1")).unwrap();
    fs::write(w.src.join("new"), b"new file").unwrap();
    let o = run_ok(&mut srv.export(&w, sub, &["-n"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(">f+++++++++ new") && out.contains("*deleting   a.txt"),
        "{out}"
    );
    assert_eq!(
        changed(&before, &stamps(srv, sub)),
        Vec::<String>::new(),
        "-n changed something"
    );

    let o = run_ok(&mut srv.export(&w, sub, &["--no-delete", "-q"]));
    assert!(stderr(&o).is_empty(), "{}", show_output(&o));
    let mid = stamps(srv, sub);
    assert!(
        before.keys().all(|k| mid.contains_key(k)),
        "--no-delete deleted"
    );

    let o = run_code(&mut srv.export(&w, sub, &["--max-delete", "1"]), 2);
    assert!(
        stderr(&o).contains("more than --max-delete 1; nothing was deleted"),
        "{}",
        show_output(&o)
    );
    assert_eq!(stamps(srv, sub).len(), mid.len());
    run_ok(&mut srv.export(&w, sub, &["--max-delete", "2", "-q"]));
    assert_equals_dir_export(srv, sub, &dir_export(&w, "dest"));

    // Bytes changed behind our back, same size and metadata: only --checksum sees it.
    let obj = files(&srv.disk(sub))
        .into_iter()
        .find(|(_, v)| v.len() == 70_000 + 70_000usize.div_ceil(4096) * 32 + 18)
        .map(|(k, _)| srv.disk(sub).join(k))
        .expect("the object of d1/f");
    let md = fs::metadata(&obj).unwrap();
    let mut bytes = fs::read(&obj).unwrap();
    bytes[5000] ^= 0x40;
    fs::write(&obj, &bytes).unwrap();
    set_mtime(&obj, md.mtime(), md.mtime_nsec() as u32);
    let o = run_ok(&mut srv.export(&w, sub, &["--json"]));
    assert_eq!(summary(&o)["written"], 0, "{}", show_output(&o));
    let o = run_ok(&mut srv.export(&w, sub, &["--checksum", "-v"]));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(">fc"),
        "{}",
        show_output(&o)
    );
    assert_equals_dir_export(srv, sub, &dir_export(&w, "dest2"));
}

#[test]
fn s3_options_behave_as_for_a_directory() {
    options_behave_as_for_a_directory(&Srv::s3("opts"));
}

#[test]
fn sftp_options_behave_as_for_a_directory() {
    options_behave_as_for_a_directory(&Srv::sftp("opts"));
}

/// Another run's lock stops an export (exit 1, naming the holder); a location that
/// holds a backup under another key is refused.
fn lock_and_foreign_key(srv: &Srv) {
    let w = Work::new("remote-lock");
    tree(&w.src, false);
    init_fast(&w.src, &w.pw);
    let sub = "l";
    run_ok(&mut srv.export(&w, sub, &["-q"]));
    let store = srv.store(sub);
    let held = store.lock("the other run on host9").unwrap();
    let o = run_code(&mut srv.export(&w, sub, &["-q"]), 1);
    assert!(
        stderr(&o).contains("the other run on host9"),
        "{}",
        show_output(&o)
    );
    held.release().unwrap();

    let other = Work::new("remote-lock-other");
    fs::write(other.src.join("x"), b"another key").unwrap();
    init_fast(&other.src, &other.pw);
    let o = run_code(&mut srv.export(&other, sub, &["-q"]), 1);
    assert!(
        stderr(&o).contains("refusing to write into it"),
        "{}",
        show_output(&o)
    );
    // Nothing was harmed (on SFTP the lock object moved the root's mtime: a run that
    // finishes sets it again).
    let o = run_ok(&mut srv.export(&w, sub, &["--json"]));
    assert_eq!(summary(&o)["written"], 0, "{}", show_output(&o));
    assert_equals_dir_export(srv, sub, &dir_export(&w, "dest"));
}

#[test]
fn s3_lock_and_foreign_key_stop_an_export() {
    lock_and_foreign_key(&Srv::s3("lock"));
}

#[test]
fn sftp_lock_and_foreign_key_stop_an_export() {
    lock_and_foreign_key(&Srv::sftp("lock"));
}

/// Wrong credentials and a missing bucket end the run (exit 1) with one line that says
/// which, and no credential anywhere in the output.
#[test]
fn s3_wrong_credentials_and_missing_bucket_are_fatal() {
    let s = Srv::s3("cli-auth");
    let w = Work::new("remote-auth");
    tree(&w.src, false);
    init_fast(&w.src, &w.pw);
    let mut c = s.export(&w, "p", &["--json"]);
    c.env("AWS_SECRET_ACCESS_KEY", "wrong-secret-1234");
    let o = run_code(&mut c, 1);
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(
        stderr(&o).contains("s3://bkt/p: authentication failed or access denied"),
        "{}",
        show_output(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", show_output(&o));
    for secret in ["wrong-secret-1234", SECRET_KEY] {
        assert!(!all.contains(secret), "a secret in the output: {all}");
    }
    let mut c = cryptbak();
    c.arg("export")
        .arg("--passfile")
        .arg(&w.pw)
        .arg(&w.src)
        .arg("s3://nosuchbucket/p");
    s.env(&mut c);
    let o = run_code(&mut c, 1);
    assert!(
        stderr(&o).contains("s3://nosuchbucket/p: the bucket does not exist"),
        "{}",
        show_output(&o)
    );
}

#[test]
fn sftp_rejected_key_is_fatal() {
    let s = Srv::sftp("cli-auth");
    let w = Work::new("remote-auth-sftp");
    fs::write(w.src.join("x"), b"x").unwrap();
    init_fast(&w.src, &w.pw);
    let Srv::Sftp(srv) = &s else { unreachable!() };
    let env = srv.env_with_stranger_key();
    let mut c = s.export(&w, "b", &[]);
    // The stranger's ssh command instead of the accepted one.
    c.env(cryptbak::remote::SSH_VAR, env.ssh_command().join(" "));
    let o = run_code(&mut c, 1);
    assert!(
        stderr(&o).contains("Permission denied"),
        "{}",
        show_output(&o)
    );
    assert!(
        stderr(&o).contains(&format!("sftp://127.0.0.1:{}/", srv.port)),
        "{}",
        show_output(&o)
    );
}

/// An object the service refuses is one error naming it (exit 2); the rest of the tree
/// is written. s3s-fs refuses keys over ~160 bytes; SFTP cannot make a FIFO.
#[test]
fn s3_a_refused_object_is_counted_and_named() {
    let s = Srv::s3("refused");
    let w = Work::new("remote-refused");
    tree(&w.src, false);
    // 120 plaintext bytes: a 171-character encrypted name, under gocryptfs's long-name
    // limit, over s3s-fs's key limit.
    fs::write(w.src.join("N".repeat(120)), b"x").unwrap();
    init_fast(&w.src, &w.pw);
    let o = run_code(&mut s.export(&w, "p", &[]), 2);
    let e = stderr(&o);
    let line = e
        .lines()
        .find(|l| l.contains("s3://bkt/p/"))
        .unwrap_or_else(|| panic!("{}", show_output(&o)));
    assert!(line.contains(&"N".repeat(120)), "names the source: {line}");
    assert!(e.contains("1 ERROR"), "{e}");
    // Everything else is there.
    assert!(files(&s.disk("p")).len() > 10);
}

#[test]
fn sftp_a_fifo_is_an_error_that_names_it() {
    let s = Srv::sftp("fifo");
    let w = Work::new("remote-fifo");
    tree(&w.src, true);
    init_fast(&w.src, &w.pw);
    let o = run_code(&mut s.export(&w, "b", &["-q"]), 2);
    assert!(
        stderr(&o).contains("FIFOs and device nodes cannot be created over SFTP"),
        "{}",
        show_output(&o)
    );
    assert!(s.disk("b").join("gocryptfs.conf").is_file());
}

#[test]
fn remote_options_need_a_url() {
    let w = Work::new("remote-usage");
    fs::write(w.src.join("x"), b"x").unwrap();
    init_fast(&w.src, &w.pw);
    let o = run(cryptbak()
        .args(["export", "--transfers", "4", "--passfile"])
        .arg(&w.pw)
        .arg(&w.src)
        .arg(w.path("d")));
    assert_eq!(o.status.code(), Some(64), "{}", show_output(&o));
    let o = run(cryptbak()
        .args(["export", "--passfile"])
        .arg(&w.pw)
        .arg(&w.src)
        .arg("s3://"));
    assert_eq!(o.status.code(), Some(64), "{}", show_output(&o));
}

/// The metadata cache stands in for the HEADs: with the objects' metadata gone from the
/// server (s3s-fs keeps it in sidecar files, deleted here), a run with the cache still
/// finds everything unchanged, and one without it (a fresh cache directory) can only
/// upload everything again. A write by someone else under the same key is seen even
/// with the cache (its Last-Modified moved).
#[test]
fn s3_metadata_cache_replaces_the_heads_and_notices_other_writers() {
    let s = Srv::s3("cache");
    let Srv::S3(srv) = &s else { unreachable!() };
    let w = Work::new("remote-cache");
    tree(&w.src, true);
    init_fast(&w.src, &w.pw);
    run_ok(&mut s.export(&w, "p", &["-q"]));
    let cache_dir = srv.root.with_file_name("cache");
    let cached: Vec<_> = fs::read_dir(&cache_dir).unwrap().flatten().collect();
    assert_eq!(cached.len(), 1, "one cache file for the location");
    assert_eq!(
        cached[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sidecars = || -> Vec<PathBuf> {
        fs::read_dir(&srv.root)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".metadata.json"))
            .collect()
    };
    let removed = sidecars();
    assert!(removed.len() > 10);
    for p in &removed {
        fs::remove_file(p).unwrap();
    }
    let o = run_ok(&mut s.export(&w, "p", &["--json"]));
    assert_eq!(summary(&o)["written"], 0, "{}", show_output(&o));

    // Another writer replaces an object (same size, no metadata): seen despite the
    // cache, rewritten.
    let dest = dir_export(&w, "dest");
    let (k, v) = s3_objects(&dest)
        .0
        .into_iter()
        .find(|(k, v)| !k.contains('/') && v.len() == 4097 + 2 * 32 + 18)
        .expect("the object of blk1");
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new Last-Modified
    s.store("p")
        .put_bytes(&k, &vec![0u8; v.len()], &Default::default())
        .unwrap();
    let o = run_ok(&mut s.export(&w, "p", &["--json", "-v"]));
    assert_eq!(summary(&o)["written"], 1, "{}", show_output(&o));
    assert!(fs::read(srv.object_path(&format!("p/{k}"))).unwrap() == v);

    // Without the cache every object has lost its metadata: all are written again.
    for p in sidecars() {
        fs::remove_file(p).unwrap();
    }
    let mut c = s.export(&w, "p", &["--json"]);
    c.env("CRYPTBAK_CACHE_DIR", w.path("empty-cache"));
    let o = run_ok(&mut c);
    let sm = summary(&o);
    assert!(sm["written"].as_u64().unwrap() > 10, "{}", show_output(&o));
    assert_s3_equals_dir_export(&s, "p", &dest);
}

/// Memory stays bounded by the upload buffers, not by the file: a 160 MiB file (twenty
/// 8 MiB parts) is exported with a peak RSS far below its size. Regression: OpenDAL's
/// concurrent multipart writer kept every finished part until the end (250 MiB peak
/// for a 1 GiB file); the writer now sends one part while the next is filled.
#[test]
fn s3_memory_does_not_grow_with_the_file() {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.is_file(),
        "GNU time is not installed: apt-get install time (.ci/run does)"
    );
    let s = Srv::s3("memory");
    let w = Work::new("remote-memory");
    let size = 160 << 20;
    fs::write(w.src.join("big"), data(size, 3)).unwrap();
    init_fast(&w.src, &w.pw);
    let rss = w.path("rss");
    let export = s.export(&w, "p", &["-q"]);
    let mut c = Command::new(time);
    c.arg("-f").arg("%M").arg("-o").arg(&rss);
    c.arg(export.get_program()).args(export.get_args());
    for (k, v) in export.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    run_ok(&mut c);
    let kib: u64 = fs::read_to_string(&rss).unwrap().trim().parse().unwrap();
    assert!(
        kib < 96 << 10,
        "peak RSS {} MiB exporting a {} MiB file",
        kib >> 10,
        size >> 20
    );
    assert_eq!(
        fs::metadata(s.disk("p"))
            .map(|_| files(&s.disk("p")).len())
            .unwrap(),
        3,
        "big, gocryptfs.conf, gocryptfs.diriv"
    );
}
