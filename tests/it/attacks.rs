//! An unprivileged local user against the documented setup: a root export of the home
//! directories (issue 12). The attacker owns their home below SRC and their directory
//! below DEST (a root export copies owners), and swaps names there while the export
//! runs: a directory for a symlink, a file for a FIFO, the config for a root-only file.
//! Every attack runs as a user the test creates, in a bounded loop, against many
//! exports; each must come out with nothing from outside SRC in the backup, nothing
//! outside DEST changed, and every run ended.
//!
//! The swap loops race the export, so how often a run is hit varies; what must never
//! vary is the outcome, which holds by construction (directory handles opened with
//! O_NOFOLLOW, files checked by fstat, reads bounded by the listed size).

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::*;

/// Exports per attack and destination kind.
const RUNS: usize = 25;
/// Places attacked at once in each run (one swap loop goes round them).
const PLACES: usize = 8;
/// Ordinary files beside each attacked name: they make the time between listing a
/// directory and opening the attacked name long enough for a swap to fall in between.
const DECOYS: usize = 60;
const SECRET: &[u8] = b"ROOT-ONLY-SECRET-7c1e0d";

/// `/home` (root) with one user's home (the attacker's), initialised for export.
struct Home {
    t: TestDir,
    home: PathBuf,
    user: PathBuf,
    pw: PathBuf,
}

impl Home {
    fn new(label: &str) -> Home {
        let t = TestDir::new(label);
        // Others must be able to reach into the test's directory, as they reach /home.
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let home = t.join("home");
        fs::create_dir(&home).unwrap();
        let user = home.join("u");
        fs::create_dir(&user).unwrap();
        attacker().own(&user);
        let pw = write_passfile(t.path());
        init_fast(&home, &pw);
        Home { t, home, user, pw }
    }

    /// A root-only directory outside SRC holding a root-only file with the secret.
    fn secret(&self) -> PathBuf {
        let dir = self.t.join("secret");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let f = dir.join("shadow");
        fs::write(&f, SECRET).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        dir
    }

    /// Make `rel` below the user's home as the user would (owned by them).
    fn user_dir(&self, rel: &str) -> PathBuf {
        let p = self.user.join(rel);
        fs::create_dir(&p).unwrap();
        attacker().own(&p);
        p
    }

    fn user_file(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.user.join(rel);
        fs::write(&p, data).unwrap();
        attacker().own(&p);
        p
    }

    /// `n` small files named `decoy*` in the user's directory `rel` ("" for the home).
    fn decoys(&self, rel: &str, n: usize) {
        for i in 0..n {
            self.user_file(
                format!("{rel}/decoy{i:03}").trim_start_matches('/'),
                b"decoy",
            );
        }
    }

    fn user_symlink(&self, rel: &str, target: &Path) -> PathBuf {
        let p = self.user.join(rel);
        symlink(target, &p).unwrap();
        attacker().own(&p);
        p
    }

    fn export(&self, dest: &Path) -> Output {
        run(&mut export_cmd(&self.home, dest, &self.pw, &[]))
    }

    fn export_tar(&self, tar: &Path) -> Output {
        run(cryptbak()
            .args(["export", "--passfile"])
            .arg(&self.pw)
            .arg("--tar")
            .arg(tar)
            .arg(&self.home))
    }

    /// Restore a backup (a directory, or a tar file) and return every file's bytes.
    fn restored_contents(&self, backup: &Path, tar: bool) -> Vec<u8> {
        let out = self.t.join("restored");
        let _ = fs::remove_dir_all(&out);
        let mut c = cryptbak();
        c.args(["restore", "--passfile"]).arg(&self.pw);
        if tar {
            c.arg("--tar");
        }
        let o = run(c.arg(backup).arg(&out));
        assert!(
            matches!(o.status.code(), Some(0 | 2 | 26)),
            "restore: {}",
            show_output(&o)
        );
        let mut all = Vec::new();
        collect_files(&out, &mut all);
        all
    }
}

fn collect_files(p: &Path, out: &mut Vec<u8>) {
    let Ok(m) = fs::symlink_metadata(p) else {
        return;
    };
    if m.is_dir() {
        for e in fs::read_dir(p).unwrap().flatten() {
            collect_files(&e.path(), out);
        }
    } else if m.is_file() {
        out.extend(fs::read(p).unwrap_or_default());
        out.push(b'\n');
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// How many runs an attack got through in. Every run is tried and counted, so that the
/// same test measures the attack against an older build (`CRYPTBAK_IT_BIN`); it fails
/// if any run was hit.
struct Hits {
    attack: &'static str,
    runs: usize,
    hits: Vec<String>,
}

impl Hits {
    fn new(attack: &'static str) -> Hits {
        Hits {
            attack,
            runs: 0,
            hits: Vec::new(),
        }
    }

    fn run(&mut self) {
        self.runs += 1;
    }

    /// Record a hit when `bad` holds.
    fn check(&mut self, bad: bool, what: impl FnOnce() -> String) {
        if bad {
            self.hits.push(format!("run {}: {}", self.runs, what()));
        }
    }
}

impl Drop for Hits {
    fn drop(&mut self) {
        eprintln!(
            "ATTACK {}: succeeded in {} of {} runs",
            self.attack,
            self.hits.len(),
            self.runs
        );
        if !std::thread::panicking() {
            assert!(self.hits.is_empty(), "{}", self.hits.join("\n"));
        }
    }
}

/// An export that raced an attacker may report entries that changed during the backup
/// (exit 2); it must never fail as a whole or hang.
fn assert_finished(o: &Output, what: &str) {
    assert!(
        matches!(o.status.code(), Some(0 | 2)),
        "{what}: {}",
        show_output(o)
    );
}

#[test]
fn a_source_directory_swapped_for_a_symlink_brings_nothing_from_outside_src() {
    if !need_root("attack_src_swap") {
        return;
    }
    let h = Home::new("attack-src");
    let secret = h.secret();
    let pairs: Vec<_> = (0..PLACES)
        .map(|k| {
            let d = h.user_dir(&format!("d{k}"));
            h.decoys(&format!("d{k}"), DECOYS);
            h.user_file(&format!("d{k}/shadow"), b"decoy");
            (d, h.user_symlink(&format!("ln{k}"), &secret))
        })
        .collect();
    let dest = h.t.join("dest");
    let tar = h.t.join("home.tar");
    let mut hits = Hits::new("SRC directory swapped for a symlink to a root-only directory");
    let swap = attacker().swap(h.t.path(), &pairs, None);
    for _ in 0..RUNS {
        hits.run();
        let o = h.export(&dest);
        assert_finished(&o, "directory export");
        let leaked = contains(&h.restored_contents(&dest, false), SECRET);
        hits.check(leaked, || {
            "the root-only file is in the directory backup".into()
        });
        hits.run();
        let o = h.export_tar(&tar);
        assert_finished(&o, "tar export");
        let leaked = contains(&h.restored_contents(&tar, true), SECRET);
        hits.check(leaked, || "the root-only file is in the tar backup".into());
    }
    drop(swap);
}

#[test]
fn a_destination_directory_swapped_for_a_symlink_is_never_written_through() {
    if !need_root("attack_dest_swap") {
        return;
    }
    let h = Home::new("attack-dest");
    let subs: Vec<PathBuf> = (0..PLACES)
        .map(|k| {
            let sub = h.user_dir(&format!("sub{k}"));
            h.user_file(&format!("sub{k}/f0"), b"data");
            fs::set_permissions(&sub, fs::Permissions::from_mode(0o711)).unwrap();
            sub
        })
        .collect();
    // Outside DEST: a root directory whose mode, files and entries must stay as they are.
    let victim = h.t.join("victim");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(victim.join("keep"), b"victim data").unwrap();
    let dest = h.t.join("dest");
    assert_finished(&h.export(&dest), "first export");
    let cpath = |rel: &str| -> PathBuf {
        let o = run_ok(
            cryptbak()
                .args(["encrypt-path", "--passfile"])
                .arg(&h.pw)
                .arg(&h.home)
                .arg(rel),
        );
        dest.join(String::from_utf8(o.stdout).unwrap().trim())
    };
    let cuser = cpath("u");
    assert_eq!(
        fs::metadata(&cuser).unwrap().uid(),
        attacker().uid,
        "DEST/u is the user's"
    );
    // The user puts symlinks to the victim beside their directories in DEST.
    let pairs: Vec<_> = (0..PLACES)
        .map(|k| {
            let evil = cuser.join(format!("evil{k}"));
            run_ok(attacker().cmd("ln").arg("-s").arg(&victim).arg(&evil));
            (cpath(&format!("u/sub{k}")), evil)
        })
        .collect();
    let mut hits = Hits::new("DEST directory swapped for a symlink to a root directory");
    let swap = attacker().swap(h.t.path(), &pairs, Some(&victim));
    for i in 0..RUNS * 2 {
        hits.run();
        for sub in &subs {
            fs::rename(sub.join(format!("f{i}")), sub.join(format!("f{}", i + 1))).unwrap();
        }
        let o = h.export(&dest);
        assert_finished(&o, "export");
        let m = fs::metadata(&victim).unwrap();
        let moded = (m.mode() & 0o7777, m.uid()) != (0o755, 0);
        hits.check(moded, || {
            format!(
                "the directory outside DEST was changed to mode {:o}, owner {}",
                m.mode() & 0o7777,
                m.uid()
            )
        });
        let names: Vec<_> = fs::read_dir(&victim)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        hits.check(names != ["keep"], || {
            format!("entries outside DEST were deleted or created: {names:?}")
        });
        let keep = fs::symlink_metadata(victim.join("keep"));
        let kept = keep.as_ref().is_ok_and(|m| m.uid() == 0 && m.len() == 11)
            && fs::read(victim.join("keep")).is_ok_and(|d| d == b"victim data");
        hits.check(!kept, || "the file outside DEST was changed".into());
        // Put the victim back for the next run.
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&victim, Some(0), Some(0)).unwrap();
        for n in &names {
            if n != "keep" {
                let _ =
                    fs::remove_file(victim.join(n)).or_else(|_| fs::remove_dir_all(victim.join(n)));
            }
        }
        if !kept {
            let _ = fs::remove_file(victim.join("keep"));
            fs::write(victim.join("keep"), b"victim data").unwrap();
        }
    }
    drop(swap);
}

#[test]
fn the_config_swapped_after_unlock_never_lands_in_the_backup() {
    if !need_root("attack_config_swap") {
        return;
    }
    // The user owns SRC itself: they can rename the config root put there.
    let t = TestDir::new("attack-conf");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = t.join("usrc");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("file"), b"hello").unwrap();
    let pw = write_passfile(t.path());
    init_fast(&src, &pw);
    attacker().own(&src);
    let genuine = fs::read(src.join(".gocryptfs.reverse.conf")).unwrap();
    let secret_dir = t.join("secret");
    fs::create_dir(&secret_dir).unwrap();
    fs::set_permissions(&secret_dir, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(secret_dir.join("shadow"), SECRET).unwrap();
    let link = src.join("other");
    symlink(secret_dir.join("shadow"), &link).unwrap();
    attacker().own(&link);
    let mut hits = Hits::new("config swapped for a root-only file after unlock");
    let pair = (src.join(".gocryptfs.reverse.conf"), link);
    let swap = attacker().swap(t.path(), &[pair], None);
    let mut exported = 0;
    for i in 0..RUNS * 2 {
        hits.run();
        let dest = t.join(format!("dest{i}"));
        let o = run(&mut export_cmd(&src, &dest, &pw, &[]));
        // Swapped at unlock: the config is not a config (23), else the run goes on.
        assert!(
            matches!(o.status.code(), Some(0 | 2 | 23)),
            "{}",
            show_output(&o)
        );
        let mut all = Vec::new();
        collect_files(&dest, &mut all);
        hits.check(contains(&all, SECRET), || {
            "the root-only file is in the backup, unencrypted".into()
        });
        if let Ok(conf) = fs::read(dest.join("gocryptfs.conf")) {
            hits.check(conf != genuine, || {
                "gocryptfs.conf is not the config that unlocked the key".into()
            });
            exported += 1;
        }
        let _ = fs::remove_dir_all(&dest);
    }
    drop(swap);
    eprintln!("config swap: {exported} of {} runs exported", RUNS * 2);
}

#[test]
fn a_file_swapped_for_a_fifo_never_stops_a_run() {
    if !need_root("attack_fifo") {
        return;
    }
    let h = Home::new("attack-fifo");
    h.decoys("", DECOYS);
    let pairs: Vec<_> = (0..PLACES)
        .map(|k| {
            let f = h.user_file(&format!("f{k}"), b"some data");
            let fifo = h.user.join(format!("fifo{k}"));
            run_ok(Command::new("mkfifo").arg(&fifo));
            attacker().own(&fifo);
            (f, fifo)
        })
        .collect();
    let dest = h.t.join("dest");
    let tar = h.t.join("home.tar");
    let mut hits = Hits::new("file swapped for a FIFO");
    let swap = attacker().swap(h.t.path(), &pairs, None);
    for _ in 0..RUNS {
        // `run` kills a run that hangs and fails the test.
        hits.run();
        assert_finished(&h.export(&dest), "directory export");
        hits.run();
        assert_finished(&h.export_tar(&tar), "tar export");
    }
    drop(swap);
}

#[test]
fn a_swapped_parent_leading_to_dev_zero_reads_only_the_listed_size() {
    if !need_root("attack_dev_zero") {
        return;
    }
    let h = Home::new("attack-zero");
    let pairs: Vec<_> = (0..PLACES)
        .map(|k| {
            let d = h.user_dir(&format!("d{k}"));
            h.decoys(&format!("d{k}"), DECOYS);
            h.user_file(&format!("d{k}/zero"), b"ten bytes!");
            (d, h.user_symlink(&format!("ln{k}"), Path::new("/dev")))
        })
        .collect();
    // A small filesystem under DEST, so that an unbounded read cannot fill the disk.
    let mnt = h.t.join("mnt");
    let _fs = Tmpfs::mount(&mnt, "64m");
    let dest = mnt.join("dest");
    let tar = mnt.join("home.tar");
    let mut hits = Hits::new("parent swapped for a symlink to /dev (reading /dev/zero)");
    // The whole honest backup (directory and tar) takes about 2 MB.
    const BOUND: u64 = 8 << 20;
    let swap = attacker().swap(h.t.path(), &pairs, None);
    let used = || -> u64 {
        let du = Command::new("du").arg("-sb").arg(&mnt).output().unwrap();
        String::from_utf8_lossy(&du.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    for _ in 0..RUNS {
        hits.run();
        let o = h.export(&dest);
        // An endless read fills the small filesystem; the file is then left out. (Old
        // builds spell the system's message with a capital.)
        let filled = String::from_utf8_lossy(&o.stderr)
            .to_lowercase()
            .contains("no space left");
        let n = used();
        hits.check(filled || n > BOUND, || {
            format!("the export read more than the listed 10 bytes ({n} bytes left under DEST)")
        });
        if filled || n > BOUND {
            let _ = fs::remove_dir_all(&dest);
        } else {
            assert_finished(&o, "directory export");
        }
        hits.run();
        assert_finished(&h.export_tar(&tar), "tar export");
        let n = used();
        hits.check(n > BOUND, || format!("{n} bytes of tar for 10-byte files"));
    }
    drop(swap);
}

#[test]
fn another_user_holding_every_lock_it_can_open_does_not_stop_the_export() {
    if !need_root("attack_lock") {
        return;
    }
    let h = Home::new("attack-lock");
    h.user_file("f", b"data");
    let dest = h.t.join("dest");
    assert_finished(&h.export(&dest), "first export");
    let marks = h.user.join("marks");
    fs::create_dir(&marks).unwrap();
    attacker().own(&marks);
    let mut holders = Vec::new();
    // DEST itself, and the lock directory of root's runs (which the user cannot open).
    for (i, target) in [dest.clone(), PathBuf::from("/run/cryptbak")]
        .iter()
        .enumerate()
    {
        let mark = marks.join(format!("held{i}"));
        let child = attacker()
            .cmd("flock")
            .arg("-F")
            .arg(target)
            .arg("-c")
            .arg(format!("touch '{}'; exec sleep 60", mark.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        holders.push((child, mark));
    }
    // Wait until each holder holds its lock or has given up (it cannot open the target).
    for (child, mark) in &mut holders {
        let deadline = std::time::Instant::now() + timeout();
        while !mark.exists() && child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "flock never settled");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    assert!(
        holders[0].1.exists(),
        "the user could lock DEST (the test means something)"
    );
    h.user_file("g", b"new");
    let mut hits = Hits::new("another user holding every lock it can open");
    hits.run();
    let o = h.export(&dest);
    for (mut child, _) in holders {
        let _ = child.kill();
        let _ = child.wait();
    }
    hits.check(o.status.code() != Some(0), || show_output(&o));
}

#[test]
fn a_symlink_planted_at_the_tar_file_is_never_written_through() {
    if !need_root("attack_tar_symlink") {
        return;
    }
    let h = Home::new("attack-tar");
    h.user_file("f", b"data");
    // A directory others can write (as /tmp is), where the user plants the name.
    let drop_box = h.t.join("box");
    fs::create_dir(&drop_box).unwrap();
    fs::set_permissions(&drop_box, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = h.t.join("victim");
    fs::write(&victim, b"root's file").unwrap();
    let planted = drop_box.join("home.tar");
    run_ok(attacker().cmd("ln").arg("-s").arg(&victim).arg(&planted));
    let o = h.export_tar(&planted);
    assert_eq!(o.status.code(), Some(1), "{}", show_output(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("symlink owned by"),
        "{}",
        show_output(&o)
    );
    assert_eq!(fs::read(&victim).unwrap(), b"root's file");
    // A device named on purpose is written to, and root's own symlink is followed.
    assert_finished(&h.export_tar(Path::new("/dev/null")), "--tar /dev/null");
    let mine = h.t.join("mine.tar");
    symlink(h.t.join("real.tar"), &mine).unwrap();
    assert_finished(&h.export_tar(&mine), "--tar through root's own symlink");
    assert!(fs::metadata(h.t.join("real.tar")).unwrap().len() > 0);
    assert!(fs::symlink_metadata(&mine)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// The key never reaches a core file: the process is not dumpable (which also keeps
/// other processes of the same user from reading its memory) and may not dump core.
/// Checked on a running export, held while its password command waits.
#[test]
fn a_running_export_cannot_dump_core_or_be_read_by_its_user() {
    if !need_root("attack_core") {
        return;
    }
    let h = Home::new("attack-core");
    h.user_file("f", b"data");
    let marks = h.t.join("marks");
    fs::create_dir(&marks).unwrap();
    attacker().own(&marks);
    let (asked, go) = (marks.join("asked"), marks.join("go"));
    let extpass = h.t.join("extpass.sh");
    fs::write(
        &extpass,
        format!(
            "#!/bin/sh\ntouch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.01; done\necho '{PASSWORD}'\n",
            asked.display(),
            go.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&extpass, fs::Permissions::from_mode(0o755)).unwrap();
    // Run as the user, so that "readable by its user" means something.
    let dest = h.t.join("dest");
    fs::create_dir(&dest).unwrap();
    attacker().own(&dest);
    fs::set_permissions(&h.home, fs::Permissions::from_mode(0o755)).unwrap();
    let conf = h.home.join(".gocryptfs.reverse.conf");
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o444)).unwrap();
    let bin = std::env::var_os("CRYPTBAK_IT_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_cryptbak").into());
    let mut child = attacker()
        .cmd(bin.to_str().unwrap())
        .args(["export", "-q", "--extpass"])
        .arg(&extpass)
        .arg(&h.user)
        .arg(&dest)
        .arg("--config")
        .arg(&conf)
        .env("CRYPTBAK_LOCK_DIR", marks.join("locks"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + timeout();
    while !asked.exists() {
        assert!(child.try_wait().unwrap().is_none(), "export ended early");
        assert!(
            std::time::Instant::now() < deadline,
            "never asked for the password"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = child.id();
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .to_string();
    // A process that is not dumpable has its /proc files owned by root.
    let owner = fs::metadata(format!("/proc/{pid}/mem")).unwrap().uid();
    fs::write(&go, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show_output(&out));
    assert!(
        core.split_whitespace().filter(|w| *w == "0").count() == 2,
        "core dumps are allowed: {core}"
    );
    assert_eq!(
        owner, 0,
        "the export is dumpable (its memory is open to its user)"
    );
}
