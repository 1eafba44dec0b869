//! The backup reader (issue 13): every real copy and tar restores, restore and verify
//! agree, and metadata is never trusted blindly. One test per finding of the issue; each
//! fails on the reader before the issue (see the commit that added it).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cryptbak::format::pathiv::{derive, Purpose};

use crate::gocryptfs::{init_forward, init_reverse, require_gocryptfs, Mount};
use crate::restore_util::{assert_same_tree, set_mtime, varied_tree};
use crate::util::{
    cryptbak, export_ok, init_fast, is_root, run, run_code, run_ok, write_passfile, TestDir,
};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn restore(pw: &Path, backup: &Path, dest: &Path, extra: &[&str]) -> Command {
    let mut c = cryptbak();
    c.args(["restore", "--no-progress", "--passfile"])
        .arg(pw)
        .args(extra)
        .arg(backup)
        .arg(dest);
    c
}

fn verify(pw: &Path, backup: &Path, extra: &[&str]) -> Command {
    let mut c = cryptbak();
    c.args(["verify", "--passfile"])
        .arg(pw)
        .args(extra)
        .arg(backup);
    c
}

fn rsync_a(from: &Path, to: &Path) {
    let mut f = from.as_os_str().to_owned();
    f.push("/");
    run_ok(Command::new("rsync").arg("-a").arg(f).arg(to));
}

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap().ino()
}

/// The cpath (in BACKUP) of a plaintext path of SRC, via `encrypt-path`.
fn cpath_of(pw: &Path, src: &Path, plain: &str) -> Vec<u8> {
    let o = run_ok(
        cryptbak()
            .args(["encrypt-path", "--passfile"])
            .arg(pw)
            .arg(src)
            .arg(plain),
    );
    o.stdout.strip_suffix(b"\n").unwrap().to_vec()
}

fn at(root: &Path, cpath: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(cpath))
}

// ------------------------------------------------------- 1. hard links split by copies

/// Hard-link groups: a pair in two directories, three names, and a group whose first
/// name (in traversal order) is left out of the backup. Plus a file of its own.
fn linked_tree(src: &Path) {
    fs::create_dir_all(src.join("a/b")).unwrap();
    fs::write(src.join("a/two"), b"pair content\n").unwrap();
    fs::hard_link(src.join("a/two"), src.join("one")).unwrap();
    fs::write(src.join("a/b/g1"), vec![7u8; 10_000]).unwrap();
    fs::hard_link(src.join("a/b/g1"), src.join("a/g3")).unwrap();
    fs::hard_link(src.join("a/b/g1"), src.join("g2")).unwrap();
    fs::create_dir(src.join("0excluded")).unwrap();
    fs::write(src.join("0excluded/first"), b"first name left out\n").unwrap();
    fs::hard_link(src.join("0excluded/first"), src.join("y_second")).unwrap();
    fs::hard_link(src.join("0excluded/first"), src.join("a/y_third")).unwrap();
    fs::write(src.join("alone"), b"no links\n").unwrap();
}

/// The restore of `linked_tree` (without `0excluded`): contents, and each group one inode.
fn check_linked(out: &Path, what: &str) {
    assert_eq!(
        fs::read(out.join("one")).unwrap(),
        b"pair content\n",
        "{what}"
    );
    assert_eq!(
        ino(&out.join("one")),
        ino(&out.join("a/two")),
        "{what}: pair"
    );
    assert_eq!(
        fs::read(out.join("g2")).unwrap(),
        vec![7u8; 10_000],
        "{what}"
    );
    assert_eq!(
        ino(&out.join("g2")),
        ino(&out.join("a/b/g1")),
        "{what}: three"
    );
    assert_eq!(
        ino(&out.join("g2")),
        ino(&out.join("a/g3")),
        "{what}: three"
    );
    assert_eq!(
        fs::read(out.join("y_second")).unwrap(),
        b"first name left out\n",
        "{what}"
    );
    assert_eq!(
        ino(&out.join("y_second")),
        ino(&out.join("a/y_third")),
        "{what}: group without its first name"
    );
    assert!(!out.join("0excluded").exists(), "{what}");
    assert_eq!(
        fs::metadata(out.join("alone")).unwrap().nlink(),
        1,
        "{what}"
    );
}

/// Restore and verify of an `rsync -a` copy (no -H) of `backup`: every name comes back,
/// and the groups are hard links again.
fn check_split_copy(pw: &Path, backup: &Path, t: &TestDir, label: &str) {
    let copy = t.join(format!("{label}-rsync"));
    rsync_a(backup, &copy);
    // The copy really has split the groups.
    let split = fs::read_dir(&copy)
        .unwrap()
        .flatten()
        .all(|e| e.metadata().unwrap().is_dir() || e.metadata().unwrap().nlink() == 1);
    assert!(split, "{label}: rsync -a kept hard links?");
    let o = run_ok(&mut verify(pw, &copy, &[]));
    let err = stderr(&o);
    assert!(err.contains("; OK"), "{label}: {err}");
    assert!(
        err.contains("4 hard-linked names split by a copy tool"),
        "{label}: {err}"
    );
    let out = t.join(format!("{label}-out"));
    let o = run_ok(&mut restore(pw, &copy, &out, &["-v"]));
    let err = stderr(&o);
    assert!(err.contains("4 hard-linked names split"), "{label}: {err}");
    assert_eq!(
        err.matches("split by a copy tool (same file ID, identical ciphertext)")
            .count(),
        4,
        "{label}: each named with -v\n{err}"
    );
    check_linked(&out, label);
    // From a tar of the copy too.
    let tar = t.join(format!("{label}.tar"));
    run_ok(
        Command::new("tar")
            .arg("--format=posix")
            .arg("-C")
            .arg(&copy)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    let out = t.join(format!("{label}-out-tar"));
    run_ok(&mut restore(pw, &tar, &out, &["--tar"]));
    check_linked(&out, &format!("{label} (tar)"));
}

/// The README's nightly recipe used `rsync -a`, which splits hard links: verify and
/// restore called every later name "moved or swapped" (exit 26) and left it out.
#[test]
fn reader_rsync_copy_of_an_export_restores_hard_links() {
    let t = TestDir::new("reader-rsync-export");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    linked_tree(&src);
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(
        &src,
        &exp,
        &pw,
        &[OsStr::new("--exclude"), OsStr::new("0excluded")],
    );
    check_split_copy(&pw, &exp, &t, "export");

    // The tampered twin: the file whose path owns the pair's file ID is gone from the
    // copy, so the other name's ID belongs to no file there: moved, not split.
    let copy = t.join("twin");
    rsync_a(&exp, &copy);
    let (one, two) = (cpath_of(&pw, &src, "one"), cpath_of(&pw, &src, "a/two"));
    let id_of = |c: &[u8]| fs::read(at(&copy, c)).unwrap()[2..18].to_vec();
    let owner = if id_of(&one) == derive(&one, Purpose::FileId) {
        &one
    } else {
        assert_eq!(id_of(&two), derive(&two, Purpose::FileId));
        &two
    };
    fs::remove_file(at(&copy, owner)).unwrap();
    let o = run_code(&mut verify(&pw, &copy, &[]), 26);
    assert!(stderr(&o).contains("moved or swapped"), "{}", stderr(&o));
    let out = t.join("twin-out");
    let o = run_code(&mut restore(&pw, &copy, &out, &[]), 26);
    assert!(stderr(&o).contains("moved or swapped"), "{}", stderr(&o));
}

/// The same with an `rsync -a` copy of a real `gocryptfs -reverse` mount (all names of a
/// hard-linked file show the bytes of whichever name was opened first).
#[test]
fn reader_rsync_copy_of_a_reverse_mount_restores_hard_links() {
    if !require_gocryptfs("reader_rsync_copy_of_a_reverse_mount_restores_hard_links") {
        return;
    }
    let t = TestDir::new("reader-rsync-mount");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    linked_tree(&src);
    init_reverse(&src, &pw, &[]);
    let m = Mount::reverse(
        &src,
        &pw,
        &[OsStr::new("-exclude"), OsStr::new("0excluded")],
    );
    let view = t.join("view");
    fs::create_dir(&view).unwrap();
    // -H here: the reference copy that keeps the links.
    let mut mnt = m.path().as_os_str().to_owned();
    mnt.push("/");
    run_ok(Command::new("rsync").arg("-aH").arg(&mnt).arg(&view));
    let split = t.join("mount-rsync-direct");
    rsync_a(m.path(), &split);
    drop(m);
    // The copy made with -H restores as it always did.
    let out = t.join("view-out");
    run_ok(&mut restore(&pw, &view, &out, &[]));
    check_linked(&out, "rsync -aH of the mount");
    // The copy made without -H, straight from the mount.
    let o = run_ok(&mut verify(&pw, &split, &[]));
    assert!(
        stderr(&o).contains("4 hard-linked names split"),
        "{}",
        stderr(&o)
    );
    let out = t.join("split-out");
    run_ok(&mut restore(&pw, &split, &out, &[]));
    check_linked(&out, "rsync -a of the mount");
    // And a copy of the -H copy, without -H.
    check_split_copy(&pw, &view, &t, "mount");
}

// ------------------------------------------------------------------ 2. tar streams

/// A `-plaintextnames` name holding a newline: the tar crate split the pax record at
/// it, and `Aaa…⏎11 path=zz` came back as the file `zz`, with exit 0.
#[test]
fn reader_tar_pax_name_with_a_newline() {
    let t = TestDir::new("reader-pax-newline");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    // Longer than the 100 bytes of a ustar name field, so it goes into a pax record.
    let name = [&b"A"[..], &[b'a'; 150], b"\n11 path=zz"].concat();
    let evil = OsStr::from_bytes(&name);
    fs::write(src.join(evil), b"the content\n").unwrap();
    fs::write(src.join("plain"), b"plain\n").unwrap();
    run_ok(
        cryptbak()
            .args([
                "init",
                "-q",
                "--scryptn",
                "10",
                "--plaintextnames",
                "--passfile",
            ])
            .arg(&pw)
            .arg(&src),
    );
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    for (label, made_by) in [("export", "cryptbak"), ("gnu-posix", "tar")] {
        let tar = t.join(format!("{label}.tar"));
        if made_by == "cryptbak" {
            run_ok(
                cryptbak()
                    .args(["export", "-q", "--passfile"])
                    .arg(&pw)
                    .arg("--tar")
                    .arg(&tar)
                    .arg(&src),
            );
        } else {
            run_ok(
                Command::new("tar")
                    .args(["--format=posix", "-C"])
                    .arg(&exp)
                    .args(["-cf"])
                    .arg(&tar)
                    .arg("."),
            );
        }
        let out = t.join(format!("out-{label}"));
        run_ok(&mut restore(&pw, &tar, &out, &["--tar", "-q"]));
        assert_eq!(
            fs::read(out.join(evil)).unwrap(),
            b"the content\n",
            "{label}"
        );
        assert!(!out.join("zz").exists(), "{label}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 2, "{label}");
    }
}

/// Times before 1970 in tar: a pax `mtime=-0.5` lost its sign (+0.5 s), and GNU tar's
/// base-256 fields were read as unsigned (1960 became 2446).
#[test]
fn reader_tar_times_before_1970() {
    let t = TestDir::new("reader-tar-times");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("half"), b"half a second before 1970\n").unwrap();
    fs::write(src.join("sixties"), b"1960\n").unwrap();
    set_mtime(&src.join("half"), -1, 500_000_000);
    set_mtime(&src.join("sixties"), -315_619_200, 0);
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    for (format, ns) in [("posix", true), ("gnu", false)] {
        let tar = t.join(format!("{format}.tar"));
        run_ok(
            Command::new("tar")
                .arg(format!("--format={format}"))
                .arg("-C")
                .arg(&exp)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        );
        let out = t.join(format!("out-{format}"));
        run_ok(&mut restore(&pw, &tar, &out, &["--tar", "-q"]));
        let m = fs::symlink_metadata(out.join("sixties")).unwrap();
        assert_eq!(m.mtime(), -315_619_200, "{format}: 1960");
        let m = fs::symlink_metadata(out.join("half")).unwrap();
        if ns {
            assert_eq!((m.mtime(), m.mtime_nsec()), (-1, 500_000_000), "{format}");
        } else {
            // Whole seconds in GNU format: -0.5 s is stored as -1.
            assert_eq!(m.mtime(), -1, "{format}");
        }
    }
}

/// A tree for the tar format test: what every format can hold (ustar: names up to 100
/// bytes with a 155-byte prefix, link targets up to 100 bytes, no times before 1970).
fn tar_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    for n in [0usize, 1, 4095, 4096, 4097, 70_000] {
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        fs::write(root.join(format!("size_{n}")), data).unwrap();
    }
    fs::write(root.join("L".repeat(200)), b"long name\n").unwrap();
    fs::write(root.join("dir/sub/leaf"), b"leaf\n").unwrap();
    std::os::unix::fs::symlink("../size_1", root.join("dir/up")).unwrap();
    fs::hard_link(root.join("size_4097"), root.join("dir/hard")).unwrap();
    run_ok(Command::new("mkfifo").arg(root.join("dir/fifo")));
    fs::set_permissions(root.join("dir/sub"), fs::Permissions::from_mode(0o750)).unwrap();
    for (i, p) in crate::restore_util::walk(root).iter().rev().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 100, 0);
    }
}

/// Archives of a real backup written by GNU tar (gnu, posix, ustar formats) and by
/// bsdtar restore to exactly what the directory restores to.
#[test]
fn reader_tar_formats_of_gnu_tar_and_bsdtar() {
    let t = TestDir::new("reader-tar-formats");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    tar_tree(&src);
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    let from_dir = t.join("out-dir");
    run_ok(&mut restore(&pw, &exp, &from_dir, &["-q"]));
    assert_same_tree(&src, &from_dir, &[".gocryptfs.reverse.conf"], false);
    let archivers: [(&str, &[&str]); 4] = [
        ("gnu", &["tar", "--format=gnu"]),
        ("posix", &["tar", "--format=posix"]),
        ("ustar", &["tar", "--format=ustar"]),
        ("bsdtar", &["bsdtar"]),
    ];
    for (label, cmd) in archivers {
        let tar = t.join(format!("{label}.tar"));
        run_ok(
            Command::new(cmd[0])
                .args(&cmd[1..])
                .arg("-C")
                .arg(&exp)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        );
        let out = t.join(format!("out-{label}"));
        run_ok(&mut restore(&pw, &tar, &out, &["--tar", "-q"]));
        assert_same_tree(&from_dir, &out, &[], true);
        // Also through a pipe, config found in the stream.
        let out = t.join(format!("out-{label}-stdin"));
        let mut c = restore(&pw, Path::new("-"), &out, &["--tar", "-q"]);
        c.stdin(Stdio::from(fs::File::open(&tar).unwrap()));
        run_ok(&mut c);
        assert_same_tree(&from_dir, &out, &[], true);
    }
}

// --------------------------------------------------------------------- 3. holes

/// A 64 MiB file with 4 KiB of data came back fully allocated; now zero blocks are
/// holes again, and the content is unchanged.
#[test]
fn reader_sparse_files_come_back_sparse() {
    let t = TestDir::new("reader-sparse");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    let f = fs::File::create(src.join("vm.img")).unwrap();
    f.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xab; 4096], 10 << 20).unwrap();
    drop(f);
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    for (label, extra) in [("dir", &[][..]), ("tar", &["--tar"][..])] {
        let backup = if label == "tar" {
            let tar = t.join("x.tar");
            run_ok(
                Command::new("tar")
                    .arg("-C")
                    .arg(&exp)
                    .arg("-cf")
                    .arg(&tar)
                    .arg("."),
            );
            tar
        } else {
            exp.clone()
        };
        let out = t.join(format!("out-{label}"));
        run_ok(&mut restore(&pw, &backup, &out, extra));
        let m = fs::metadata(out.join("vm.img")).unwrap();
        assert_eq!(m.len(), 64 << 20, "{label}");
        assert!(
            m.blocks() * 512 < 4 << 20,
            "{label}: {} bytes allocated for 4 KiB of data",
            m.blocks() * 512
        );
        assert!(
            fs::read(out.join("vm.img")).unwrap() == fs::read(src.join("vm.img")).unwrap(),
            "{label}: content"
        );
    }
}

// -------------------------------------------------------------------- 4. --path

/// `restore --path Documents/taxes` restored nothing of a file hard-linked to a name
/// outside the path (the content sat under the outside name). The outside name lives
/// in a directory on the way to the path, so the walk meets it.
#[test]
fn reader_path_restores_hard_links_whose_first_name_is_outside() {
    let t = TestDir::new("reader-path-links");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir_all(src.join("Documents/taxes/2023/q1")).unwrap();
    fs::write(src.join("Documents/copy"), b"the return\n").unwrap();
    fs::hard_link(
        src.join("Documents/copy"),
        src.join("Documents/taxes/2023/q1/return"),
    )
    .unwrap();
    fs::hard_link(
        src.join("Documents/copy"),
        src.join("Documents/taxes/return"),
    )
    .unwrap();
    fs::write(src.join("Documents/taxes/plain"), b"plain\n").unwrap();
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    let split = t.join("split");
    rsync_a(&exp, &split);
    for (label, backup) in [("export", &exp), ("rsync -a copy", &split)] {
        for run in 0..3 {
            let out = t.join(format!("out-{}-{run}", label.len()));
            let o = run_ok(&mut restore(
                &pw,
                backup,
                &out,
                &["--path", "Documents/taxes"],
            ));
            let (a, b) = (
                out.join("Documents/taxes/return"),
                out.join("Documents/taxes/2023/q1/return"),
            );
            assert_eq!(
                fs::read(&a).unwrap(),
                b"the return\n",
                "{label}\n{}",
                stderr(&o)
            );
            assert_eq!(fs::read(&b).unwrap(), b"the return\n", "{label}");
            if label == "export" {
                assert_eq!(ino(&a), ino(&b), "{label}: one file");
            }
            assert!(!out.join("Documents/copy").exists(), "{label}");
            assert_eq!(
                fs::read(out.join("Documents/taxes/plain")).unwrap(),
                b"plain\n"
            );
        }
    }
}

// ------------------------------------------------------------- 5. decrypt-path

/// Two long names' `.name` files swapped: decrypt-path printed the other entry's name
/// with exit 0, while verify caught the swap. Both refuse it now.
#[test]
fn reader_decrypt_path_refuses_a_swapped_name_file() {
    let t = TestDir::new("reader-decrypt-path");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    let (a, b) = ("a".repeat(200), "b".repeat(200));
    fs::write(src.join(&a), b"a").unwrap();
    fs::write(src.join(&b), b"b").unwrap();
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    let (ca, cb) = (cpath_of(&pw, &src, &a), cpath_of(&pw, &src, &b));
    let decrypt = |c: &[u8]| {
        let mut cmd = cryptbak();
        cmd.args(["decrypt-path", "--passfile"])
            .arg(&pw)
            .arg(&exp)
            .arg(OsStr::from_bytes(c));
        run(&mut cmd)
    };
    let o = decrypt(&ca);
    assert!(o.status.success());
    assert_eq!(o.stdout, format!("{a}\n").into_bytes());
    let nf = |c: &[u8]| at(&exp, &[c, b".name"].concat());
    let (na, nb) = (fs::read(nf(&ca)).unwrap(), fs::read(nf(&cb)).unwrap());
    for (p, content) in [(nf(&ca), &nb), (nf(&cb), &na)] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, content).unwrap();
    }
    let o = decrypt(&ca);
    assert_ne!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("does not match the hashed name"),
        "{}",
        stderr(&o)
    );
    run_code(&mut verify(&pw, &exp, &[]), 26);
}

// ---------------------------------------------------------------- 6. metadata

/// Someone with write access to the storage (no key) chowns a ciphertext file to root
/// with mode 4755 and swaps a FIFO for a world-writable block device. The format
/// authenticates neither, so verify says OK (and counts them); a root restore made a
/// setuid-root binary and a `brw-rw-rw-` node. Now both are left out unless asked for.
#[test]
fn reader_tampered_metadata_is_not_restored_blindly() {
    if !is_root() {
        eprintln!("\n*** SKIP reader_tampered_metadata_is_not_restored_blindly: needs root (chown, mknod) ***\n");
        return;
    }
    let t = TestDir::new("reader-metadata");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(src.join("tool"), Some(1000), Some(1000)).unwrap();
    run_ok(Command::new("mkfifo").arg(src.join("pipe")));
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    let tool = at(&exp, &cpath_of(&pw, &src, "tool"));
    let pipe = at(&exp, &cpath_of(&pw, &src, "pipe"));
    std::os::unix::fs::chown(&tool, Some(0), Some(0)).unwrap();
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o4755)).unwrap();
    fs::remove_file(&pipe).unwrap();
    run_ok(
        Command::new("mknod")
            .args(["-m", "0666"])
            .arg(&pipe)
            .args(["b", "7", "200"]),
    );

    let o = run_ok(&mut verify(&pw, &exp, &[]));
    let err = stderr(&o);
    assert!(err.contains("; OK"), "{err}");
    assert!(
        err.contains("1 setuid/setgid bits would be dropped"),
        "{err}"
    );
    assert!(err.contains("1 device nodes would not be created"), "{err}");
    assert!(
        err.contains("not authenticated (the format cannot): owners, modes, times, file types"),
        "{err}"
    );

    let out = t.join("out");
    let o = run_ok(&mut restore(&pw, &exp, &out, &["-v"]));
    let err = stderr(&o);
    let m = fs::metadata(out.join("tool")).unwrap();
    assert_eq!(m.uid(), 0, "owners are restored as root");
    assert_eq!(m.mode() & 0o7777, 0o755, "no setuid-root file");
    assert!(!out.join("pipe").exists(), "no device node");
    assert!(err.contains("1 setuid/setgid bits dropped"), "{err}");
    assert!(err.contains("1 device nodes not created"), "{err}");
    // -v names each.
    assert!(
        err.contains(&format!(
            "{}: setuid/setgid bit not restored",
            out.join("tool").display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}: device node not created",
            out.join("pipe").display()
        )),
        "{err}"
    );

    let out = t.join("out-asked");
    run_ok(&mut restore(
        &pw,
        &exp,
        &out,
        &["--keep-setuid", "--devices"],
    ));
    let m = fs::metadata(out.join("tool")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o4755));
    let d = fs::symlink_metadata(out.join("pipe")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_block_device(
        &d.file_type()
    ));
    assert_eq!(d.mode() & 0o777, 0o666);
}

// ---------------------------------------------------------------- 7. XChaCha

/// `gocryptfs -init -xchacha` directories were refused. Made by real gocryptfs, they
/// restore from the directory and from a tar stream, and verify.
#[test]
fn reader_xchacha_forward_directory() {
    if !require_gocryptfs("reader_xchacha_forward_directory") {
        return;
    }
    let t = TestDir::new("reader-xchacha");
    let pw = write_passfile(t.path());
    let cipher = t.join("cipher");
    fs::create_dir(&cipher).unwrap();
    init_forward(&cipher, &pw, &["-xchacha"]);
    let conf = fs::read_to_string(cipher.join("gocryptfs.conf")).unwrap();
    assert!(conf.contains("XChaCha20Poly1305"), "{conf}");
    let m = Mount::forward(&cipher, &pw);
    let plain = t.join("plain");
    varied_tree(&plain, true);
    let mut from = plain.as_os_str().to_owned();
    from.push("/.");
    run_ok(Command::new("cp").arg("-a").arg(from).arg(m.path()));
    let shown = t.join("shown");
    run_ok(Command::new("cp").arg("-a").arg(m.path()).arg(&shown));
    m.unmount();

    let out = t.join("out");
    let o = run_ok(&mut restore(&pw, &cipher, &out, &[]));
    assert!(
        stderr(&o).contains("forward-mode, XChaCha20-Poly1305"),
        "{}",
        stderr(&o)
    );
    assert_same_tree(&shown, &out, &[], false);
    let tar = t.join("x.tar");
    run_ok(
        Command::new("tar")
            .arg("--format=posix")
            .arg("-C")
            .arg(&cipher)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    let out = t.join("out-tar");
    run_ok(&mut restore(&pw, &tar, &out, &["--tar"]));
    assert_same_tree(&shown, &out, &[], false);
    let o = run_ok(&mut verify(&pw, &cipher, &[]));
    assert!(
        stderr(&o).contains("XChaCha20-Poly1305; OK"),
        "{}",
        stderr(&o)
    );
    // A flipped bit in a file is found.
    let victim = fs::read_dir(&cipher)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file() && fs::metadata(p).unwrap().len() > 5000)
        .unwrap();
    let mut b = fs::read(&victim).unwrap();
    b[4000] ^= 1;
    fs::write(&victim, b).unwrap();
    run_code(&mut verify(&pw, &cipher, &[]), 26);
}

// -------------------------------------------------------- 8. verify and ls --tar

/// A tar backup could not be checked without restoring it.
#[test]
fn reader_verify_and_ls_read_tar_streams() {
    let t = TestDir::new("reader-verify-tar");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    tar_tree(&src);
    init_fast(&src, &pw);
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    let tar = t.join("x.tar");
    run_ok(
        cryptbak()
            .args(["export", "-q", "--passfile"])
            .arg(&pw)
            .arg("--tar")
            .arg(&tar)
            .arg(&src),
    );
    // With the config last in the stream: what comes before it waits in an unnamed
    // scratch file (nothing appears anywhere).
    let late = t.join("late.tar");
    // As ./NAME: an encrypted name may start with '-', which tar would take for an option.
    let mut names: Vec<_> = fs::read_dir(&exp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "gocryptfs.conf")
        .map(|n| Path::new(".").join(n))
        .collect();
    names.sort();
    names.push("./gocryptfs.conf".into());
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&exp)
            .arg("-cf")
            .arg(&late)
            .args(&names),
    );
    let scratch = TestDir::new("reader-verify-tmp");
    let o = run_ok(verify(&pw, &late, &["--tar"]).env("TMPDIR", scratch.path()));
    assert!(stderr(&o).contains("; OK"), "{}", stderr(&o));
    assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0);
    let o = run_ok(&mut verify(&pw, &tar, &["--tar"]));
    assert!(
        stderr(&o).contains("reverse-made") && stderr(&o).contains("; OK"),
        "{}",
        stderr(&o)
    );
    let mut c = verify(&pw, Path::new("-"), &["--tar", "--json"]);
    c.stdin(Stdio::from(fs::File::open(&tar).unwrap()));
    let o = run_ok(&mut c);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["hard_links"], 1);
    // ls --tar lists what ls of the directory lists.
    let ls = |extra: &[&str], backup: &Path| {
        let mut c = cryptbak();
        c.args(["ls", "-r", "--passfile"])
            .arg(&pw)
            .args(extra)
            .arg(backup);
        String::from_utf8(run_ok(&mut c).stdout).unwrap()
    };
    let from_dir = ls(&[], &exp);
    assert_eq!(ls(&["--tar"], &tar), from_dir);
    assert!(from_dir.contains(" dir/sub/leaf"), "{from_dir}");
    let mut c = cryptbak();
    c.args(["ls", "--tar", "--passfile"])
        .arg(&pw)
        .arg(&tar)
        .arg("dir/sub");
    let one = String::from_utf8(run_ok(&mut c).stdout).unwrap();
    assert_eq!(one.lines().count(), 1, "{one}");
    assert!(one.ends_with(" dir/sub/leaf\n"), "{one}");
    // The tampered twin: a flipped bit inside a file's ciphertext.
    let mut bytes = fs::read(&tar).unwrap();
    let needle = fs::read(exp.join(OsStr::from_bytes(&cpath_of(&pw, &src, "size_70000")))).unwrap();
    let pos = bytes
        .windows(64)
        .position(|w| w == &needle[1000..1064])
        .expect("the file's ciphertext is in the tar");
    bytes[pos + 10] ^= 1;
    let bad = t.join("bad.tar");
    fs::write(&bad, bytes).unwrap();
    let o = run_code(&mut verify(&pw, &bad, &["--tar"]), 26);
    assert!(
        stderr(&o).contains("[plaintext: size_70000]"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------- 9. one layout verdict

/// On a `-plaintextnames` backup whose first 256 entries give no evidence of the layout
/// (empty files have no header), verify's own probe said forward-mode and OK,
/// while restore (which judges every entry) said reverse-made and dropped the swapped
/// files. One judgement now: both report them.
#[test]
fn reader_restore_and_verify_agree_on_a_plaintextnames_copy() {
    let t = TestDir::new("reader-one-verdict");
    let pw = write_passfile(t.path());
    let src = t.join("src");
    fs::create_dir_all(src.join("zdir")).unwrap();
    for i in 0..300 {
        fs::write(src.join(format!("empty{i:03}")), b"").unwrap();
    }
    fs::write(src.join("zdir/a"), b"AAAAAAAA").unwrap();
    fs::write(src.join("zdir/b"), b"BBBBBBBB").unwrap();
    // The evidence that the tree is reverse-made: a file whose ID is its path's.
    fs::write(src.join("zdir/c"), b"CCCCCCCC").unwrap();
    run_ok(
        cryptbak()
            .args([
                "init",
                "-q",
                "--scryptn",
                "10",
                "--plaintextnames",
                "--passfile",
            ])
            .arg(&pw)
            .arg(&src),
    );
    let exp = t.join("exp");
    export_ok(&src, &exp, &pw, &[]);
    let copy = t.join("copy");
    rsync_a(&exp, &copy);
    let (a, b) = (copy.join("zdir/a"), copy.join("zdir/b"));
    let (ba, bb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    fs::write(&a, bb).unwrap();
    fs::write(&b, ba).unwrap();
    let v = run_code(&mut verify(&pw, &copy, &["--json"]), 26);
    let vj: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let out = t.join("out");
    let mut c = restore(&pw, &copy, &out, &["--json"]);
    let r = run_code(&mut c, 26);
    let rj: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(vj["layout"], "reverse");
    assert_eq!(rj["layout"], "reverse");
    assert_eq!(vj["integrity_errors"], rj["integrity_errors"]);
    assert_eq!(vj["integrity_errors"], 2);
    assert!(!out.join("zdir/a").exists() && !out.join("zdir/b").exists());
}
