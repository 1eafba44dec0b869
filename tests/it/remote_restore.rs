//! `cryptbak restore`, `verify` and `ls` of an `s3://` or `sftp://` backup, against
//! real servers on 127.0.0.1 (s3s-fs and sshd): what comes back equals the plaintext,
//! verify authenticates everything and finds a tampered object, `verify --source`
//! compares with the source, `ls` shows the decrypted names.
//!
//! s3s-fs keeps no metadata for directory markers (they become directories on its
//! disk), so on it directories come back with default modes and the restore's time;
//! real S3 keeps them (docs/remote.md). SFTP keeps whole-second times.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::remote_export::{tree, Srv};
use crate::util::{cryptbak, has_total, init_fast, on_a_pty, run_code, run_ok, show_output, Work};

fn backup_cmd(srv: &Srv, w: &Work, args: &[&str], url: &str) -> Command {
    let mut c = cryptbak();
    c.args(args).arg("--passfile").arg(&w.pw).arg(url);
    srv.env(&mut c);
    c
}

/// The restored tree equals the source: names, types, bytes, symlink targets, hard
/// links, file modes and mtimes (to the nanosecond on S3, the second on SFTP); for
/// directories, names (and on SFTP modes and mtimes too).
fn assert_restored(srv: &Srv, src: &Path, dest: &Path) {
    let rel = |base: &Path, p: &Path| p.strip_prefix(base).unwrap().to_path_buf();
    let a: Vec<PathBuf> = crate::restore_util::walk(src)
        .into_iter()
        .filter(|p| rel(src, p) != Path::new(".gocryptfs.reverse.conf"))
        .collect();
    let b = crate::restore_util::walk(dest);
    let na: Vec<PathBuf> = a.iter().map(|p| rel(src, p)).collect();
    let nb: Vec<PathBuf> = b.iter().map(|p| rel(dest, p)).collect();
    assert_eq!(na, nb, "the restored names differ from the source's");
    let mut inodes = std::collections::BTreeMap::new();
    for (pa, pb) in a.iter().zip(&b) {
        let (ma, mb) = (
            fs::symlink_metadata(pa).unwrap(),
            fs::symlink_metadata(pb).unwrap(),
        );
        let what = rel(src, pa).display().to_string();
        let ft = ma.file_type();
        assert_eq!(
            ma.mode() & 0o170000,
            mb.mode() & 0o170000,
            "{what}: file type"
        );
        if ft.is_dir() {
            if !srv.is_s3() {
                assert_eq!(ma.mode(), mb.mode(), "{what}: mode");
                if !what.is_empty() {
                    assert_eq!(ma.mtime(), mb.mtime(), "{what}: mtime");
                }
            }
            continue;
        }
        if ft.is_symlink() {
            assert_eq!(
                fs::read_link(pa).unwrap(),
                fs::read_link(pb).unwrap(),
                "{what}"
            );
            continue;
        }
        assert_eq!(ma.mode(), mb.mode(), "{what}: mode");
        assert_eq!(ma.mtime(), mb.mtime(), "{what}: mtime");
        if srv.is_s3() {
            assert_eq!(ma.mtime_nsec(), mb.mtime_nsec(), "{what}: mtime ns");
        }
        if ft.is_file() {
            assert!(
                fs::read(pa).unwrap() == fs::read(pb).unwrap(),
                "{what}: bytes"
            );
            if ma.nlink() > 1 {
                inodes
                    .entry(ma.ino())
                    .or_insert_with(Vec::new)
                    .push(mb.ino());
            }
        }
    }
    for (_, restored) in inodes {
        assert!(
            restored.windows(2).all(|w| w[0] == w[1]),
            "the names of a hard-linked file are one file again"
        );
    }
}

fn restore_verify_ls(srv: &Srv) {
    let w = Work::new("remote-restore");
    tree(&w.src, srv.is_s3());
    init_fast(&w.src, &w.pw);
    let sub = "r/home";
    run_ok(&mut srv.export(&w, sub, &["-q"]));
    let url = srv.url(sub);

    // Restore equals the plaintext (with fewer objects read at once than the default).
    let dest = w.path("restored");
    let mut c = backup_cmd(srv, &w, &["restore", "-q", "--transfers", "2"], &url);
    c.arg(&dest);
    run_ok(&mut c);
    assert_restored(srv, &w.src, &dest);

    // On a terminal, the listing gives the progress line its total at once: every
    // name of a regular file (the store keeps no hard links; a restore writes each
    // name's object, then joins split links again) and the plaintext bytes.
    let (mut files, mut bytes) = (0, 0);
    for p in crate::restore_util::walk(&w.src) {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_file() && !p.ends_with(".gocryptfs.reverse.conf") {
            files += 1;
            bytes += m.len();
        }
    }
    let mut c = backup_cmd(srv, &w, &["restore"], &url);
    c.arg(w.path("restored-on-a-tty"));
    let drawn = on_a_pty(&c, &w.path("typescript"));
    let of = format!("(of {:.1} MB)", bytes as f64 / 1e6);
    assert!(
        has_total(&drawn, files, &of),
        "no total of {files} files, {of} and an ETA on the progress line:\n{drawn}"
    );

    // Verify authenticates everything; verify --source finds it identical.
    let o = run_ok(&mut backup_cmd(
        srv,
        &w,
        &["verify", "--transfers", "16"],
        &url,
    ));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("reverse-made (path IVs verified)") && e.contains("; OK"),
        "{e}"
    );
    // --source: the keys come from the source; the URL is BACKUP.
    let mut c = cryptbak();
    c.args(["verify", "--passfile"])
        .arg(&w.pw)
        .arg("--source")
        .arg(&w.src)
        .arg(&url);
    srv.env(&mut c);
    let o = run_ok(&mut c);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("identical to"),
        "{}",
        show_output(&o)
    );

    // ls shows the decrypted names.
    let o = run_ok(&mut backup_cmd(srv, &w, &["ls", "-r"], &url));
    let out = String::from_utf8_lossy(&o.stdout);
    for name in ["a.txt", "d1/d2/g", "d1/h2", "ro/in", &"L".repeat(200)] {
        assert!(
            out.lines().any(|l| l.ends_with(&format!("  {name}"))),
            "ls lists {name}\n{out}"
        );
    }
    assert!(out.contains("l -> a.txt"), "{out}");

    // A change in the source: verify --source names it (exit 2).
    fs::write(w.src.join("a.txt"), b"changed!\n").unwrap();
    let mut c = cryptbak();
    c.args(["verify", "--passfile"])
        .arg(&w.pw)
        .arg("--source")
        .arg(&w.src)
        .arg(&url);
    srv.env(&mut c);
    let o = run_code(&mut c, 2);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("a.txt"),
        "{}",
        show_output(&o)
    );

    // A tampered object: verify says which file (exit 26), restore leaves it out.
    let disk = srv.disk(sub);
    let victim = crate::remote_export::files(&disk)
        .into_iter()
        .find(|(_, v)| v.len() == 123 + 32 + 18)
        .map(|(k, _)| disk.join(k))
        .expect("the object of d1/d2/g");
    let md = fs::metadata(&victim).unwrap();
    let mut bytes = fs::read(&victim).unwrap();
    bytes[40] ^= 1;
    fs::write(&victim, &bytes).unwrap();
    crate::restore_util::set_mtime(&victim, md.mtime(), md.mtime_nsec() as u32);
    let o = run_code(&mut backup_cmd(srv, &w, &["verify"], &url), 26);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("d1/d2/g"),
        "{}",
        show_output(&o)
    );
    let dest2 = w.path("restored2");
    let mut c = backup_cmd(srv, &w, &["restore", "-q"], &url);
    c.arg(&dest2);
    run_code(&mut c, 26);
    assert!(!dest2.join("d1/d2/g").exists());
    assert!(dest2.join("d1/f").is_file());

    // A wrong password is the usual exit 12.
    let bad = w.path("badpw");
    fs::write(&bad, "not the password\n").unwrap();
    let mut c = cryptbak();
    c.args(["ls", "--passfile"]).arg(&bad).arg(&url);
    srv.env(&mut c);
    run_code(&mut c, 12);
}

#[test]
fn s3_restore_verify_and_ls_from_the_url() {
    restore_verify_ls(&Srv::s3("restore"));
}

#[test]
fn sftp_restore_verify_and_ls_from_the_url() {
    restore_verify_ls(&Srv::sftp("restore"));
}

/// A large file comes back whole through many ranged GETs (4 MiB each).
#[test]
fn s3_large_file_restores_through_ranged_reads() {
    let srv = Srv::s3("restore-large");
    let w = Work::new("remote-restore-large");
    let data = crate::remote_export::data(13 << 20, 7);
    fs::write(w.src.join("big"), &data).unwrap();
    init_fast(&w.src, &w.pw);
    run_ok(&mut srv.export(&w, "p", &["-q"]));
    let dest = w.path("out");
    let mut c = backup_cmd(&srv, &w, &["restore", "-q"], &srv.url("p"));
    c.arg(&dest);
    run_ok(&mut c);
    assert!(fs::read(dest.join("big")).unwrap() == data);
}

/// The metadata cache an export keeps on this machine serves restore, verify and ls
/// too: with the objects' metadata gone from the server (s3s-fs keeps it in sidecar
/// files, deleted here), a restore that has the cache still gives every file its mode
/// and mtime; one without it (a fresh cache directory) can only give the defaults.
#[test]
fn s3_restore_takes_metadata_from_the_export_cache() {
    let s = Srv::s3("restore-cache");
    let Srv::S3(srv) = &s else { unreachable!() };
    let w = Work::new("remote-restore-cache");
    tree(&w.src, true);
    init_fast(&w.src, &w.pw);
    run_ok(&mut s.export(&w, "p", &["-q"]));
    let mut removed = 0;
    for e in fs::read_dir(&srv.root).unwrap().flatten() {
        if e.path().to_string_lossy().ends_with(".metadata.json") {
            fs::remove_file(e.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 10, "s3s-fs kept no sidecar files ({removed})");
    let url = s.url("p");

    let dest = w.path("restored");
    let mut c = backup_cmd(&s, &w, &["restore", "-q"], &url);
    c.arg(&dest);
    run_ok(&mut c);
    assert_restored(&s, &w.src, &dest);
    let o = run_ok(&mut backup_cmd(&s, &w, &["ls"], &url));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("-rw-r-----") && l.ends_with("  a.txt")),
        "ls shows a.txt's mode from the cache:\n{out}"
    );

    let bare = w.path("restored-without-cache");
    let mut c = backup_cmd(&s, &w, &["restore", "-q"], &url);
    c.env("CRYPTBAK_CACHE_DIR", w.path("empty-cache"))
        .arg(&bare);
    run_ok(&mut c);
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&w.src.join("a.txt")), 0o640);
    assert_eq!(mode(&dest.join("a.txt")), 0o640);
    assert_eq!(
        mode(&bare.join("a.txt")),
        0o644,
        "without the cache or the server's metadata, a file gets the default mode"
    );
}
