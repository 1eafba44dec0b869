//! Driving the real gocryptfs 2.3 binary: init, reverse and forward mounts
//! (unmounted on drop), copying a mounted view, reading the master key.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use crate::util::{describe, escp, run, run_ok, show_output, TestDir};

/// Returns false (after a loud message on stderr) when this machine has no
/// `/dev/fuse`, so the calling test should return early. Panics when FUSE is
/// available but the gocryptfs/fusermount binaries are missing: that is an
/// installation bug, not a reason to skip.
pub fn require_gocryptfs(test: &str) -> bool {
    if !Path::new("/dev/fuse").exists() {
        eprintln!(
            "\n*** SKIPPING gocryptfs interop test {test}: this machine has no /dev/fuse ***\n"
        );
        return false;
    }
    let missing: Vec<&str> = ["gocryptfs", "fusermount"]
        .into_iter()
        .filter(|b| {
            let found = if *b == "fusermount" {
                which("fusermount").is_some() || which("fusermount3").is_some()
            } else {
                which(b).is_some()
            };
            !found
        })
        .collect();
    if !missing.is_empty() {
        panic!(
            "INSTALL BUG: /dev/fuse exists but {missing:?} not found in PATH; \
             run .ci/run or `apt-get install -y gocryptfs fuse3`"
        );
    }
    true
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
    init(src, passfile, &[&["-reverse"], extra].concat());
}

/// `gocryptfs -init -q -passfile PW -scryptn 10 [extra] DIR`: a forward-mode directory.
pub fn init_forward(dir: &Path, passfile: &Path, extra: &[&str]) {
    init(dir, passfile, extra);
}

fn init(src: &Path, passfile: &Path, extra: &[&str]) {
    let mut c = Command::new("gocryptfs");
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
        let mut args: Vec<&OsStr> = vec![OsStr::new("-reverse")];
        args.extend_from_slice(extra);
        Mount::start(src, Some(passfile), &args, "rev")
    }

    /// `gocryptfs -q -passfile PW CIPHERDIR MNT` (forward mode).
    pub fn forward(cipherdir: &Path, passfile: &Path) -> Mount {
        Mount::start(cipherdir, Some(passfile), &[], "fwd")
    }

    /// Forward mount with extra options (e.g. `-config FILE`).
    pub fn forward_with(cipherdir: &Path, passfile: &Path, extra: &[&OsStr]) -> Mount {
        Mount::start(cipherdir, Some(passfile), extra, "fwd")
    }

    /// Mount with explicit arguments; `passfile` None means the arguments
    /// supply the key (e.g. `-masterkey`).
    pub fn start(dir: &Path, passfile: Option<&Path>, extra: &[&OsStr], label: &str) -> Mount {
        let tmp = TestDir::new(&format!("mnt-{label}"));
        let mnt = tmp.join("mnt");
        fs::create_dir(&mnt).unwrap();
        let ctlsock = tmp.join("ctl.sock");
        let log = tmp.join("gocryptfs.log");
        let logf = File::create(&log).unwrap();
        let mut c = Command::new("gocryptfs");
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
        let mut c = Command::new("gocryptfs-xray");
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

/// The master key of a config file as 64 hex digits, via
/// `gocryptfs-xray -dumpmasterkey` (password on stdin). None when
/// gocryptfs-xray is not installed.
pub fn dump_masterkey(conf: &Path) -> Option<String> {
    which("gocryptfs-xray")?;
    let mut c = Command::new("gocryptfs-xray");
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
