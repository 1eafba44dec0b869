//! Incremental export into an existing destination (issue: cron + rsync preparation):
//! after every kind of change, the updated destination must equal a fresh export, and
//! what did not change must not be touched (same inode, mtime and ctime).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::tree::{build_many_files, build_varied, compare_trees, scan, Builder, VariedOpts};
use crate::util::*;

/// Export into `dest` (incrementally) and into a fresh directory; both must be equal.
/// Export incrementally and check the result; returns the view paths (cpaths) the run
/// listed as changed, one per line.
fn export_and_check(src: &Path, dest: &Path, pw: &Path, step: &str) -> String {
    let out = run_ok(&mut export_cmd(src, dest, pw, &[OsStr::new("--json")]));
    let fresh = TestDir::new("fresh");
    let fresh_dest = fresh.join("d");
    export_ok(src, &fresh_dest, pw, &[]);
    let diffs = compare_trees(dest, &fresh_dest);
    assert!(
        diffs.is_empty(),
        "after {step}: incremental differs from a fresh export:\n{}",
        diffs.join("\n")
    );
    let leftovers: Vec<_> = scan(dest)
        .into_keys()
        .filter(|p| esc(p).contains(".cryptbak-tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "after {step}: temp files left: {leftovers:?}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "change")
        .map(|v| format!("{}\n", v["cpath"].as_str().unwrap()))
        .collect()
}

/// (inode, mtime, mtime_nsec, ctime, ctime_nsec) of every destination entry.
type Stamps = BTreeMap<Vec<u8>, (u64, i64, i64, i64, i64)>;

fn stamps(root: &Path) -> Stamps {
    let mut v = Vec::new();
    crate::tree::walk(root, b"", &mut v);
    v.into_iter()
        .map(|(p, m)| {
            (
                p,
                (
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                ),
            )
        })
        .collect()
}

fn p(b: &Builder, rel: &str) -> std::path::PathBuf {
    b.p(rel.as_bytes())
}

#[test]
fn incremental_equals_fresh_export_after_every_kind_of_change() {
    let t = TestDir::new("incr");
    let src = t.join("src");
    let dest = t.join("dest");
    fs::create_dir(&src).unwrap();
    let pw = write_passfile(t.path());
    let mut b = build_varied(
        &src,
        VariedOpts {
            seed: 7,
            root_gocryptfs_conf: false,
        },
    );
    b.dir(b"work/sub");
    b.file(b"work/a.txt", b"alpha");
    b.file(b"work/sub/b.txt", b"beta");
    b.rfile(b"work/big.bin", 300_000);
    init_fast(&src, &pw);
    export_and_check(&src, &dest, &pw, "first export");

    let long = "L".repeat(200);
    type Step<'a> = (&'a str, Box<dyn Fn(&mut Builder) + 'a>);
    let steps: Vec<Step> = vec![
        (
            "content change, same size",
            Box::new(|b| b.file(b"work/a.txt", b"ALPHA")),
        ),
        (
            "append",
            Box::new(|b| b.file(b"work/big.bin", &[7u8; 300_001])),
        ),
        ("new file", Box::new(|b| b.file(b"work/new.txt", b"new"))),
        (
            "delete file",
            Box::new(|b| fs::remove_file(p(b, "work/new.txt")).unwrap()),
        ),
        (
            "rename file",
            Box::new(|b| fs::rename(p(b, "work/a.txt"), p(b, "work/a2.txt")).unwrap()),
        ),
        (
            "rename dir",
            Box::new(|b| fs::rename(p(b, "work/sub"), p(b, "work/sub2")).unwrap()),
        ),
        ("chmod only", Box::new(|b| b.chmod(b"work/a2.txt", 0o640))),
        (
            "mtime only",
            Box::new(|b| {
                let f = p(b, "work/sub2/b.txt");
                let m = fs::metadata(&f).unwrap();
                crate::tree::set_mtime(&f, &m, 1_600_000_000, 123);
            }),
        ),
        (
            "file replaced by dir",
            Box::new(|b| {
                fs::remove_file(p(b, "work/a2.txt")).unwrap();
                b.dir(b"work/a2.txt");
                b.file(b"work/a2.txt/inner", b"x");
            }),
        ),
        (
            "dir replaced by file",
            Box::new(|b| {
                fs::remove_dir_all(p(b, "work/a2.txt")).unwrap();
                b.file(b"work/a2.txt", b"file again");
            }),
        ),
        (
            "symlink retargeted",
            Box::new(|b| {
                b.symlink(b"work/ln", b"one");
                let _ = fs::remove_file(p(b, "work/ln"));
                b.symlink(b"work/ln", b"two");
            }),
        ),
        (
            "long-named dir added",
            Box::new(move |b| {
                b.dir(format!("work/{long}").as_bytes());
                b.file(format!("work/{long}/f").as_bytes(), b"in long dir");
            }),
        ),
        (
            "long-named dir removed",
            Box::new(|b| fs::remove_dir_all(p(b, &format!("work/{}", "L".repeat(200)))).unwrap()),
        ),
        (
            "whole subtree removed",
            Box::new(|b| fs::remove_dir_all(p(b, "work")).unwrap()),
        ),
    ];
    for (name, change) in &steps {
        let before = stamps(&dest);
        change(&mut b);
        let out = export_and_check(&src, &dest, &pw, name);
        assert!(
            !out.trim().is_empty(),
            "after {name}: --json listed no change"
        );
        // Entries whose view path and attributes are unchanged must keep inode, mtime
        // and ctime: nothing rewrote or even chmod-ed them. Directories on the changed
        // path and their diriv files legitimately change.
        let after = stamps(&dest);
        let listed: Vec<&str> = out.lines().collect();
        for (path, old) in &before {
            let Some(new) = after.get(path) else { continue };
            let shown = String::from_utf8_lossy(path);
            let is_dir = fs::symlink_metadata(dest.join(os(path))).unwrap().is_dir();
            if is_dir || listed.iter().any(|l| *l == shown) {
                continue;
            }
            assert_eq!(
                old,
                new,
                "after {name}: {} was touched but not listed as changed",
                esc(path)
            );
        }
    }
}

#[test]
fn no_change_run_touches_nothing_and_reports_nothing() {
    let t = TestDir::new("nochange");
    let src = t.join("src");
    let dest = t.join("dest");
    fs::create_dir(&src).unwrap();
    let pw = write_passfile(t.path());
    build_varied(
        &src,
        VariedOpts {
            seed: 3,
            root_gocryptfs_conf: false,
        },
    );
    init_fast(&src, &pw);
    export_ok(&src, &dest, &pw, &[]);
    let before = stamps(&dest);
    let out = run_ok(&mut export_cmd(&src, &dest, &pw, &[OsStr::new("--json")]));
    assert_eq!(
        before,
        stamps(&dest),
        "a no-change run modified the destination"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let summary = lines
        .iter()
        .find(|v| v["event"] == "summary")
        .expect("summary line");
    assert_eq!(summary["written"], 0, "{summary}");
    assert_eq!(summary["deleted"], 0, "{summary}");
    assert!(summary["unchanged"].as_u64().unwrap() > 50, "{summary}");
    assert!(
        lines.iter().all(|v| v["event"] != "change"),
        "changes reported: {lines:?}"
    );
}

#[test]
fn dry_run_lists_changes_and_changes_nothing() {
    let t = TestDir::new("dry");
    let src = t.join("src");
    let dest = t.join("dest");
    let pw = write_passfile(t.path());
    fs::create_dir(&src).unwrap();
    let mut b = Builder::new(&src, 1);
    b.dir(b"d");
    b.file(b"d/keep", b"keep");
    b.file(b"d/gone", b"gone");
    b.file(b"d/grow", b"grow");
    init_fast(&src, &pw);
    export_ok(&src, &dest, &pw, &[]);
    fs::remove_file(b.p(b"d/gone")).unwrap();
    b.file(b"d/grow", b"grown bigger");
    b.file(b"d/new", b"new");
    let before = stamps(&dest);
    let out = run_ok(&mut export_cmd(&src, &dest, &pw, &[OsStr::new("-n")]));
    assert_eq!(before, stamps(&dest), "--dry-run modified the destination");
    let text = String::from_utf8(out.stdout).unwrap();
    let kinds: Vec<&str> = text.lines().map(|l| &l[..11]).collect();
    assert!(
        kinds.contains(&">f+++++++++"),
        "no creation listed:\n{text}"
    );
    assert!(
        kinds.iter().any(|k| k.starts_with(">f.s")),
        "no size change listed:\n{text}"
    );
    assert!(
        kinds.contains(&"*deleting  "),
        "no deletion listed:\n{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("DRY RUN"));
}

#[test]
fn deletion_limits() {
    let t = TestDir::new("maxdel");
    let src = t.join("src");
    let dest = t.join("dest");
    let pw = write_passfile(t.path());
    build_many_files(&src, 2, 10);
    init_fast(&src, &pw);
    export_ok(&src, &dest, &pw, &[]);
    let before = scan(&dest).len();
    for e in fs::read_dir(&src).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            fs::remove_dir_all(e.path()).unwrap();
        }
    }
    // Over the limit: nothing deleted, the run says so and exits 2.
    let out = run_code(
        &mut export_cmd(
            &src,
            &dest,
            &pw,
            &[OsStr::new("--max-delete"), OsStr::new("3")],
        ),
        2,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--max-delete 3"),
        "{}",
        show_output(&out)
    );
    assert_eq!(scan(&dest).len(), before, "--max-delete deleted something");
    // --no-delete keeps them too; a plain run then removes them.
    run_ok(&mut export_cmd(
        &src,
        &dest,
        &pw,
        &[OsStr::new("--no-delete")],
    ));
    assert_eq!(scan(&dest).len(), before);
    export_and_check(&src, &dest, &pw, "deleting");
    assert!(scan(&dest).len() < before);
}

/// An export of `src` into `dest` is refused (exit 1) as not a backup of ours.
fn assert_refused(src: &Path, dest: &Path, pw: &Path) {
    let out = run_code(&mut export_cmd(src, dest, pw, &[]), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing"),
        "{}",
        show_output(&out)
    );
}

#[test]
fn refuses_destinations_that_are_not_ours() {
    let t = TestDir::new("foreign");
    let src = t.join("src");
    let pw = write_passfile(t.path());
    fs::create_dir(&src).unwrap();
    let mut b = Builder::new(&src, 1);
    b.file(b"a", b"some content");
    init_fast(&src, &pw);

    // A directory of unrelated files: refused, untouched.
    let other = t.join("other");
    fs::create_dir(&other).unwrap();
    fs::write(
        other.join("precious.txt"),
        b"do not delete me, I am long enough",
    )
    .unwrap();
    assert_refused(&src, &other, &pw);
    assert_eq!(
        fs::read(other.join("precious.txt")).unwrap(),
        b"do not delete me, I am long enough"
    );

    // A backup of the same tree under another key (another init): refused too.
    let src2 = t.join("src2");
    fs::create_dir(&src2).unwrap();
    let mut b2 = Builder::new(&src2, 1);
    b2.file(b"a", b"some content");
    init_fast(&src2, &pw);
    let dest2 = t.join("dest2");
    export_ok(&src2, &dest2, &pw, &[]);
    let before = stamps(&dest2);
    let out = run_code(&mut export_cmd(&src, &dest2, &pw, &[]), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not encrypted with this key"),
        "{}",
        show_output(&out)
    );
    assert_eq!(before, stamps(&dest2));
}

/// A first run killed before it wrote anything under a final name leaves only its
/// temporaries (a staging directory, an unfinished file). The rerun must take that
/// destination as its own, clean it and finish; but temporaries next to a foreign file
/// must not make that file look ours.
#[test]
fn a_destination_holding_only_our_temporaries_is_ours() {
    let t = TestDir::new("temps-only");
    let src = t.join("src");
    let dest = t.join("dest");
    let pw = write_passfile(t.path());
    fs::create_dir(&src).unwrap();
    Builder::new(&src, 1).file(b"a", b"some content");
    init_fast(&src, &pw);
    fs::create_dir_all(dest.join(".cryptbak-tmp-4242-stage")).unwrap();
    fs::write(dest.join(".cryptbak-tmp-4242-0"), vec![7u8; 5000]).unwrap();
    export_and_check(&src, &dest, &pw, "after a run killed early");
    assert!(
        !scan(&dest)
            .iter()
            .any(|(p, _)| esc(p).contains(".cryptbak-tmp-")),
        "temporaries left in {}",
        dest.display()
    );

    let other = t.join("other");
    fs::create_dir_all(other.join(".cryptbak-tmp-4242-stage")).unwrap();
    fs::write(
        other.join("precious.txt"),
        b"not a backup, long enough to test",
    )
    .unwrap();
    assert_refused(&src, &other, &pw);
}

#[test]
fn concurrent_runs_are_locked_out() {
    let t = TestDir::new("lock");
    let src = t.join("src");
    let dest = t.join("dest");
    let locks = t.join("locks");
    let pw = write_passfile(t.path());
    fs::create_dir(&src).unwrap();
    Builder::new(&src, 1).file(b"a", b"x");
    init_fast(&src, &pw);
    export_ok(&src, &dest, &pw, &[]);
    // The run lock of DEST, as a running export holds it: named after DEST's device and
    // inode, in the lock directory.
    let export = || {
        let mut c = export_cmd(&src, &dest, &pw, &[]);
        c.env("CRYPTBAK_LOCK_DIR", &locks);
        c
    };
    run_ok(&mut export());
    let md = fs::metadata(&dest).unwrap();
    let lock_file = locks.join(format!("dest-{}-{}.lock", md.dev(), md.ino()));
    assert!(lock_file.exists(), "the lock file is where the run took it");
    let ready = t.join("locked");
    // -F and exec: the process we kill is the one holding the lock.
    let mut holder = Command::new("flock")
        .arg("-F")
        .arg(&lock_file)
        .arg("-c")
        .arg(format!("touch '{}'; exec sleep 30", ready.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("flock(1) from util-linux");
    let deadline = std::time::Instant::now() + timeout();
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "flock(1) never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run_code(&mut export(), 1);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another cryptbak export"),
        "{}",
        show_output(&out)
    );
    // A lock on DEST itself, which anyone who can read DEST could take, stops nothing.
    let ready = t.join("dest-locked");
    let mut on_dest = Command::new("flock")
        .arg("-F")
        .arg(&dest)
        .arg("-c")
        .arg(format!("touch '{}'; exec sleep 30", ready.display()))
        .stdout(Stdio::null())
        .spawn()
        .expect("flock(1) from util-linux");
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "flock(1) never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run(&mut export());
    let _ = on_dest.kill();
    let _ = on_dest.wait();
    assert_eq!(out.status.code(), Some(0), "{}", show_output(&out));
}

#[test]
fn killed_runs_converge_to_a_fresh_export() {
    let t = TestDir::new("crash");
    let src = t.join("src");
    let dest = t.join("dest");
    let pw = write_passfile(t.path());
    let mut b = build_many_files(&src, 20, 100);
    b.rfile(b"big1", 20 << 20);
    b.rfile(b"big2", 20 << 20);
    init_fast(&src, &pw);
    for (i, delay_ms) in [5u64, 20, 60, 150, 400].into_iter().enumerate() {
        // Something new before each crash, so every run has work to do.
        b.rfile(format!("changed-{i}").as_bytes(), 100_000);
        let mut child = export_cmd(
            &src,
            &dest,
            &pw,
            &[OsStr::new("-q"), OsStr::new("-j"), OsStr::new("2")],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever sits under a final name must be complete: byte-identical to what a
        // fresh export writes there (the source did not change during the run).
        if !dest.exists() {
            continue; // killed before it created anything
        }
        let fresh = TestDir::new("crash-fresh");
        let fresh_dest = fresh.join("d");
        export_ok(&src, &fresh_dest, &pw, &[]);
        for (path, m) in scan(&dest) {
            let name = esc(&path);
            if name.contains(".cryptbak-tmp-") || m.mode & 0o170000 != 0o100000 {
                continue;
            }
            let got = fs::read(dest.join(os(&path))).unwrap();
            let want = fs::read(fresh_dest.join(os(&path))).unwrap_or_else(|_| {
                panic!("kill after {delay_ms} ms: {name} is not in a fresh export")
            });
            assert!(
                got == want,
                "kill after {delay_ms} ms: {name} is under its final name but incomplete or wrong"
            );
        }
    }
    export_and_check(&src, &dest, &pw, "reruns after kill -9");
}

#[test]
fn newly_excluded_entries_are_deleted_like_vanished_ones() {
    let t = TestDir::new("incr-exclude");
    let src = t.join("src");
    let dest = t.join("dest");
    fs::create_dir(&src).unwrap();
    let pw = write_passfile(t.path());
    let mut b = Builder::new(&src, 5);
    b.dir(b"cache");
    b.file(b"cache/blob", b"cached");
    b.file(b"keep.txt", b"keep");
    b.file(b"notes~", b"backup file");
    init_fast(&src, &pw);
    export_ok(&src, &dest, &pw, &[]);
    let before = scan(&dest).len();
    let ew = [
        OsStr::new("--exclude-wildcard"),
        OsStr::new("*~"),
        OsStr::new("-e"),
        OsStr::new("cache"),
    ];
    let out = run_ok(&mut export_cmd(
        &src,
        &dest,
        &pw,
        &[&ew[..], &[OsStr::new("-v")]].concat(),
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("*deleting").count(), 2, "{text}");
    // Equal to a fresh export with the same excludes.
    let fresh = t.join("fresh");
    export_ok(&src, &fresh, &pw, &ew);
    let diffs = compare_trees(&dest, &fresh);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(scan(&dest).len() < before);
}

/// Runs an export into a new `dest` and delivers `sig` while it is provably mid-run
/// (the big file's temp file is being written); `None` if it could not be caught.
fn signal_mid_run(src: &Path, dest: &Path, pw: &Path, sig: &str) -> Option<std::process::Output> {
    let _ = fs::remove_dir_all(dest);
    let child = export_cmd(
        src,
        dest,
        pw,
        &[OsStr::new("-q"), OsStr::new("-j"), OsStr::new("2")],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    signal_while(child, sig, || growing_file(dest, ".cryptbak-tmp-", 1 << 20))
}

#[test]
fn sigint_and_sigterm_stop_cleanly_with_exit_130() {
    let t = TestDir::new("signal");
    let src = t.join("src");
    let dest = t.join("dest");
    let pw = write_passfile(t.path());
    let b = build_many_files(&src, 10, 50);
    // Sparse, so it costs nothing to create, yet takes a while to encrypt and write.
    fs::File::create(b.p(b"big"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    init_fast(&src, &pw);
    for sig in ["INT", "TERM"] {
        let out = (0..5)
            .find_map(|_| signal_mid_run(&src, &dest, &pw, sig))
            .unwrap_or_else(|| panic!("never caught the export mid-run for SIG{sig}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{sig}: {err}");
        assert!(err.contains("interrupted"), "{err}");
        let temps: Vec<_> = scan(&dest)
            .into_keys()
            .filter(|p| esc(p).contains(".cryptbak-tmp-"))
            .collect();
        assert!(temps.is_empty(), "SIG{sig} left temp files: {temps:?}");
    }
    export_and_check(&src, &dest, &pw, "rerun after signals");
}

/// A file rewritten in place while it is being read (its first block changes after it
/// was encrypted), or replaced by a new file renamed over it, is noticed by its new
/// mtime and written again: the backup holds the file as it is now, not a mix, and the
/// run succeeds quietly (issue: "detect, retry once"). The export is frozen mid-file
/// with SIGSTOP for the change, so no timing is guessed.
#[test]
fn file_changed_during_read_is_written_again() {
    for how in ["rewritten", "replaced"] {
        let t = TestDir::new("changed-once");
        let src = t.join("src");
        let dest = t.join("dest");
        let pw = write_passfile(t.path());
        let b = build_many_files(&src, 2, 5);
        let big = b.p(b"big");
        fs::File::create(&big).unwrap().set_len(96 << 20).unwrap();
        init_fast(&src, &pw);
        let change = |attempt: u32| {
            use std::os::unix::fs::FileExt;
            let stamp = format!("{how} {attempt}");
            // Making and renaming the new file also touches the directory, whose listing
            // (and mtime) the run already has; its mtime is put back after, so that only
            // the file changed.
            let dir = fs::metadata(&src).unwrap();
            let target = if how == "replaced" {
                let new = src.join("new-big");
                fs::copy(&big, &new).unwrap();
                new
            } else {
                big.clone()
            };
            let f = fs::OpenOptions::new().write(true).open(&target).unwrap();
            f.write_all_at(stamp.as_bytes(), 0).unwrap();
            let md = f.metadata().unwrap();
            drop(f);
            crate::tree::set_mtime(&target, &md, 1_600_000_000 + u64::from(attempt), 0);
            if target != big {
                fs::rename(&target, &big).unwrap();
                let (secs, nanos) = (dir.mtime() as u64, dir.mtime_nsec() as u32);
                crate::tree::set_mtime(&src, &dir, secs, nanos);
            }
        };
        let out = (0..5u32)
            .find_map(|attempt| {
                let _ = fs::remove_dir_all(&dest);
                let child = export_cmd(&src, &dest, &pw, &[OsStr::new("-q")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let busy = || growing_file(&dest, ".cryptbak-tmp-", 1 << 20);
                while_frozen(child, busy, |_| change(attempt))
            })
            .unwrap_or_else(|| panic!("{how}: never caught the export mid-file"));
        assert_eq!(out.status.code(), Some(0), "{how}: {}", show_output(&out));
        assert!(out.stderr.is_empty(), "{how}: {}", show_output(&out));
        let fresh = TestDir::new("changed-once-fresh");
        export_ok(&src, &fresh.join("d"), &pw, &[]);
        let diffs = compare_trees(&dest, &fresh.join("d"));
        assert!(
            diffs.is_empty(),
            "{how}: the backup does not hold the file as it is now:\n{}",
            diffs.join("\n")
        );
    }
}

/// One counting rule: a dry run reports exactly the counts the real run then has (kinds,
/// written, updated in place, unchanged, deleted, with a whole deleted tree counted entry
/// by entry, as --max-delete counts it), and the kinds add up to what was looked at.
#[test]
fn dry_run_counts_equal_the_real_run() {
    let t = TestDir::new("counts");
    let src = t.join("src");
    let dest = t.join("dest");
    let pw = write_passfile(t.path());
    build_varied(
        &src,
        VariedOpts {
            seed: 9,
            root_gocryptfs_conf: false,
        },
    );
    init_fast(&src, &pw);
    let summary = |extra: &[&str]| -> serde_json::Value {
        let mut args: Vec<&OsStr> = vec![OsStr::new("--json")];
        args.extend(extra.iter().map(OsStr::new));
        let out = run_ok(&mut export_cmd(&src, &dest, &pw, &args));
        let text = String::from_utf8(out.stdout).unwrap();
        let last = text.lines().last().expect("a summary line");
        let mut v: serde_json::Value = serde_json::from_str(last).unwrap();
        v.as_object_mut().unwrap().remove("seconds");
        v.as_object_mut().unwrap().remove("bytes_written");
        v.as_object_mut().unwrap().remove("bytes_read");
        v
    };
    let check = |what: &str| {
        let planned = summary(&["-n"]);
        let done = summary(&[]);
        assert_eq!(
            planned, done,
            "{what}: the dry run's counts differ from the run's"
        );
        let n = |k: &str| done[k].as_u64().unwrap();
        assert_eq!(
            n("files")
                + n("dirs")
                + n("symlinks")
                + n("specials")
                + n("hard_links")
                + n("virtual_files"),
            n("written") + n("metadata_only") + n("unchanged"),
            "{what}: the kinds do not add up: {done}"
        );
        done
    };
    check("fresh export");
    // Change some, delete a whole subtree (counted entry by entry).
    let victim = fs::read_dir(&src)
        .unwrap()
        .flatten()
        .find(|e| e.file_type().unwrap().is_dir())
        .expect("a subdirectory")
        .path();
    fs::remove_dir_all(&victim).unwrap();
    fs::write(src.join("new-file"), b"new").unwrap();
    let done = check("after changes");
    assert!(done["deleted"].as_u64().unwrap() > 1, "{done}");
    check("no change");
}

/// Change lists name the plaintext (issue 16): `-n` and `-v` lines end in the path
/// relative to SRC, view files say which ones they are, `--json` carries both `path` and
/// `cpath`, and a deletion names what was deleted, a long name too (through its `.name`
/// file, read before it goes).
#[test]
fn change_lists_name_the_plaintext() {
    let t = TestDir::new("plain-changes");
    let src = t.join("src");
    let dest = t.join("dest");
    let pw = write_passfile(t.path());
    fs::create_dir_all(src.join("Documents/taxes")).unwrap();
    fs::write(src.join("Documents/notes.txt"), b"hello").unwrap();
    let long = "L".repeat(200);
    fs::write(src.join("Documents").join(&long), b"long").unwrap();
    init_fast(&src, &pw);
    export_ok(&src, &dest, &pw, &[]);

    fs::write(src.join("Documents/notes.txt"), b"hello, more").unwrap();
    fs::remove_file(src.join("Documents").join(&long)).unwrap();
    fs::write(src.join("Documents/taxes/2025.csv"), b"a,b").unwrap();
    let out = run_ok(&mut export_cmd(&src, &dest, &pw, &[OsStr::new("-n")]));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for want in [
        ">f.st...... Documents/notes.txt".to_string(),
        ">f+++++++++ Documents/taxes/2025.csv".to_string(),
        format!("*deleting   Documents/{long}"),
        format!("*deleting   Documents/{long} [long name]"),
    ] {
        assert!(lines.contains(&want.as_str()), "{want} missing in:\n{text}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("Documents/taxes [gocryptfs.diriv]")),
        "{text}"
    );

    let out = run_ok(&mut export_cmd(&src, &dest, &pw, &[OsStr::new("--json")]));
    let changes: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["event"] == "change")
        .collect();
    let notes = changes
        .iter()
        .find(|v| v["path"] == "Documents/notes.txt")
        .expect("the changed file by its plaintext path");
    let cpath = notes["cpath"].as_str().unwrap();
    assert!(
        dest.join(cpath).is_file(),
        "cpath {cpath} is the file in DEST"
    );
    assert!(!cpath.contains("notes"), "cpath is the ciphertext: {cpath}");
    assert!(
        changes
            .iter()
            .any(|v| v["action"] == "delete" && v["path"] == format!("Documents/{long}").as_str()),
        "{changes:?}"
    );
}
