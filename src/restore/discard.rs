//! A [`Writer`] that writes nothing: `verify` is a restore into it, so the two give one
//! verdict by construction. It still keeps track of the names a restore would create
//! (as keyed hashes, 16 bytes per entry), because two entries of a backup that decrypt
//! to the same plaintext path are a problem a restore meets and verify must report.
//! With `listing`, it also records what would be restored, for `ls --tar`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rustix::fs::{self as rfs, Mode, OFlags};

use super::writer::{StageId, Writer};
use crate::error::{Error, Result};
use crate::view::{Meta, S_IFDIR, S_IFLNK, S_IFREG};

/// An entry a restore would create, as `ls` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Plaintext path (relative to the backup root).
    pub path: Vec<u8>,
    pub meta: Meta,
    /// Plaintext size of files, target length of symlinks.
    pub size: Option<u64>,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    Other,
}

/// Counts the plaintext of a staged file.
pub struct Counted(u64);

impl io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
pub struct Discard {
    hasher: RandomState,
    names: Mutex<HashMap<u64, Node>>,
    next: AtomicU64,
    /// Recorded entries (with `listing`), by the hash of their path.
    listing: Option<Mutex<Listing>>,
}

#[derive(Default)]
struct Listing {
    staged: HashMap<StageId, Listed>,
    placed: HashMap<u64, Listed>,
}

fn exists(rel: &Path) -> Error {
    Error::invalid(
        rel,
        "another entry of the backup has this plaintext path (a restore keeps only the first)",
    )
}

impl Discard {
    pub fn new() -> Self {
        Discard::default()
    }

    /// One that records what a restore would create (see [`Discard::entries`]).
    pub fn listing() -> Self {
        Discard {
            listing: Some(Mutex::new(Listing::default())),
            ..Discard::default()
        }
    }

    fn key(&self, rel: &Path) -> u64 {
        self.hasher.hash_one(rel.as_os_str().as_bytes())
    }

    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Node>> {
        self.names.lock().expect("no panics while held")
    }

    fn record(&self, f: impl FnOnce(&mut Listing)) {
        if let Some(l) = &self.listing {
            f(&mut l.lock().expect("no panics while held"));
        }
    }

    fn stage(&self, listed: Option<Listed>) -> StageId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(l) = listed {
            self.record(|r| {
                r.staged.insert(id, l);
            });
        }
        id
    }

    /// What a restore would have created, in walk order (with [`Discard::listing`]).
    pub fn entries(self) -> Vec<Listed> {
        let Some(l) = self.listing else {
            return Vec::new();
        };
        let mut v: Vec<Listed> = l
            .into_inner()
            .expect("no panics while held")
            .placed
            .into_values()
            .collect();
        // Component by component: a directory's entries right after it, as a walk lists them.
        v.sort_by(|a, b| {
            a.path
                .split(|&c| c == b'/')
                .cmp(b.path.split(|&c| c == b'/'))
        });
        v
    }
}

fn listed(meta: &Meta, size: Option<u64>, target: Option<&[u8]>) -> Listed {
    Listed {
        path: Vec::new(),
        meta: meta.clone(),
        size,
        target: target.map(<[u8]>::to_vec),
    }
}

impl Writer for Discard {
    type File = Counted;

    fn stage_file(&self) -> Result<(StageId, Counted)> {
        Ok((self.stage(None), Counted(0)))
    }

    fn finish_file(&self, id: StageId, f: Counted, meta: Option<&Meta>) -> Result<()> {
        if let Some(m) = meta {
            let mut m = m.clone();
            m.mode = S_IFREG | (m.mode & 0o7777);
            self.record(|r| {
                r.staged.insert(id, listed(&m, Some(f.0), None));
            });
        }
        Ok(())
    }

    fn stage_symlink(&self, target: &[u8], meta: &Meta) -> Result<StageId> {
        let mut m = meta.clone();
        m.mode = S_IFLNK | 0o777;
        Ok(self.stage(Some(listed(&m, Some(target.len() as u64), Some(target)))))
    }

    fn stage_special(&self, meta: &Meta) -> Result<StageId> {
        Ok(self.stage(Some(listed(meta, None, None))))
    }

    fn place_or_keep(&self, id: StageId, parent: &Path, name: &OsStr) -> Result<()> {
        let rel = parent.join(name);
        let k = self.key(&rel);
        {
            let mut names = self.names();
            if names.contains_key(&k) {
                return Err(exists(&rel));
            }
            names.insert(k, Node::Other);
        }
        self.record(|r| {
            if let Some(mut l) = r.staged.remove(&id) {
                l.path = rel.as_os_str().as_bytes().to_vec();
                r.placed.insert(k, l);
            }
        });
        Ok(())
    }

    fn discard(&self, id: StageId) {
        self.record(|r| {
            r.staged.remove(&id);
        });
    }

    fn mkdir(&self, parent: &Path, name: &OsStr) -> Result<bool> {
        let rel = parent.join(name);
        let k = self.key(&rel);
        let mut names = self.names();
        match names.get(&k) {
            Some(Node::Dir) => Ok(false),
            Some(Node::Other) => Err(Error::invalid(
                &rel,
                "another entry of the backup that is not a directory has this plaintext path (its contents are skipped)",
            )),
            None => {
                names.insert(k, Node::Dir);
                drop(names);
                self.record(|r| {
                    let mut l = listed(&dir_meta(), None, None);
                    l.path = rel.as_os_str().as_bytes().to_vec();
                    r.placed.insert(k, l);
                });
                Ok(true)
            }
        }
    }

    fn hard_link(&self, target: &Path, parent: &Path, name: &OsStr) -> Result<()> {
        let rel = parent.join(name);
        let (t, k) = (self.key(target), self.key(&rel));
        {
            let mut names = self.names();
            match names.get(&t) {
                Some(Node::Other) => {}
                _ => return Err(Error::io(&rel, io::Error::from(io::ErrorKind::NotFound))),
            }
            if names.contains_key(&k) {
                return Err(exists(&rel));
            }
            names.insert(k, Node::Other);
        }
        self.record(|r| {
            if let Some(mut l) = r.placed.get(&t).cloned() {
                l.path = rel.as_os_str().as_bytes().to_vec();
                r.placed.insert(k, l);
            }
        });
        Ok(())
    }

    fn relink(&self, _target: &Path, _rel: &Path) -> Result<()> {
        Ok(())
    }

    fn retract(&self, rel: &Path, keep_as: Option<&OsStr>) -> Result<()> {
        let k = self.key(rel);
        self.names().remove(&k);
        self.record(|r| {
            r.placed.remove(&k);
        });
        if let Some(new) = keep_as {
            let (parent, _) = super::writer::split(rel);
            self.names()
                .insert(self.key(&parent.join(new)), Node::Other);
        }
        Ok(())
    }

    fn finish_dir(&self, rel: &Path, meta: &Meta) -> Result<()> {
        let k = self.key(rel);
        self.record(|r| {
            if let Some(l) = r.placed.get_mut(&k) {
                l.meta = meta.clone();
            }
        });
        Ok(())
    }

    fn close(&self) -> Result<()> {
        Ok(())
    }

    fn abandon(&self) {}

    fn was_empty(&self) -> bool {
        true
    }

    fn spool(&self) -> Result<File> {
        // Nothing may appear anywhere: an unnamed file in the temporary directory.
        let dir = std::env::temp_dir();
        rfs::open(
            &dir,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map(File::from)
        .map_err(|e| {
            Error::invalid(
                &dir,
                format!("cannot make an unnamed scratch file for the part of the tar stream before its gocryptfs.conf ({}); pass --config", crate::error::in_words(&e.into())),
            )
        })
    }
}

fn dir_meta() -> Meta {
    Meta {
        mode: S_IFDIR | 0o700,
        uid: u32::MAX,
        gid: u32::MAX,
        size: 0,
        atime: crate::view::Time { sec: 0, nsec: 0 },
        mtime: crate::view::Time { sec: 0, nsec: 0 },
        dev: 0,
        ino: 0,
        nlink: 1,
        rdev: 0,
    }
}

/// Listed paths as `PathBuf`s (for messages and tests).
pub fn path_of(l: &Listed) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&l.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tracked_like_a_directory_would() {
        let d = Discard::listing();
        assert!(d.mkdir(Path::new(""), OsStr::new("a")).unwrap());
        assert!(!d.mkdir(Path::new(""), OsStr::new("a")).unwrap());
        let (id, f) = d.stage_file().unwrap();
        d.finish_file(id, f, Some(&dir_meta())).unwrap();
        d.place(id, Path::new("a"), OsStr::new("f")).unwrap();
        let (id, _) = d.stage_file().unwrap();
        assert!(d.place(id, Path::new("a"), OsStr::new("f")).is_err());
        assert!(d.mkdir(Path::new("a"), OsStr::new("f")).is_err());
        d.hard_link(Path::new("a/f"), Path::new(""), OsStr::new("g"))
            .unwrap();
        assert!(d
            .hard_link(Path::new("a"), Path::new(""), OsStr::new("h"))
            .is_err());
        assert!(d
            .hard_link(Path::new("nope"), Path::new(""), OsStr::new("h"))
            .is_err());
        d.retract(Path::new("g"), None).unwrap();
        let listed: Vec<PathBuf> = d.entries().iter().map(path_of).collect();
        assert_eq!(listed, [PathBuf::from("a"), PathBuf::from("a/f")]);
    }
}
