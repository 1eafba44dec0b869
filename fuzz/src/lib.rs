//! The checks behind each fuzz target, shared by `fuzz_targets/*` (driven by libFuzzer)
//! and by `tests/regressions.rs` (replaying `regressions/<target>/*` on stable Rust).
//!
//! Every function takes untrusted bytes, as a backup would hold them, and panics only
//! when cryptbak breaks a promise: a panic inside cryptbak, a name that decrypts to
//! something unsafe, a plaintext that does not round-trip, a write outside DEST.

pub mod entries;

use std::fs;
use std::io::Cursor;
use std::path::Path;

use cryptbak::format::config::{Config, Format};
use cryptbak::format::content::{self, Aead, ContentCipher, FileEncryptor, FileIvs};
use cryptbak::format::keys::{self, MasterKey};
use cryptbak::format::names::{self, NameCodec};
use cryptbak::format::Cryptor;
use cryptbak::progress::NoProgress;
use cryptbak::restore::{self, RestoreOptions};

/// The key every target uses; `fuzz/make-seeds.sh` exports the seed corpus with it.
pub const MASTER_KEY_HEX: &str =
    "8f2a6c1e-4b7d9e30-a5c2f18b-7e6d3c4a-19b8f2e7-d5a4c3b2-e1f0a9b8-c7d6e5f4";

pub fn master() -> MasterKey {
    MasterKey::from_hex(MASTER_KEY_HEX).expect("valid hex")
}

/// `gocryptfs.conf` / `.gocryptfs.reverse.conf`: parsing never panics, and what parses
/// is written back to JSON that parses to the same config.
pub fn config(data: &[u8]) {
    let Ok(cfg) = Config::parse(data) else {
        return;
    };
    let json = cfg.to_json();
    let again = Config::parse(json.as_bytes())
        .unwrap_or_else(|e| panic!("our own JSON does not parse: {e}\n{json}"));
    assert_eq!(again.to_json(), json, "JSON round trip changed the config");
    assert_eq!(again.format(), cfg.format());
    // Unwrapping with a wrong password must fail cleanly; only cheap scrypt costs, so
    // the fuzzer spends its time on parsing, not on scrypt.
    if cfg.scrypt.log_n <= 10 && cfg.scrypt.r <= 8 && cfg.scrypt.p <= 1 {
        let _ = cfg.unlock(b"not the password");
    }
}

/// Encrypted names: `data` = flags byte ‖ 16-byte dir IV ‖ name bytes.
///
/// A ciphertext name either fails with an error or decrypts to a name that is safe to
/// create (no `/`, NUL, `.`, `..`), and is the one canonical encryption of that name
/// (so two entries of one directory cannot decrypt to the same plaintext). The same
/// bytes taken as a plaintext name must round-trip.
pub fn names(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < 16 {
        return;
    }
    let (iv, name) = rest.split_at(16);
    let iv: [u8; 16] = iv.try_into().unwrap();
    let raw64 = flags & 1 != 0;
    let long_name_max = (flags & 2 != 0).then_some(62 + (flags >> 2) % 194);
    let key = keys::name_key(&master(), true);
    let codec = NameCodec::new(&key, raw64, true, long_name_max);

    if let Ok(plain) = codec.decrypt(&iv, name) {
        assert!(
            names::is_valid_plain_name(&plain),
            "unsafe plaintext name {plain:?}"
        );
        assert_eq!(
            codec.encrypt(&iv, &plain).as_bytes(),
            name,
            "a non-canonical ciphertext name was accepted"
        );
    }
    if names::is_valid_plain_name(name) {
        let c = codec.encrypt(&iv, name);
        assert_eq!(codec.decrypt(&iv, c.as_bytes()).as_deref(), Ok(name));
        if codec.is_long(&c) {
            let long = codec.long_name(&c);
            assert!(long.len() <= names::NAME_MAX);
            let (hash, is_name_file) =
                names::parse_long_name(long.as_bytes()).expect("our own long name");
            assert!(!is_name_file && !hash.is_empty());
        }
    }
    let _ = names::parse_long_name(name);
}

/// File contents and symlink targets: `data` = flags byte ‖ bytes.
///
/// Decrypting arbitrary bytes never panics and, when it claims success, produced the
/// plaintext length the ciphertext length implies. Taken as plaintext, the bytes must
/// encrypt identically through the 8-lane AES-SIV (`FileEncryptor`) and the reference
/// `aes-siv` crate (block by block), and decrypt back.
pub fn content(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let master = master();
    let aead = match flags % 4 {
        0 => Some(Aead::Siv),
        1 => Some(Aead::Gcm),
        2 => Some(Aead::XChaCha),
        _ => None, // detect, as a restore without a config does
    };
    let allow_holes = flags & 4 != 0;
    let dec = match aead {
        Some(a) => ContentCipher::for_aead(&master, true, a).unwrap(),
        None => ContentCipher::detecting(&master, true),
    };

    let mut out = Vec::new();
    let rep = dec
        .decrypt_file(&mut Cursor::new(body), &mut out, allow_holes)
        .expect("in-memory I/O cannot fail");
    assert_eq!(rep.plain_len, out.len() as u64);
    if rep.is_ok() {
        let geometry = dec.aead().unwrap_or(Aead::Siv);
        if let Some(n) = geometry.plain_size(body.len() as u64) {
            assert_eq!(n, out.len() as u64, "length does not match the cipher size");
        }
    }
    let _ = dec.open_symlink(body);

    // Differential: lanes vs reference, then back.
    let cipher = ContentCipher::new(keys::siv_key(&master, true));
    let ivs = FileIvs::for_path(&data[..data.len().min(40)]);
    let mut sealed = Vec::new();
    let n = FileEncryptor::new(&cipher)
        .encrypt(&ivs, &mut Cursor::new(body), &mut sealed)
        .unwrap();
    assert_eq!(n, body.len() as u64);
    assert_eq!(sealed.len() as u64, content::cipher_size(n));
    if !body.is_empty() {
        let mut reference = content::header(&ivs.file_id).to_vec();
        let mut siv = cipher.siv();
        for (i, block) in body.chunks(content::BLOCK_SIZE).enumerate() {
            let mut o = vec![0u8; block.len() + content::BLOCK_OVERHEAD];
            content::seal_block(&mut siv, &ivs, i as u64, block, &mut o);
            reference.extend_from_slice(&o);
        }
        assert!(sealed == reference, "8-lane AES-SIV differs from aes-siv");
    }
    let siv_dec = ContentCipher::for_aead(&master, true, Aead::Siv).unwrap();
    let mut back = Vec::new();
    let rep = siv_dec
        .decrypt_file(&mut Cursor::new(&sealed), &mut back, false)
        .unwrap();
    assert!(rep.is_ok(), "{}", rep.describe());
    assert!(back == body, "decrypt(encrypt(x)) != x");

    let nonce: [u8; 16] = ivs.block0;
    let blob = content::seal_symlink(&cipher, &nonce, body);
    assert_eq!(siv_dec.open_symlink(&blob).as_deref(), Some(body));
}

/// `cryptbak restore --tar` of arbitrary bytes into an empty DEST: never panics, never
/// creates anything outside DEST, and `verify --tar` of the same bytes reaches the same
/// verdict.
pub fn restore_tar(data: &[u8]) {
    let root = scratch();
    let restored = restore_into(data, &root.path().join("dest"));
    if let Ok(s) = &restored {
        check_summary(s, data);
    }
    check_same_verdict(&restored, data);
    check_only_dest(root.path());
}

/// verify is restore into a writer that discards: for one stream, the counts of what is
/// restored and of what fails must be the same.
fn check_same_verdict(restored: &cryptbak::Result<restore::Summary>, tar: &[u8]) {
    let verified = verify_tar(tar);
    match (restored, &verified) {
        (Ok(r), Ok(v)) => {
            let key = |s: &restore::Summary| {
                (
                    s.files,
                    s.dirs,
                    s.symlinks,
                    s.specials,
                    s.hard_links,
                    s.errors,
                    s.integrity_errors,
                    s.layout,
                )
            };
            assert_eq!(key(r), key(v), "restore and verify disagree: {r:?} / {v:?}");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("restore and verify disagree: {restored:?} / {verified:?}"),
    }
}

/// `verify --tar` of `tar` with the harness's key.
pub fn verify_tar(tar: &[u8]) -> cryptbak::Result<restore::Summary> {
    cryptbak::verify::verify_tar(
        tar,
        std::path::Path::new("fuzz.tar"),
        |_| Ok(Cryptor::new(&master(), Format::DEFAULT_REVERSE).expect("AES-SIV format")),
        false,
        &cryptbak::verify::VerifyOptions::default(),
        &NoProgress,
    )
}

/// No count of a restore can be far beyond the number of tar records (512-byte blocks)
/// it was given (an entry yields a few reports at most): a larger one is a counter that
/// went below zero.
fn check_summary(s: &restore::Summary, tar: &[u8]) {
    let bound = 4 * (tar.len() / 512) as u64 + 4;
    for (what, n) in [
        ("dirs", s.dirs),
        ("files", s.files),
        ("symlinks", s.symlinks),
        ("specials", s.specials),
        ("hard links", s.hard_links),
        ("errors", s.errors),
        ("integrity errors", s.integrity_errors),
        ("warnings", s.warnings),
    ] {
        assert!(n <= bound, "{what} = {n} from {bound} tar records: {s:?}");
    }
}

/// `restore --tar` of `tar` into `dest` with the harness's key (reverse format, AES-SIV).
pub fn restore_into(tar: &[u8], dest: &Path) -> cryptbak::Result<restore::Summary> {
    restore::restore_tar(
        tar,
        dest,
        |_| Ok(Cryptor::new(&master(), Format::DEFAULT_REVERSE).expect("AES-SIV format")),
        false,
        &RestoreOptions::default(),
        &NoProgress,
    )
}

/// A fresh directory; the restore goes into `dest` below it.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cryptbak-fuzz-")
        .tempdir()
        .expect("temp dir")
}

/// Nothing but `dest` may exist in the scratch directory after a restore; `dest` is made
/// removable (restored directories may be read-only).
fn check_only_dest(root: &Path) {
    let outside: Vec<_> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "dest")
        .collect();
    assert!(outside.is_empty(), "written outside DEST: {outside:?}");
    make_removable(&root.join("dest"));
}

/// A tar stream built from structured ops (see [`entries`]): correctly encrypted
/// entries mixed with hostile ones. Beyond the checks of [`restore_tar`], DEST may only
/// hold paths, contents and symlink targets the harness encrypted from safe plaintext.
pub fn restore_tar_entries(data: &[u8]) {
    let Some((tar, made)) = entries::build(data, &master()) else {
        return;
    };
    let root = scratch();
    let dest = root.path().join("dest");
    let restored = restore_into(&tar, &dest);
    if let Ok(s) = &restored {
        check_summary(s, &tar);
    }
    check_same_verdict(&restored, &tar);
    entries::check_dest(&dest, &made);
    check_only_dest(root.path());
}

/// Restored directories may be read-only; the temp dir must still go away.
fn make_removable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(md) = fs::symlink_metadata(p) else {
        return;
    };
    if md.is_dir() {
        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                make_removable(&e.path());
            }
        }
    }
}
