//! A read-only listing of a ciphertext directory under its decrypted names.
//!
//! It decrypts names and symlink targets only; file contents are not read, so sizes
//! come from the ciphertext sizes and nothing is authenticated beyond the names
//! (use `restore` for that).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::names::{is_valid_plain_name, LONGNAME_PREFIX};
use crate::pathiv::{self, Purpose};
use crate::progress::{Problem, Progress};
use crate::view::{Meta, Time, S_IFDIR, S_IFLNK, S_IFREG};

use super::engine::{join_cpath, long_name_matches};
use super::source_dir::{classify, read_small, Special};
use super::MAX_NAME_FILE;
use crate::format::content::{plain_size, ContentCipher};
use crate::format::Cryptor;

/// One listed entry.
#[derive(Debug, Clone)]
pub struct ListEntry {
    /// Plaintext path relative to the backup root.
    pub path: Vec<u8>,
    pub mode: u32,
    /// Plaintext size of files, target length of symlinks; `None` if unknown.
    pub size: Option<u64>,
    pub mtime: Time,
    pub uid: u32,
    pub gid: u32,
    /// Decrypted symlink target.
    pub target: Option<Vec<u8>>,
}

struct Lister<'a> {
    codec: Option<crate::names::NameCodec>,
    format: crate::config::Format,
    dec: ContentCipher,
    progress: &'a dyn Progress,
    errors: u64,
}

/// A ciphertext entry with its plaintext name.
struct Child {
    fs_path: std::path::PathBuf,
    cpath: Vec<u8>,
    name: Vec<u8>,
    meta: Meta,
}

/// List `path` (a directory's entries, or one entry) of the backup at `backup`;
/// `recursive` descends into directories. Returns the number of problems reported.
pub fn list(
    backup: &Path,
    keys: Cryptor,
    path: Option<Vec<Vec<u8>>>,
    recursive: bool,
    progress: &dyn Progress,
    out: &mut dyn FnMut(&ListEntry),
) -> Result<u64> {
    let Cryptor {
        format,
        names: codec,
        content: dec,
    } = keys;
    let mut l = Lister {
        codec,
        format,
        dec,
        progress,
        errors: 0,
    };
    let root = super::source_dir::root_meta(backup)?;
    // Walk down to the requested path, one decrypted name at a time.
    let mut cur = Child {
        fs_path: backup.to_path_buf(),
        cpath: Vec::new(),
        name: Vec::new(),
        meta: root,
    };
    let mut plain: Vec<u8> = Vec::new();
    for comp in path.iter().flatten() {
        if cur.meta.file_type() != S_IFDIR {
            return Err(Error::invalid(
                Path::new(std::ffi::OsStr::from_bytes(&plain)),
                "not a directory",
            ));
        }
        let children = l.children(&cur)?;
        let Some(next) = children.into_iter().find(|c| &c.name == comp) else {
            let mut p = plain.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(comp);
            return Err(Error::invalid(
                Path::new(std::ffi::OsStr::from_bytes(&p)),
                "no such path in the backup",
            ));
        };
        plain = join_cpath(&plain, &next.name);
        cur = next;
    }
    if cur.meta.file_type() != S_IFDIR {
        let e = l.entry(&cur, plain);
        out(&e);
    } else {
        l.walk(&cur, &plain, recursive, out)?;
    }
    Ok(l.errors)
}

impl Lister<'_> {
    fn problem(&mut self, p: impl Into<std::path::PathBuf>, msg: impl Into<String>) {
        self.errors += 1;
        self.progress.problem(&Problem::error(p, msg));
    }

    fn walk(
        &mut self,
        dir: &Child,
        plain: &[u8],
        recursive: bool,
        out: &mut dyn FnMut(&ListEntry),
    ) -> Result<()> {
        for c in self.children(dir)? {
            let p = join_cpath(plain, &c.name);
            let e = self.entry(&c, p.clone());
            out(&e);
            if recursive && c.meta.file_type() == S_IFDIR {
                if let Err(err) = self.walk(&c, &p, true, out) {
                    self.problem(&c.fs_path, err.to_string());
                }
            }
        }
        Ok(())
    }

    fn entry(&mut self, c: &Child, path: Vec<u8>) -> ListEntry {
        let ft = c.meta.file_type();
        let mut target = None;
        let size = match ft {
            S_IFREG => plain_size(c.meta.size),
            S_IFLNK => match fs::read_link(&c.fs_path) {
                Ok(t) => {
                    let t = t.as_os_str().as_bytes();
                    let dec = match &self.codec {
                        None => Some(t.to_vec()),
                        Some(codec) => codec.b64_decode(t).and_then(|b| self.dec.open_symlink(&b)),
                    };
                    if dec.is_none() {
                        self.problem(&c.fs_path, "symlink target does not decrypt");
                    }
                    target = dec;
                    target.as_ref().map(|t| t.len() as u64)
                }
                Err(e) => {
                    self.problem(&c.fs_path, e.to_string());
                    None
                }
            },
            _ => None,
        };
        ListEntry {
            path,
            mode: c.meta.mode,
            size,
            mtime: c.meta.mtime,
            uid: c.meta.uid,
            gid: c.meta.gid,
            target,
        }
    }

    /// The entries of a ciphertext directory with their plaintext names, sorted.
    fn children(&mut self, dir: &Child) -> Result<Vec<Child>> {
        let mut names = Vec::new();
        for e in fs::read_dir(&dir.fs_path).at(&dir.fs_path)? {
            names.push(e.at(&dir.fs_path)?.file_name());
        }
        let has_names = self.codec.is_some();
        let dir_iv_files = has_names && self.format.dir_iv;
        let is_root = dir.cpath.is_empty();
        let iv = if !self.format.dir_iv || !has_names {
            [0; 16]
        } else {
            match read_small(&dir.fs_path.join(crate::names::DIRIV_NAME), 16) {
                Ok(b) if b.len() == 16 => b.try_into().expect("16 bytes"),
                _ => {
                    self.problem(
                        &dir.fs_path,
                        "gocryptfs.diriv missing or invalid; assuming a reverse-made backup (IV from the path)",
                    );
                    pathiv::derive(&dir.cpath, Purpose::DirIv)
                }
            }
        };
        let mut out = Vec::new();
        for n in names {
            let b = n.as_bytes();
            if !matches!(
                classify(has_names, dir_iv_files, self.format.long_names, is_root, b),
                Special::Entry
            ) {
                continue;
            }
            let fs_path = dir.fs_path.join(&n);
            let name = match &self.codec {
                None => is_valid_plain_name(b)
                    .then(|| b.to_vec())
                    .ok_or_else(|| "forbidden name".to_string()),
                Some(codec) => {
                    let cname =
                        if self.format.long_names && b.starts_with(LONGNAME_PREFIX.as_bytes()) {
                            let mut nf = n.clone();
                            nf.push(".name");
                            match read_small(&dir.fs_path.join(nf), MAX_NAME_FILE) {
                                Ok(c) if long_name_matches(codec, b, &c) => Ok(c),
                                Ok(_) => {
                                    Err("its .name file does not match the hashed name".to_string())
                                }
                                Err(e) => Err(format!("cannot read its .name file: {e}")),
                            }
                        } else {
                            Ok(b.to_vec())
                        };
                    cname.and_then(|c| {
                        codec
                            .decrypt(&iv, &c)
                            .map_err(|e| format!("cannot decrypt name: {e}"))
                    })
                }
            };
            let name = match name {
                Ok(n) => n,
                Err(msg) => {
                    self.problem(&fs_path, msg);
                    continue;
                }
            };
            match fs::symlink_metadata(&fs_path) {
                Ok(m) => out.push(Child {
                    cpath: join_cpath(&dir.cpath, b),
                    fs_path,
                    name,
                    meta: Meta::from_fs(&m),
                }),
                Err(e) => self.problem(&fs_path, e.to_string()),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
