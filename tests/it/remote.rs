//! The remote storage layer (src/remote/) against real servers on 127.0.0.1: s3s-fs
//! for S3 and OpenSSH's sshd for SFTP (tests/it/servers.rs). Round trips, multipart,
//! metadata (checked with the real rclone), directory markers, the lock, and the
//! errors a user sees for wrong credentials and a missing bucket.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use cryptbak::remote::{ErrorKind, Kind, Location, Meta, Options, Store};
use cryptbak::view::Time;

use crate::servers::{S3Server, SshServer, SECRET_KEY};
use crate::util::{run_ok, TestDir};

/// Deterministic bytes that differ at every offset (a misplaced range shows).
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn meta(sec: i64, nsec: u32, mode: u32) -> Meta {
    Meta {
        mtime: Some(Time { sec, nsec }),
        mode: Some(mode),
        uid: Some(1234),
        gid: Some(5678),
        rdev: None,
    }
}

/// Small parts so that a 20 MiB object takes four of them.
fn small_parts() -> Options {
    Options {
        part_size: 5 << 20,
        part_concurrency: 2,
        ..Options::default()
    }
}

fn keys(store: &Store) -> Vec<(String, Kind, u64)> {
    store
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.kind, e.size))
        .collect()
}

// ---- S3 -----------------------------------------------------------------------------

#[test]
fn s3_put_list_get_delete_round_trip() {
    let srv = S3Server::start("roundtrip");
    let store = Store::open(&srv.location("backups/home"), &srv.env(), small_parts()).unwrap();
    assert!(store.list().unwrap().is_empty(), "a new prefix lists empty");

    let small = data(1000, 1);
    let big = data(20 << 20, 2); // 4 parts of 5 MiB
    store.mkdir("d", &meta(1_600_000_000, 0, 0o40750)).unwrap();
    store
        .put_bytes(
            "d/small",
            &small,
            &meta(1_700_000_000, 123_456_789, 0o100640),
        )
        .unwrap();
    store.put_bytes("empty", b"", &Meta::default()).unwrap();
    // The big one streamed through io::Write in odd-sized writes.
    let mut up = store
        .put("d/big", big.len() as u64, &meta(5, 1, 0o100600))
        .unwrap();
    for chunk in big.chunks(777_777) {
        up.write_all(chunk).unwrap();
    }
    up.finish().unwrap();

    // What the server holds, byte for byte (s3s-fs keeps object `k` as file `k`).
    assert_eq!(
        fs::read(srv.object_path("backups/home/d/small")).unwrap(),
        small
    );
    assert_eq!(
        fs::read(srv.object_path("backups/home/d/big")).unwrap(),
        big
    );
    assert_eq!(
        fs::read(srv.object_path("backups/home/empty")).unwrap(),
        b""
    );

    // s3s-fs keeps a marker as a directory and does not list it (real S3 does): the
    // listing shows the objects; the marker is checked on the server's disk.
    assert!(srv.object_path("backups/home/d").is_dir());
    let listed = keys(&store);
    assert_eq!(
        listed,
        vec![
            ("d/big".to_string(), Kind::File, big.len() as u64),
            ("d/small".to_string(), Kind::File, small.len() as u64),
            ("empty".to_string(), Kind::File, 0),
        ]
    );

    // Whole and ranged reads, including a range across a part boundary and one that
    // runs past the end.
    assert_eq!(store.get("d/small").unwrap(), small);
    let b: usize = 5 << 20;
    assert_eq!(
        store
            .get_range("d/big", (b - 10) as u64..(b + 10) as u64)
            .unwrap(),
        &big[b - 10..b + 10]
    );
    let end = big.len() as u64;
    assert_eq!(
        store.get_range("d/big", end - 5..end + 100).unwrap(),
        &big[big.len() - 5..]
    );
    assert_eq!(store.get_range("d/big", 7..7).unwrap(), b"");
    // Many threads at once on one store.
    std::thread::scope(|s| {
        for i in 0..8u64 {
            let (store, big) = (&store, &big);
            s.spawn(move || {
                let r = i * 2_000_000..i * 2_000_000 + 1_000_000;
                assert_eq!(
                    store.get_range("d/big", r.clone()).unwrap(),
                    &big[r.start as usize..r.end as usize]
                );
            });
        }
    });

    let e = store.get("nope").unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().starts_with("s3://bkt/backups/home/nope: "),
        "{e}"
    );

    store
        .delete(&[
            "d/big".into(),
            "d/small".into(),
            "d/".into(),
            "never-was".into(),
        ])
        .unwrap();
    assert_eq!(keys(&store), vec![("empty".to_string(), Kind::File, 0)]);
    assert!(
        !srv.object_path("backups/home/d").exists(),
        "the emptied marker is gone"
    );
}

#[test]
fn s3_metadata_round_trip_via_head() {
    let srv = S3Server::start("meta");
    let store = Store::open(&srv.location("p"), &srv.env(), Options::default()).unwrap();
    let m = meta(1_700_000_000, 5, 0o104755);
    store.put_bytes("a", b"x", &m).unwrap();
    store.put_bytes("b", b"yy", &Meta::default()).unwrap();
    let mut listed = store.list().unwrap();
    assert!(
        listed.iter().all(|e| !e.meta_known),
        "an S3 listing has no user metadata"
    );
    // Only the wanted entries are looked up.
    let errs = store.fill_meta(&mut listed, |e| e.key == "a");
    assert!(errs.is_empty(), "{errs:?}");
    let a = listed.iter().find(|e| e.key == "a").unwrap();
    assert!(a.meta_known);
    assert_eq!(a.meta, m);
    let b = listed.iter().find(|e| e.key == "b").unwrap();
    assert!(!b.meta_known);
    assert_eq!(store.stat("b").unwrap().unwrap().meta, Meta::default());
    assert_eq!(store.stat("zzz").unwrap(), None);
}

/// `rclone copy --metadata` of the prefix to a disk restores our mtimes (to the
/// nanosecond) and modes: the keys and spellings are rclone's own.
#[test]
fn s3_rclone_copy_metadata_reproduces_mtime_and_mode() {
    let srv = S3Server::start("rclone");
    let store = Store::open(&srv.location("pre/fix"), &srv.env(), Options::default()).unwrap();
    let files = [
        ("top", meta(1_500_000_000, 123_456_789, 0o100644)),
        ("sub/one", meta(1_234_567_890, 1, 0o100600)),
        ("sub/deeper/two", meta(946_684_800, 999_999_999, 0o100755)),
    ];
    store.mkdir("sub", &meta(1, 0, 0o40700)).unwrap();
    store.mkdir("sub/deeper", &meta(1, 0, 0o40700)).unwrap();
    for (i, (k, m)) in files.iter().enumerate() {
        store.put_bytes(k, &data(100 + i, i as u8), m).unwrap();
    }
    let out = TestDir::new("rclone-out");
    let mut cmd = Command::new("rclone");
    srv.rclone_env(&mut cmd);
    // One low-level retry: rclone HEADs the prefix itself to see whether it names a
    // file, and s3s-fs answers 500 for a key that is a directory on its disk, which
    // rclone would otherwise retry with backoff for a minute.
    cmd.args([
        "copy",
        "--metadata",
        "--low-level-retries",
        "1",
        "T:bkt/pre/fix",
    ])
    .arg(out.path());
    run_ok(&mut cmd);
    for (i, (k, m)) in files.iter().enumerate() {
        let p = out.join(k);
        assert_eq!(fs::read(&p).unwrap(), data(100 + i, i as u8), "{k}");
        let md = fs::symlink_metadata(&p).unwrap();
        let t = m.mtime.unwrap();
        assert_eq!(
            (md.mtime(), md.mtime_nsec() as u32),
            (t.sec, t.nsec),
            "{k} mtime"
        );
        assert_eq!(md.mode(), m.mode.unwrap(), "{k} mode");
    }
}

#[test]
fn s3_size_mismatch_and_abandoned_uploads_store_nothing() {
    let srv = S3Server::start("abort");
    let store = Store::open(&srv.location("p"), &srv.env(), small_parts()).unwrap();
    // Fewer bytes than announced: refused, nothing stored.
    let mut up = store.put("short", 10, &Meta::default()).unwrap();
    up.write_all(b"12345").unwrap();
    let e = up.finish().unwrap_err();
    assert_eq!(e.kind, ErrorKind::SizeMismatch, "{e}");
    assert!(e.to_string().contains("s3://bkt/p/short"), "{e}");
    // A multipart upload dropped halfway (two parts sent): aborted, nothing stored,
    // and the server holds no parts.
    let uploads = || -> Vec<String> {
        fs::read_dir(&srv.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload"))
            .collect()
    };
    let big = data(12 << 20, 3);
    let mut up = store
        .put("big", big.len() as u64, &Meta::default())
        .unwrap();
    up.write_all(&big[..11 << 20]).unwrap();
    // Two whole parts were handed over, so the multipart upload was created (s3s-fs
    // keeps it as `.upload-<id>.json` in its root until completed or aborted).
    assert!(
        !uploads().is_empty(),
        "11 MiB in 5 MiB parts should be a multipart upload"
    );
    drop(up);
    assert!(store.list().unwrap().is_empty());
    assert!(uploads().is_empty(), "multipart leftovers: {:?}", uploads());
}

#[test]
fn s3_lock_has_one_holder() {
    let srv = S3Server::start("lock");
    let loc = srv.location("p");
    let a = Store::open(&loc, &srv.env(), Options::default()).unwrap();
    let b = Store::open(&loc, &srv.env(), Options::default()).unwrap();
    let held = a.lock("run A on host1").unwrap();
    // s3s-fs honours If-None-Match: * (checked before it writes).
    assert!(
        held.enforced(),
        "s3s-fs should refuse a second conditional put"
    );
    let e = b
        .lock("run B")
        .err()
        .expect("a second holder must be refused");
    assert_eq!(e.kind, ErrorKind::Locked, "{e}");
    assert!(e.to_string().contains("run A on host1"), "{e}");
    assert!(
        a.list().unwrap().is_empty(),
        "the lock object is not an entry"
    );
    held.release().unwrap();
    assert!(
        srv.object_path("p/.cryptbak-lock").metadata().is_err(),
        "released"
    );
    let again = b.lock("run B").unwrap();
    // A stale lock (its holder died) is broken on request.
    std::mem::forget(again);
    assert_eq!(a.lock("run C").err().unwrap().kind, ErrorKind::Locked);
    a.break_lock().unwrap();
    a.lock("run C").unwrap().release().unwrap();
}

#[test]
fn s3_wrong_credentials_fail_clearly() {
    let srv = S3Server::start("auth");
    let e = Store::open(
        &srv.location("p"),
        &srv.env_with_secret("not-the-secret"),
        Options::default(),
    )
    .err()
    .expect("a wrong secret must fail");
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.is_fatal());
    let msg = e.to_string();
    assert!(
        msg.starts_with("s3://bkt/p: authentication failed"),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-secret") && !msg.contains(SECRET_KEY),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn s3_missing_bucket_fails_clearly() {
    let srv = S3Server::start("nobucket");
    let loc = Location::parse("s3://no-such-bucket/p").unwrap();
    let e = Store::open(&loc, &srv.env(), Options::default())
        .err()
        .expect("must fail");
    assert_eq!(e.kind, ErrorKind::BucketMissing, "{e}");
    assert!(e.is_fatal());
    assert!(
        e.to_string()
            .starts_with("s3://no-such-bucket/p: the bucket does not exist"),
        "{e}"
    );
}

#[test]
fn s3_unreachable_endpoint_fails_clearly() {
    let port = {
        let srv = S3Server::start("gone");
        srv.port
    }; // stopped: nothing listens there now
    let env = cryptbak::remote::Env::from_pairs([
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        (
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{port}").as_str(),
        ),
    ]);
    let opts = Options {
        retries: 0,
        ..Options::default()
    };
    let e = Store::open(&Location::parse("s3://b/p").unwrap(), &env, opts)
        .err()
        .expect("must fail");
    assert!(e.is_fatal(), "{e:?}");
    assert!(e.to_string().starts_with("s3://b/p: "), "{e}");
}

// ---- SFTP ---------------------------------------------------------------------------

#[test]
fn sftp_put_list_get_delete_round_trip() {
    let srv = SshServer::start("roundtrip");
    let store = Store::open(&srv.location("backup"), &srv.env(), Options::default()).unwrap();
    assert!(
        store.list().unwrap().is_empty(),
        "a missing directory lists empty"
    );
    assert_eq!(store.mtime_resolution_ns(), 1_000_000_000);

    store.mkdir("", &Meta::default()).unwrap();
    store
        .mkdir("d/e", &meta(1_600_000_000, 0, 0o40750))
        .unwrap();
    let small = data(5000, 1);
    let big = data(3 << 20, 2);
    store
        .put_bytes("d/small", &small, &meta(1_700_000_000, 999, 0o100640))
        .unwrap();
    let mut up = store
        .put(
            "d/e/big",
            big.len() as u64,
            &meta(1_000_000_000, 0, 0o100600),
        )
        .unwrap();
    for c in big.chunks(333_333) {
        up.write_all(c).unwrap();
    }
    up.finish().unwrap();
    // The directory's own times are set after its contents, as the export does.
    store
        .set_meta("d/e/", &meta(1_600_000_000, 0, 0o40750))
        .unwrap();

    // What the server wrote, on its disk.
    let root = srv.data.join("backup");
    assert_eq!(fs::read(root.join("d/small")).unwrap(), small);
    assert_eq!(fs::read(root.join("d/e/big")).unwrap(), big);
    let md = fs::metadata(root.join("d/small")).unwrap();
    assert_eq!((md.mode(), md.mtime()), (0o100640, 1_700_000_000));
    let md = fs::metadata(root.join("d/e")).unwrap();
    assert_eq!((md.mode(), md.mtime()), (0o40750, 1_600_000_000));

    let listed = store.list().unwrap();
    let summary: Vec<(&str, Kind, Option<u32>)> = listed
        .iter()
        .map(|e| (e.key.as_str(), e.kind, e.meta.mode))
        .collect();
    assert_eq!(
        summary,
        vec![
            // Made as a parent by `mkdir d/e`: whatever mode the server gave it.
            ("d/", Kind::Dir, Some(md_mode(&root.join("d")))),
            ("d/e/", Kind::Dir, Some(0o40750)),
            ("d/e/big", Kind::File, Some(0o100600)),
            ("d/small", Kind::File, Some(0o100640)),
        ]
    );
    let small_e = listed.iter().find(|e| e.key == "d/small").unwrap();
    assert!(small_e.meta_known);
    assert_eq!(
        small_e.meta.mtime,
        Some(Time {
            sec: 1_700_000_000,
            nsec: 0
        })
    );
    assert_eq!(small_e.size, small.len() as u64);

    assert_eq!(store.get("d/small").unwrap(), small);
    let r = (1 << 20) - 3..(2 << 20) + 5;
    assert_eq!(
        store.get_range("d/e/big", r.clone()).unwrap(),
        &big[r.start as usize..r.end as usize]
    );
    std::thread::scope(|s| {
        for i in 0..6u64 {
            let (store, big) = (&store, &big);
            s.spawn(move || {
                let r = i * 500_000..i * 500_000 + 400_000;
                assert_eq!(
                    store.get_range("d/e/big", r.clone()).unwrap(),
                    &big[r.start as usize..r.end as usize]
                );
            });
        }
    });

    // Symlinks: made, listed, read back, replaced.
    store.symlink("d/link", "c29tZSB0YXJnZXQ").unwrap();
    assert_eq!(
        fs::read_link(root.join("d/link")).unwrap(),
        std::path::Path::new("c29tZSB0YXJnZXQ")
    );
    store.symlink("d/link", "../other").unwrap();
    assert_eq!(store.read_link("d/link").unwrap(), "../other");
    let l = store.stat("d/link").unwrap().unwrap();
    assert_eq!(l.kind, Kind::Symlink);
    assert!(store
        .list()
        .unwrap()
        .iter()
        .any(|e| e.key == "d/link" && e.kind == Kind::Symlink));
    store.delete(&["d/link".into()]).unwrap();
    assert!(fs::symlink_metadata(root.join("d/link")).is_err());

    // Replacing a file is atomic and leaves no temporary behind.
    store
        .put_bytes("d/small", b"new", &meta(1, 0, 0o100644))
        .unwrap();
    assert_eq!(fs::read(root.join("d/small")).unwrap(), b"new");
    store
        .delete(&[
            "d/e/big".into(),
            "d/e/".into(),
            "d/small".into(),
            "gone".into(),
        ])
        .unwrap();
    let left: Vec<String> = store.list().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(left, ["d/"]);
}

fn md_mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).unwrap().mode()
}

#[test]
fn sftp_aborted_upload_leaves_nothing() {
    let srv = SshServer::start("abort");
    let store = Store::open(&srv.location("b"), &srv.env(), Options::default()).unwrap();
    store.mkdir("", &Meta::default()).unwrap();
    store.put_bytes("keep", b"old", &Meta::default()).unwrap();
    // Too few bytes: refused, the old file untouched, no temporary left.
    let mut up = store.put("keep", 100, &Meta::default()).unwrap();
    up.write_all(&[7; 50]).unwrap();
    assert_eq!(up.finish().unwrap_err().kind, ErrorKind::SizeMismatch);
    let mut up = store.put("other", 100, &Meta::default()).unwrap();
    up.write_all(&[7; 2 << 20]).unwrap();
    drop(up);
    let names: Vec<String> = fs::read_dir(srv.data.join("b"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["keep"]);
    assert_eq!(fs::read(srv.data.join("b/keep")).unwrap(), b"old");
}

#[test]
fn sftp_lock_has_one_holder() {
    let srv = SshServer::start("lock");
    let loc = srv.location("b");
    let a = Store::open(&loc, &srv.env(), Options::default()).unwrap();
    a.mkdir("", &Meta::default()).unwrap();
    let b = Store::open(&loc, &srv.env(), Options::default()).unwrap();
    let held = a.lock("run A").unwrap();
    assert!(held.enforced());
    let e = b.lock("run B").err().expect("second holder refused");
    assert_eq!(e.kind, ErrorKind::Locked, "{e}");
    assert!(e.to_string().contains("run A"), "{e}");
    assert!(a.list().unwrap().is_empty(), "the lock is not an entry");
    drop(held); // released on drop too
    b.lock("run B").unwrap().release().unwrap();
}

#[test]
fn sftp_rejected_key_fails_clearly() {
    let srv = SshServer::start("auth");
    let e = Store::open(
        &srv.location("b"),
        &srv.env_with_stranger_key(),
        Options::default(),
    )
    .err()
    .expect("an unknown key must be refused");
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("Permission denied"), "{msg}");
    assert!(
        msg.starts_with(&format!("sftp://127.0.0.1:{}/", srv.port)),
        "{msg}"
    );
}
