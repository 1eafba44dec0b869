//! What a person at a terminal sees: the progress line (only on a terminal) and the
//! password prompt (no echo). Driven through `script` and `tmux` pseudo-terminals.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::util::*;

fn require(tool: &str) {
    assert!(
        crate::gocryptfs::which(tool).is_some(),
        "`{tool}` is missing: it is part of the test requirements (.ci/run installs it)"
    );
}

/// Runs `cryptbak export` on a pseudo-terminal (see [`on_a_pty`]).
fn export_on_a_pty(t: &TestDir, src: &Path, pw: &Path, dest: &Path) -> String {
    let mut c = cryptbak();
    c.arg("export").arg("--passfile").arg(pw).arg(src).arg(dest);
    on_a_pty(&c, &t.join("typescript"))
}

#[test]
fn progress_line_only_on_a_terminal() {
    require("script");
    let t = TestDir::new("tty-progress");
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..50 {
        fs::write(src.join(format!("f{i}")), vec![b'x'; 10_000]).unwrap();
    }
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);

    // On a pseudo-terminal: the progress line is drawn (and cleared at the end).
    let seen = export_on_a_pty(&t, &src, &pw, &t.join("d1"));
    assert!(
        seen.contains(" entries, "),
        "no progress line on a terminal:\n{seen}"
    );

    // Not a terminal (cron): no progress line, no control characters.
    let out = run_ok(&mut export_cmd(&src, &t.join("d2"), &pw, &[]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("entries,") && !err.contains('\r') && !err.contains('\x1b'),
        "{err}"
    );
}

/// Start `cmd` in a detached tmux session and return a handle that kills it on drop.
struct Tmux(String);

impl Tmux {
    fn start(name: &str, cmd: &str) -> Tmux {
        run_ok(Command::new("tmux").args([
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "20",
            "-s",
            name,
            cmd,
        ]));
        Tmux(name.to_string())
    }
    fn screen(&self) -> String {
        let out = run_ok(Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn send(&self, keys: &str) {
        run_ok(Command::new("tmux").args(["send-keys", "-t", &self.0, "-l", keys]));
        run_ok(Command::new("tmux").args(["send-keys", "-t", &self.0, "Enter"]));
    }
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "waited for {text:?}, screen:\n{s}"
            );
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[test]
fn password_prompt_does_not_echo() {
    require("tmux");
    let t = TestDir::new("tty-prompt");
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    let done = t.join("done");
    let cmd = format!(
        "{} init --scryptn 10 {}; echo EXIT=$? > {}; sleep 30",
        env!("CARGO_BIN_EXE_cryptbak"),
        shell_quote(src.as_os_str()),
        shell_quote(done.as_os_str())
    );
    let name = format!("cryptbak-it-{}", std::process::id());
    let tmux = Tmux::start(&name, &cmd);
    tmux.wait_for("Password:");
    tmux.send("sw0rdfish-secret");
    tmux.wait_for("Repeat:");
    tmux.send("sw0rdfish-secret");
    let start = Instant::now();
    while !done.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "init did not finish:\n{}",
            tmux.screen()
        );
        sleep(Duration::from_millis(100));
    }
    let screen = tmux.screen();
    assert!(
        !screen.contains("sw0rdfish"),
        "the password was echoed:\n{screen}"
    );
    assert!(
        fs::read_to_string(&done).unwrap().contains("EXIT=0"),
        "{screen}"
    );
    assert!(
        screen.contains("master key"),
        "the master key was not shown on the terminal:\n{screen}"
    );
    // The password typed works.
    fs::write(t.join("pw"), "sw0rdfish-secret\n").unwrap();
    export_ok(&src, &t.join("dest"), &t.join("pw"), &[]);
}

/// The byte figures move while one large file is written (they are drawn from a live
/// counter at every tick), not only when an entry completes.
#[test]
fn progress_moves_during_one_large_file() {
    require("script");
    let t = TestDir::new("tty-bigfile");
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    // Sparse: free to create, yet seconds to encrypt in a debug build.
    fs::File::create(src.join("big"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);
    let seen = export_on_a_pty(&t, &src, &pw, &t.join("d"));
    // (entries, MB) of every progress line drawn.
    let draws: Vec<(u64, String)> = seen
        .split(['\r', '\n'])
        .filter_map(|l| {
            let (count, rest) = l.split_once(" entries, ")?;
            let count = count.rsplit(' ').next()?;
            let entries = count.split('/').next()?.parse().ok()?;
            let mb = rest.split_once(" MB written")?.0.to_string();
            Some((entries, mb))
        })
        .collect();
    let moved = draws
        .windows(2)
        .any(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1);
    assert!(
        moved,
        "the MB figure never moved between entries:\n{draws:?}"
    );
    // The view was counted alongside (root, config, diriv, big): a total and an ETA.
    assert!(
        seen.split(['\r', '\n'])
            .any(|l| l.contains("/4 entries, ") && l.contains("ETA")),
        "no total or ETA on the progress line:\n{seen}"
    );
}

/// A restore counts the backup alongside (names, types and sizes only) and shows the
/// files and plaintext bytes to come, and an ETA, as an export does.
#[test]
fn restore_progress_has_a_total() {
    require("script");
    let t = TestDir::new("tty-restore");
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    fs::File::create(src.join("big"))
        .unwrap()
        .set_len(128 << 20)
        .unwrap();
    fs::create_dir(src.join("sub")).unwrap();
    fs::write(src.join("sub/small"), vec![b'x'; 5000]).unwrap();
    fs::hard_link(src.join("sub/small"), src.join("link")).unwrap();
    std::os::unix::fs::symlink("big", src.join("sym")).unwrap();
    let long = "n".repeat(200);
    fs::write(src.join(&long), b"long name").unwrap();
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);
    let backup = t.join("backup");
    export_ok(&src, &backup, &pw, &[]);

    let mut c = cryptbak();
    c.arg("restore")
        .arg("--passfile")
        .arg(&pw)
        .arg(&backup)
        .arg(t.join("out"));
    let seen = on_a_pty(&c, &t.join("typescript"));
    // big, sub/small (once, with its second name), the long name: three files that
    // hold 128 MiB + 5000 + 9 bytes; not the config, the dir IVs or the .name file.
    let want = format!("(of {:.1} MB)", ((128u64 << 20) + 5009) as f64 / 1e6);
    assert!(
        has_total(&seen, 3, &want),
        "no total of 3 files, {want} and an ETA on the progress line:\n{seen}"
    );
}
