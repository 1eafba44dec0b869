//! `cryptbak restore` / `cryptbak ls` end to end: round trips through export, the real
//! gocryptfs in reverse and forward mode, tar streams, and a tamper suite.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::restore_util::*;

const REVERSE_CONF: &str = ".gocryptfs.reverse.conf";

/// Export then restore equals the original, for each name-encoding variant, from the
/// directory and from a tar of it (POSIX format keeps nanosecond mtimes).
#[test]
fn restore_roundtrip_export_variants() {
    for (label, init) in [
        ("default", &[][..]),
        ("deterministic", &["--deterministic-names"][..]),
        ("plaintextnames", &["--plaintextnames"][..]),
        ("longnamemax", &["--longnamemax", "100"][..]),
    ] {
        let t = tempdir(label);
        let pw = passfile(t.path());
        let src = t.path().join("src");
        varied_tree(&src, false);
        if label == "plaintextnames" {
            // It would clash with the view's gocryptfs.conf (export refuses it).
            fs::remove_file(src.join("gocryptfs.conf")).unwrap();
            set_mtime(&src, 1_400_000_000, 3);
        }
        let exp = t.path().join("exp");
        export(&src, &exp, &pw, init);
        let out = t.path().join("out");
        let o = expect(&mut restore_cmd(&pw, &exp, &out), 0);
        assert!(stderr(&o).is_empty(), "{label}: {}", stderr(&o));
        assert_same_tree(&src, &out, &[REVERSE_CONF], false);

        let tar = t.path().join("x.tar");
        let st = Command::new("tar")
            .args(["--format=posix", "-C"])
            .arg(&exp)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let out2 = t.path().join("out2");
        let mut c = restore_cmd(&pw, &tar, &out2);
        c.arg("--tar");
        expect(&mut c, 0);
        assert_same_tree(&src, &out2, &[REVERSE_CONF], false);
    }
}

#[test]
fn restore_path_subtree_file_and_ls() {
    let t = tempdir("path");
    let pw = passfile(t.path());
    let src = t.path().join("src");
    varied_tree(&src, false);
    let exp = t.path().join("exp");
    export(&src, &exp, &pw, &[]);

    let out = t.path().join("out");
    let mut c = restore_cmd(&pw, &exp, &out);
    c.args(["--path", "sub/deeper"]);
    expect(&mut c, 0);
    assert_same_tree(&src.join("sub/deeper"), &out.join("sub/deeper"), &[], false);
    let top: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, [OsStr::new("sub")]);
    let sub: Vec<_> = fs::read_dir(out.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        sub,
        [OsStr::new("deeper")],
        "siblings on the way are not restored"
    );

    // One file below a long-named directory.
    let out = t.path().join("out_file");
    let rel = format!("{}/inside", "D".repeat(190));
    let mut c = restore_cmd(&pw, &exp, &out);
    c.args(["--path", &rel]);
    expect(&mut c, 0);
    assert_eq!(
        fs::read(out.join(&rel)).unwrap(),
        fs::read(src.join(&rel)).unwrap()
    );
    assert_eq!(fs::read_dir(out.join("D".repeat(190))).unwrap().count(), 1);

    // The same from a tar stream on stdin.
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&exp)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    let out = t.path().join("out_tar");
    let mut c = cryptbak();
    c.args(["restore", "-q", "--tar", "--passfile"])
        .arg(&pw)
        .args(["--path", &rel, "-"])
        .arg(&out);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &tar.stdout).unwrap();
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        fs::read(out.join(&rel)).unwrap(),
        fs::read(src.join(&rel)).unwrap()
    );

    // A path that is not there: one line, exit 1.
    let mut c = restore_cmd(&pw, &exp, &t.path().join("out_none"));
    c.args(["--path", "no/such"]);
    let o = expect(&mut c, 1);
    assert!(stderr(&o).contains("no such path"), "{}", stderr(&o));
    assert!(
        !t.path().join("out_none").exists(),
        "an empty DEST (or its staging) left behind"
    );
    let mut c = restore_cmd(&pw, &exp, &t.path().join("out_dots"));
    c.args(["--path", "../etc"]);
    expect(&mut c, 64);

    // ls: decrypted names, plaintext sizes, symlink targets.
    let mut c = cryptbak();
    c.args(["ls", "--passfile"]).arg(&pw).arg(&exp).arg("sub");
    let o = expect(&mut c, 0);
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(s.contains(" sub/abs -> /etc/hostname"), "{s}");
    assert!(s.contains("drwx--s---"), "{s}");
    let mut c = cryptbak();
    c.args(["ls", "-r", "--passfile"]).arg(&pw).arg(&exp);
    let s = String::from_utf8(expect(&mut c, 0).stdout).unwrap();
    assert!(
        s.lines()
            .any(|l| l.contains(" 300000 ") && l.ends_with(" size_300000")),
        "{s}"
    );
    assert!(
        s.contains(&format!("{}/{}", "D".repeat(190), "M".repeat(180))),
        "{s}"
    );
    assert_eq!(s.lines().count(), walk(&src).len() - 2, "{s}"); // minus root and the config
}

/// Wrong password, damaged config, missing config: one line, distinct exit codes, and
/// nothing written.
#[test]
fn restore_key_errors_write_nothing() {
    let t = tempdir("keys");
    let pw = passfile(t.path());
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let exp = t.path().join("exp");
    export(&src, &exp, &pw, &[]);
    let out = t.path().join("out");
    let wrong = t.path().join("wrong");
    fs::write(&wrong, "nope\n").unwrap();

    let o = expect(&mut restore_cmd(&wrong, &exp, &out), 12);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("wrong password"));
    assert!(!out.exists());

    let conf = fs::read(exp.join("gocryptfs.conf")).unwrap();
    let bad = t.path().join("truncated.conf");
    fs::write(&bad, &conf[..conf.len() / 2]).unwrap();
    let mut c = restore_cmd(&pw, &exp, &out);
    c.arg("--config").arg(&bad);
    let o = expect(&mut c, 23);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!out.exists());

    let mut c = restore_cmd(&pw, &exp, &out);
    c.arg("--config").arg(t.path().join("missing.conf"));
    expect(&mut c, 23);
    assert!(!out.exists());

    // Another backup's config: its key does not open this one.
    let other = t.path().join("other");
    fs::create_dir(&other).unwrap();
    let mut c = cryptbak();
    c.args(["init", "-q", "--scryptn", "10", "--passfile"])
        .arg(&wrong)
        .arg(&other);
    expect(&mut c, 0);
    let mut c = restore_cmd(&pw, &exp, &out);
    c.arg("--config").arg(other.join(REVERSE_CONF));
    expect(&mut c, 12);
    assert!(!out.exists());

    // Tar stream with its config inside: wrong password, and DEST is removed again.
    let tar = t.path().join("x.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&exp)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let mut c = restore_cmd(&wrong, &tar, &out);
    c.arg("--tar");
    expect(&mut c, 12);
    assert!(!out.exists(), "DEST left behind");

    // A non-empty DEST is refused before anything else.
    fs::create_dir(&out).unwrap();
    fs::write(out.join("mine"), b"keep").unwrap();
    let o = expect(&mut restore_cmd(&pw, &exp, &out), 1);
    assert!(stderr(&o).contains("not empty"));
    assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
}

/// Every flavour of damage gets its integrity error (exit 26); the damaged file is not
/// left behind (or is kept as .corrupt on request); everything else is restored.
#[test]
fn restore_tamper_suite() {
    let t = tempdir("tamper");
    let pw = passfile(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    let big: Vec<u8> = (0..5 * 4096 + 10).map(|i| (i % 251) as u8).collect();
    fs::write(src.join("big"), &big).unwrap();
    fs::write(src.join("twin_a"), b"AAAAAAAA").unwrap();
    fs::write(src.join("twin_b"), b"BBBBBBBB").unwrap();
    fs::write(src.join("dir/inner"), b"inner").unwrap();
    fs::write(src.join("L".repeat(200)), b"long").unwrap();
    symlink("twin_a", src.join("lnk")).unwrap();
    let exp = t.path().join("exp");
    export(&src, &exp, &pw, &[]);

    // Find ciphertext names through ls-like knowledge: sizes identify them.
    let names: Vec<PathBuf> = fs::read_dir(&exp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let by_size = |n: u64| {
        names
            .iter()
            .find(|p| fs::symlink_metadata(p).unwrap().len() == n && p.is_file())
            .cloned()
    };
    let big_c = by_size(5 * 4096 + 10 + 18 + 6 * 32).expect("big");
    let twins: Vec<&PathBuf> = names
        .iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().len() == 8 + 18 + 32)
        .collect();
    assert_eq!(twins.len(), 2);
    let dir_c = names.iter().find(|p| p.is_dir()).unwrap().clone();
    let long_c = names
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".name"))
        .unwrap()
        .clone();

    let case =
        |label: &str, damage: &dyn Fn(&Path), extra: &[&str], code: i32, needle: &str| -> PathBuf {
            let copy = t.path().join(format!("exp_{label}"));
            assert!(Command::new("cp")
                .arg("-a")
                .arg(&exp)
                .arg(&copy)
                .status()
                .unwrap()
                .success());
            damage(&copy);
            let out = t.path().join(format!("out_{label}"));
            // Not quiet: warnings are part of what is checked.
            let mut c = cryptbak();
            c.args(["restore", "--passfile"])
                .arg(&pw)
                .arg(&copy)
                .arg(&out);
            c.args(extra);
            let o = expect(&mut c, code);
            assert!(
                stderr(&o).contains(needle),
                "{label}: wanted {needle:?} in\n{}",
                stderr(&o)
            );
            assert!(
                fs::read_dir(&out).unwrap().all(|e| !e
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".cryptbak")),
                "{label}: staging left behind"
            );
            out
        };
    let rel = |p: &Path| p.strip_prefix(&exp).unwrap().to_path_buf();
    let flip = |file: PathBuf, off: u64| {
        move |root: &Path| {
            let p = root.join(&file);
            let mut b = fs::read(&p).unwrap();
            let len = b.len() as u64;
            let i = if off < len { off } else { len - 1 } as usize;
            b[i] ^= 0x04;
            let mut perm = fs::metadata(&p).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
            fs::set_permissions(&p, perm).unwrap();
            fs::write(&p, b).unwrap();
        }
    };

    // Header bit flip: every block fails, the file is not restored.
    let out = case("header", &flip(rel(&big_c), 7), &[], 26, "every block");
    assert!(!out.join("big").exists());
    assert_eq!(fs::read(out.join("twin_a")).unwrap(), b"AAAAAAAA");
    // Block bit flip: block 2 named; with --keep-corrupt the rest survives in big.corrupt.
    let off = 18 + 2 * 4128 + 100;
    let out = case("block", &flip(rel(&big_c), off), &[], 26, "block 2 of 6");
    assert!(!out.join("big").exists() && !out.join("big.corrupt").exists());
    let out = case(
        "keep",
        &flip(rel(&big_c), off),
        &["--keep-corrupt"],
        26,
        "block 2 of 6",
    );
    let kept = fs::read(out.join("big.corrupt")).unwrap();
    assert_eq!(kept.len(), big.len());
    assert_eq!(&kept[..2 * 4096], &big[..2 * 4096]);
    assert!(kept[2 * 4096..3 * 4096].iter().all(|&b| b == 0));
    assert_eq!(&kept[3 * 4096..], &big[3 * 4096..]);
    // Truncated mid-block.
    let bc = rel(&big_c);
    case(
        "truncate",
        &move |r: &Path| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(r.join(&bc))
                .unwrap();
            f.set_len(18 + 3 * 4128 + 200).unwrap();
        },
        &[],
        26,
        "block 3",
    );
    // Two blocks swapped.
    let bc = rel(&big_c);
    case(
        "swapblocks",
        &move |r: &Path| {
            let p = r.join(&bc);
            let mut b = fs::read(&p).unwrap();
            let (x, y) = (18 + 4128, 18 + 2 * 4128);
            let tmp = b[x..x + 4128].to_vec();
            b.copy_within(y..y + 4128, x);
            b[y..y + 4128].copy_from_slice(&tmp);
            fs::write(&p, b).unwrap();
        },
        &[],
        26,
        "blocks 1, 2 of 6 do not authenticate",
    );
    // Two whole files swapped: only the path check of reverse-made backups sees it.
    let (a, b) = (rel(twins[0]), rel(twins[1]));
    let swap = move |r: &Path| {
        let tmp = r.join("tmp");
        fs::rename(r.join(&a), &tmp).unwrap();
        fs::rename(r.join(&b), r.join(&a)).unwrap();
        fs::rename(&tmp, r.join(&b)).unwrap();
    };
    let out = case("swapfiles", &swap, &[], 26, "moved or swapped");
    assert!(!out.join("twin_a").exists() && !out.join("twin_b").exists());
    assert_eq!(fs::read(out.join("big")).unwrap(), big);
    // The same with --reverse, and with --keep-corrupt (both kept, renamed).
    let out = case(
        "swapstrict",
        &swap,
        &["--reverse", "--keep-corrupt"],
        26,
        "kept with a .corrupt suffix",
    );
    assert_eq!(fs::read(out.join("twin_a.corrupt")).unwrap(), b"BBBBBBBB");
    assert!(!out.join("twin_a").exists());
    // A bit flipped in a name.
    let d = rel(&dir_c);
    case(
        "name",
        &move |r: &Path| {
            let mut n = d.as_os_str().to_string_lossy().into_owned().into_bytes();
            n[3] = if n[3] == b'A' { b'B' } else { b'A' };
            fs::rename(r.join(&d), r.join(String::from_utf8(n).unwrap())).unwrap();
        },
        &[],
        26,
        "integrity check failed",
    );
    // The .name file of a long name.
    case(
        "namefile",
        &flip(rel(&long_c), 10),
        &[],
        26,
        "does not match the hashed name",
    );
    // The dir IV of a subdirectory: reported, names still restored from the path.
    let div = rel(&dir_c).join("gocryptfs.diriv");
    let out = case("diriv", &flip(div.clone(), 3), &[], 26, "gocryptfs.diriv");
    assert_eq!(fs::read(out.join("dir/inner")).unwrap(), b"inner");
    // A missing diriv in a reverse-made backup is recomputed (a warning, exit 0).
    let out = case(
        "nodiriv",
        &move |r: &Path| fs::remove_file(r.join(&div)).unwrap(),
        &[],
        0,
        "recomputed",
    );
    assert_eq!(fs::read(out.join("dir/inner")).unwrap(), b"inner");
    // A missing .name file.
    let lc = rel(&long_c);
    case(
        "noname",
        &move |r: &Path| fs::remove_file(r.join(&lc)).unwrap(),
        &[],
        26,
        "is missing",
    );
    // The untampered twin restores cleanly.
    let out = case("clean", &|_: &Path| {}, &[], 0, "");
    assert_same_tree(&src, &out, &[REVERSE_CONF], false);
}

/// Nothing is written outside DEST: not through a symlink planted in DEST, not through
/// `..` or absolute paths in a tar stream.
#[test]
fn restore_never_writes_outside_dest() {
    let t = tempdir("outside");
    let pw = passfile(t.path());
    let src = t.path().join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    fs::write(src.join("dir/f"), b"payload").unwrap();
    fs::write(src.join("top"), b"top").unwrap();
    let exp = t.path().join("exp");
    export(&src, &exp, &pw, &[]);
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();

    // DEST holds symlinks named like backup entries, pointing outside.
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    symlink(&outside, out.join("dir")).unwrap();
    symlink(outside.join("victim"), out.join("top")).unwrap();
    expect(&mut restore_cmd(&pw, &exp, &out), 1); // not empty
    let mut c = restore_cmd(&pw, &exp, &out);
    c.arg("--force");
    let o = expect(&mut c, 2);
    assert!(
        stderr(&o).contains("not a directory") && stderr(&o).contains("not overwritten"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"original");
    assert!(fs::symlink_metadata(out.join("top"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A tar with the real backup (written by GNU tar) plus hostile paths.
    let tar_path = t.path().join("evil.tar");
    {
        let made = Command::new("tar")
            .args(["--format=gnu", "-C"])
            .arg(&exp)
            .args(["-cf", "-", "."])
            .output()
            .unwrap();
        assert!(made.status.success());
        let mut bytes = without_end_blocks(made.stdout);
        for name in [
            &b"../evil"[..],
            b"/tmp/cryptbak-evil-absolute",
            b"./a/../../evil2",
        ] {
            bytes.extend_from_slice(&ustar_header(name, b'0', 4));
            bytes.extend_from_slice(b"evil");
            bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        }
        bytes.resize(bytes.len() + 1024, 0);
        fs::write(&tar_path, bytes).unwrap();
    }
    let out = t.path().join("out_tar");
    let mut c = restore_cmd(&pw, &tar_path, &out);
    c.arg("--tar");
    let o = expect(&mut c, 2);
    assert_eq!(stderr(&o).matches("refused").count(), 3, "{}", stderr(&o));
    assert!(!t.path().join("evil").exists() && !t.path().join("evil2").exists());
    assert!(!Path::new("/tmp/cryptbak-evil-absolute").exists());
    assert_eq!(fs::read(out.join("dir/f")).unwrap(), b"payload");
}

// ---------------------------------------------------------------- real gocryptfs

/// A `cp -a` copy and a tar of a real `gocryptfs -reverse` mount restore to the plaintext.
#[test]
fn restore_interop_reverse_mount_copy_and_tar() {
    if !have_gocryptfs("restore_interop_reverse_mount_copy_and_tar") {
        return;
    }
    let t = tempdir("revmount");
    let pw = passfile(t.path());
    let src = t.path().join("src");
    varied_tree(&src, true);
    // A sparse file: see below.
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(60_000).unwrap();
    std::io::Write::write_all(&mut &sparse, b"tail").unwrap();
    drop(sparse);
    set_mtime(&src.join("sparse"), 1_650_000_000, 5);
    let (p, s) = (pw.as_os_str(), src.as_os_str());
    crate::gocryptfs::init_reverse(&src, &pw, &[]);
    set_mtime(&src, 1_400_000_000, 3);
    let mnt = t.path().join("mnt");
    let mut m = Mount::new(
        &[OsStr::new("-reverse"), OsStr::new("-passfile"), p, s],
        &mnt,
    );
    let copy = t.path().join("copy");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&mnt)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let tar = t.path().join("x.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&mnt)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    m.unmount();

    // cp (coreutils >= 9) asks the mount for holes with SEEK_HOLE, and a 2.3 reverse mount
    // answers with the plaintext's holes, so cp writes zeros over real ciphertext there.
    // Whatever cp does, the restore is exact or names the damaged file, never silently wrong.
    let out = t.path().join("out_copy");
    let o = restore_cmd(&pw, &copy, &out).output().unwrap();
    match o.status.code() {
        Some(0) => assert_same_tree(&src, &out, &[REVERSE_CONF], false),
        Some(26) => {
            assert!(
                stderr(&o).contains("sparse") && stderr(&o).lines().count() == 1,
                "{}",
                show(&o)
            );
            assert_same_tree(&src, &out, &[REVERSE_CONF, "sparse"], false);
        }
        _ => panic!("{}", show(&o)),
    }
    // GNU tar's default format keeps whole seconds.
    let out = t.path().join("out_tar");
    let mut c = restore_cmd(&pw, &tar, &out);
    c.arg("--tar");
    expect(&mut c, 0);
    assert_same_tree(&src, &out, &[REVERSE_CONF], true);
}

/// Forward-mode gocryptfs directories (AES-GCM default, and -aessiv): write through a
/// mount, unmount, restore without FUSE, compare with what the mount showed.
#[test]
fn restore_interop_forward_mode_gcm_and_siv() {
    if !have_gocryptfs("restore_interop_forward_mode_gcm_and_siv") {
        return;
    }
    for aessiv in [false, true] {
        let t = tempdir(if aessiv { "fwsiv" } else { "fwgcm" });
        let pw = passfile(t.path());
        let cipher = t.path().join("cipher");
        fs::create_dir(&cipher).unwrap();
        let aead: &[&str] = if aessiv { &["-aessiv"] } else { &[] };
        crate::gocryptfs::init_forward(&cipher, &pw, aead);
        let mnt = t.path().join("mnt");
        let mut m = Mount::new(
            &[OsStr::new("-passfile"), pw.as_os_str(), cipher.as_os_str()],
            &mnt,
        );
        let plain = t.path().join("plain");
        varied_tree(&plain, true);
        // A sparse file: forward mode stores its holes as all-zero blocks.
        let sparse = fs::File::create(plain.join("sparse")).unwrap();
        sparse.set_len(200_000).unwrap();
        drop(sparse);
        fs::write(plain.join("after_hole"), b"x").unwrap();
        assert!(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", plain.display()))
            .arg(&mnt)
            .status()
            .unwrap()
            .success());
        // What the mount shows is the reference.
        let shown = t.path().join("shown");
        assert!(Command::new("cp")
            .arg("-a")
            .arg(&mnt)
            .arg(&shown)
            .status()
            .unwrap()
            .success());
        m.unmount();

        let out = t.path().join("out");
        let o = expect(&mut restore_cmd(&pw, &cipher, &out), 0);
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
        assert_same_tree(&shown, &out, &[], false);

        // With the master key and no config: the cipher is detected from the first file.
        let mut x = Command::new("gocryptfs-xray");
        x.arg("-dumpmasterkey")
            .arg(cipher.join("gocryptfs.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = x.spawn().expect("gocryptfs-xray");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), PW.as_bytes()).unwrap();
        drop(child.stdin.take());
        let key = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
        let key = key.trim().lines().last().unwrap().to_string();
        let out = t.path().join("out_mk");
        let mut c = cryptbak();
        c.args(["restore", "--masterkey=stdin", "--config"])
            .arg(t.path().join("no-config"))
            .arg(&cipher)
            .arg(&out)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), key.as_bytes()).unwrap();
        drop(child.stdin.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        let want = if aessiv { "AES-SIV" } else { "AES-GCM" };
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
        assert_same_tree(&shown, &out, &[], false);
        let m2 = fs::metadata(out.join("sparse")).unwrap();
        assert_eq!(m2.size(), 200_000);
    }
}
