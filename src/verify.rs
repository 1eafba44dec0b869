//! Verify a ciphertext directory without writing any plaintext: the `gocryptfs -fsck`
//! that reverse-made trees never had (see `docs/verify.md`).
//!
//! Every block of every file, every name, every long-name `.name` file and every symlink
//! target is authenticated with the restore library's pieces ([`Decryptor`],
//! [`NameCodec`]); decrypted content goes to [`std::io::sink`]. For reverse-made trees
//! (cryptbak export, a copy of a `gocryptfs -reverse` mount) the stored dir IVs, file IDs
//! and symlink nonces are also checked against the IVs their ciphertext paths give
//! (FORMAT.md §4), which catches moved and swapped files that authenticate on their own.
//!
//! Unlike the restore engine, the walk needs no waiting: a directory source hands over a
//! directory's `gocryptfs.diriv` and `.name` files with its listing, and the layout is
//! decided before the walk by a short probe ([`probe_layout`]), so one directory is one
//! rayon task and nothing is held in memory but hard-linked inodes.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::Result;
use crate::format::config::Format;
use crate::format::content::{Aead, ContentCipher, HEADER_LEN};
use crate::format::names::{is_valid_plain_name, NameCodec, DIRIV_NAME, LONGNAME_PREFIX};
use crate::format::pathiv::{self, Purpose};
use crate::format::Cryptor;
use crate::progress::{Problem, Progress};
use crate::restore::engine::{join_cpath, long_name_matches, show_cpath, CPath, Layout};
use crate::restore::source_dir::{classify, read_small, root_meta, Special};
use crate::restore::MAX_NAME_FILE;

/// Entries the layout probe looks at before it settles for forward mode.
const PROBE_LIMIT: usize = 256;

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The backup is known to be reverse-made: require path-derived IVs throughout.
    pub expect_reverse: bool,
}

/// Counts of one verify run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub specials: u64,
    /// Names decrypted and authenticated (EME has no tag: "valid padding and a legal name").
    pub names: u64,
    /// Plaintext bytes of the files whose every block authenticated.
    pub bytes: u64,
    pub warnings: u64,
    /// Entries that could not be read.
    pub errors: u64,
    /// Entries that failed authentication or the path checks of reverse-made trees.
    pub integrity_errors: u64,
    /// Files, names and symlinks that authenticated (0 with errors hints at a wrong key).
    pub authenticated: u64,
    pub layout: Layout,
    pub aead: Option<Aead>,
    /// In a tree taken as forward-mode: values that nevertheless matched their path
    /// (a reverse-made tree whose first entries were tampered with; use `--reverse`).
    pub reverse_hints: u64,
}

#[derive(Default)]
struct Counters {
    dirs: AtomicU64,
    files: AtomicU64,
    symlinks: AtomicU64,
    specials: AtomicU64,
    names: AtomicU64,
    bytes: AtomicU64,
    warnings: AtomicU64,
    errors: AtomicU64,
    integrity_errors: AtomicU64,
    authenticated: AtomicU64,
    reverse_hints: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// All names of one multiply linked inode, and what its content check found.
struct Inode {
    names: Vec<(CPath, Option<PathBuf>)>,
    /// The file ID of an authentic file (`None` while unchecked, empty or failed).
    file_id: Option<[u8; 16]>,
}

struct Verifier<'a> {
    root: &'a Path,
    format: Format,
    codec: Option<NameCodec>,
    dec: ContentCipher,
    layout: Layout,
    progress: &'a dyn Progress,
    c: Counters,
    inodes: Mutex<HashMap<(u64, u64), Inode>>,
}

/// Authenticate everything in the ciphertext directory `backup`; nothing is written.
pub fn verify_dir(
    backup: &Path,
    keys: Cryptor,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let Cryptor {
        format,
        names: codec,
        content: dec,
    } = keys;
    root_meta(backup)?;
    let layout = if opts.expect_reverse {
        Layout::Reverse
    } else if dec.aead().is_some_and(|a| a != Aead::Siv) {
        // Reverse mode always uses AES-SIV.
        Layout::Forward
    } else {
        probe_layout(backup, &format, codec.as_ref())
    };
    let v = Verifier {
        root: backup,
        format,
        codec,
        dec,
        layout,
        progress,
        c: Counters::default(),
        inodes: Mutex::new(HashMap::new()),
    };
    v.visit_dir(backup.to_path_buf(), Vec::new(), Some(PathBuf::new()));
    v.judge_hard_links();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let c = &v.c;
    Ok(Summary {
        dirs: get(&c.dirs),
        files: get(&c.files),
        symlinks: get(&c.symlinks),
        specials: get(&c.specials),
        names: get(&c.names),
        bytes: get(&c.bytes),
        warnings: get(&c.warnings),
        errors: get(&c.errors),
        integrity_errors: get(&c.integrity_errors),
        authenticated: get(&c.authenticated),
        layout,
        aead: v.dec.aead(),
        reverse_hints: get(&c.reverse_hints),
    })
}

/// Whether the tree is reverse-made: the first stored dir IV, file ID or symlink nonce
/// (breadth first, at most [`PROBE_LIMIT`] entries) that equals the value its path gives
/// decides. Forward mode's random IVs cannot match by chance. No key is needed.
pub fn probe_layout(backup: &Path, format: &Format, codec: Option<&NameCodec>) -> Layout {
    let mut queue = std::collections::VecDeque::from([(backup.to_path_buf(), Vec::new())]);
    let mut seen = 0usize;
    while let Some((dir, cpath)) = queue.pop_front() {
        if codec.is_some() && format.dir_iv {
            if let Ok(iv) = read_small(&dir.join(DIRIV_NAME), 16) {
                if iv == pathiv::derive(&cpath, Purpose::DirIv) {
                    return Layout::Reverse;
                }
            }
        }
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            seen += 1;
            if seen > PROBE_LIMIT {
                return Layout::Forward;
            }
            let name = e.file_name();
            let b = name.as_bytes();
            let special = classify(
                codec.is_some(),
                codec.is_some() && format.dir_iv,
                format.long_names,
                cpath.is_empty(),
                b,
            );
            if !matches!(special, Special::Entry) {
                continue;
            }
            let c = join_cpath(&cpath, b);
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                queue.push_back((e.path(), c));
            } else if ft.is_file() {
                let Ok(h) = read_small(&e.path(), HEADER_LEN) else {
                    continue;
                };
                if h.len() == HEADER_LEN && h[2..] == pathiv::derive(&c, Purpose::FileId) {
                    return Layout::Reverse;
                }
            } else if ft.is_symlink() {
                let (Some(codec), Ok(t)) = (codec, fs::read_link(e.path())) else {
                    continue;
                };
                let derived = pathiv::derive(&pathiv::symlink_iv_path(&c), Purpose::SymlinkIv);
                if codec
                    .b64_decode(t.as_os_str().as_bytes())
                    .is_some_and(|blob| blob.len() >= 16 && blob[..16] == derived)
                {
                    return Layout::Reverse;
                }
            }
        }
    }
    Layout::Forward
}

/// ` [plaintext: a/b]`, or nothing when the plaintext path is not known.
fn plain_note(plain: Option<&Path>) -> String {
    match plain {
        Some(p) if !p.as_os_str().is_empty() => format!(" [plaintext: {}]", p.display()),
        Some(_) => " [plaintext: the backup's root]".into(),
        None => String::new(),
    }
}

impl Verifier<'_> {
    fn fs_path(&self, cpath: &[u8]) -> PathBuf {
        self.root.join(show_cpath(cpath))
    }

    fn warn(&self, cpath: &[u8], msg: impl Into<String>) {
        inc(&self.c.warnings, 1);
        self.progress
            .problem(&Problem::warning(self.fs_path(cpath), msg));
    }

    fn error(&self, cpath: &[u8], plain: Option<&Path>, msg: impl std::fmt::Display) {
        inc(&self.c.errors, 1);
        self.progress.problem(&Problem::error(
            self.fs_path(cpath),
            format!("{msg}{}", plain_note(plain)),
        ));
    }

    fn integrity(&self, cpath: &[u8], plain: Option<&Path>, msg: impl std::fmt::Display) {
        inc(&self.c.integrity_errors, 1);
        self.progress.problem(&Problem::error(
            self.fs_path(cpath),
            format!("integrity check failed: {msg}{}", plain_note(plain)),
        ));
    }

    /// A stored value and the one its path gives: an error in a reverse-made tree.
    fn path_check(&self, matched: bool) -> bool {
        match self.layout {
            Layout::Reverse => matched,
            _ => {
                if matched {
                    inc(&self.c.reverse_hints, 1);
                }
                true
            }
        }
    }

    /// The name tweak of directory `cpath`, after checking its `gocryptfs.diriv`;
    /// `None` if the names below it cannot be decrypted.
    fn dir_iv(&self, cpath: &[u8], plain: Option<&Path>, has_diriv: bool) -> Option<[u8; 16]> {
        if self.codec.is_none() || !self.format.dir_iv {
            return Some([0; 16]);
        }
        let diriv = join_cpath(cpath, DIRIV_NAME.as_bytes());
        let stored = if has_diriv {
            match read_small(&self.fs_path(&diriv), 16) {
                Ok(b) => match <[u8; 16]>::try_from(b.as_slice()) {
                    Ok(iv) => Some(iv),
                    Err(_) => {
                        self.integrity(
                            &diriv,
                            plain,
                            format_args!("gocryptfs.diriv has {} bytes, not 16", b.len()),
                        );
                        None
                    }
                },
                Err(e) => {
                    self.error(&diriv, plain, format_args!("cannot read: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let derived = pathiv::derive(cpath, Purpose::DirIv);
        match self.layout {
            Layout::Reverse => {
                match stored {
                    Some(iv) if iv != derived => self.integrity(
                        &diriv,
                        plain,
                        "gocryptfs.diriv does not match its directory's path (tampered, or the directory was moved); names were checked with the IV derived from the path",
                    ),
                    Some(_) => {}
                    None if !has_diriv => self.warn(
                        cpath,
                        "gocryptfs.diriv is missing; recomputed from the path (reverse-made backup)",
                    ),
                    None => {}
                }
                Some(derived)
            }
            _ => {
                if let Some(iv) = stored {
                    self.path_check(iv == derived);
                } else if !has_diriv {
                    self.integrity(
                        cpath,
                        plain,
                        "gocryptfs.diriv is missing: the names below cannot be checked (forward-mode directory IVs are random); contents are still checked",
                    );
                }
                stored
            }
        }
    }

    fn visit_dir(&self, dir: PathBuf, cpath: CPath, plain: Option<PathBuf>) {
        if !cpath.is_empty() {
            inc(&self.c.dirs, 1);
        }
        let mut names: Vec<OsString> = Vec::new();
        match fs::read_dir(&dir) {
            Ok(rd) => {
                for item in rd {
                    match item {
                        Ok(i) => names.push(i.file_name()),
                        Err(e) => {
                            self.error(&cpath, plain.as_deref(), format_args!("cannot list: {e}"))
                        }
                    }
                }
            }
            Err(e) => {
                return self.error(&cpath, plain.as_deref(), format_args!("cannot list: {e}"));
            }
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let has_names = self.codec.is_some();
        let mut has_diriv = false;
        let mut name_files: HashSet<&[u8]> = HashSet::new();
        let mut entries: Vec<&OsString> = Vec::with_capacity(names.len());
        for n in &names {
            let b = n.as_bytes();
            match classify(
                has_names,
                has_names && self.format.dir_iv,
                self.format.long_names,
                cpath.is_empty(),
                b,
            ) {
                Special::Config => {}
                Special::DirIv => has_diriv = true,
                Special::NameFile(entry) => {
                    name_files.insert(entry);
                }
                Special::Temp => self.warn(
                    &join_cpath(&cpath, b),
                    "leftover temporary file of an interrupted export; ignored",
                ),
                Special::Entry => entries.push(n),
            }
        }
        for nf in &name_files {
            if entries.binary_search_by(|e| e.as_bytes().cmp(nf)).is_err() {
                let mut p = join_cpath(&cpath, nf);
                p.extend_from_slice(b".name");
                self.warn(&p, "long-name file without its entry; ignored");
            }
        }
        let iv = self.dir_iv(&cpath, plain.as_deref(), has_diriv);
        entries.par_iter().for_each(|name| {
            let b = name.as_bytes();
            let child = join_cpath(&cpath, b);
            let child_plain = match (&plain, iv) {
                (Some(p), Some(iv)) => self
                    .plain_name(&child, b, &iv, p)
                    .map(|n| p.join(OsStr::from_bytes(&n))),
                (None, Some(iv)) => {
                    // The parent's own name failed: still check this one.
                    let _ = self.plain_name(&child, b, &iv, Path::new(""));
                    None
                }
                _ => None,
            };
            self.visit(dir.join(name), child, child_plain);
        });
    }

    /// Decrypt and check one name (reading its `.name` file for long names).
    fn plain_name(
        &self,
        cpath: &[u8],
        comp: &[u8],
        iv: &[u8; 16],
        parent: &Path,
    ) -> Option<Vec<u8>> {
        let report = |msg: String| {
            let where_ = if parent.as_os_str().is_empty() {
                String::new()
            } else {
                format!(" (in plaintext directory {})", parent.display())
            };
            self.integrity(cpath, None, format_args!("{msg}{where_}"));
            None
        };
        let Some(codec) = &self.codec else {
            if !is_valid_plain_name(comp) {
                return report(
                    "forbidden name (empty, '.', '..', or containing '/' or NUL)".into(),
                );
            }
            return Some(comp.to_vec());
        };
        let long = self.format.long_names && comp.starts_with(LONGNAME_PREFIX.as_bytes());
        let cname = if long {
            let mut nf = cpath.to_vec();
            nf.extend_from_slice(b".name");
            match read_small(&self.fs_path(&nf), MAX_NAME_FILE) {
                Ok(c) if c.len() > MAX_NAME_FILE => return report("its .name file is too long".into()),
                Ok(c) if long_name_matches(codec, comp, &c) => c,
                Ok(_) => {
                    return report(
                        "its .name file does not match the hashed name (tampered or swapped .name file)"
                            .into(),
                    )
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return report("its long-name file .name is missing: the name cannot be checked".into())
                }
                Err(e) => {
                    self.error(&nf, None, format_args!("cannot read: {e}"));
                    return None;
                }
            }
        } else {
            comp.to_vec()
        };
        match codec.decrypt(iv, &cname) {
            Ok(n) => {
                inc(&self.c.names, 1);
                inc(&self.c.authenticated, 1);
                Some(n)
            }
            Err(e) => report(format!("cannot decrypt name: {e}")),
        }
    }

    fn visit(&self, path: PathBuf, cpath: CPath, plain: Option<PathBuf>) {
        let md = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                return self.error(&cpath, plain.as_deref(), format_args!("cannot stat: {e}"))
            }
        };
        let ft = md.file_type();
        if ft.is_dir() {
            self.visit_dir(path, cpath, plain);
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let mut inodes = self.inodes.lock().expect("no panics while held");
                let key = (md.dev(), md.ino());
                if let Some(i) = inodes.get_mut(&key) {
                    // Another name of a file checked once (hard links share their bytes).
                    i.names.push((cpath, plain));
                    return;
                }
                inodes.insert(
                    key,
                    Inode {
                        names: vec![(cpath.clone(), plain.clone())],
                        file_id: None,
                    },
                );
            }
            self.verify_file(
                &path,
                &cpath,
                plain.as_deref(),
                md.nlink() > 1,
                (md.dev(), md.ino()),
            );
        } else if ft.is_symlink() {
            self.verify_symlink(&path, &cpath, plain.as_deref());
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() || ft.is_socket() {
            inc(&self.c.specials, 1);
        }
    }

    fn verify_file(
        &self,
        path: &Path,
        cpath: &[u8],
        plain: Option<&Path>,
        linked: bool,
        key: (u64, u64),
    ) {
        let report = File::options()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .and_then(|mut f| {
                self.dec
                    .decrypt_file(&mut f, &mut std::io::sink(), self.layout != Layout::Reverse)
            });
        let report = match report {
            Ok(r) => r,
            Err(e) => return self.error(cpath, plain, format_args!("cannot read: {e}")),
        };
        inc(&self.c.files, 1);
        if !report.is_ok() {
            return self.integrity(cpath, plain, report.describe());
        }
        if let Some(id) = report.file_id {
            if linked {
                // Judged at the end, against every name of the inode.
                let mut inodes = self.inodes.lock().expect("no panics while held");
                if let Some(i) = inodes.get_mut(&key) {
                    i.file_id = Some(id);
                }
            } else if !self.path_check(id == pathiv::derive(cpath, Purpose::FileId)) {
                return self.integrity(
                    cpath,
                    plain,
                    "every block authenticates, but the file ID belongs to another path: the file was moved or swapped with another",
                );
            }
        }
        inc(&self.c.authenticated, 1);
        inc(&self.c.bytes, report.plain_len);
    }

    fn verify_symlink(&self, path: &Path, cpath: &[u8], plain: Option<&Path>) {
        let stored = match fs::read_link(path) {
            Ok(t) => t,
            Err(e) => return self.error(cpath, plain, format_args!("cannot read symlink: {e}")),
        };
        inc(&self.c.symlinks, 1);
        let stored = stored.as_os_str().as_bytes();
        let target = match &self.codec {
            None => stored.to_vec(),
            Some(codec) => {
                let Some(blob) = codec.b64_decode(stored) else {
                    return self.integrity(cpath, plain, "symlink target is not valid base64");
                };
                let Some(t) = self.dec.open_symlink(&blob) else {
                    return self.integrity(cpath, plain, "symlink target does not authenticate");
                };
                let derived = pathiv::derive(&pathiv::symlink_iv_path(cpath), Purpose::SymlinkIv);
                if !self.path_check(blob[..16] == derived) {
                    return self.integrity(
                        cpath,
                        plain,
                        "its target authenticates, but its nonce belongs to another path: the symlink was moved or swapped",
                    );
                }
                t
            }
        };
        if target.is_empty() || target.contains(&0) {
            return self.integrity(cpath, plain, "symlink target is empty or contains NUL");
        }
        inc(&self.c.authenticated, 1);
    }

    /// Hard links share the IVs of one of their names (FORMAT.md §10).
    fn judge_hard_links(&self) {
        let inodes = std::mem::take(&mut *self.inodes.lock().expect("no panics while held"));
        for i in inodes.into_values() {
            let Some(id) = i.file_id else { continue };
            let matched = i
                .names
                .iter()
                .any(|(c, _)| pathiv::derive(c, Purpose::FileId) == id);
            if !self.path_check(matched) {
                let (c, p) = &i.names[0];
                self.integrity(
                    c,
                    p.as_deref(),
                    format_args!(
                        "every block authenticates, but the file ID belongs to none of its {} names: the file was moved or swapped with another",
                        i.names.len()
                    ),
                );
            }
        }
    }
}

/// Plaintext paths of ciphertext paths of a reverse-made tree, as far as they can be
/// worked out: dir IVs come from the path, long names from the backup's `.name` files.
pub struct PathNames {
    backup: PathBuf,
    format: Format,
    codec: Option<NameCodec>,
}

impl PathNames {
    pub fn new(backup: &Path, master: &crate::format::keys::MasterKey, f: Format) -> PathNames {
        let codec = (!f.plaintext_names).then(|| {
            NameCodec::new(
                &crate::format::keys::name_key(master, f.hkdf),
                f.raw64,
                f.long_names,
                f.long_name_max,
            )
        });
        PathNames {
            backup: backup.to_path_buf(),
            format: f,
            codec,
        }
    }

    /// `None` if a component does not decrypt (or its `.name` file is not in the backup).
    pub fn plain(&self, cpath: &[u8]) -> Option<PathBuf> {
        let Some(codec) = &self.codec else {
            return Some(PathBuf::from(OsStr::from_bytes(cpath)));
        };
        let f = &self.format;
        let mut out = PathBuf::new();
        let mut prefix: Vec<u8> = Vec::new();
        for comp in cpath.split(|&c| c == b'/').filter(|c| !c.is_empty()) {
            let iv = if f.dir_iv {
                pathiv::derive(&prefix, Purpose::DirIv)
            } else {
                [0; 16]
            };
            let here = join_cpath(&prefix, comp);
            let cname = if f.long_names && comp.starts_with(LONGNAME_PREFIX.as_bytes()) {
                let mut nf = here.clone();
                nf.extend_from_slice(b".name");
                let c = read_small(&self.backup.join(show_cpath(&nf)), MAX_NAME_FILE).ok()?;
                long_name_matches(codec, comp, &c).then_some(c)?
            } else {
                comp.to_vec()
            };
            out.push(OsStr::from_bytes(&codec.decrypt(&iv, &cname).ok()?));
            prefix = here;
        }
        Some(out)
    }
}
