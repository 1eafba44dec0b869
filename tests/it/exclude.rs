//! Selection options (`--exclude*`, `--one-file-system`, tag files), end to end.
//!
//! The interop tests mount the same plaintext tree with a real gocryptfs (the default
//! oracle, 2.6.1, unless a test names another release, tests/it/gocryptfs.rs) in
//! reverse mode with the same options, copy the mount with `cp -a`, run `cryptbak
//! export`, and compare both trees entry by entry: relative names, type, mode, owner,
//! size, mtime with nanoseconds, contents and symlink targets. Where cryptbak fixes a
//! gocryptfs bug (present from 2.3 to 2.6.1 unless a test says otherwise), the test shows
//! the bug on the mount and then compares with a mount that works around it.
//!
//! They fail (never skip) when /dev/fuse exists and gocryptfs does not; they print a
//! loud SKIP line only on machines without /dev/fuse.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::gocryptfs::Oracle;

const PASSWORD: &str = "exclude-test-password";

fn x240() -> String {
    "x".repeat(240)
}

/// Whether the interop tests can run (with the default oracle). Panics if /dev/fuse
/// exists but the oracle is missing: compatibility must never pass unproven.
fn interop(test: &str) -> bool {
    crate::gocryptfs::require_gocryptfs(test)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn check(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Unmounts on drop (also when the test panics), FUSE or kernel mount.
struct Mounted {
    path: PathBuf,
    fuse: bool,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for _ in 0..50 {
            let status = if self.fuse {
                Command::new("fusermount3")
                    .arg("-u")
                    .arg(&self.path)
                    .output()
                    .or_else(|_| {
                        Command::new("fusermount")
                            .arg("-u")
                            .arg(&self.path)
                            .output()
                    })
            } else {
                Command::new("umount").arg(&self.path).output()
            };
            if status.is_ok_and(|o| o.status.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

/// One plaintext tree with a gocryptfs config, plus scratch space beside it.
struct Fixture {
    tmp: tempfile::TempDir,
    src: PathBuf,
    passfile: PathBuf,
    /// The gocryptfs release that makes the config and the reference mounts; exports
    /// get its `--compat` arguments.
    oracle: Oracle,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(Oracle::DEFAULT)
    }

    fn with(oracle: Oracle) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        let passfile = tmp.path().join("pw");
        fs::write(&passfile, format!("{PASSWORD}\n")).unwrap();
        Fixture {
            tmp,
            src,
            passfile,
            oracle,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Create a file (and its parents) under SRC.
    fn file(&self, rel: impl AsRef<[u8]>, content: &str) {
        let p = self.src.join(OsStr::from_bytes(rel.as_ref()));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }

    fn dir(&self, rel: impl AsRef<[u8]>) {
        fs::create_dir_all(self.src.join(OsStr::from_bytes(rel.as_ref()))).unwrap();
    }

    /// `gocryptfs -init -reverse` (the config the export and the mount share).
    fn init(&self, extra: &[&str]) {
        let mut cmd = self.oracle.command();
        cmd.args(["-init", "-reverse", "-q", "-scryptn", "10", "-passfile"])
            .arg(&self.passfile)
            .args(extra)
            .arg(&self.src);
        check(&mut cmd);
    }

    /// Mount SRC in reverse mode with these extra gocryptfs options.
    fn mount(&self, opts: &[&str], reverse: bool, dir: &Path) -> Mounted {
        let mnt = unique(self.path("mnt"));
        fs::create_dir(&mnt).unwrap();
        let mut cmd = self.oracle.command();
        if reverse {
            cmd.arg("-reverse");
        }
        cmd.args(["-q", "-nosyslog", "-passfile"])
            .arg(&self.passfile)
            .args(opts)
            .arg(dir)
            .arg(&mnt);
        // The daemon gocryptfs forks keeps stdout and stderr open as long as it runs, so
        // they go to a file, not to a pipe that `output()` would wait on forever.
        let log_path = unique(self.path("gocryptfs.log"));
        let log = fs::File::create(&log_path).unwrap();
        let status = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            status.success(),
            "{cmd:?} failed ({status}):\n{}",
            fs::read_to_string(&log_path).unwrap_or_default()
        );
        Mounted {
            path: mnt,
            fuse: true,
        }
    }

    /// What a reverse mount with `opts` shows, copied with `cp -a`; also the cp result
    /// (2.3 to 2.6.1 make cp fail on some `.name` files, gocryptfs#686).
    fn reference(&self, opts: &[&str]) -> (PathBuf, Output) {
        let m = self.mount(opts, true, &self.src);
        let dest = unique(self.path("ref"));
        fs::create_dir(&dest).unwrap();
        let out = run(Command::new("cp")
            .arg("-a")
            .arg(m.path.join("."))
            .arg(format!("{}/", dest.display())));
        drop(m);
        (dest, out)
    }

    /// A reference that `cp -a` copied without any error.
    fn clean_reference(&self, opts: &[&str]) -> PathBuf {
        let (dest, out) = self.reference(opts);
        assert!(
            out.status.success(),
            "cp -a of the mount with {opts:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dest
    }

    /// `cryptbak export --passfile PW ARGS SRC DEST`, without checking the result.
    fn try_export(&self, args: &[&str]) -> (PathBuf, Output) {
        let dest = unique(self.path("dest"));
        let out = run(Command::new(env!("CARGO_BIN_EXE_cryptbak"))
            .arg("export")
            .arg("--passfile")
            .arg(&self.passfile)
            .args(self.oracle.compat_args())
            .args(args)
            .arg(&self.src)
            .arg(&dest));
        (dest, out)
    }

    fn export(&self, args: &[&str]) -> PathBuf {
        let (dest, out) = self.try_export(args);
        assert!(
            out.status.success(),
            "cryptbak export {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        dest
    }

    /// The plaintext names a forward gocryptfs mount of `cipher` shows (relative paths).
    fn decrypted_names(&self, cipher: &Path) -> Vec<String> {
        let m = self.mount(&["-ro"], false, cipher);
        let mut names: Vec<String> = snapshot(&m.path)
            .keys()
            .filter(|k| !k.is_empty())
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        names.sort();
        names
    }
}

/// A path that does not exist yet: `base`, or `base-N`.
fn unique(base: PathBuf) -> PathBuf {
    let mut p = base.clone();
    let mut n = 0;
    while p.symlink_metadata().is_ok() {
        n += 1;
        p = PathBuf::from(format!("{}-{n}", base.display()));
    }
    p
}

/// Everything the comparison looks at for one entry.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    content: Vec<u8>,
}

/// All entries below `root` (root included as ""), by relative path.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Seen> {
    fn walk(root: &Path, rel: &[u8], out: &mut BTreeMap<Vec<u8>, Seen>) {
        let path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(OsStr::from_bytes(rel))
        };
        let m = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let ft = m.file_type();
        let (kind, content) = if ft.is_dir() {
            ("dir", Vec::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if ft.is_file() {
            (
                "file",
                fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")),
            )
        } else {
            ("special", Vec::new())
        };
        out.insert(
            rel.to_vec(),
            Seen {
                kind,
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                content,
            },
        );
        if ft.is_dir() {
            for e in fs::read_dir(&path).unwrap() {
                let name = e.unwrap().file_name();
                let mut child = rel.to_vec();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(name.as_bytes());
                walk(root, &child, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, b"", &mut out);
    out
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).escape_debug().to_string()
}

/// The differences between two trees: (only in a, only in b, in both but different).
fn diff(a: &Path, b: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (sa, sb) = (snapshot(a), snapshot(b));
    let only_a = sa
        .keys()
        .filter(|k| !sb.contains_key(*k))
        .map(|k| show(k))
        .collect();
    let only_b = sb
        .keys()
        .filter(|k| !sa.contains_key(*k))
        .map(|k| show(k))
        .collect();
    let differ = sa
        .iter()
        .filter_map(|(k, va)| {
            let vb = sb.get(k)?;
            (va != vb).then(|| {
                let brief = |v: &Seen| {
                    format!(
                        "{} mode {:o} uid {} gid {} size {} mtime {}.{:09} {} content bytes",
                        v.kind,
                        v.mode,
                        v.uid,
                        v.gid,
                        v.size,
                        v.mtime.0,
                        v.mtime.1,
                        v.content.len()
                    )
                };
                format!("{}:\n    {}\n    {}", show(k), brief(va), brief(vb))
            })
        })
        .collect();
    (only_a, only_b, differ)
}

/// Assert that the trees are identical entry by entry.
fn assert_same(reference: &Path, ours: &Path, what: &str) {
    let (only_ref, only_ours, differ) = diff(reference, ours);
    assert!(
        only_ref.is_empty() && only_ours.is_empty() && differ.is_empty(),
        "{what}: the export differs from the gocryptfs mount\n\
         only in the mount: {only_ref:#?}\nonly in the export: {only_ours:#?}\ndifferent: {differ:#?}"
    );
    // Guard against comparing two empty trees.
    assert!(snapshot(ours).len() > 1, "{what}: nothing was exported");
}

impl Fixture {
    /// [`assert_same`] for a reference copied from this fixture's gocryptfs mount; counts
    /// the comparison in the compatibility matrix.
    fn assert_same(&self, reference: &Path, ours: &Path, what: &str) {
        assert_same(reference, ours, what);
        let check = if self.oracle == Oracle::DEFAULT {
            crate::gocryptfs::FULL_SET
        } else {
            "exclude tests of this release's own quirks"
        };
        crate::gocryptfs::record_matrix(
            self.oracle,
            check,
            snapshot(reference).len(),
            &format!("exclude: {what}"),
        );
    }
}

/// The relative paths (in the view) of a tree, for membership checks.
fn names(root: &Path) -> Vec<String> {
    snapshot(root).keys().map(|k| show(k)).collect()
}

/// The upstream test tree, tests/reverse/exclude_test_fs in gocryptfs.
fn upstream_tree(f: &Fixture) {
    let x = x240();
    for p in [
        "bkp1~".to_string(),
        "dir1/exclude".into(),
        "dir1/file1".into(),
        "dir1/file2".into(),
        format!("dir1/longbkp1{x}~"),
        format!("dir1/longfile1{x}"),
        format!("dir1/longfile2{x}"),
        format!("dir1/longfile3{x}"),
        "dir1/subdir1/exclude".into(),
        "dir1/subdir1/subdir2/exclude".into(),
        "dir2/file".into(),
        format!("dir2/longdir1{x}/file"),
        format!("dir2/longfile.{x}"),
        "dir2/subdir/file".into(),
        "file1".into(),
        "file2".into(),
        "file3".into(),
        format!("longdir1{x}/file1"),
        format!("longdir2{x}/bkp~"),
        format!("longdir2{x}/file"),
        format!("longfile1{x}"),
        format!("longfile2{x}"),
        format!("longfile3{x}"),
    ] {
        f.file(&p, &format!("content of {}\n", &p[..p.len().min(20)]));
    }
}

/// The patterns of gocryptfs's TestExcludeTestFs.
fn upstream_patterns() -> Vec<String> {
    let x = x240();
    vec![
        "file1".into(),                // matches file1 anywhere
        format!("!longdir1{x}/file1"), // ! includes an otherwise excluded file
        "file2/".into(),               // a trailing slash matches only inside a directory
        "dir1/file2".into(),           // a middle slash does not anchor
        "#file2".into(),               // comments are ignored
        "dir2".into(),                 // the whole directory
        format!("longfile2{x}"),       // a long name anywhere
        format!("/longfile3{x}"),      // a leading / anchors at the root
        "*~".into(),                   // wildcards
        "dir1/**/exclude".into(),      // ** matches any number of directories
        "file3/".into(),               // a trailing slash does not match a file
    ]
}

fn flag_args<'a>(flag: &'a str, values: &'a [String]) -> Vec<&'a str> {
    values.iter().flat_map(|v| [flag, v.as_str()]).collect()
}

#[test]
fn exclude_upstream_exclude_test_fs_matches_mount() {
    if !interop("exclude_upstream_exclude_test_fs_matches_mount") {
        return;
    }
    let f = Fixture::new();
    upstream_tree(&f);
    f.init(&[]);
    let patterns = upstream_patterns();
    let reference = f.clean_reference(&flag_args("-ew", &patterns));
    // The long spelling, and gocryptfs's own single-dash spellings.
    let ours = f.export(&flag_args("--exclude-wildcard", &patterns));
    f.assert_same(&reference, &ours, "--exclude-wildcard");
    let ours = f.export(&flag_args("-ew", &patterns));
    f.assert_same(&reference, &ours, "-ew");
    let ours = f.export(&flag_args("-exclude-wildcard", &patterns));
    f.assert_same(&reference, &ours, "-exclude-wildcard");

    // What must be gone is gone: decrypt the export with a forward mount.
    let x = x240();
    let plain = f.decrypted_names(&ours);
    let expect_visible = [
        "file2".to_string(),
        format!("dir1/longfile1{x}"),
        format!("dir1/longfile3{x}"),
        format!("longdir1{x}"),
        format!("longdir1{x}/file1"),
        format!("longdir2{x}/file"),
        format!("longfile1{x}"),
        "file3".into(),
        "dir1".into(),
        "dir1/subdir1".into(),
    ];
    for v in &expect_visible {
        assert!(plain.contains(v), "{v} should be in the backup");
    }
    for h in [
        "bkp1~",
        "dir1/file1",
        "dir1/file2",
        "dir1/exclude",
        "dir2",
        "file1",
    ] {
        assert!(
            !plain.iter().any(|p| p == h),
            "{h} should not be in the backup"
        );
    }
}

/// gocryptfs TestExcludeAllOnlyDir1 (gocryptfs#588): `*` then `!/dir1`. In 2.3 to 2.6.1 the
/// mount also hides `gocryptfs.conf` (matched by `*`) and refuses the `.name` files of
/// dir1's long names (checked against the *encrypted* path of dir1): gocryptfs#686.
/// `cp -a` fails on them, and the copy cannot be decrypted completely. cryptbak shows
/// both; everything else is identical.
#[test]
fn exclude_all_but_dir1_fixes_gocryptfs_686() {
    if !interop("exclude_all_but_dir1_fixes_gocryptfs_686") {
        return;
    }
    let f = Fixture::new();
    upstream_tree(&f);
    f.init(&[]);
    let (reference, cp) = f.reference(&["-ew", "*", "-ew", "!/dir1"]);
    let cp_err = String::from_utf8_lossy(&cp.stderr).into_owned();
    assert!(
        !cp.status.success() && cp_err.contains("Operation not permitted"),
        "gocryptfs {} was expected to refuse the .name files (gocryptfs#686); cp said: {cp_err}",
        f.oracle.version()
    );
    let ours = f.export(&["--ew", "*", "--ew", "!/dir1"]);
    let (only_ref, only_ours, differ) = diff(&reference, &ours);
    assert!(
        only_ref.is_empty() && differ.is_empty(),
        "{only_ref:?} {differ:?}"
    );
    let mut expected_extra: Vec<String> = vec!["gocryptfs.conf".into()];
    for n in &only_ours {
        if n.ends_with(".name") {
            assert!(
                cp_err.contains(n.rsplit('/').next().unwrap()),
                "{n} not refused by {}",
                f.oracle.version()
            );
            expected_extra.push(n.clone());
        }
    }
    // dir1 holds four long names: longbkp1…~, longfile1…, longfile2…, longfile3….
    assert_eq!(expected_extra.len(), 5, "{only_ours:?}");
    let mut sorted = only_ours.clone();
    sorted.sort();
    expected_extra.sort();
    assert_eq!(sorted, expected_extra);

    // The export is a complete backup: a forward mount shows dir1 and everything in it.
    let x = x240();
    let plain = f.decrypted_names(&ours);
    let mut want = vec![
        "dir1".to_string(),
        "dir1/exclude".into(),
        "dir1/file1".into(),
        "dir1/file2".into(),
        format!("dir1/longbkp1{x}~"),
        format!("dir1/longfile1{x}"),
        format!("dir1/longfile2{x}"),
        format!("dir1/longfile3{x}"),
        "dir1/subdir1".into(),
        "dir1/subdir1/exclude".into(),
        "dir1/subdir1/subdir2".into(),
        "dir1/subdir1/subdir2/exclude".into(),
    ];
    want.sort();
    assert_eq!(plain, want);
}

/// A pattern file with comments, blank and CRLF lines, negation, anchors, trailing
/// slash, `**`, a middle slash, and regex syntax that passes through (`[ab]`, `x{2}`)
/// or looks like a wildcard but is literal (`?`, `{a,b}`).
#[test]
fn exclude_from_file_matches_mount() {
    if !interop("exclude_from_file_matches_mount") {
        return;
    }
    let f = Fixture::new();
    for p in [
        "#hash",
        "hash",
        "a.log",
        "sub/b.log",
        "keep.log",
        "q?",
        "qx",
        "deep/x/y/target",
        "deep/target",
        "target2",
        "nest/sub/sub2/f",
        "sub/sub2/g",
        "sub/sub3/h",
        "top/f",
        "other/top/f",
        "trail/inner/f",
        "trail2",
        "xx",
        "x{2}",
        "img.{a,b}",
        "img.a",
        "ac",
        "bc",
        "cc",
        "café",
        "spaced name",
    ] {
        f.file(p, p);
    }
    f.dir("trail/emptydir");
    std::os::unix::fs::symlink("target-of-link", f.src.join("link.log")).unwrap();
    std::os::unix::fs::symlink("a.log", f.src.join("link2")).unwrap();
    f.init(&[]);
    let list = f.path("patterns.txt");
    fs::write(
        &list,
        "# a comment\r\n\r\n*.log\r\n!keep.log\n\\#hash\nq?\n**/target\nsub/sub2\n/top\n\
         trail/\nx{2}\nimg.{a,b}\n[ab]c\n  caf*  \n   \n",
    )
    .unwrap();
    let list = list.to_str().unwrap();
    let reference = f.clean_reference(&["-exclude-from", list]);
    let ours = f.export(&["--exclude-from", list]);
    f.assert_same(&reference, &ours, "--exclude-from");
    let ours = f.export(&["-exclude-from", list]);
    f.assert_same(&reference, &ours, "-exclude-from");

    let plain = f.decrypted_names(&ours);
    for kept in [
        "hash",
        "keep.log",
        "qx",
        "target2",
        "sub/sub3/h",
        "other/top/f",
        "trail",
        "x{2}",
        "img.a",
        "cc",
        "link2",
        "spaced name",
        "trail2",
    ] {
        assert!(
            plain.iter().any(|p| p == kept),
            "{kept} should be kept: {plain:?}"
        );
    }
    for gone in [
        "#hash",
        "a.log",
        "sub/b.log",
        "q?",
        "deep/target",
        "deep/x/y/target",
        "sub/sub2",
        "nest/sub/sub2",
        "top",
        "trail/inner",
        "trail/emptydir",
        "xx",
        "img.{a,b}",
        "ac",
        "bc",
        "café",
        "link.log",
    ] {
        assert!(
            !plain.iter().any(|p| p == gone),
            "{gone} should be gone: {plain:?}"
        );
    }
}

/// `-exclude` paths are anchored at the root, wildcards still work, and an excluded
/// long name in a subdirectory takes its `.name` file along. In 2.3 to 2.6.1 that `.name` file is
/// hidden from the listing (so `cp -a` agrees with us) but can still be looked up and
/// read directly, because they check it against the encrypted directory path
/// (gocryptfs#686, fixed upstream after 2.6.1): cryptbak has no such file at all.
#[test]
fn exclude_anchored_paths_and_long_names_match_mount() {
    if !interop("exclude_anchored_paths_and_long_names_match_mount") {
        return;
    }
    let f = Fixture::new();
    let x = x240();
    let long_dir = format!("Dddd{x}");
    let long_file = format!("FFFF{x}");
    for p in [
        format!("{long_dir}/{long_file}"),
        format!("{long_dir}/other"),
        format!("{long_dir}/FFFF{x}-kept"),
        "file1".into(),
        "sub/file1".into(),
        "dir1/file2.txt".into(),
        "dir1/file3.txt".into(),
        "abc".into(),
        "abd".into(),
        "sub/abc".into(),
    ] {
        f.file(&p, &p[..p.len().min(30)]);
    }
    f.init(&[]);
    let anchored = format!("{long_dir}/{long_file}");
    let opts = [
        "-exclude",
        anchored.as_str(),
        "-exclude",
        "file1",
        "-exclude",
        "dir1/file2.txt",
        "-exclude",
        "ab?*",
        "-exclude",
        "ab*",
    ];
    let reference = f.clean_reference(&opts);
    let ours = f.export(&opts);
    f.assert_same(&reference, &ours, "-exclude");
    let ours_e = f.export(&[
        "-e",
        anchored.as_str(),
        "-e",
        "file1",
        "-e",
        "dir1/file2.txt",
        "-e",
        "ab?*",
        "-e",
        "ab*",
    ]);
    f.assert_same(&reference, &ours_e, "-e");
    let plain = f.decrypted_names(&ours);
    assert!(
        plain.contains(&"sub/file1".to_string()),
        "anchored: {plain:?}"
    );
    assert!(
        plain.contains(&"sub/abc".to_string()),
        "anchored: {plain:?}"
    );
    assert!(!plain.contains(&"abc".to_string()) && !plain.contains(&"file1".to_string()));

    // Where the .name file of the excluded long name would be: find it in a full export.
    let full = f.export(&[]);
    let ours_names = names(&ours);
    let missing: Vec<String> = names(&full)
        .into_iter()
        .filter(|n| n.ends_with(".name") && n.contains('/') && !ours_names.contains(n))
        .collect();
    assert_eq!(
        missing.len(),
        1,
        "one .name file less than a full export: {missing:?}"
    );
    let excluded_name_file = &missing[0];
    let m = f.mount(&opts, true, &f.src);
    let leaked = fs::read(m.path.join(excluded_name_file));
    drop(m);
    assert!(
        leaked.is_ok(),
        "gocryptfs {} was expected to still serve {excluded_name_file} (gocryptfs#686)",
        f.oracle.version()
    );
    assert!(!ours.join(excluded_name_file).exists());
}

/// `--one-file-system` / `-x` / `-one-file-system`: a tmpfs mounted inside the tree is
/// shown as an empty directory with its own attributes and its gocryptfs.diriv; a file
/// bind-mounted into the tree is still backed up.
#[test]
fn exclude_one_file_system_matches_mount() {
    if !interop("exclude_one_file_system_matches_mount") {
        return;
    }
    let f = Fixture::new();
    f.file("a/file", "on the root filesystem");
    f.dir("mnt/tmpfs");
    f.file("bound", "placeholder, hidden by the bind mount");
    f.init(&[]);
    let tmpfs = f.src.join("mnt/tmpfs");
    check(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0751,size=1m", "tmpfs"])
            .arg(&tmpfs),
    );
    let _tmpfs = Mounted {
        path: tmpfs.clone(),
        fuse: false,
    };
    fs::write(tmpfs.join("on-tmpfs"), "other device").unwrap();
    fs::create_dir(tmpfs.join("deeper")).unwrap();
    // A single file from another device, bind-mounted into the tree. It comes from a
    // second tmpfs outside the tree: the same inode under two paths would share one FUSE
    // node in gocryptfs, whose IVs then depend on lookup order (FORMAT.md §10).
    let other = f.path("other-tmpfs");
    fs::create_dir(&other).unwrap();
    check(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&other),
    );
    let _other = Mounted {
        path: other.clone(),
        fuse: false,
    };
    fs::write(other.join("file"), "bind-mounted from another device").unwrap();
    check(
        Command::new("mount")
            .arg("--bind")
            .arg(other.join("file"))
            .arg(f.src.join("bound")),
    );
    let _bind = Mounted {
        path: f.src.join("bound"),
        fuse: false,
    };

    let reference = f.clean_reference(&["-one-file-system"]);
    for spelling in ["--one-file-system", "-x", "-one-file-system"] {
        let ours = f.export(&[spelling]);
        f.assert_same(&reference, &ours, spelling);
    }
    let ours = f.export(&["-x"]);
    let plain = f.decrypted_names(&ours);
    assert!(plain.contains(&"mnt/tmpfs".to_string()), "{plain:?}");
    assert!(
        !plain.iter().any(|p| p.starts_with("mnt/tmpfs/")),
        "{plain:?}"
    );
    assert!(plain.contains(&"bound".to_string()), "{plain:?}");
    assert_ne!(
        fs::metadata(f.src.join("bound")).unwrap().dev(),
        fs::metadata(&f.src).unwrap().dev(),
        "the bind-mounted file is on the tmpfs"
    );
    // Without the option the tmpfs contents are there.
    let reference_all = f.clean_reference(&[]);
    let all = f.export(&[]);
    f.assert_same(&reference_all, &all, "without -x");
    assert!(f
        .decrypted_names(&all)
        .contains(&"mnt/tmpfs/on-tmpfs".to_string()));
}

/// Plaintext names: no gocryptfs.diriv, names in the clear; the selection is the same.
#[test]
fn exclude_with_plaintextnames_matches_mount() {
    if !interop("exclude_with_plaintextnames_matches_mount") {
        return;
    }
    let f = Fixture::new();
    upstream_tree(&f);
    f.init(&["-plaintextnames"]);
    let patterns = upstream_patterns();
    let reference = f.clean_reference(&flag_args("-ew", &patterns));
    let ours = f.export(&flag_args("--ew", &patterns));
    f.assert_same(&reference, &ours, "plaintextnames");
    let n = names(&ours);
    assert!(n.contains(&"file2".to_string()) && !n.contains(&"file1".to_string()));
}

/// gocryptfs 2.3 splits option values on commas (gocryptfs#730, fixed in 2.4.0), so
/// `-ew a,b` hides `a` and `b` and a name with a comma cannot be given on the command
/// line. cryptbak never splits: `--ew a,b` hides only `a,b`, which is what 2.3 shows
/// for the line `a,b` in an -exclude-from file (and what 2.4 and later show for
/// `-ew a,b`: [`exclude_comma_values_match_current_gocryptfs`]).
#[test]
fn exclude_values_are_not_split_on_commas_gocryptfs_730() {
    if !crate::gocryptfs::require_oracle(
        "exclude_values_are_not_split_on_commas_gocryptfs_730",
        Oracle::V2_3,
    ) {
        return;
    }
    let f = Fixture::with(Oracle::V2_3);
    for p in ["a", "b", "a,b", "c"] {
        f.file(p, p);
    }
    f.init(&[]);
    let split = f.clean_reference(&["-ew", "a,b"]);
    let split_names = names(&split);
    assert!(
        split_names.len() == 5, // root, conf, diriv, "a,b", c
        "2.3 was expected to split -ew a,b into a and b: {split_names:?}"
    );
    let list = f.path("list");
    fs::write(&list, "a,b\n").unwrap();
    let reference = f.clean_reference(&["-exclude-from", list.to_str().unwrap()]);
    assert_eq!(names(&reference).len(), 6); // root, conf, diriv, a, b, c
    let ours = f.export(&["--ew", "a,b"]);
    f.assert_same(&reference, &ours, "--ew a,b");
    let ours = f.export(&["-ew", "a,b"]);
    f.assert_same(&reference, &ours, "-ew a,b");
    assert_eq!(f.decrypted_names(&ours), ["a", "b", "c"]);
}

/// From 2.4.0 on gocryptfs no longer splits `-ew a,b`: the mount and the export agree
/// directly.
#[test]
fn exclude_comma_values_match_current_gocryptfs() {
    if !interop("exclude_comma_values_match_current_gocryptfs") {
        return;
    }
    let f = Fixture::new();
    for p in ["a", "b", "a,b", "c"] {
        f.file(p, p);
    }
    f.init(&[]);
    let reference = f.clean_reference(&["-ew", "a,b"]);
    assert_eq!(
        names(&reference).len(),
        6, // root, conf, diriv, a, b, c
        "gocryptfs {} was expected to hide only \"a,b\"",
        f.oracle.version()
    );
    let ours = f.export(&["--ew", "a,b"]);
    f.assert_same(&reference, &ours, "--ew a,b");
    let ours = f.export(&["-ew", "a,b"]);
    f.assert_same(&reference, &ours, "-ew a,b");
    assert_eq!(f.decrypted_names(&ours), ["a", "b", "c"]);
}

/// In gocryptfs the first use of each spelling of an option resets the list, so
/// `-exclude A -e B` keeps only B (still so upstream). cryptbak keeps every value: it
/// matches a mount given `-e A -e B`.
#[test]
fn exclude_all_values_of_both_spellings_are_kept() {
    if !interop("exclude_all_values_of_both_spellings_are_kept") {
        return;
    }
    let f = Fixture::new();
    for p in ["A", "B", "C", "D"] {
        f.file(p, p);
    }
    f.init(&[]);
    let buggy = f.clean_reference(&[
        "-exclude",
        "A",
        "-e",
        "B",
        "-ew",
        "C",
        "-exclude-wildcard",
        "D",
    ]);
    let buggy_plain = f.decrypted_names_of_reference(&buggy);
    assert_eq!(
        buggy_plain,
        ["A", "C"],
        "gocryptfs {} was expected to keep only the values of the spelling used last",
        f.oracle.version()
    );
    let reference = f.clean_reference(&["-e", "A", "-e", "B", "-ew", "C", "-ew", "D"]);
    let ours = f.export(&[
        "-exclude",
        "A",
        "-e",
        "B",
        "-ew",
        "C",
        "-exclude-wildcard",
        "D",
    ]);
    f.assert_same(&reference, &ours, "mixed spellings");
    assert!(f.decrypted_names(&ours).is_empty());
}

impl Fixture {
    /// Decrypted names of a copied mount (which has no gocryptfs.conf when gocryptfs hid it).
    fn decrypted_names_of_reference(&self, reference: &Path) -> Vec<String> {
        if !reference.join("gocryptfs.conf").exists() {
            fs::copy(
                self.src.join(".gocryptfs.reverse.conf"),
                reference.join("gocryptfs.conf"),
            )
            .unwrap();
        }
        self.decrypted_names(reference)
    }
}

/// gocryptfs (2.3 to 2.6.1) hides gocryptfs.conf from the listing when a pattern matches
/// `.gocryptfs.reverse.conf` (gocryptfs#686), so `cp -a` of the mount is a backup
/// nobody can open; a direct lookup still serves it. cryptbak always shows it.
#[test]
fn exclude_never_hides_the_config_gocryptfs_686() {
    if !interop("exclude_never_hides_the_config_gocryptfs_686") {
        return;
    }
    let f = Fixture::new();
    f.file("data", "data");
    f.file(
        "sub/.gocryptfs.reverse.conf",
        "an ordinary file in a subdirectory",
    );
    f.init(&[]);
    for pattern in [".gocryptfs.reverse.conf", "*", ".*"] {
        let opts = ["-ew", pattern];
        let (reference, _) = f.reference(&opts);
        assert!(
            !reference.join("gocryptfs.conf").exists(),
            "gocryptfs {} was expected to hide gocryptfs.conf with -ew {pattern}",
            f.oracle.version()
        );
        // What a direct lookup on the same mount gives (keeping the copy's root mtime,
        // which adding a file changes).
        let root_mtime =
            filetime::FileTime::from_last_modification_time(&fs::metadata(&reference).unwrap());
        let m = f.mount(&opts, true, &f.src);
        check(
            Command::new("cp")
                .arg("-a")
                .arg(m.path.join("gocryptfs.conf"))
                .arg(reference.join("gocryptfs.conf")),
        );
        drop(m);
        filetime::set_file_mtime(&reference, root_mtime).unwrap();
        let ours = f.export(&["--ew", pattern]);
        f.assert_same(&reference, &ours, pattern);
    }
    // The same file in a subdirectory is ordinary data, and excluded like any other.
    let ours = f.export(&["--ew", ".gocryptfs.reverse.conf"]);
    assert_eq!(f.decrypted_names(&ours), ["data", "sub"]);

    // With -config elsewhere, the root's .gocryptfs.reverse.conf is ordinary data too
    // (no gocryptfs.conf in the view, FORMAT.md §2.1): excluded like any other file.
    let g = Fixture::new();
    g.file("data", "data");
    g.file(".gocryptfs.reverse.conf", "not a config, just a file");
    let conf = g.path("elsewhere.conf");
    g.init(&["-config", conf.to_str().unwrap()]);
    let opts = [
        "-config",
        conf.to_str().unwrap(),
        "-ew",
        ".gocryptfs.reverse.conf",
    ];
    let reference = g.clean_reference(&opts);
    let ours = g.export(&[
        "--config",
        conf.to_str().unwrap(),
        "--ew",
        ".gocryptfs.reverse.conf",
    ]);
    g.assert_same(&reference, &ours, "-config");
    assert_eq!(
        names(&ours).len(),
        3,
        "root, diriv, data: {:?}",
        names(&ours)
    );
}

/// Regular-expression syntax passes through go-gitignore to Go's RE2; cryptbak
/// translates it for the `regex` crate. Both engines decide on the same names,
/// including names that are not UTF-8 (Go reads each bad byte as one U+FFFD).
#[test]
fn exclude_regex_syntax_matches_mount() {
    if !interop("exclude_regex_syntax_matches_mount") {
        return;
    }
    let f = Fixture::new();
    let names: &[&[u8]] = &[
        b"[x",
        b"]y",
        b"a1",
        "a\u{663}".as_bytes(),
        b"ac",
        b"bc",
        b"cc",
        b"Az",
        b"az",
        b"ppq",
        b"p+q",
        b"abc",
        "\u{e9}ab".as_bytes(),
        b"abcd",
        b"caf\xe9",
        b"x\xe2\x82y",
        "x\u{e9}y".as_bytes(),
        b"nn",
        b"n{2}",
        b"m{,2}",
        b"u\nv",
        b"AB",
        "\u{e9}t".as_bytes(),
        b"a$b",
        b"c",
        b"d-",
        b"dx",
        b"e]",
        b"&&",
        b"w~~",
        b"oo",
        b"o{1,}",
        b"qqr",
        b"qqqr",
    ];
    for n in names {
        f.file(n, "x");
    }
    f.init(&[]);
    let patterns = [
        "/[[]x",
        "/[]]y",
        r"/a\d",
        "/(a|b)c",
        "/[[:upper:]]z",
        "/p+q",
        r"/\w\w\w",
        "/caf*",
        "/x[^/]y",
        "/n{2}",
        "/m{,2}",
        "/u[^a]v",
        r"/\x41\x42",
        r"/[\x{e9}]t",
        "/a$b",
        "/^c",
        "/d[a-]",
        "/e[]]",
        "/[&][&]",
        "/w[~][~]",
        "/o{1,}",
        "/q{1,2}r",
    ];
    // From a file: 2.3 would split command-line values on the commas (see above).
    let list = f.path("patterns");
    fs::write(&list, patterns.join("\n")).unwrap();
    let args = ["-exclude-from", list.to_str().unwrap()];
    let reference = f.clean_reference(&args);
    let ours = f.export(&args);
    f.assert_same(&reference, &ours, "regex syntax");
    let plain = f.decrypted_names(&ours);
    for kept in [
        "a\u{663}",
        "cc",
        "az",
        "p+q",
        "\u{e9}ab",
        "abcd",
        "n{2}",
        "a$b",
        "dx",
        "x\u{fffd}y", // x\xe2\x82y, shown lossily
        "o{1,}",
        "qqqr",
    ] {
        assert!(
            plain.iter().any(|p| p == kept),
            "{kept:?} should be kept: {plain:?}"
        );
    }
    for gone in [
        "[x",
        "]y",
        "a1",
        "ac",
        "bc",
        "Az",
        "ppq",
        "abc",
        "x\u{e9}y",
        "nn",
        "m{,2}",
        "u\nv",
        "AB",
        "\u{e9}t",
        "c",
        "d-",
        "e]",
        "&&",
        "w~~",
        "caf\u{fffd}",
        "oo",
        "qqr",
    ] {
        assert!(
            !plain.iter().any(|p| p == gone),
            "{gone:?} should be gone: {plain:?}"
        );
    }
}

/// Deliberate fix beyond the list above: in 2.3 to 2.6.1 the wildcards go-gitignore generates
/// stop at a newline, so `*.key` does not exclude `a<newline>b/x.key`. cryptbak
/// excludes it; everything else matches the mount.
#[test]
fn exclude_crosses_newlines_in_names() {
    if !interop("exclude_crosses_newlines_in_names") {
        return;
    }
    let f = Fixture::new();
    f.file("a\nb/x.key", "secret");
    f.file("a\nb/y.txt", "kept");
    f.file("c/z.key", "secret");
    f.init(&[]);
    let reference = f.clean_reference(&["-ew", "*.key"]);
    let ours = f.export(&["--ew", "*.key"]);
    let (only_ref, only_ours, differ) = diff(&reference, &ours);
    assert!(
        only_ours.is_empty() && differ.is_empty(),
        "{only_ours:?} {differ:?}"
    );
    assert_eq!(
        only_ref.len(),
        1,
        "exactly the one file gocryptfs {} fails to exclude: {only_ref:?}",
        f.oracle.version()
    );
    assert_eq!(f.decrypted_names(&ours), ["a\nb", "a\nb/y.txt", "c"]);
}

/// Tag files: a directory with a valid CACHEDIR.TAG keeps only the tag, like
/// `tar --exclude-caches`; an invalid or symlinked tag does not count. gocryptfs has no
/// such option; the same selection written as patterns gives the same view.
#[test]
fn exclude_caches_and_if_present_match_equivalent_patterns() {
    if !interop("exclude_caches_and_if_present_match_equivalent_patterns") {
        return;
    }
    let f = Fixture::new();
    f.file(
        "cache/CACHEDIR.TAG",
        "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag.\n",
    );
    f.file("cache/data", "cached");
    f.file("cache/sub/deeper", "cached");
    f.file("notcache/CACHEDIR.TAG", "Signature: not the right one\n");
    f.file("notcache/data", "kept");
    f.file("linkcache/data", "kept");
    std::os::unix::fs::symlink(
        "../cache/CACHEDIR.TAG",
        f.src.join("linkcache/CACHEDIR.TAG"),
    )
    .unwrap();
    f.file("proj/.nobackup", "");
    f.file("proj/build/out", "skipped");
    f.file("proj/src", "skipped too");
    f.file("other/src", "kept");
    f.init(&[]);
    let reference = f.clean_reference(&[
        "-ew",
        "/cache/*",
        "-ew",
        "!/cache/CACHEDIR.TAG",
        "-ew",
        "/proj/*",
        "-ew",
        "!/proj/.nobackup",
    ]);
    let ours = f.export(&["--exclude-caches", "--exclude-if-present", ".nobackup"]);
    f.assert_same(&reference, &ours, "tags");
    let plain = f.decrypted_names(&ours);
    assert!(plain.contains(&"cache/CACHEDIR.TAG".to_string()));
    assert!(!plain.contains(&"cache/data".to_string()));
    assert!(plain.contains(&"notcache/data".to_string()));
    assert!(plain.contains(&"linkcache/data".to_string()));
    assert!(plain.contains(&"proj/.nobackup".to_string()));
    assert!(!plain.contains(&"proj/src".to_string()));
}

// ---- Without a mount ----------------------------------------------------------------

/// An excluded directory is never entered: a socket inside it would be reported.
#[test]
fn exclude_excluded_directories_are_not_descended_into() {
    let f = Fixture::new();
    f.file("keep/file", "kept");
    f.dir("skip/deep");
    let _sock = std::os::unix::net::UnixListener::bind(f.src.join("skip/deep/sock")).unwrap();
    let mk = |args: &[&str]| {
        run(Command::new(env!("CARGO_BIN_EXE_cryptbak"))
            .args(["init", "--scryptn", "10", "-q", "--passfile"])
            .arg(&f.passfile)
            .args(args)
            .arg(&f.src))
    };
    assert!(mk(&[]).status.success());
    let (_, out) = f.try_export(&[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("socket"),
        "control: the socket is seen"
    );
    for args in [
        &["--ew", "skip"][..],
        &["-e", "skip"],
        &["--ew", "skip/"],
        &["--ew", "deep"],
    ] {
        let (dest, out) = f.try_export(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("socket"),
            "{args:?}: {err}"
        );
        assert!(snapshot(&dest).len() > 3);
    }
}

#[test]
fn exclude_invalid_pattern_is_a_usage_error() {
    let f = Fixture::new();
    f.file("a", "a");
    for (args, needle) in [
        (&["--ew", "foo["][..], "missing closing ]"),
        (&["--ew", "ok", "--ew", "x{2000}"], "x{2000}"),
        (&["--exclude-if-present", "a/b"], "plain file name"),
        (&["--exclude-if-present", ".."], "plain file name"),
    ] {
        let (dest, out) = f.try_export(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!dest.exists(), "nothing may be written on a usage error");
    }
    let list = f.path("list");
    fs::write(&list, "# fine\nok\n(unclosed\n").unwrap();
    let (_, out) = f.try_export(&["--exclude-from", list.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(":3:") || err.contains("list:3"),
        "line number: {err}"
    );
    let (_, out) = f.try_export(&["--exclude-from", "/nonexistent/list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/list"));
}

#[test]
fn exclude_leading_slash_warns() {
    let f = Fixture::new();
    f.file("top", "x");
    let init = run(Command::new(env!("CARGO_BIN_EXE_cryptbak"))
        .args(["init", "--scryptn", "10", "-q", "--passfile"])
        .arg(&f.passfile)
        .arg(&f.src));
    assert!(init.status.success());
    let (dest, out) = f.try_export(&["--exclude", "/top"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("matches nothing") && err.contains("--exclude top"),
        "{err}"
    );
    // As in gocryptfs, it matches nothing: the file is still there.
    assert_eq!(snapshot(&dest).len(), 4, "root, conf, diriv, top");
}

/// gocryptfs (2.3 to 2.6.1) drops a pattern that is not a valid expression without a word (the
/// mount shows everything); cryptbak refuses it instead of backing up more than asked.
#[test]
fn exclude_invalid_pattern_ignored_by_gocryptfs_is_refused() {
    if !interop("exclude_invalid_pattern_ignored_by_gocryptfs_is_refused") {
        return;
    }
    let f = Fixture::new();
    f.file("foo[", "x");
    f.file("bar", "x");
    f.init(&[]);
    let everything = f.clean_reference(&[]);
    let ignored = f.clean_reference(&["-ew", "foo[", "-ew", "bar"]);
    let (only_all, _, _) = diff(&everything, &ignored);
    assert_eq!(
        only_all.len(),
        1,
        "gocryptfs {} was expected to drop foo[ silently and apply bar: {only_all:?}",
        f.oracle.version()
    );
    let (dest, out) = f.try_export(&["--ew", "foo[", "--ew", "bar"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(!dest.exists());
    // Escaped, the bracket is what the user meant.
    let ours = f.export(&["--ew", r"foo\[", "--ew", "bar"]);
    assert_eq!(f.decrypted_names(&ours).len(), 0);
}
