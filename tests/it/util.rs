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
    let mut c = Command::new(env!("CARGO_BIN_EXE_cryptbak"));
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
