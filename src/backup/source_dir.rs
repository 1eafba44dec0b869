//! Entries from a ciphertext directory: a cryptbak export, a `cp -a`/`rsync -a` copy of a
//! `gocryptfs -reverse` mount, or a forward-mode gocryptfs directory.
//!
//! Each directory's `gocryptfs.diriv` and `.name` files are handed to the engine before
//! its entries, so names resolve at once; files are decrypted on all cores. Everything
//! is reached through directory handles ([`super::fs`]): nothing in the backup is
//! followed, files are opened `O_NOFOLLOW | O_NONBLOCK` and checked to be the file the
//! listing saw.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use rustix::fs::FileType;

use super::names::{Kind, MAX_NAME_FILE};
use super::verdict;
use crate::error::{Error, Result};
use crate::format::content;
use crate::format::Cryptor;
use crate::fs::handle as fs;
use crate::progress::Progress;
use crate::restore::engine::report::Style;
use crate::restore::engine::{join_cpath, CPath, Engine, EngineOptions, Item, Severity};
use crate::restore::writer::Writer;
use crate::restore::Summary;
use crate::view::Meta;

/// The root of a backup directory, open.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    meta: Meta,
}

impl Root {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// Open a backup directory (a symlink given by the user is followed).
pub fn open(backup: &Path) -> Result<Root> {
    let fd = fs::open_root(backup).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) {
            Error::invalid(backup, "not a directory")
        } else {
            Error::io(backup, e)
        }
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io(backup, e.into()))?;
    Ok(Root {
        fd,
        path: backup.to_path_buf(),
        meta: crate::view::Meta::from_stat(&st),
    })
}

/// Restore (or verify) the backup directory at `root` into `w`.
pub(crate) fn run<W: Writer>(
    root: &Root,
    keys: Cryptor,
    w: &W,
    progress: &dyn Progress,
    style: Style,
    opts: EngineOptions,
) -> Result<Summary> {
    let engine = Engine::new(keys, w, progress, style, opts);
    engine.set_root_meta(root.meta.clone());
    let walk = Walk {
        engine: &engine,
        links: Mutex::new(HashMap::new()),
    };
    let count = |stop: &_| {
        engine
            .restores_everything()
            .then(|| super::count::directory(&root.fd, engine.keys(), stop))
            .flatten()
    };
    crate::progress::with_total(progress, count, || walk.visit_dir(&root.fd, b""));
    if crate::cancel::requested() {
        return Err(engine.abort());
    }
    // Files whose ID is another path's: the rule on split hard links needs the files
    // those IDs belong to. A second look at the tree (names only; only those files are
    // read) finds them, instead of remembering every file of the first walk.
    let missing = engine.missing_homes();
    if !missing.is_empty() {
        find_homes(&engine, &root.fd, &missing);
    }
    engine.finish()
}

struct Walk<'e, 'a, W: Writer> {
    engine: &'e Engine<'a, W>,
    /// First name seen of each multiply linked file: later names become hard links.
    links: Mutex<HashMap<(u64, u64), CPath>>,
}

impl<W: Writer> Walk<'_, '_, W> {
    fn visit_dir(&self, dir: &OwnedFd, cpath: &[u8]) {
        if crate::cancel::requested() {
            return;
        }
        let e = self.engine;
        let names = match fs::list(dir) {
            Ok(n) => n,
            Err(err) => {
                e.entry_problem(
                    cpath,
                    Severity::Error,
                    format!("cannot list directory: {}", crate::error::in_words(&err)),
                );
                return;
            }
        };
        let rules = e.rules();
        let mut entries: Vec<&OsString> = Vec::with_capacity(names.len());
        for name in &names {
            let b = name.as_bytes();
            match rules.classify(cpath.is_empty(), b) {
                Kind::Config => {}
                Kind::DirIv => match fs::read_small(dir, name, 16) {
                    Ok(bytes) => e.add_diriv(cpath.to_vec(), &bytes),
                    Err(err) => e.bad_diriv(
                        cpath.to_vec(),
                        format!("cannot read: {}", crate::error::in_words(&err)),
                    ),
                },
                Kind::NameFile(entry) => match fs::read_small(dir, name, MAX_NAME_FILE) {
                    Ok(bytes) => e.add_long_name(join_cpath(cpath, entry), &bytes),
                    Err(err) => e.entry_problem(
                        &join_cpath(cpath, b),
                        Severity::Integrity,
                        format!("cannot read: {}", crate::error::in_words(&err)),
                    ),
                },
                Kind::Temp => e.entry_problem(
                    &join_cpath(cpath, b),
                    Severity::Warning,
                    "leftover temporary file of an interrupted export; ignored",
                ),
                Kind::Entry => entries.push(name),
            }
        }
        entries
            .par_iter()
            .for_each(|name| self.visit(dir, name, join_cpath(cpath, name.as_bytes())));
    }

    fn visit(&self, dir: &OwnedFd, name: &OsStr, cpath: CPath) {
        if crate::cancel::requested() {
            return;
        }
        let e = self.engine;
        let st = match fs::stat(dir, name) {
            Ok(st) => st,
            Err(err) => {
                return e.entry_problem(
                    &cpath,
                    Severity::Error,
                    format!("cannot stat: {}", crate::error::in_words(&err)),
                )
            }
        };
        let meta = crate::view::Meta::from_stat(&st);
        match fs::file_type(&st) {
            FileType::Directory => {
                e.add(cpath.clone(), Item::Dir { meta });
                if e.wanted(&cpath) != Some(false) {
                    match fs::open_dir(dir, name) {
                        Ok(sub) => self.visit_dir(&sub, &cpath),
                        Err(err) => e.entry_problem(
                            &cpath,
                            Severity::Error,
                            format!("cannot open directory: {}", crate::error::in_words(&err)),
                        ),
                    }
                }
            }
            FileType::RegularFile => {
                if meta.nlink > 1 {
                    let mut links = self.links.lock().expect("no panics while held");
                    if let Some(first) = links.get(&(meta.dev, meta.ino)) {
                        let target = first.clone();
                        drop(links);
                        return e.add(cpath, Item::Link { target });
                    }
                    links.insert((meta.dev, meta.ino), cpath.clone());
                } else if e.wanted(&cpath) == Some(false) {
                    return;
                }
                let mut f = match fs::open_file(dir, name, Some(&st)) {
                    Ok(f) => f,
                    Err(err) => {
                        return e.entry_problem(
                            &cpath,
                            Severity::Error,
                            format!("cannot open: {}", crate::error::in_words(&err)),
                        )
                    }
                };
                if let Some(staged) = e.stage_file(&cpath, &meta, &mut f) {
                    e.add(cpath, Item::File { meta, staged });
                }
            }
            FileType::Symlink => match fs::read_link(dir, name) {
                Ok(t) => e.add_symlink(cpath, meta, &t),
                Err(err) => e.entry_problem(
                    &cpath,
                    Severity::Error,
                    format!("cannot read symlink: {}", crate::error::in_words(&err)),
                ),
            },
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
                e.add(cpath, Item::Special { meta })
            }
            _ => e.entry_problem(
                &cpath,
                Severity::Warning,
                "socket skipped (sockets cannot be restored)",
            ),
        }
    }
}

/// Look through the whole tree for the regular files whose own path gives one of `ids`,
/// and hand each, with its fingerprint, to the engine (see
/// [`crate::backup::verdict::is_split_copy`]). Only those files are read.
fn find_homes<W: Writer>(engine: &Engine<'_, W>, root: &OwnedFd, ids: &HashSet<[u8; 16]>) {
    let rules = engine.rules();
    let mut todo: Vec<(OwnedFd, CPath)> = Vec::new();
    let Ok(root) = root.try_clone() else { return };
    todo.push((root, Vec::new()));
    let mut left = ids.len();
    while let Some((dir, cpath)) = todo.pop() {
        if left == 0 || crate::cancel::requested() {
            return;
        }
        let Ok(names) = fs::list(&dir) else { continue };
        for name in &names {
            let b = name.as_bytes();
            if rules.classify(cpath.is_empty(), b) != Kind::Entry {
                continue;
            }
            let c = join_cpath(&cpath, b);
            let Ok(st) = fs::stat(&dir, name) else {
                continue;
            };
            match fs::file_type(&st) {
                FileType::Directory => {
                    if let Ok(sub) = fs::open_dir(&dir, name) {
                        todo.push((sub, c));
                    }
                }
                FileType::RegularFile if ids.contains(&verdict::reverse_file_id(&c)) => {
                    let print = fs::open_file(&dir, name, Some(&st))
                        .and_then(|mut f| content::fingerprint(&mut f, content::Aead::Siv));
                    if let Ok(Some((id, fp))) = print {
                        engine.add_home(c, id, fp);
                        left = left.saturating_sub(1);
                    }
                }
                _ => {}
            }
        }
    }
}
