//! Structured tar streams for `restore_tar_entries`: the fuzzer chooses a list of
//! entries, and this builds them the way an export (or an attacker holding only the
//! ciphertext, or the key) would: correctly encrypted names and contents, names that
//! decrypt to `..`, `/` or NUL, long names with missing or wrong `.name` files, bit
//! flips, duplicates, hard links anywhere, bad `gocryptfs.diriv` files.
//!
//! The oracle: whatever DEST ends up holding must be something the harness encrypted
//! from a safe plaintext: every path is a plaintext path it used, every file holds one
//! of the plaintexts it encrypted (never a flipped or made-up one), every symlink one of
//! the targets it encrypted; nothing lies outside DEST.

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use cryptbak::cpath;
use cryptbak::format::content::{self, ContentCipher, FileEncryptor, FileIvs};
use cryptbak::format::keys;
use cryptbak::format::names::{self, eme::Eme, NameCodec};
use cryptbak::format::pathiv::{self, Purpose};

#[derive(Arbitrary, Debug)]
enum Name {
    /// One of a few names, so that entries collide.
    Pick(u8),
    /// Any bytes as plaintext: `..`, `a/b`, NUL and over-long names included.
    Plain(Vec<u8>),
    /// Literal ciphertext-side bytes (`gocryptfs.conf`, `../x`, garbage).
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Body {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    /// A hard link to the entry made by op number `n` (or to a literal path).
    HardLink(u8),
    HardLinkRaw(Vec<u8>),
    Fifo,
    /// Arbitrary bytes as file content, not encrypted.
    RawFile(Vec<u8>),
    /// A `gocryptfs.diriv` with these bytes, in the parent directory.
    DirIv(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Op {
    /// Index into the directories made so far (0 = root).
    parent: u8,
    name: Name,
    body: Body,
    mode: u16,
    mtime: u32,
    /// Flip a bit of the content at this offset (mod length).
    flip: Option<u16>,
    /// For long names: what to do with the `.name` file.
    name_file: NameFile,
    /// Emit the `.name` file before the entry instead of after.
    name_file_first: bool,
}

#[derive(Arbitrary, Debug, PartialEq)]
enum NameFile {
    Right,
    Missing,
    Wrong(Vec<u8>),
}

const MAX_OPS: usize = 64;

const PICKS: [&[u8]; 6] = [
    b"a",
    b"b",
    b"dir",
    b"..",
    b"x/y",
    b"a-name-long-enough-to-need-the-hashed-long-name-form-because-its-base64-exceeds-255-bytes-once-encrypted-and-encoded-so-this-goes-on-for-a-while-longer-still-more-bytes-here-and-here-and-some-more-padding-to-be-very-sure-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
];

/// What the harness made, to check DEST against.
#[derive(Default)]
pub struct Made {
    /// Plaintext paths of entries whose names are safe (relative to DEST).
    pub paths: HashSet<Vec<u8>>,
    pub contents: HashSet<Vec<u8>>,
    pub targets: HashSet<Vec<u8>>,
}

struct Builder {
    codec: NameCodec,
    eme: Eme,
    content: ContentCipher,
    tar: tar::Builder<Vec<u8>>,
}

impl Builder {
    /// Encrypt any bytes as a name, even ones `NameCodec::encrypt` refuses to.
    fn encrypt_name(&self, dir_iv: &[u8; 16], name: &[u8]) -> String {
        let pad = 16 - name.len() % 16;
        let mut padded = name.to_vec();
        padded.resize(name.len() + pad, pad as u8);
        self.codec.b64_encode(&self.eme.encrypt(dir_iv, &padded))
    }

    /// (plaintext, name as shown in the directory, full encrypted name if hashed).
    fn shown(&self, dir_iv: &[u8; 16], plain: &[u8]) -> (Option<Vec<u8>>, Vec<u8>, Option<String>) {
        let cname = self.encrypt_name(dir_iv, plain);
        if self.codec.is_long(&cname) {
            let long = self.codec.long_name(&cname).into_bytes();
            (Some(plain.to_vec()), long, Some(cname))
        } else {
            (Some(plain.to_vec()), cname.into_bytes(), None)
        }
    }

    fn append(&mut self, path: &[u8], kind: tar::EntryType, mode: u32, mtime: u32, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(u64::from(mtime));
        h.set_size(data.len() as u64);
        let _ = self
            .tar
            .append_data(&mut h, Path::new(std::ffi::OsStr::from_bytes(path)), data);
    }

    fn append_link(&mut self, path: &[u8], kind: tar::EntryType, target: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o777);
        h.set_size(0);
        let _ = self.tar.append_link(
            &mut h,
            Path::new(std::ffi::OsStr::from_bytes(path)),
            Path::new(std::ffi::OsStr::from_bytes(target)),
        );
    }
}

/// Builds the tar stream the fuzzer's bytes describe; `None` if they describe nothing.
pub fn build(data: &[u8], master: &keys::MasterKey) -> Option<(Vec<u8>, Made)> {
    let mut u = Unstructured::new(data);
    // Ops until the bytes run out (not arbitrary's length prefix), so random bytes
    // already describe many entries.
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        ops.push(Op::arbitrary(&mut u).ok()?);
    }
    let name_key = keys::name_key(master, true);
    let mut b = Builder {
        codec: NameCodec::new(&name_key, true, true, None),
        eme: Eme::new(&name_key),
        content: ContentCipher::new(keys::siv_key(master, true)),
        tar: tar::Builder::new(Vec::new()),
    };
    let mut made = Made::default();
    made.contents.insert(Vec::new()); // an empty file needs no authentication
                                      // (plaintext path, cpath, safe) of the root and of each directory made.
    let mut dirs: Vec<(Vec<u8>, Vec<u8>, bool)> = vec![(Vec::new(), Vec::new(), true)];
    b.append(
        b"gocryptfs.diriv",
        tar::EntryType::Regular,
        0o444,
        0,
        &pathiv::derive(b"", Purpose::DirIv),
    );
    let mut cpaths: Vec<Vec<u8>> = Vec::new();

    for op in &ops {
        let (pplain, pcpath, psafe) = dirs[usize::from(op.parent) % dirs.len()].clone();
        let dir_iv = pathiv::derive(&pcpath, Purpose::DirIv);
        let (plain, shown, full) = match &op.name {
            Name::Raw(raw) => (None, raw.clone(), None),
            Name::Pick(i) => b.shown(&dir_iv, PICKS[usize::from(*i) % PICKS.len()]),
            Name::Plain(p) => b.shown(&dir_iv, p),
        };
        let cpath = cpath::join(&pcpath, &shown);
        // A path the restore may create: every component a safe plaintext name.
        let safe_plain = match &plain {
            Some(p) if psafe && names::is_valid_plain_name(p) => Some(cpath::join(&pplain, p)),
            _ => None,
        };
        let name_file = full.as_ref().and_then(|cname| {
            let file = cpath::join(
                &pcpath,
                format!("{}.name", String::from_utf8_lossy(&shown)).as_bytes(),
            );
            match &op.name_file {
                NameFile::Right => Some((file, cname.as_bytes().to_vec())),
                NameFile::Missing => None,
                NameFile::Wrong(w) => Some((file, w.clone())),
            }
        });
        if op.name_file_first {
            if let Some((f, c)) = &name_file {
                b.append(f, tar::EntryType::Regular, 0o444, op.mtime, c);
            }
        }
        let mode = u32::from(op.mode) & 0o7777;
        match &op.body {
            Body::File(plaintext) => {
                let ivs = FileIvs::for_path(&cpath);
                let mut sealed = Vec::new();
                FileEncryptor::new(&b.content)
                    .encrypt(&ivs, &mut &plaintext[..], &mut sealed)
                    .unwrap();
                match op.flip {
                    Some(at) if !sealed.is_empty() => {
                        let i = usize::from(at) % sealed.len();
                        sealed[i] ^= 1;
                    }
                    _ => {
                        made.contents.insert(plaintext.clone());
                    }
                }
                b.append(&cpath, tar::EntryType::Regular, mode, op.mtime, &sealed);
            }
            Body::RawFile(bytes) => {
                b.append(&cpath, tar::EntryType::Regular, mode, op.mtime, bytes)
            }
            Body::Dir => {
                b.append(&cpath, tar::EntryType::Directory, mode, op.mtime, &[]);
                b.append(
                    &cpath::join(&cpath, b"gocryptfs.diriv"),
                    tar::EntryType::Regular,
                    0o444,
                    op.mtime,
                    &pathiv::derive(&cpath, Purpose::DirIv),
                );
                // A raw name such as `` or `.` may name a directory made before (tar
                // drops those components): then it *is* that directory.
                let same = dirs.iter().find(|d| d.1 == normalize(&cpath)).cloned();
                match (same, &safe_plain) {
                    (Some(d), None) => dirs.push(d),
                    (_, Some(p)) => dirs.push((p.clone(), cpath.clone(), true)),
                    (None, None) => dirs.push((Vec::new(), cpath.clone(), false)),
                }
            }
            Body::Symlink(target) => {
                let nonce = pathiv::derive(&pathiv::symlink_iv_path(&cpath), Purpose::SymlinkIv);
                let mut blob = content::seal_symlink(&b.content, &nonce, target);
                match op.flip {
                    Some(at) => {
                        let i = usize::from(at) % blob.len();
                        blob[i] ^= 1;
                    }
                    None => {
                        made.targets.insert(target.clone());
                    }
                }
                let stored = b.codec.b64_encode(&blob);
                b.append_link(&cpath, tar::EntryType::Symlink, stored.as_bytes());
            }
            Body::HardLink(n) => {
                if let Some(target) = cpaths.get(usize::from(*n)).cloned() {
                    b.append_link(&cpath, tar::EntryType::Link, &target);
                }
            }
            Body::HardLinkRaw(target) => b.append_link(&cpath, tar::EntryType::Link, target),
            Body::Fifo => b.append(&cpath, tar::EntryType::Fifo, mode, op.mtime, &[]),
            Body::DirIv(bytes) => b.append(
                &cpath::join(&pcpath, b"gocryptfs.diriv"),
                tar::EntryType::Regular,
                0o444,
                op.mtime,
                bytes,
            ),
        }
        if !op.name_file_first {
            if let Some((f, c)) = &name_file {
                b.append(f, tar::EntryType::Regular, 0o444, op.mtime, c);
            }
        }
        if let Some(p) = safe_plain {
            // Every ancestor of a safe path is itself a path the harness made.
            made.paths.insert(p);
        }
        cpaths.push(cpath);
    }
    if std::env::var_os("CRYPTBAK_FUZZ_DEBUG").is_some() {
        eprintln!("{ops:#?}\npaths: {:?}", made.paths);
    }
    let tar = b.tar.into_inner().ok()?;
    Some((tar, made))
}

/// `cpath` without empty and `.` components, as a tar reader sees it.
fn normalize(cpath: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = cpath
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    parts.join(&b'/')
}

/// Checks DEST against what the harness made (see the module comment).
pub fn check_dest(dest: &Path, made: &Made) {
    fn walk(dir: &Path, rel: &[u8], made: &Made) {
        let Ok(rd) = fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let rel = cpath::join(rel, e.file_name().as_bytes());
            assert!(
                made.paths.contains(&rel),
                "DEST holds {:?}, a path the backup never safely named",
                String::from_utf8_lossy(&rel)
            );
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                walk(&e.path(), &rel, made);
            } else if md.file_type().is_symlink() {
                let t = fs::read_link(e.path()).unwrap();
                assert!(
                    made.targets.contains(t.as_os_str().as_bytes()),
                    "symlink {:?} -> {t:?} was never encrypted (tampered target restored)",
                    String::from_utf8_lossy(&rel)
                );
            } else if md.is_file() {
                let got = fs::read(e.path()).unwrap();
                assert!(
                    made.contents.contains(&got),
                    "file {:?} holds {} bytes that were never encrypted (unauthenticated content restored)",
                    String::from_utf8_lossy(&rel),
                    got.len()
                );
            }
        }
    }
    walk(dest, b"", made);
}
