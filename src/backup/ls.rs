//! A read-only listing of a backup under its decrypted names.
//!
//! Of a directory or a remote location, it decrypts names and symlink targets only:
//! file contents are not read, so sizes come from the ciphertext sizes and nothing is
//! authenticated beyond the names (use `verify`). A tar stream has to be read whole anyway, so `ls --tar` runs
//! the restore engine into a writer that records instead of writing: every entry listed
//! was authenticated, and sizes are the plaintext's.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::names::{name_file_of, Kind, NameRules, MAX_NAME_FILE};
use super::{source_dir, source_remote, source_tar};
use crate::error::{Error, Result};
use crate::format::content::Aead;
use crate::format::names::DIRIV_NAME;
use crate::format::Cryptor;
use crate::fs::handle as fs;
use crate::progress::{Problem, Progress};
use crate::remote::tree::{Node, Tree};
use crate::remote::Store;
use crate::restore::discard::Discard;
use crate::restore::engine::report::{show_cpath, Style};
use crate::restore::engine::{join_cpath, EngineOptions};
use crate::view::{Meta, Time, S_IFDIR};

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

/// Where `ls` reads a backup's directories from: a directory (through handles) or a
/// remote location (its listing).
trait Dirs {
    /// An open directory.
    type D;
    /// The names in `d`, sorted bytewise.
    fn names(&self, d: &Self::D) -> io::Result<Vec<Vec<u8>>>;
    /// At most `max + 1` bytes of the regular file `name`.
    fn read_small(&self, d: &Self::D, name: &[u8], max: usize) -> io::Result<Vec<u8>>;
    fn meta(&self, d: &Self::D, name: &[u8]) -> io::Result<Meta>;
    fn read_link(&self, d: &Self::D, name: &[u8]) -> io::Result<Vec<u8>>;
    fn open(&self, d: &Self::D, name: &[u8]) -> io::Result<Self::D>;
}

/// A backup directory, through handles.
struct Local;

impl Dirs for Local {
    type D = OwnedFd;
    fn names(&self, d: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
        Ok(fs::list(d)?.into_iter().map(|n| n.into_vec()).collect())
    }
    fn read_small(&self, d: &OwnedFd, name: &[u8], max: usize) -> io::Result<Vec<u8>> {
        fs::read_small(d, OsStr::from_bytes(name), max)
    }
    fn meta(&self, d: &OwnedFd, name: &[u8]) -> io::Result<Meta> {
        fs::stat(d, OsStr::from_bytes(name)).map(|st| Meta::from_stat(&st))
    }
    fn read_link(&self, d: &OwnedFd, name: &[u8]) -> io::Result<Vec<u8>> {
        fs::read_link(d, OsStr::from_bytes(name))
    }
    fn open(&self, d: &OwnedFd, name: &[u8]) -> io::Result<OwnedFd> {
        fs::open_dir(d, OsStr::from_bytes(name))
    }
}

/// A remote location, from its one listing (directories are keys).
struct Remote<'s> {
    store: &'s Store,
    tree: Tree,
}

impl Remote<'_> {
    fn node(&self, d: &str, name: &[u8]) -> io::Result<&Node> {
        self.tree
            .find(d, name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not found"))
    }
}

impl Dirs for Remote<'_> {
    type D = String;
    fn names(&self, d: &String) -> io::Result<Vec<Vec<u8>>> {
        let mut v: Vec<Vec<u8>> = self.tree.dir(d).map(|n| n.name.clone()).collect();
        v.sort();
        Ok(v)
    }
    fn read_small(&self, d: &String, name: &[u8], max: usize) -> io::Result<Vec<u8>> {
        let n = self.node(d, name)?;
        if n.meta.file_type() != crate::view::S_IFREG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let len = n.meta.size.min(max as u64 + 1);
        self.store
            .get_range(&Tree::key(d, n), 0..len)
            .map_err(|e| io::Error::other(e.msg))
    }
    fn meta(&self, d: &String, name: &[u8]) -> io::Result<Meta> {
        let n = self.node(d, name)?;
        Ok(source_remote::restored_meta(&n.meta, Some(n)))
    }
    fn read_link(&self, d: &String, name: &[u8]) -> io::Result<Vec<u8>> {
        self.node(d, name)?
            .target
            .clone()
            .ok_or_else(|| io::Error::other("cannot read symlink"))
    }
    fn open(&self, d: &String, name: &[u8]) -> io::Result<String> {
        Ok(Tree::key(d, self.node(d, name)?))
    }
}

struct Lister<'a, F: Dirs> {
    dirs: &'a F,
    keys: &'a Cryptor,
    root: PathBuf,
    progress: &'a dyn Progress,
    errors: u64,
}

/// A ciphertext entry with its plaintext name.
struct Child {
    cname: Vec<u8>,
    cpath: Vec<u8>,
    name: Vec<u8>,
    meta: Meta,
}

/// List `path` (a directory's entries, or one entry) of the backup directory `backup`;
/// `recursive` descends into directories. Returns the number of problems reported.
pub fn list(
    backup: &Path,
    keys: Cryptor,
    path: Option<Vec<Vec<u8>>>,
    recursive: bool,
    progress: &dyn Progress,
    out: &mut dyn FnMut(&ListEntry),
) -> Result<u64> {
    let root = source_dir::open(backup)?;
    let fd: OwnedFd = root.fd().try_clone().map_err(|e| Error::io(backup, e))?;
    let mut l = Lister {
        dirs: &Local,
        keys: &keys,
        root: backup.to_path_buf(),
        progress,
        errors: 0,
    };
    l.list(fd, path, recursive, out)
}

/// [`list`] for a remote location (`s3://`, `sftp://`): from one listing of it (on S3
/// with one HEAD per object for modes and times, unless `cache` vouches for them),
/// reading only `gocryptfs.diriv`,
/// `.name` files and symlink targets.
pub fn list_remote(
    store: &Store,
    cache: Option<&crate::remote::cache::MetaCache>,
    keys: Cryptor,
    path: Option<Vec<Vec<u8>>>,
    recursive: bool,
    progress: &dyn Progress,
    out: &mut dyn FnMut(&ListEntry),
) -> Result<u64> {
    let (tree, problems) = Tree::load(store, cache)?;
    let remote = Remote { store, tree };
    let mut l = Lister {
        dirs: &remote,
        keys: &keys,
        root: source_remote::shown(store),
        progress,
        errors: 0,
    };
    for p in problems {
        l.problem(b"", p.to_string());
    }
    l.list(String::new(), path, recursive, out)
}

impl<F: Dirs> Lister<'_, F> {
    fn list(
        &mut self,
        mut dir: F::D,
        path: Option<Vec<Vec<u8>>>,
        recursive: bool,
        out: &mut dyn FnMut(&ListEntry),
    ) -> Result<u64> {
        // Walk down to the requested path, one decrypted name at a time.
        let mut cpath: Vec<u8> = Vec::new();
        let mut plain: Vec<u8> = Vec::new();
        let comps = path.unwrap_or_default();
        for (i, comp) in comps.iter().enumerate() {
            let children = self.children(&dir, &cpath)?;
            let Some(next) = children.into_iter().find(|c| &c.name == comp) else {
                return Err(Error::invalid(
                    Path::new(OsStr::from_bytes(&join_cpath(&plain, comp))),
                    "no such path in the backup",
                ));
            };
            plain = join_cpath(&plain, &next.name);
            if next.meta.file_type() != S_IFDIR {
                if i + 1 < comps.len() {
                    return Err(Error::invalid(
                        Path::new(OsStr::from_bytes(&plain)),
                        "not a directory",
                    ));
                }
                let e = self.entry(&dir, &next, plain);
                out(&e);
                return Ok(self.errors);
            }
            dir = self
                .dirs
                .open(&dir, &next.cname)
                .map_err(|e| Error::io(self.shown(&next.cpath), e))?;
            cpath = next.cpath;
        }
        self.walk(&dir, &cpath, &plain, recursive, out)?;
        Ok(self.errors)
    }

    fn rules(&self) -> NameRules<'_> {
        NameRules::new(self.keys)
    }

    fn shown(&self, cpath: &[u8]) -> PathBuf {
        if cpath.is_empty() {
            self.root.clone()
        } else {
            self.root.join(show_cpath(cpath))
        }
    }

    fn problem(&mut self, cpath: &[u8], msg: impl Into<String>) {
        self.errors += 1;
        self.progress
            .problem(&Problem::error(self.shown(cpath), msg));
    }

    fn walk(
        &mut self,
        dir: &F::D,
        cpath: &[u8],
        plain: &[u8],
        recursive: bool,
        out: &mut dyn FnMut(&ListEntry),
    ) -> Result<()> {
        for c in self.children(dir, cpath)? {
            let p = join_cpath(plain, &c.name);
            let e = self.entry(dir, &c, p.clone());
            out(&e);
            if recursive && c.meta.file_type() == S_IFDIR {
                let r = self
                    .dirs
                    .open(dir, &c.cname)
                    .map_err(|e| Error::io(self.shown(&c.cpath), e))
                    .and_then(|sub| self.walk(&sub, &c.cpath, &p, true, out));
                if let Err(err) = r {
                    self.problem(&c.cpath, err.to_string());
                }
            }
        }
        Ok(())
    }

    fn entry(&mut self, dir: &F::D, c: &Child, path: Vec<u8>) -> ListEntry {
        let mut target = None;
        let size = match FileType::from_raw_mode(c.meta.mode) {
            FileType::RegularFile => self
                .keys
                .content
                .aead()
                .unwrap_or(Aead::Siv)
                .plain_size(c.meta.size),
            FileType::Symlink => match self.dirs.read_link(dir, &c.cname) {
                Ok(t) => {
                    let dec = match &self.keys.names {
                        None => Some(t),
                        Some(codec) => codec
                            .b64_decode(&t)
                            .and_then(|b| self.keys.content.open_symlink(&b)),
                    };
                    if dec.is_none() {
                        self.problem(&c.cpath, "symlink target does not decrypt");
                    }
                    target = dec;
                    target.as_ref().map(|t| t.len() as u64)
                }
                Err(e) => {
                    self.problem(&c.cpath, e.to_string());
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
    fn children(&mut self, dir: &F::D, cpath: &[u8]) -> Result<Vec<Child>> {
        let names = self
            .dirs
            .names(dir)
            .map_err(|e| Error::io(self.shown(cpath), e))?;
        let rules = self.rules();
        let stored = if rules.has_diriv_files() {
            match self.dirs.read_small(dir, DIRIV_NAME.as_bytes(), 16) {
                Ok(b) if b.len() == 16 => Some(b.try_into().expect("16 bytes")),
                _ => {
                    self.problem(
                        cpath,
                        "gocryptfs.diriv missing or invalid; assuming a reverse-made backup (IV from the path)",
                    );
                    None
                }
            }
        } else {
            None
        };
        let rules = self.rules();
        let iv = rules.lookup_dir_iv(cpath, stored);
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for b in names {
            if rules.classify(cpath.is_empty(), &b) != Kind::Entry {
                continue;
            }
            let here = join_cpath(cpath, &b);
            let name_file = if rules.needs_name_file(&b) {
                match self.dirs.read_small(dir, &name_file_of(&b), MAX_NAME_FILE) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        problems.push((
                            here,
                            format!("cannot read its .name file: {}", crate::error::in_words(&e)),
                        ));
                        continue;
                    }
                }
            } else {
                None
            };
            let name = match rules.plain_name(&iv, &b, name_file.as_deref()) {
                Ok(n) => n,
                Err(e) => {
                    problems.push((here, e.to_string()));
                    continue;
                }
            };
            match self.dirs.meta(dir, &b) {
                Ok(meta) => out.push(Child {
                    cname: b,
                    cpath: here,
                    name,
                    meta,
                }),
                Err(e) => problems.push((here, e.to_string())),
            }
        }
        for (c, msg) in problems {
            self.problem(&c, msg);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// List a tar stream of a backup (see the module comment): `path` and `recursive` as for
/// a directory. Returns the entries and the number of problems reported.
pub fn list_tar(
    reader: impl std::io::Read,
    unlock: impl FnOnce(Option<&[u8]>) -> Result<Cryptor>,
    config_in_stream: bool,
    shown_as: &Path,
    path: Option<Vec<Vec<u8>>>,
    recursive: bool,
    progress: &dyn Progress,
) -> Result<(Vec<ListEntry>, u64)> {
    let d = Discard::listing();
    // The listing shows the backup's modes and device nodes, as `ls` of a directory does.
    let opts = EngineOptions {
        filter: path.clone(),
        record_homes: true,
        keep_setuid: true,
        devices: true,
        ..EngineOptions::default()
    };
    let style = Style::Verify {
        backup: shown_as.to_path_buf(),
    };
    let s = source_tar::run(reader, &d, unlock, config_in_stream, style, opts, progress)?;
    let problems = s.errors + s.integrity_errors;
    let base: Vec<u8> = path.map(|p| p.join(&b'/')).unwrap_or_default();
    let all = d.entries();
    // The path itself, when it is not a directory.
    if let Some(e) = all.iter().find(|e| e.path == base && !base.is_empty()) {
        if e.meta.file_type() != S_IFDIR {
            return Ok((vec![to_entry(e)], problems));
        }
    }
    let prefix: Vec<u8> = if base.is_empty() {
        Vec::new()
    } else {
        [&base[..], b"/"].concat()
    };
    let listed = all
        .iter()
        .filter(|e| {
            e.path.starts_with(&prefix)
                && e.path.len() > prefix.len()
                && (recursive || !e.path[prefix.len()..].contains(&b'/'))
        })
        .map(to_entry)
        .collect();
    Ok((listed, problems))
}

fn to_entry(l: &crate::restore::discard::Listed) -> ListEntry {
    ListEntry {
        path: l.path.clone(),
        mode: l.meta.mode,
        size: l.size,
        mtime: l.meta.mtime,
        uid: l.meta.uid,
        gid: l.meta.gid,
        target: l.target.clone(),
    }
}
