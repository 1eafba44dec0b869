//! Small helpers shared by the integration tests: running commands with
//! readable failure output, temporary directories that can always be removed,
//! and password files.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The password used by all interop tests.
pub const PASSWORD: &str = "interop test password";

/// A `Command` for the `cryptbak` binary built by cargo for this test run.
pub fn cryptbak() -> Command {
    // CRYPTBAK_IT_BIN runs a test against another build, to show it fails without a fix.
    let bin = std::env::var_os("CRYPTBAK_IT_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_cryptbak").into());
    let mut c = Command::new(bin);
    c.stdin(Stdio::null());
    c
}

/// Human-readable rendering of a command line (for failure messages).
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&esc(a.as_bytes()));
    }
    s
}

/// Seconds after which `run` kills a command (env `CRYPTBAK_IT_TIMEOUT`
/// overrides; default 90: a healthy export of the test trees takes seconds).
pub fn timeout() -> Duration {
    let secs = std::env::var("CRYPTBAK_IT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    Duration::from_secs(secs)
}

/// Runs `cmd` to completion, capturing stdout and stderr. A command that
/// runs longer than `timeout()` is killed and the test panics with what it
/// printed so far (a hang, e.g. opening a FIFO, must not stall the suite).
pub fn run(cmd: &mut Command) -> Output {
    let what = describe(cmd);
    // stdin is left as the caller set it (`cryptbak()` sets null).
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let to = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let te = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let limit = timeout();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > limit {
            let stuck = blocked_syscalls(child.id());
            let _ = child.kill();
            let _ = child.wait();
            let out = Output {
                status: child.try_wait().ok().flatten().unwrap_or_default(),
                stdout: to.join().unwrap_or_default(),
                stderr: te.join().unwrap_or_default(),
            };
            panic!(
                "TIMEOUT: `{what}` ran longer than {}s and was killed\n\
                 threads at the time:\n{stuck}{}",
                limit.as_secs(),
                show_output(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: to.join().unwrap_or_default(),
        stderr: te.join().unwrap_or_default(),
    }
}

/// Where the threads of a hung process wait (Linux /proc): wchan and, for
/// a blocked `openat`, the path (`wait_for_partner` = opening a FIFO).
fn blocked_syscalls(pid: u32) -> String {
    let mut s = String::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return s;
    };
    for t in tasks.flatten() {
        let tp = t.path();
        let wchan = fs::read_to_string(tp.join("wchan")).unwrap_or_default();
        let sc = fs::read_to_string(tp.join("syscall")).unwrap_or_default();
        let mut line = format!("  tid {}: wchan={wchan}", t.file_name().to_string_lossy());
        let f: Vec<&str> = sc.split_whitespace().collect();
        // x86_64 openat = 257: args are dirfd, path, flags
        if f.first() == Some(&"257") && f.len() > 3 {
            if let Ok(addr) = u64::from_str_radix(f[2].trim_start_matches("0x"), 16) {
                line.push_str(&format!(" openat({})", read_cstr(pid, addr)));
            }
        }
        if wchan == "wait_for_partner" {
            line.push_str("  <-- blocked opening a FIFO");
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

fn read_cstr(pid: u32, addr: u64) -> String {
    use std::io::{Seek, SeekFrom};
    let Ok(mut m) = fs::File::open(format!("/proc/{pid}/mem")) else {
        return "?".into();
    };
    let mut buf = vec![0u8; 4096];
    if m.seek(SeekFrom::Start(addr)).is_err() {
        return "?".into();
    }
    let n = m.read(&mut buf).unwrap_or(0);
    let end = buf[..n].iter().position(|&b| b == 0).unwrap_or(n);
    format!("\"{}\"", esc(&buf[..end]))
}

/// Formats an `Output` for a failure message.
pub fn show_output(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` and panics (showing stdout/stderr) unless it exits with 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    if !out.status.success() {
        panic!("command failed: `{}`\n{}", describe(cmd), show_output(&out));
    }
    out
}

/// Runs `cmd` and panics (showing stdout/stderr) unless it exits with `code`.
pub fn run_code(cmd: &mut Command, code: i32) -> Output {
    let out = run(cmd);
    if out.status.code() != Some(code) {
        panic!(
            "command `{}` should have exited with code {code}\n{}",
            describe(cmd),
            show_output(&out)
        );
    }
    out
}

/// Runs `cmd` and panics unless it fails (exits non-zero, not by a signal).
pub fn run_fail(cmd: &mut Command) -> Output {
    let out = run(cmd);
    match out.status.code() {
        Some(0) => panic!(
            "command `{}` should have failed\n{}",
            describe(cmd),
            show_output(&out)
        ),
        None => panic!(
            "command `{}` was killed by a signal\n{}",
            describe(cmd),
            show_output(&out)
        ),
        Some(_) => out,
    }
}

/// Escapes a byte string for display: printable ASCII as is, everything else
/// (non-UTF-8 bytes, UTF-8 multi-byte sequences, control characters) as
/// `\xNN`, `\n`, ... so that NFC/NFD spellings are told apart.
pub fn esc(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Escaped display of a path.
pub fn escp(p: &Path) -> String {
    esc(p.as_os_str().as_bytes())
}

/// `OsStr` from raw bytes (for names that are not valid UTF-8).
pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// A temporary directory that is removed on drop even if the test made parts
/// of it read-only (0555 directories, 0444 files).
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new(label: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cryptbak-it-{label}-"))
            .tempdir()
            .expect("create temp dir");
        TestDir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn join<P: AsRef<Path>>(&self, p: P) -> PathBuf {
        self.path().join(p)
    }

    /// Keeps the directory after the test (for manual inspection).
    #[allow(dead_code)]
    pub fn keep(mut self) -> PathBuf {
        self.dir.take().unwrap().keep()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            make_writable(d.path());
        }
    }
}

/// Recursively adds u+rwx to all directories below `p` (does not follow
/// symlinks) so that the tree can be deleted by a non-root user too.
pub fn make_writable(p: &Path) {
    let Ok(md) = fs::symlink_metadata(p) else {
        return;
    };
    if !md.is_dir() {
        return;
    }
    let mode = md.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = fs::set_permissions(p, fs::Permissions::from_mode((mode | 0o700) & 0o7777));
    }
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            make_writable(&e.path());
        }
    }
}

/// Writes a password file (password + newline) into `dir` and returns its path.
pub fn write_passfile(dir: &Path) -> PathBuf {
    let p = dir.join("passfile");
    fs::write(&p, format!("{PASSWORD}\n")).expect("write passfile");
    p
}

/// True when the tests run as root (chown, mknod and foreign uids work).
pub fn is_root() -> bool {
    // No libc in the tests: the owner of a freshly created file is our euid.
    let d = TestDir::new("whoami");
    let f = d.join("f");
    fs::write(&f, b"").unwrap();
    std::os::unix::fs::MetadataExt::uid(&fs::metadata(&f).unwrap()) == 0
}

/// Runs `cryptbak export` and returns its output (any exit code).
pub fn export_cmd(src: &Path, dest: &Path, passfile: &Path, extra: &[&OsStr]) -> Command {
    let mut c = cryptbak();
    c.arg("export").arg("--passfile").arg(passfile);
    c.args(extra);
    c.arg(src).arg(dest);
    c
}

/// `cryptbak export --passfile PW [extra] SRC DEST`, asserting exit code 0.
pub fn export_ok(src: &Path, dest: &Path, passfile: &Path, extra: &[&OsStr]) -> Output {
    run_ok(&mut export_cmd(src, dest, passfile, extra))
}

/// `cryptbak init` with a cheap scrypt cost (tests only), asserting success.
pub fn init_fast(src: &Path, passfile: &Path) {
    run_ok(
        cryptbak()
            .args(["init", "-q", "--scryptn", "10", "--passfile"])
            .arg(passfile)
            .arg(src),
    );
}

/// Work area of one test: `src/` (plaintext), a password file, room for outputs.
pub struct Work {
    pub dir: TestDir,
    pub src: PathBuf,
    pub pw: PathBuf,
}

impl Work {
    pub fn new(label: &str) -> Work {
        let dir = TestDir::new(label);
        let src = dir.join("src");
        fs::create_dir(&src).unwrap();
        let pw = write_passfile(dir.path());
        Work { dir, src, pw }
    }

    /// A path in the work area that does not exist yet (an export destination, …).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A file in `dir` (not below it) whose name contains `marker` and that already holds
/// more than `min_len` bytes: proof that a run is in the middle of writing it.
pub fn growing_file(dir: &Path, marker: &str, min_len: u64) -> Option<PathBuf> {
    fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name();
        let big = e.metadata().is_ok_and(|m| m.len() > min_len);
        (name.to_string_lossy().contains(marker) && big).then(|| e.path())
    })
}

fn kill(sig: &str, pid: u32) {
    run_ok(
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string()),
    );
}

/// Runs `act` while `child` is provably mid-run, with no timing guesswork: waits until
/// `busy` names a file that exists only while the run works, freezes the process
/// (SIGSTOP), checks the file is still there (so the run cannot have finished), runs
/// `act` with its pid, and resumes it. Returns its output, or `None` if the run got past
/// that point before it could be frozen (callers retry).
pub fn while_frozen(
    mut child: std::process::Child,
    busy: impl Fn() -> Option<PathBuf>,
    act: impl FnOnce(u32),
) -> Option<Output> {
    let pid = child.id();
    let deadline = Instant::now() + timeout();
    let file = loop {
        if let Some(p) = busy() {
            break p;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    kill("STOP", pid);
    let mid_run = file.exists();
    if mid_run {
        act(pid);
    }
    kill("CONT", pid);
    let out = child.wait_with_output().unwrap();
    mid_run.then_some(out)
}

/// Delivers `sig` to `child` while it is provably mid-run (see [`while_frozen`]).
pub fn signal_while(
    child: std::process::Child,
    sig: &str,
    busy: impl Fn() -> Option<PathBuf>,
) -> Option<Output> {
    while_frozen(child, busy, |pid| kill(sig, pid))
}

// ---- mounts and privileges --------------------------------------------------------

/// A tmpfs mounted on a directory for the length of a test; unmounted
/// (lazily, so that a failed test cannot leave it busy) on drop. Declare it
/// after the `TestDir` holding it, so that it is dropped first.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size}"))
                .arg("tmpfs")
                .arg(dir),
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    pub fn resize(&self, size: &str) {
        run_ok(
            Command::new("mount")
                .args(["-o"])
                .arg(format!("remount,size={size}"))
                .arg(&self.dir),
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// False (after a loud line) when not root: tmpfs mounts and uid switches need it.
pub fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root (tmpfs mounts, setpriv)");
    false
}

// ---- attacks: an unprivileged local user against a root run ----------------------

/// The unprivileged user attack tests run as (created on first use).
pub struct Attacker {
    pub uid: u32,
    pub gid: u32,
}

const ATTACKER: &str = "cryptbak-attacker";

/// Swaps pairs of names with renameat2(RENAME_EXCHANGE), round-robin, as fast as it
/// can, until the stop file exists or a bound of iterations is reached (so a lost test
/// never leaves it running for long). Arguments: stop file, started mark, the target
/// of symlinks to put back ("-" for none), then the pairs. When neither name of a pair
/// is a symlink any more (the run under attack removed it), the second is made one
/// again, so that the attack goes on for the whole test.
const SWAPPER: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
stop, started, relink = sys.argv[1], sys.argv[2], sys.argv[3]
relink = None if relink == "-" else relink.encode()
args = [s.encode() for s in sys.argv[4:]]
pairs = list(zip(args[0::2], args[1::2]))
AT_FDCWD, RENAME_EXCHANGE = -100, 2
open(started, "w").close()
for i in range(20_000_000):
    a, b = pairs[i % len(pairs)]
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    if relink and i % 64 < len(pairs) and not os.path.islink(a) and not os.path.islink(b):
        try:
            os.rename(b, b + b".old%d" % i)
            os.symlink(relink, b)
        except OSError:
            pass
    if i % 256 == 0 and os.path.exists(stop):
        break
"#;

/// The attacker user, created with `useradd` the first time (tests run as root).
pub fn attacker() -> &'static Attacker {
    static A: std::sync::OnceLock<Attacker> = std::sync::OnceLock::new();
    A.get_or_init(|| {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").arg(flag).arg(ATTACKER).output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse().ok()
        };
        if id("-u").is_none() {
            // Another test binary may create it at the same time: the result counts.
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg(ATTACKER)
                .output();
        }
        Attacker {
            uid: id("-u").expect("useradd made the attacker user"),
            gid: id("-g").expect("the attacker user has a group"),
        }
    })
}

impl Attacker {
    /// A command that runs as the attacker, with no supplementary groups.
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(prog);
        c
    }

    /// Give `path` (not following a symlink) to the attacker.
    pub fn own(&self, path: &Path) {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Start swapping each pair of names (as the attacker) until the guard is dropped.
    /// With `relink`, the second name of a pair is a symlink there, put back whenever
    /// the run under attack removes it.
    pub fn swap(
        &self,
        work: &Path,
        pairs: &[(PathBuf, PathBuf)],
        relink: Option<&Path>,
    ) -> Swapping {
        let script = work.join("swapper.py");
        fs::write(&script, SWAPPER).unwrap();
        let stop = work.join("swapper.stop");
        let _ = fs::remove_file(&stop);
        // The attacker writes its "started" mark in a directory of its own.
        let marks = work.join("swapper.marks");
        let _ = fs::create_dir(&marks);
        self.own(&marks);
        let started = marks.join("started");
        let _ = fs::remove_file(&started);
        // Debian's python3: a user's PATH may lead to an interpreter only root can run.
        let mut cmd = self.cmd("/usr/bin/python3");
        cmd.arg(&script)
            .arg(&stop)
            .arg(&started)
            .arg(relink.map_or(Path::new("-"), |p| p));
        for (a, b) in pairs {
            cmd.arg(a).arg(b);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 runs the attacker's swap loop");
        let deadline = Instant::now() + timeout();
        while !started.exists() {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("the swap loop exited at once ({st})");
            }
            assert!(Instant::now() < deadline, "the swap loop never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        Swapping { child, stop }
    }
}

/// A running swap loop; stopped and waited for on drop.
pub struct Swapping {
    child: std::process::Child,
    stop: PathBuf,
}

impl Drop for Swapping {
    fn drop(&mut self) {
        let _ = fs::write(&self.stop, b"");
        let _ = self.child.wait();
    }
}

/// Quotes `s` for sh.
pub fn shell_quote(s: &OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"))
}

/// Runs `cmd` (its program, arguments and environment) under script(1), on a
/// pseudo-terminal, asserting exit code 0, and returns everything it drew there
/// (`log` keeps the typescript).
pub fn on_a_pty(cmd: &Command, log: &Path) -> String {
    let mut line = shell_quote(cmd.get_program());
    for a in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line]).arg(log);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    run_ok(&mut script);
    String::from_utf8_lossy(&fs::read(log).unwrap()).into_owned()
}

/// Whether a restore's progress line, as drawn on a terminal, showed a total of `files`
/// files, the plaintext size `of_mb` ("(of 134.2 MB)") and an ETA.
pub fn has_total(drawn: &str, files: u64, of_mb: &str) -> bool {
    drawn
        .split(['\r', '\n'])
        .any(|l| l.contains(&format!("/{files} files, ")) && l.contains(of_mb) && l.contains("ETA"))
}
