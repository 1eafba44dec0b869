//! Entries from a remote location (`s3://`, `sftp://`): what `cryptbak export` wrote
//! there, or an `rclone` copy of an export or of a `gocryptfs -reverse` mount.
//!
//! What the location holds is read with one listing ([`Tree::load`]: on S3 also one
//! HEAD per object for its stored mode, owner and mtime), which also says how the view
//! is laid out there (markers, `.rclonelink` symlinks, FIFOs and devices as empty
//! objects; see [`crate::remote::tree`]). Then, as for a directory, each directory's
//! `gocryptfs.diriv` and `.name` files go to the engine before its entries, and files
//! are decrypted on all worker threads as they arrive, in ranged GETs of [`CHUNK`]
//! bytes: memory stays bounded whatever the file sizes.
//!
//! A store has no hard links: on S3 the names of a hard-linked file are copies, which
//! the rule on split hard links (the file ID is another path's) accepts once the file
//! that owns the ID is found and fingerprinted, as for a directory that `rsync -a`
//! copied without `-H`.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::PathBuf;

use rayon::prelude::*;

use super::names::{Kind, MAX_NAME_FILE};
use super::verdict;
use crate::error::Result;
use crate::format::content;
use crate::format::Cryptor;
use crate::progress::Progress;
use crate::remote::cache::MetaCache;
use crate::remote::tree::{is_special, unknown_time, Node, Tree};
use crate::remote::Store;
use crate::restore::engine::report::Style;
use crate::restore::engine::{join_cpath, CPath, Engine, EngineOptions, Item, Severity};
use crate::restore::writer::Writer;
use crate::restore::Summary;
use crate::view::{Meta, Time, S_IFDIR, S_IFLNK, S_IFREG};

/// Bytes asked for in one ranged GET while a file is decrypted.
pub const CHUNK: u64 = 4 << 20;

/// Restore (or verify) the location `store` into `w`; `cache`: what this machine's
/// last export there learnt of the objects' metadata (it spares the HEADs it vouches
/// for).
pub(crate) fn run<W: Writer>(
    store: &Store,
    cache: Option<&MetaCache>,
    keys: Cryptor,
    w: &W,
    progress: &dyn Progress,
    style: Style,
    opts: EngineOptions,
) -> Result<Summary> {
    let (tree, problems) = Tree::load(store, cache)?;
    let engine = Engine::new(keys, w, progress, style, opts);
    if engine.restores_everything() && progress.wants_total() {
        progress.total(super::count::remote(&tree, engine.keys()));
    }
    let shown = shown(store);
    for p in problems {
        engine.source_error(&shown, p.to_string());
    }
    if let Some(root) = &tree.root {
        engine.set_root_meta(restored_meta(root, None));
    }
    let walk = Walk {
        engine: &engine,
        store,
        tree: &tree,
    };
    walk.visit_dir("", b"");
    if crate::cancel::requested() {
        return Err(engine.abort());
    }
    let missing = engine.missing_homes();
    if !missing.is_empty() {
        walk.find_homes(&missing);
    }
    engine.finish()
}

/// A listed entry's metadata as restored: where the store keeps none (objects another
/// tool wrote; directories on a service that keeps markers as real directories, such
/// as s3s-fs), the permission bits of a new file or directory, and the service's own
/// time of the last write, else the time of the restore.
pub(crate) fn restored_meta(m: &Meta, node: Option<&Node>) -> Meta {
    let mut m = m.clone();
    if node.is_some_and(|n| n.stored.mode.is_none()) {
        m.mode |= match m.mode & 0o170000 {
            S_IFDIR => 0o755,
            S_IFLNK => 0o777,
            _ => 0o644,
        };
    }
    if m.mtime == unknown_time() {
        m.mtime = node.and_then(|n| n.modified).unwrap_or_else(now);
        m.atime = m.mtime;
    }
    m
}

fn now() -> Time {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}

struct Walk<'e, 'a, W: Writer> {
    engine: &'e Engine<'a, W>,
    store: &'e Store,
    tree: &'e Tree,
}

impl<W: Writer> Walk<'_, '_, W> {
    fn visit_dir(&self, key: &str, cpath: &[u8]) {
        if crate::cancel::requested() {
            return;
        }
        let e = self.engine;
        let mut nodes: Vec<&Node> = self.tree.dir(key).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let rules = e.rules();
        let mut entries = Vec::with_capacity(nodes.len());
        for n in nodes {
            let here = join_cpath(cpath, &n.name);
            let is_file = n.meta.file_type() == S_IFREG;
            match rules.classify(cpath.is_empty(), &n.name) {
                Kind::Config => {}
                Kind::DirIv if is_file => match self.read_small(key, n, 16) {
                    Ok(bytes) => e.add_diriv(cpath.to_vec(), &bytes),
                    Err(err) => e.bad_diriv(cpath.to_vec(), format!("cannot read: {err}")),
                },
                Kind::DirIv => e.bad_diriv(cpath.to_vec(), "not a regular file"),
                Kind::NameFile(entry) if is_file => match self.read_small(key, n, MAX_NAME_FILE) {
                    Ok(bytes) => e.add_long_name(join_cpath(cpath, entry), &bytes),
                    Err(err) => {
                        e.entry_problem(&here, Severity::Integrity, format!("cannot read: {err}"))
                    }
                },
                Kind::NameFile(_) => {
                    e.entry_problem(&here, Severity::Integrity, "not a regular file; ignored")
                }
                Kind::Temp => e.entry_problem(
                    &here,
                    Severity::Warning,
                    "leftover temporary file of an interrupted export; ignored",
                ),
                Kind::Entry => entries.push((n, here)),
            }
        }
        entries
            .into_par_iter()
            .for_each(|(n, here)| self.visit(key, n, here));
    }

    /// At most `max + 1` bytes of a small object: one more than allowed, so that the
    /// engine tells "too long" apart.
    fn read_small(&self, dir: &str, n: &Node, max: usize) -> io::Result<Vec<u8>> {
        let len = n.meta.size.min(max as u64 + 1);
        self.store
            .get_range(&Tree::key(dir, n), 0..len)
            .map_err(|e| io::Error::other(e.msg))
    }

    fn visit(&self, dir: &str, n: &Node, cpath: CPath) {
        if crate::cancel::requested() {
            return;
        }
        let e = self.engine;
        let meta = restored_meta(&n.meta, Some(n));
        match meta.file_type() {
            S_IFDIR => {
                e.add(cpath.clone(), Item::Dir { meta });
                if e.wanted(&cpath) != Some(false) {
                    self.visit_dir(&Tree::key(dir, n), &cpath);
                }
            }
            S_IFREG => {
                if e.wanted(&cpath) == Some(false) {
                    return;
                }
                let mut r = ObjectReader::new(self.store, Tree::key(dir, n), n.meta.size);
                if let Some(staged) = e.stage_file(&cpath, &meta, &mut r) {
                    e.add(cpath, Item::File { meta, staged });
                }
            }
            S_IFLNK => match &n.target {
                Some(t) => e.add_symlink(cpath, meta, t),
                None => e.entry_problem(&cpath, Severity::Error, "cannot read symlink"),
            },
            t if is_special(t) => e.add(cpath, Item::Special { meta }),
            _ => e.entry_problem(
                &cpath,
                Severity::Warning,
                "not a file, directory or symlink (a socket?); skipped",
            ),
        }
    }

    /// The regular files whose own path gives one of `ids`, fingerprinted for the
    /// engine (see [`crate::backup::verdict::is_split_copy`]). Working out which they
    /// are takes no request; only those are read.
    fn find_homes(&self, ids: &HashSet<[u8; 16]>) {
        let homes: Vec<(CPath, String, u64)> = self
            .tree
            .files()
            .filter_map(|(dir, n)| {
                let cpath = join_cpath(dir.trim_end_matches('/').as_bytes(), &n.name);
                ids.contains(&verdict::reverse_file_id(&cpath))
                    .then(|| (cpath, Tree::key(dir, n), n.meta.size))
            })
            .collect();
        homes.into_par_iter().for_each(|(cpath, key, size)| {
            let mut r = ObjectReader::new(self.store, key, size);
            if let Ok(Some((id, fp))) = content::fingerprint(&mut r, content::Aead::Siv) {
                self.engine.add_home(cpath, id, fp);
            }
        });
    }
}

/// An object read front to back in ranged GETs of [`CHUNK`] bytes (one chunk held).
/// It ends where the listing said it does.
pub struct ObjectReader<'s> {
    store: &'s Store,
    key: String,
    size: u64,
    at: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl<'s> ObjectReader<'s> {
    pub fn new(store: &'s Store, key: String, size: u64) -> Self {
        ObjectReader {
            store,
            key,
            size,
            at: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.at >= self.size || out.is_empty() {
                return Ok(0);
            }
            crate::cancel::io_check()?;
            let end = (self.at + CHUNK).min(self.size);
            self.buf = self
                .store
                .get_range(&self.key, self.at..end)
                .map_err(|e| io::Error::other(e.msg))?;
            self.pos = 0;
            if self.buf.is_empty() {
                // Shorter than listed: it changed since; what is there is all there is.
                self.size = self.at;
                return Ok(0);
            }
            self.at += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The location, for messages.
pub fn shown(store: &Store) -> PathBuf {
    PathBuf::from(store.location().to_string())
}
