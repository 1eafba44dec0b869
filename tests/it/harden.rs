//! Fault injection (hardening issue): a destination that runs out of space
//! (export, restore, `--tar FILE`) and a source the process may not read.
//! Whatever goes wrong, no file may be left under its final name with bytes
//! that differ from a complete run (DESIGN.md Habits 4 and 5), and a later
//! run with the fault gone must finish the job. These tests need root (tmpfs
//! mounts, `setpriv`); they skip loudly without it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tree::{compare_trees, compare_trees_with, scan, Builder, CompareOpts};
use crate::util::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// About 5.5 MiB of incompressible files, in the root and in a subdirectory,
/// plus a few small ones; initialised with a cheap scrypt cost.
fn big_source(t: &TestDir) -> (PathBuf, PathBuf) {
    let src = t.join("src");
    let mut b = Builder::new(&src, 7);
    b.dir(b"");
    for i in 0..20 {
        b.rfile(format!("f{i:02}").as_bytes(), 256 * 1024 + i * 1000);
    }
    b.dir(b"sub/deeper");
    for i in 0..3 {
        b.rfile(format!("sub/g{i}").as_bytes(), 100_000);
        b.rfile(format!("sub/deeper/small{i}").as_bytes(), 10 + i);
    }
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);
    (src, pw)
}

/// Relative paths of entries whose name marks a cryptbak temp file.
fn temp_leftovers(root: &Path) -> Vec<String> {
    scan(root)
        .into_keys()
        .map(|p| esc(&p))
        .filter(|p| p.contains(".cryptbak-tmp-"))
        .collect()
}

/// Every regular file below `partial` must have exactly the bytes of the same
/// path below `complete` (a torn or stale file under a final name fails).
/// Returns how many regular files were checked.
fn assert_files_are_complete(partial: &Path, complete: &Path, what: &str) -> usize {
    let mut n = 0;
    for rel in scan(partial).into_keys() {
        let p = partial.join(os(&rel));
        if !fs::symlink_metadata(&p).unwrap().is_file() {
            continue;
        }
        let got = fs::read(&p).unwrap();
        let want = fs::read(complete.join(os(&rel)))
            .unwrap_or_else(|e| panic!("{what}: {} should not exist: {e}", esc(&rel)));
        assert!(
            got == want,
            "{what}: {} is under its final name but differs from a complete run \
             ({} bytes, complete run has {})",
            esc(&rel),
            got.len(),
            want.len()
        );
        n += 1;
    }
    n
}

#[test]
fn harden_export_enospc_leaves_no_torn_file_and_a_rerun_completes() {
    if !need_root("harden_export_enospc") {
        return;
    }
    let t = TestDir::new("harden-enospc-export");
    let (src, pw) = big_source(&t);
    let fresh = t.join("fresh");
    export_ok(&src, &fresh, &pw, &[]);
    let mnt = Tmpfs::mount(&t.join("mnt"), "2m");
    let dest = mnt.dir.join("d");

    let out = run_fail(&mut export_cmd(&src, &dest, &pw, &[]));
    let err = stderr_of(&out);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{}",
        show_output(&out)
    );
    let src_s = src.to_string_lossy();
    assert!(
        err.lines()
            .any(|l| l.contains("no space left on device") && l.contains(&*src_s)),
        "no stderr line names a source file and ENOSPC:\n{err}"
    );
    let leftovers = temp_leftovers(&dest);
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    let checked = assert_files_are_complete(&dest, &fresh, "after ENOSPC");
    assert!(
        checked > 0,
        "nothing at all was written: the test proves nothing"
    );

    // With room again, the same command finishes the backup.
    mnt.resize("64m");
    run_ok(&mut export_cmd(&src, &dest, &pw, &[]));
    let diffs = compare_trees(&dest, &fresh);
    assert!(
        diffs.is_empty(),
        "rerun differs from a fresh export:\n{}",
        diffs.join("\n")
    );
    assert!(temp_leftovers(&dest).is_empty());
}

#[test]
fn harden_restore_enospc_leaves_no_torn_file_and_a_rerun_completes() {
    if !need_root("harden_restore_enospc") {
        return;
    }
    let t = TestDir::new("harden-enospc-restore");
    let (src, pw) = big_source(&t);
    let backup = t.join("backup");
    export_ok(&src, &backup, &pw, &[]);
    let mnt = Tmpfs::mount(&t.join("mnt"), "2m");
    let restore = |dest: &Path| {
        let mut c = cryptbak();
        c.args(["restore", "-q", "--passfile"])
            .arg(&pw)
            .arg(&backup)
            .arg(dest);
        c
    };

    let dest = mnt.dir.join("out");
    let out = run_fail(&mut restore(&dest));
    let err = stderr_of(&out);
    assert!(
        err.contains("no space left on device"),
        "stderr does not say why:\n{err}"
    );
    // Each failure is named once, by where its plaintext was going (the user's to fix).
    let dest_shown = dest.to_string_lossy().into_owned();
    for line in err.lines().filter(|l| l.contains("no space left")) {
        assert!(
            line.starts_with(&format!("cryptbak: error: {dest_shown}/"))
                && line.contains("(backup file ")
                && line.contains("cannot write the plaintext")
                && line.ends_with("; not restored"),
            "not named by its destination: {line}"
        );
    }
    // Every file present is the whole plaintext; nothing else (no temp file,
    // whatever its name) is left.
    let checked = assert_files_are_complete(&dest, &src, "after ENOSPC");
    assert!(
        checked > 0,
        "nothing at all was restored: the test proves nothing"
    );
    assert!(temp_leftovers(&dest).is_empty());

    mnt.resize("64m");
    let dest2 = mnt.dir.join("out2");
    run_ok(&mut restore(&dest2));
    let opts = CompareOpts {
        ignore: vec![b".gocryptfs.reverse.conf".to_vec()],
        ..Default::default()
    };
    let diffs = compare_trees_with(&src, &dest2, &opts);
    assert!(
        diffs.is_empty(),
        "re-restore differs from the source:\n{}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn harden_tar_file_enospc_removes_the_archive() {
    if !need_root("harden_tar_enospc") {
        return;
    }
    let t = TestDir::new("harden-enospc-tar");
    let (src, pw) = big_source(&t);
    let mnt = Tmpfs::mount(&t.join("mnt"), "2m");
    let tar = mnt.dir.join("backup.tar");
    let out = run_code(
        cryptbak()
            .args(["export", "--passfile"])
            .arg(&pw)
            .arg("--tar")
            .arg(&tar)
            .arg(&src),
        1,
    );
    let err = stderr_of(&out);
    assert!(
        err.contains("no space left on device") && err.contains(&*tar.to_string_lossy()),
        "stderr should name the archive and ENOSPC:\n{err}"
    );
    let left: Vec<_> = fs::read_dir(&mnt.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a truncated archive (or temp file) was left: {left:?}"
    );
}

fn as_nobody(cmd: Command) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    c.stdin(std::process::Stdio::null());
    c
}

/// Regular files (relative path -> bytes) below `root`.
fn file_bytes(root: &Path) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    scan(root)
        .into_keys()
        .filter(|rel| fs::symlink_metadata(root.join(os(rel))).unwrap().is_file())
        .map(|rel| {
            let b = fs::read(root.join(os(&rel))).unwrap();
            (rel, b)
        })
        .collect()
}

#[test]
fn harden_unreadable_source_is_reported_and_its_old_backup_kept() {
    if !need_root("harden_unreadable_source") {
        return;
    }
    let t = TestDir::new("harden-unreadable");
    // Let uid 65534 reach the tree (tempdir makes it 0700).
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = t.join("src");
    let mut b = Builder::new(&src, 11);
    b.dir(b"keep/deep");
    b.file(b"plain", b"everyone may read this");
    b.rfile(b"keep/deep/data", 9000);
    b.file(b"hidden", b"version one");
    b.dir(b"locked");
    b.file(b"locked/inner", b"inside a locked dir");
    let pw = write_passfile(t.path());
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).unwrap();
    init_fast(&src, &pw);
    // The config must be readable by the unprivileged run.
    run_ok(Command::new("chmod").arg("-R").arg("a+rX").arg(&src));
    let chown_nobody = |p: &Path| {
        run_ok(Command::new("chown").arg("-R").arg("65534:65534").arg(p));
    };

    // 1. A root run while everything is readable.
    let dest = t.join("dest");
    export_ok(&src, &dest, &pw, &[]);
    chown_nobody(&dest);
    let before = file_bytes(&dest);

    // 2. `hidden` changes and becomes unreadable, `locked` becomes
    //    untraversable, a new file appears. The unprivileged run must report
    //    both, write the new file, and keep the old ciphertext of both.
    b.file(b"hidden", b"version two, longer than one");
    b.file(b"newfile", b"new");
    b.chmod(b"hidden", 0o000);
    b.chmod(b"locked", 0o000);
    let out = run_code(&mut as_nobody(export_cmd(&src, &dest, &pw, &[])), 2);
    let err = stderr_of(&out);
    for name in ["hidden", "locked"] {
        let p = src.join(name).to_string_lossy().into_owned();
        assert!(
            err.lines()
                .any(|l| l.contains(&p) && l.contains("permission denied")),
            "stderr does not name {p}:\n{err}"
        );
    }
    let after = file_bytes(&dest);
    for (rel, bytes) in &before {
        match after.get(rel) {
            None => panic!(
                "{} was deleted although its source could not be read",
                esc(rel)
            ),
            Some(a) => assert!(a == bytes, "{} was rewritten", esc(rel)),
        }
    }
    assert_eq!(
        after.len(),
        before.len() + 1,
        "exactly the new file should have been added"
    );
    assert!(temp_leftovers(&dest).is_empty());

    // 3. A first unprivileged run into an empty DEST: exit 2, both named,
    //    everything else exported (checked by restoring it as root).
    let dest2 = t.join("dest2");
    fs::create_dir(&dest2).unwrap();
    chown_nobody(&dest2);
    let out = run_code(&mut as_nobody(export_cmd(&src, &dest2, &pw, &[])), 2);
    let err = stderr_of(&out);
    for name in ["hidden", "locked"] {
        assert!(
            err.contains(&*src.join(name).to_string_lossy()),
            "stderr does not name {name}:\n{err}"
        );
    }
    let restored = t.join("restored");
    run_ok(
        cryptbak()
            .args(["restore", "-q", "--passfile"])
            .arg(&pw)
            .arg(&dest2)
            .arg(&restored),
    );
    let opts = CompareOpts {
        ignore: vec![
            b".gocryptfs.reverse.conf".to_vec(),
            b"hidden".to_vec(),
            b"locked".to_vec(),
        ],
        ..Default::default()
    };
    // The unprivileged export cannot give its files root's owner; the
    // restore faithfully brings back 65534 then. Everything else must match.
    let diffs: Vec<_> = compare_trees_with(&src, &restored, &opts)
        .into_iter()
        .filter(|d| !d.what.starts_with("owner differs"))
        .collect();
    assert!(
        diffs.is_empty(),
        "the readable part was not exported completely:\n{}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!restored.join("hidden").exists());
}

/// Bind mounts over source files, unmounted (lazily) on drop.
struct BindMounts(Vec<PathBuf>);

impl Drop for BindMounts {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
    }
}

/// Source files whose size changes under the reader: `/sys` and `/proc` files bind-mounted
/// over them report 4096 or 0 bytes to `stat` and then read as something else, on every
/// attempt. The export must notice (it re-reads once), report each by path, exit 2, and
/// still leave a valid ciphertext of what it read (at most the listed size): the restore
/// gives those bytes back, and the other files are untouched by the trouble.
#[test]
fn harden_source_files_changing_during_export() {
    if !need_root("harden_source_files_changing_during_export") {
        return;
    }
    let t = TestDir::new("harden-changing");
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    let mut b = Builder::new(&src, 12);
    b.file(b"ok", b"fine");
    b.file(b"shrinks", b"");
    b.file(b"grows", b"");
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);
    let mut mounts = BindMounts(Vec::new());
    for (from, to) in [
        ("/sys/class/net/lo/mtu", "shrinks"),
        ("/proc/version", "grows"),
    ] {
        run_ok(
            Command::new("mount")
                .arg("--bind")
                .arg(from)
                .arg(src.join(to)),
        );
        mounts.0.push(src.join(to));
    }
    let mtu = fs::read(src.join("shrinks")).unwrap();
    let version = fs::read(src.join("grows")).unwrap();
    assert_eq!(fs::metadata(src.join("shrinks")).unwrap().len(), 4096);
    assert_eq!(fs::metadata(src.join("grows")).unwrap().len(), 0);
    assert!(!mtu.is_empty() && !version.is_empty());

    let dest = t.join("dest");
    let out = run_code(&mut export_cmd(&src, &dest, &pw, &[]), 2);
    let err = stderr_of(&out);
    for name in ["shrinks", "grows"] {
        let p = src.join(name).to_string_lossy().into_owned();
        assert!(
            err.lines()
                .any(|l| l.contains(&p) && l.contains("changed as we read it")),
            "stderr does not report {p}:\n{err}"
        );
    }
    assert!(!err.contains(&*src.join("ok").to_string_lossy()), "{err}");
    assert!(temp_leftovers(&dest).is_empty());
    drop(mounts);

    // What was read is in the backup as a valid ciphertext.
    let restored = t.join("restored");
    run_ok(
        cryptbak()
            .args(["restore", "-q", "--passfile"])
            .arg(&pw)
            .arg(&dest)
            .arg(&restored),
    );
    assert_eq!(fs::read(restored.join("shrinks")).unwrap(), mtu);
    // Never more than the listed size is read (a swapped-in device could be endless):
    // the file listed empty is backed up empty.
    assert_eq!(fs::read(restored.join("grows")).unwrap(), b"");
    assert_eq!(fs::read(restored.join("ok")).unwrap(), b"fine");

    // The next run, with the files quiet again, replaces them with their real state.
    run_ok(&mut export_cmd(&src, &dest, &pw, &[]));
    let fresh = t.join("fresh");
    export_ok(&src, &fresh, &pw, &[]);
    let diffs = compare_trees(&dest, &fresh);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// SIGINT and SIGTERM stop a restore (from a directory and from a tar stream) cleanly:
/// exit 130, one "interrupted" line, no staging directory left, and every file that is
/// in DEST is complete (the signal comes while a 256 MiB file is being decrypted).
#[test]
fn harden_restore_stops_cleanly_on_signals() {
    let t = TestDir::new("harden-restore-signal");
    let src = t.join("src");
    let b = crate::tree::build_many_files(&src, 4, 20);
    fs::File::create(b.p(b"big"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    let tar = t.join("exp.tar");
    run_ok(
        cryptbak()
            .args(["export", "-q", "--passfile"])
            .arg(&pw)
            .arg("--tar")
            .arg(&tar)
            .arg(&src),
    );

    for (sig, from_tar) in [("INT", false), ("TERM", true), ("INT", true)] {
        let what = format!("SIG{sig} {}", if from_tar { "tar" } else { "dir" });
        let out = (0..5)
            .find_map(|attempt| {
                let dest = t.join(format!("out-{sig}-{from_tar}-{attempt}"));
                let mut c = cryptbak();
                c.args(["restore", "-q", "--passfile"]).arg(&pw);
                if from_tar {
                    c.arg("--tar").arg(&tar);
                } else {
                    c.arg(&exp);
                }
                let child = c
                    .arg(&dest)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let staging = || {
                    fs::read_dir(&dest).ok()?.flatten().find_map(|e| {
                        let n = e.file_name();
                        n.to_string_lossy()
                            .starts_with(".cryptbak-restore-")
                            .then(|| e.path())
                    })
                };
                let busy = || growing_file(&staging()?, "", 1 << 20);
                signal_while(child, sig, busy).map(|o| (o, dest))
            })
            .unwrap_or_else(|| panic!("{what}: never caught the restore mid-file"));
        let (o, dest) = out;
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(130), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line:\n{err}");
        assert!(err.contains("interrupted by a signal"), "{what}: {err}");
        let names: Vec<String> = scan(&dest).into_keys().map(|p| esc(&p)).collect();
        assert!(
            !names.iter().any(|n| n.contains(".cryptbak-restore-")),
            "{what}: staging left behind: {names:?}"
        );
        let complete = assert_files_are_complete(&dest, &src, &what);
        eprintln!("{what}: {complete} complete files were in DEST when it stopped");
    }
}
