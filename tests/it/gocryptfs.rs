//! Driving real gocryptfs binaries: init, reverse and forward mounts
//! (unmounted on drop), copying a mounted view, reading the master key.
//!
//! Three releases serve as oracles side by side ([`Oracle`]): Debian 12's installed
//! 2.3 (same view as 2.4), and 2.5.1 and 2.6.1 unpacked from Debian's trixie and sid
//! packages by `.ci/gocryptfs-oracles`. Everything here uses [`Oracle::DEFAULT`]
//! (2.6.1, the view cryptbak writes by default) unless a `*_by` variant names another.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::Duration;

use crate::util::{describe, escp, run, run_ok, show_output, TestDir};

/// A real gocryptfs release the interop tests compare against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Oracle {
    /// Debian 12's package (`gocryptfs` in PATH); 2.4 shows the same view.
    V2_3,
    /// Debian 13 "trixie": virtual files' mtimes + 10 s (FORMAT.md §12.2, §21).
    V2_5_1,
    /// Debian sid, Arch, recent Fedora: what cryptbak's default view matches.
    V2_6_1,
}

impl Oracle {
    /// The release whose view `cryptbak export` writes without `--compat`.
    pub const DEFAULT: Oracle = Oracle::V2_6_1;
    pub const ALL: [Oracle; 3] = [Oracle::V2_3, Oracle::V2_5_1, Oracle::V2_6_1];

    /// The version as `gocryptfs -version` prints it.
    pub fn version(self) -> &'static str {
        match self {
            Oracle::V2_3 => "2.3",
            Oracle::V2_5_1 => "2.5.1",
            Oracle::V2_6_1 => "2.6.1",
        }
    }

    /// The `cryptbak export`/`verify --source` arguments that reproduce this release's
    /// reverse view. Empty for the releases the default view matches: a test of 2.5.1
    /// or 2.6.1 thereby proves the default, a test of 2.3 proves `--compat 2.3`.
    pub fn compat_args(self) -> &'static [&'static str] {
        match self {
            Oracle::V2_3 => &["--compat", "2.3"],
            Oracle::V2_5_1 | Oracle::V2_6_1 => &[],
        }
    }

    /// [`Oracle::compat_args`] as `OsStr`s (for `export_ok` and friends).
    pub fn compat_os(self) -> Vec<&'static OsStr> {
        self.compat_args().iter().map(OsStr::new).collect()
    }

    /// The environment variable `.ci/run` sets to this release's binary.
    pub fn env_var(self) -> &'static str {
        match self {
            Oracle::V2_3 => "CRYPTBAK_GOCRYPTFS_2_3",
            Oracle::V2_5_1 => "CRYPTBAK_GOCRYPTFS_2_5_1",
            Oracle::V2_6_1 => "CRYPTBAK_GOCRYPTFS_2_6_1",
        }
    }

    /// Where the binary is expected when the environment does not say: PATH for the
    /// distribution's 2.3, the cache `.ci/gocryptfs-oracles` fills for the others (so a
    /// plain `cargo test` after one `.ci/run` finds them).
    fn default_location(self) -> Option<PathBuf> {
        match self {
            Oracle::V2_3 => which("gocryptfs"),
            Oracle::V2_5_1 | Oracle::V2_6_1 => {
                let cache = std::env::var_os("CRYPTBAK_ORACLE_CACHE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/var/cache/cryptbak-ci/gocryptfs"));
                Some(cache.join(self.version()).join("usr/bin/gocryptfs"))
            }
        }
    }

    /// The path of this release's `gocryptfs`, checked once per test process to exist,
    /// to run, and to be this version. Panics with what to do when it is not: a missing
    /// oracle is an installation bug, never a reason to skip.
    pub fn bin(self) -> &'static Path {
        static CELLS: [OnceLock<Result<PathBuf, String>>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let i = Oracle::ALL.iter().position(|&o| o == self).unwrap();
        match CELLS[i].get_or_init(|| self.resolve()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn resolve(self) -> Result<PathBuf, String> {
        match std::env::var_os(self.env_var()) {
            Some(p) => self.check(Some(PathBuf::from(p)), &format!("${}", self.env_var())),
            None => self.check(self.default_location(), "the default location"),
        }
    }

    /// Checks that `path` (found at `from`) is this release's gocryptfs: it exists,
    /// runs, and `-version` names this version.
    fn check(self, path: Option<PathBuf>, from: &str) -> Result<PathBuf, String> {
        let how = "run `bash .ci/run` (or just `bash .ci/gocryptfs-oracles`, which fetches \
                   2.5.1 and 2.6.1 from Debian into /var/cache/cryptbak-ci; 2.3 is Debian 12's \
                   `apt-get install gocryptfs`)";
        let v = self.version();
        let shown = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "gocryptfs in PATH".into());
        let Some(path) = path.filter(|p| p.is_file()) else {
            return Err(format!(
                "INSTALL BUG: gocryptfs {v} not found (looked at {from}: {shown}); {how}"
            ));
        };
        let out = Command::new(&path)
            .arg("-version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("INSTALL BUG: cannot run {shown} (from {from}): {e}; {how}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "gocryptfs 2.3; go-fuse …" (Debian builds print no "v")
        let ok = out.status.success()
            && [format!("gocryptfs {v};"), format!("gocryptfs v{v};")]
                .iter()
                .any(|p| text.starts_with(p.as_str()));
        if !ok {
            return Err(format!(
                "INSTALL BUG: {shown} (from {from}) is not gocryptfs {v}: `-version` printed \
                 {:?}; {how}",
                text.trim()
            ));
        }
        Ok(path)
    }

    /// A `Command` for this release's `gocryptfs`.
    pub fn command(self) -> Command {
        Command::new(self.bin())
    }

    /// This release's `gocryptfs-xray`, installed beside its `gocryptfs`.
    pub fn xray(self) -> Option<PathBuf> {
        let p = self.bin().with_file_name("gocryptfs-xray");
        p.is_file().then_some(p)
    }
}

/// Records one line of the compatibility matrix: `release`'s view or mount was compared
/// with cryptbak's output, `entries` entries, all identical. Printed (shown with
/// `--nocapture` or on failure) and, when `CRYPTBAK_ORACLE_MATRIX` names a file,
/// appended to it in one write: `.ci/oracle-matrix` sums them up per release and check
/// (stdout interleaves between test threads, the file does not).
pub fn record_matrix(oracle: Oracle, check: &str, entries: usize, note: &str) {
    let line = format!(
        "oracle-matrix\t{}\t{check}\t{entries}\t{note}\n",
        oracle.version()
    );
    print!("{line}");
    if let Some(path) = std::env::var_os("CRYPTBAK_ORACLE_MATRIX") {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("CRYPTBAK_ORACLE_MATRIX={}: {e}", escp(Path::new(&path))));
        f.write_all(line.as_bytes()).unwrap();
    }
}

/// The check name under which the full interop set (interop_export.rs, tar.rs,
/// exclude.rs), run against [`Oracle::DEFAULT`], records its comparisons.
pub const FULL_SET: &str = "full interop set (all comparisons with a mount)";

/// Returns false (after a loud message on stderr) when this machine has no
/// `/dev/fuse`, so the calling test should return early. Panics when FUSE is
/// available but `oracle` or fusermount is missing: that is an installation bug,
/// not a reason to skip.
pub fn require_oracle(test: &str, oracle: Oracle) -> bool {
    if !Path::new("/dev/fuse").exists() {
        eprintln!(
            "\n*** SKIPPING gocryptfs {} interop test {test}: this machine has no /dev/fuse ***\n",
            oracle.version()
        );
        return false;
    }
    if which("fusermount").is_none() && which("fusermount3").is_none() {
        panic!(
            "INSTALL BUG: /dev/fuse exists but fusermount is not in PATH; \
             run .ci/run or `apt-get install -y fuse3`"
        );
    }
    oracle.bin();
    true
}

/// [`require_oracle`] for the default oracle.
pub fn require_gocryptfs(test: &str) -> bool {
    require_oracle(test, Oracle::DEFAULT)
}

/// Looks a program up in PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

fn fusermount() -> &'static str {
    if which("fusermount").is_some() {
        "fusermount"
    } else {
        "fusermount3"
    }
}

/// `gocryptfs -init -reverse -q -passfile PW -scryptn 10 [extra] SRC`.
pub fn init_reverse(src: &Path, passfile: &Path, extra: &[&str]) {
    init_reverse_by(Oracle::DEFAULT, src, passfile, extra);
}

/// [`init_reverse`] with the given release.
pub fn init_reverse_by(oracle: Oracle, src: &Path, passfile: &Path, extra: &[&str]) {
    init(oracle, src, passfile, &[&["-reverse"], extra].concat());
}

/// `gocryptfs -init -q -passfile PW -scryptn 10 [extra] DIR`: a forward-mode directory.
pub fn init_forward(dir: &Path, passfile: &Path, extra: &[&str]) {
    init_forward_by(Oracle::DEFAULT, dir, passfile, extra);
}

/// [`init_forward`] with the given release.
pub fn init_forward_by(oracle: Oracle, dir: &Path, passfile: &Path, extra: &[&str]) {
    init(oracle, dir, passfile, extra);
}

fn init(oracle: Oracle, src: &Path, passfile: &Path, extra: &[&str]) {
    let mut c = oracle.command();
    c.arg("-init")
        .arg("-q")
        .arg("-passfile")
        .arg(passfile)
        .arg("-scryptn")
        .arg("10")
        .args(extra)
        .arg(src)
        .stdin(Stdio::null());
    run_ok(&mut c);
}

/// True when `mnt` is currently a mount point (per /proc/self/mountinfo).
pub fn is_mounted(mnt: &Path) -> bool {
    let Ok(info) = fs::read(Path::new("/proc/self/mountinfo")) else {
        return false;
    };
    let want = mountinfo_escape(mnt.as_os_str().as_bytes());
    info.split(|&b| b == b'\n').any(|line| {
        line.split(|&b| b == b' ')
            .nth(4)
            .is_some_and(|mp| mp == want.as_slice())
    })
}

fn mountinfo_escape(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in p {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

/// A gocryptfs FUSE mount in a fresh temp dir, unmounted on drop.
pub struct Mount {
    oracle: Oracle,
    mnt: PathBuf,
    ctlsock: PathBuf,
    log: PathBuf,
    // Declared last: removed after the unmount in `drop`.
    _dir: TestDir,
}

impl Mount {
    /// `gocryptfs -reverse -q -passfile PW [extra] SRC MNT` (with a control
    /// socket, used to translate cipher paths back for failure messages).
    pub fn reverse(src: &Path, passfile: &Path, extra: &[&OsStr]) -> Mount {
        Mount::reverse_by(Oracle::DEFAULT, src, passfile, extra)
    }

    /// [`Mount::reverse`] with the given release.
    pub fn reverse_by(oracle: Oracle, src: &Path, passfile: &Path, extra: &[&OsStr]) -> Mount {
        let mut args: Vec<&OsStr> = vec![OsStr::new("-reverse")];
        args.extend_from_slice(extra);
        Mount::start_by(oracle, src, Some(passfile), &args, "rev")
    }

    /// `gocryptfs -q -passfile PW CIPHERDIR MNT` (forward mode).
    pub fn forward(cipherdir: &Path, passfile: &Path) -> Mount {
        Mount::start(cipherdir, Some(passfile), &[], "fwd")
    }

    /// [`Mount::forward`] with the given release and extra options.
    pub fn forward_by(
        oracle: Oracle,
        cipherdir: &Path,
        passfile: &Path,
        extra: &[&OsStr],
    ) -> Mount {
        Mount::start_by(oracle, cipherdir, Some(passfile), extra, "fwd")
    }

    /// Forward mount with extra options (e.g. `-config FILE`).
    pub fn forward_with(cipherdir: &Path, passfile: &Path, extra: &[&OsStr]) -> Mount {
        Mount::start(cipherdir, Some(passfile), extra, "fwd")
    }

    /// Mount with explicit arguments; `passfile` None means the arguments
    /// supply the key (e.g. `-masterkey`).
    pub fn start(dir: &Path, passfile: Option<&Path>, extra: &[&OsStr], label: &str) -> Mount {
        Mount::start_by(Oracle::DEFAULT, dir, passfile, extra, label)
    }

    /// [`Mount::start`] with the given release. Every mount point is a fresh temporary
    /// directory, so tests running in parallel never collide.
    pub fn start_by(
        oracle: Oracle,
        dir: &Path,
        passfile: Option<&Path>,
        extra: &[&OsStr],
        label: &str,
    ) -> Mount {
        let tmp = TestDir::new(&format!("mnt-{label}-{}", oracle.version()));
        let mnt = tmp.join("mnt");
        fs::create_dir(&mnt).unwrap();
        let ctlsock = tmp.join("ctl.sock");
        let log = tmp.join("gocryptfs.log");
        let logf = File::create(&log).unwrap();
        let mut c = oracle.command();
        c.arg("-q").arg("-nosyslog").arg("-ctlsock").arg(&ctlsock);
        if let Some(pf) = passfile {
            c.arg("-passfile").arg(pf);
        }
        c.args(extra).arg(dir).arg(&mnt);
        // gocryptfs daemonizes; the background process may keep the output
        // descriptors, so write to a file instead of a pipe.
        c.stdin(Stdio::null())
            .stdout(Stdio::from(logf.try_clone().unwrap()))
            .stderr(Stdio::from(logf));
        let cmdline = describe(&c);
        let status = c
            .status()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
        let m = Mount {
            oracle,
            mnt,
            ctlsock,
            log,
            _dir: tmp,
        };
        if !status.success() {
            panic!(
                "gocryptfs mount failed ({status}): `{cmdline}`\n--- log ---\n{}",
                m.log_text()
            );
        }
        // The parent returns once the mount is ready; double check.
        for _ in 0..100 {
            if is_mounted(&m.mnt) {
                return m;
            }
            sleep(Duration::from_millis(50));
        }
        panic!(
            "gocryptfs returned success but {} is not mounted\n{}",
            escp(&m.mnt),
            m.log_text()
        );
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// The release that serves this mount.
    pub fn oracle(&self) -> Oracle {
        self.oracle
    }

    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Translates a cipher path of a *reverse* mount to its plaintext path,
    /// best effort (for failure messages). Virtual files are described in
    /// terms of the entry they belong to.
    pub fn describe_cpath(&self, cpath: &[u8]) -> String {
        let s = String::from_utf8_lossy(cpath).into_owned();
        let (parent, base) = match s.rfind('/') {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => ("", s.as_str()),
        };
        let join = |p: &str, b: &str| {
            if p.is_empty() {
                b.to_string()
            } else {
                format!("{p}/{b}")
            }
        };
        if base == "gocryptfs.diriv" {
            return format!("diriv of dir [{}]", self.decrypt_path(parent));
        }
        if parent.is_empty() && base == "gocryptfs.conf" {
            return "config file".to_string();
        }
        if let Some(h) = base.strip_suffix(".name") {
            if h.starts_with("gocryptfs.longname.") {
                return format!(".name file of [{}]", self.decrypt_path(&join(parent, h)));
            }
        }
        self.decrypt_path(&s)
    }

    fn decrypt_path(&self, cpath: &str) -> String {
        if cpath.is_empty() {
            return "<root>".to_string();
        }
        let Some(xray) = self.oracle.xray() else {
            return "?".to_string();
        };
        let mut c = Command::new(xray);
        c.arg("-decrypt-paths").arg(&self.ctlsock);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let Ok(mut child) = c.spawn() else {
            return "?".to_string();
        };
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(format!("{cpath}\n").as_bytes());
        }
        match child.wait_with_output() {
            Ok(o) if o.status.success() => {
                let t = o.stdout.strip_suffix(b"\n").unwrap_or(&o.stdout).to_vec();
                crate::util::esc(&t)
            }
            Ok(o) => format!("? ({})", String::from_utf8_lossy(&o.stderr).trim()),
            Err(_) => "?".to_string(),
        }
    }

    /// Unmounts now (also done on drop).
    pub fn unmount(mut self) {
        self.do_unmount();
    }

    fn do_unmount(&mut self) {
        if !is_mounted(&self.mnt) {
            return;
        }
        for _ in 0..20 {
            let out = Command::new(fusermount())
                .arg("-u")
                .arg(&self.mnt)
                .stdin(Stdio::null())
                .output();
            if matches!(&out, Ok(o) if o.status.success()) || !is_mounted(&self.mnt) {
                return;
            }
            sleep(Duration::from_millis(100));
        }
        eprintln!("warning: {} is busy, lazy unmount", escp(&self.mnt));
        let _ = Command::new(fusermount())
            .arg("-u")
            .arg("-z")
            .arg(&self.mnt)
            .stdin(Stdio::null())
            .output();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.do_unmount();
    }
}

/// `cp -a MNT/. REF/`: the reference copy a user would make of the view.
pub fn copy_view(mount: &Mount) -> TestDir {
    let r = TestDir::new("ref");
    let out = cp_a(mount.path(), r.path());
    if !out.status.success() {
        panic!(
            "cp -a of the mount failed\n{}\n--- gocryptfs log ---\n{}",
            show_output(&out),
            mount.log_text()
        );
    }
    r
}

/// Like `copy_view`, but tolerates cp errors (returns the copy and cp's stderr).
pub fn copy_view_allow_errors(mount: &Mount) -> (TestDir, String) {
    let r = TestDir::new("ref");
    let out = cp_a(mount.path(), r.path());
    (r, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `cp -a FROM/. TO/`.
pub fn cp_a(from: &Path, to: &Path) -> std::process::Output {
    let mut fromdot = from.as_os_str().to_owned();
    fromdot.push("/.");
    let mut todot = to.as_os_str().to_owned();
    todot.push("/");
    run(Command::new("cp")
        .arg("-a")
        .arg(fromdot)
        .arg(todot)
        .stdin(Stdio::null()))
}

/// The master key of a config file as 64 hex digits, via the default oracle's
/// `gocryptfs-xray -dumpmasterkey` (password on stdin). None when
/// gocryptfs-xray is not installed.
pub fn dump_masterkey(conf: &Path) -> Option<String> {
    let mut c = Command::new(Oracle::DEFAULT.xray()?);
    c.arg("-dumpmasterkey").arg(conf);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("start gocryptfs-xray");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{}\n", crate::util::PASSWORD).as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        panic!(
            "gocryptfs-xray -dumpmasterkey failed\n{}",
            show_output(&out)
        );
    }
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "unexpected master key output {key:?}"
    );
    Some(key)
}

// ---------------------------------------------------------------------------
// Self-tests of the harness against gocryptfs itself.

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{build_varied, compare_trees, VariedOpts};
    use crate::util::write_passfile;

    /// Two independent reverse mounts of one tree, copied with cp -a, are
    /// identical: the reference is deterministic (no hard links involved).
    #[test]
    fn harness_reverse_view_is_deterministic() {
        if !require_gocryptfs("harness_reverse_view_is_deterministic") {
            return;
        }
        let w = TestDir::new("harness");
        let src = w.join("src");
        fs::create_dir(&src).unwrap();
        let pw = write_passfile(w.path());
        build_varied(&src, VariedOpts::default());
        init_reverse(&src, &pw, &[]);
        let r1 = {
            let m = Mount::reverse(&src, &pw, &[]);
            copy_view(&m)
        };
        let m = Mount::reverse(&src, &pw, &[]);
        let r2 = copy_view(&m);
        let diffs = compare_trees(r1.path(), r2.path());
        assert!(diffs.is_empty(), "{}", diffs.join("\n"));
        // The view really is encrypted and complete.
        assert!(r1.join("gocryptfs.conf").is_file());
        assert!(r1.join("gocryptfs.diriv").is_file());
        assert!(!r1.join("sizes").exists());
        let all = crate::tree::scan(r1.path());
        let count = |k: &str| all.values().filter(|m| m.kind() == k).count();
        assert!(count("fifo") >= 3, "fifos in the view");
        assert!(count("symlink") >= 15, "symlinks in the view");
        if crate::util::is_root() {
            assert!(count("chardev") >= 1, "char devices in the view");
        }
        let names = all
            .keys()
            .filter(|p| {
                p.starts_with(b"gocryptfs.longname.")
                    || p.windows(20).any(|w| w == b"/gocryptfs.longname.")
            })
            .count();
        assert!(names >= 30, "long names in the view: {names}");
        // translation of cipher paths for failure messages
        let all: Vec<_> = fs::read_dir(m.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let described: Vec<String> = all
            .iter()
            .map(|n| m.describe_cpath(n.as_encoded_bytes()))
            .collect();
        assert!(described.iter().any(|d| d == "sizes"), "{described:?}");
        assert!(
            described.iter().any(|d| d.starts_with("diriv of dir")),
            "{described:?}"
        );
    }

    /// Every oracle is there and is the release it claims to be; a missing binary or
    /// one of another release is refused with a message that says how to get it.
    #[test]
    fn harness_oracles_are_the_releases_they_claim() {
        if !Path::new("/dev/fuse").exists() {
            eprintln!(
                "\n*** SKIPPING harness_oracles_are_the_releases_they_claim: no /dev/fuse ***\n"
            );
            return;
        }
        for o in Oracle::ALL {
            let out = o.command().arg("-version").output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.starts_with(&format!("gocryptfs {};", o.version())),
                "{o:?}: {text}"
            );
            assert!(o.xray().is_some(), "{o:?}: no gocryptfs-xray beside it");
        }
        let missing = Oracle::V2_5_1
            .check(Some(PathBuf::from("/nonexistent/gocryptfs")), "a test")
            .unwrap_err();
        assert!(
            missing.contains("INSTALL BUG: gocryptfs 2.5.1 not found")
                && missing.contains("/nonexistent/gocryptfs")
                && missing.contains(".ci/run"),
            "{missing}"
        );
        let wrong = Oracle::V2_5_1
            .check(Some(Oracle::V2_6_1.bin().to_path_buf()), "a test")
            .unwrap_err();
        assert!(
            wrong.contains("is not gocryptfs 2.5.1") && wrong.contains("2.6.1"),
            "{wrong}"
        );
    }

    /// A mount is unmounted when its guard is dropped during a panic.
    #[test]
    fn harness_mount_is_unmounted_on_panic() {
        if !require_gocryptfs("harness_mount_is_unmounted_on_panic") {
            return;
        }
        let w = TestDir::new("harness-panic");
        let src = w.join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"x").unwrap();
        let pw = write_passfile(w.path());
        init_reverse(&src, &pw, &[]);
        let (tx, rx) = std::sync::mpsc::channel();
        let src2 = src.clone();
        let h = std::thread::spawn(move || {
            let m = Mount::reverse(&src2, &pw, &[]);
            tx.send(m.path().to_path_buf()).unwrap();
            panic!("deliberate panic with a live mount");
        });
        assert!(h.join().is_err());
        let mnt = rx.recv().unwrap();
        assert!(!is_mounted(&mnt), "{} still mounted", mnt.display());
    }
}
