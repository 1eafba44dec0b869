//! Writes the view into a remote store ([`crate::remote::Store`]: S3 or SFTP) and keeps
//! it up to date on later runs, for the same export driver and plan as a directory.
//!
//! What the store holds is read once, at the start ([`Tree::load`]: one recursive
//! listing of the location, then on S3 one HEAD per object for the metadata a listing
//! lacks, all in parallel). [`TreeSink::list`] answers from that tree, so the plan's
//! quick check is size + stored mtime, as for a directory.
//!
//! Layout (the reading side is [`crate::remote::tree`]; docs/remote.md has the full
//! story):
//! * every file of the view is one object (S3) or file (SFTP) at `<location>/<view
//!   path>`, holding exactly the bytes the directory export writes;
//! * S3: every directory gets a zero-length `<path>/` marker, the root included when
//!   the location has a prefix; mtime (ns), mode, uid and gid go in rclone's metadata
//!   keys; a symlink is rclone's `<path>.rclonelink` object holding the (encrypted)
//!   target; a FIFO or device node is a zero-length object whose `mode` says which (and
//!   `rdev`, the device); a hard link is a server-side copy of its first name;
//! * SFTP: real directories, symlinks and hard links, modes and mtimes (whole seconds);
//!   no owners; FIFOs and device nodes cannot be made over SFTP and are reported.
//!
//! New objects appear only complete (S3's PUT and CompleteMultipartUpload; SFTP writes
//! a temporary name and renames it), and the driver deletes stale ones only after
//! everything new is written, so a run killed at any point leaves every object whole
//! and the next run converges.
//!
//! Identities: a remote store has no inodes. An object's identity here is a
//! fingerprint of what the quick check sees (type, size, mtime, mode, owner), so that a
//! hard link's copy that still matches its first name is found unchanged; an object
//! written by this run gets an identity of its own, which nothing listed matches, so
//! that every copy of a rewritten first name is made again.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::{Fill, TreeSink};
use crate::error::{Error, Result};
use crate::export::plan::{Delta, Existing, Fidelity};
use crate::fs::Identity;
use crate::remote::cache::MetaCache;
use crate::remote::tree::{self, Node, Tree, RCLONE_LINK_SUFFIX};
use crate::remote::{self, Store};
use crate::view::{Entry, Meta, Payload, S_IFDIR, S_IFREG};

/// A directory of the store: its key (`""` for the root, else `a/b/`).
pub struct RemoteDir {
    key: String,
    /// The directory as listed before the run (`None`: made by this run, or a
    /// directory only implied by the objects below it).
    seen: Option<Meta>,
    /// Its stored metadata is already what the view wants (S3: a marker written by
    /// this run with it).
    ready: AtomicBool,
    /// Something in it was created, replaced or removed (SFTP: the server moved its
    /// mtime, which must be set again).
    dirty: AtomicBool,
}

impl RemoteDir {
    fn new(key: String, seen: Option<Meta>) -> RemoteDir {
        RemoteDir {
            key,
            seen,
            ready: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }
}

pub struct RemoteSink<'s> {
    store: &'s Store,
    s3: bool,
    tree: Tree,
    /// The first error that makes going on pointless (authentication, a missing
    /// bucket, a lost connection); the run is stopped when it happens.
    fatal: OnceLock<remote::Error>,
    /// For the identities of objects written by this run.
    written: AtomicU64,
    /// The root directory's final metadata, once set (SFTP: set again after the lock
    /// object, which lives in the root, is removed).
    root_meta: Mutex<Option<remote::Meta>>,
    /// Something was written or removed.
    changed: AtomicBool,
    /// S3: what this run stored, by key (metadata, and a symlink object's content), for
    /// the next run's [`MetaCache`].
    stored: Mutex<HashMap<String, Stored>>,
}

/// What one object was written with: its metadata, and a symlink object's content.
type Stored = (remote::Meta, Option<Vec<u8>>);

/// A unique identity for an object written by this run (see the module docs).
const WRITTEN_DEV: u64 = u64::MAX;

impl<'s> RemoteSink<'s> {
    /// Reads what the store holds ([`Tree::load`], with what `cache` remembers of the
    /// objects). Returns the sink and the objects whose metadata or target could not be
    /// read (they will be written again: harmless, but worth a warning).
    pub fn open(
        store: &'s Store,
        cache: Option<&MetaCache>,
    ) -> Result<(RemoteSink<'s>, Vec<remote::Error>)> {
        let (tree, problems) = Tree::load(store, cache)?;
        let sink = RemoteSink {
            store,
            s3: store.is_s3(),
            tree,
            fatal: OnceLock::new(),
            written: AtomicU64::new(0),
            root_meta: Mutex::new(None),
            changed: AtomicBool::new(false),
            stored: Mutex::new(HashMap::new()),
        };
        Ok((sink, problems))
    }

    /// Notes that `key` now holds `meta` (and `content`, for a symlink object). An
    /// object (not a directory marker) written makes the run `changed`: see
    /// [`RemoteSink::updated_cache`].
    fn note_stored(&self, key: &str, meta: remote::Meta, content: Option<&[u8]>) {
        if !key.is_empty() && !key.ends_with('/') {
            self.changed.store(true, Ordering::Relaxed);
        }
        if self.s3 {
            self.stored
                .lock()
                .expect("no panics while held")
                .insert(key.to_string(), (meta, content.map(<[u8]>::to_vec)));
        }
    }

    /// What the next run may take from a cache instead of a HEAD per object (S3; see
    /// [`MetaCache`]), or `None` when the cache given to [`RemoteSink::open`] is still
    /// right. After a run that wrote objects, the location is listed once more: they
    /// have a new Last-Modified, which only a listing shows the way the next one will.
    /// Deleted objects and rewritten directory markers need no new listing: a cached
    /// entry whose object is gone is never looked up, and one whose object changed no
    /// longer matches (that marker gets its HEAD next time).
    pub fn updated_cache(&self, location: &str) -> Result<Option<MetaCache>> {
        if !self.s3 {
            return Ok(None);
        }
        if !self.changed.load(Ordering::Relaxed) {
            return Ok((self.tree.heads > 0).then(|| self.tree.to_cache(location)));
        }
        let listed = self.check(self.store.list())?;
        let stored = self.stored.lock().expect("no panics while held");
        let mut c = MetaCache::new(location);
        for e in &listed {
            if let Some((meta, content)) = stored.get(&e.key) {
                c.insert(e, meta, content.as_deref());
            } else if let Some(n) = self.tree.node_by_key(&e.key) {
                // Not written by this run: what was read before still holds while the
                // object is the one read then.
                if n.modified == e.modified && n.object_size == e.size && n.modified.is_some() {
                    let target = if n.link_object {
                        n.target.as_deref()
                    } else {
                        None
                    };
                    c.insert(e, &n.stored, target);
                }
            }
        }
        Ok(Some(c))
    }

    /// Releases the run's lock. On SFTP the lock object is a file in the root
    /// directory, so removing it moves the root's mtime: it is set again.
    pub fn unlock(&self, lock: remote::Lock<'_>) -> Result<()> {
        self.check(lock.release())?;
        let meta = *self.root_meta.lock().expect("no panics while held");
        if let (false, Some(m)) = (self.s3, meta) {
            self.check(self.store.set_meta("", &m))?;
        }
        Ok(())
    }

    /// The error that stopped the run, if one did.
    pub fn fatal(&self) -> Option<&remote::Error> {
        self.fatal.get()
    }

    /// Refuse to write into a location that holds something not made with this key
    /// (see [`super::key::check_key`]).
    pub fn check_key(&self, cryptor: &crate::format::Cryptor, config: Option<&[u8]>) -> Result<()> {
        super::key::check_key(self, cryptor, config)
    }

    /// A store error, after noting it: one that dooms every other request too stops
    /// the run (through the same flag a signal sets; the caller then reports
    /// [`RemoteSink::fatal`] instead of an interruption).
    fn check<T>(&self, r: remote::Result<T>) -> Result<T> {
        r.map_err(|e| self.note(e))
    }

    fn note(&self, e: remote::Error) -> Error {
        if e.is_fatal() && self.fatal.set(e.clone()).is_ok() {
            crate::cancel::flag().store(true, Ordering::Relaxed);
        }
        Error::Remote(e)
    }

    fn key(&self, dir: &RemoteDir, name: &[u8]) -> Result<String> {
        let name = std::str::from_utf8(name).map_err(|_| {
            Error::invalid(
                self.shown(&dir.key, &String::from_utf8_lossy(name)),
                "the name is not UTF-8, which object keys and SFTP paths must be (only possible with plaintextnames)",
            )
        })?;
        Ok(format!("{}{name}", dir.key))
    }

    fn shown(&self, dir: &str, name: &str) -> PathBuf {
        PathBuf::from(self.store.location().display_key(&format!("{dir}{name}")))
    }

    /// After `key` was written for `name` in `dir`: remove what the name held before
    /// under another key (S3: a file that became a symlink, or the reverse).
    fn replaced(&self, dir: &RemoteDir, name: &[u8], key: &str) -> Result<()> {
        let Some(h) = self.tree.find(&dir.key, name) else {
            return Ok(());
        };
        let old = Tree::key(&dir.key, h);
        if old != key && !h.is_dir() {
            self.check(self.store.delete(&[old]))?;
        }
        Ok(())
    }

    fn fresh_identity(&self, file_type: u32) -> Identity {
        Identity {
            file_type,
            dev: WRITTEN_DEV,
            ino: self.written.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether the directory's stored metadata is what the view wants.
    fn dir_matches(&self, seen: &Meta, e: &Entry) -> bool {
        let f = self.fidelity();
        seen.permissions() == e.meta.permissions()
            && f.same_time(seen.mtime, e.meta.mtime)
            && (!self.s3 || (seen.uid == e.meta.uid && seen.gid == e.meta.gid))
    }
}

/// The metadata stored with an entry of the view.
fn stored(e: &Entry) -> remote::Meta {
    remote::Meta {
        mtime: Some(e.meta.mtime),
        mode: Some(e.meta.mode),
        uid: Some(e.meta.uid),
        gid: Some(e.meta.gid),
        rdev: matches!(e.payload, Payload::Special).then_some(e.meta.rdev),
    }
}

/// Compares what is written with an object, read back in pieces.
struct CompareWriter<'a> {
    store: &'a Store,
    key: &'a str,
    size: u64,
    at: u64,
    buf: Vec<u8>,
    buf_at: u64,
    equal: bool,
    failed: Option<remote::Error>,
}

const COMPARE_CHUNK: u64 = 1 << 20;

impl Write for CompareWriter<'_> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while self.equal && !data.is_empty() {
            if self.at >= self.size {
                self.equal = false;
                break;
            }
            let off = self.at - self.buf_at;
            if off >= self.buf.len() as u64 {
                let end = (self.at + COMPARE_CHUNK).min(self.size);
                self.buf = match self.store.get_range(self.key, self.at..end) {
                    Ok(b) => b,
                    Err(e) => {
                        let msg = e.to_string();
                        self.failed = Some(e);
                        return Err(io::Error::other(msg));
                    }
                };
                self.buf_at = self.at;
                if self.buf.is_empty() {
                    self.equal = false;
                    break;
                }
                continue;
            }
            let have = &self.buf[off as usize..];
            let k = have.len().min(data.len());
            if have[..k] != data[..k] {
                self.equal = false;
            }
            self.at += k as u64;
            data = &data[k..];
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TreeSink for RemoteSink<'_> {
    type Dir = RemoteDir;

    fn open_root(&self) -> Result<Option<RemoteDir>> {
        Ok(Some(RemoteDir::new(String::new(), self.tree.root.clone())))
    }

    fn list(&self, dir: &RemoteDir) -> Result<Vec<Existing>> {
        Ok(self
            .tree
            .dir(&dir.key)
            .map(|n| Existing {
                name: n.name.clone(),
                meta: n.meta.clone(),
                target: n.target.clone(),
            })
            .collect())
    }

    fn open_dir(&self, parent: &RemoteDir, seen: &Existing) -> Result<RemoteDir> {
        let key = format!("{}/", self.key(parent, &seen.name)?);
        // A directory only implied by the objects below it has no stored metadata.
        let known = seen.meta.mtime != tree::unknown_time();
        Ok(RemoteDir::new(key, known.then(|| seen.meta.clone())))
    }

    fn make_dir(&self, parent: &RemoteDir, name: &[u8], e: &Entry) -> Result<RemoteDir> {
        let key = format!("{}/", self.key(parent, name)?);
        parent.touch();
        if self.s3 {
            // A marker's metadata does not change when objects below it do: it gets
            // the final one now.
            self.check(self.store.mkdir(&key, &stored(e)))?;
            self.note_stored(&key, stored(e), None);
            let d = RemoteDir::new(key, None);
            d.ready.store(true, Ordering::Relaxed);
            Ok(d)
        } else {
            // Writable for this run; finish_dir gives it its mode and time.
            let m = remote::Meta {
                mode: Some(S_IFDIR | 0o700),
                ..remote::Meta::default()
            };
            self.check(self.store.mkdir(&key, &m))?;
            let d = RemoteDir::new(key, None);
            d.touch();
            Ok(d)
        }
    }

    fn prepare_dir(&self, dir: &RemoteDir, _e: &Entry) -> Result<()> {
        // SFTP: a read-only directory from an earlier run is made writable for now.
        if let (false, Some(seen)) = (self.s3, &dir.seen) {
            if seen.permissions() & 0o700 != 0o700 {
                let m = remote::Meta {
                    mode: Some(S_IFDIR | seen.permissions() | 0o700),
                    ..remote::Meta::default()
                };
                self.check(self.store.set_meta(&dir.key, &m))?;
                dir.touch();
            }
        }
        Ok(())
    }

    fn finish_dir(&self, dir: &RemoteDir, e: &Entry) -> Result<()> {
        if dir.key.is_empty() {
            *self.root_meta.lock().expect("no panics while held") = Some(stored(e));
        }
        let unchanged = dir.seen.as_ref().is_some_and(|s| self.dir_matches(s, e));
        if self.s3 {
            if dir.ready.load(Ordering::Relaxed) || unchanged {
                return Ok(());
            }
            self.check(self.store.mkdir(&dir.key, &stored(e)))?;
            self.note_stored(&dir.key, stored(e), None);
            dir.ready.store(true, Ordering::Relaxed);
        } else if dir.dirty.load(Ordering::Relaxed) || !unchanged {
            self.check(self.store.set_meta(&dir.key, &stored(e)))?;
        }
        Ok(())
    }

    fn write_file(
        &self,
        parent: &RemoteDir,
        name: &[u8],
        e: &Entry,
        fill: &mut Fill,
    ) -> Result<Option<Identity>> {
        let key = self.key(parent, name)?;
        if self.s3 && key.ends_with(RCLONE_LINK_SUFFIX) {
            return Err(Error::invalid(
                self.shown("", &key),
                "a file name ending in .rclonelink cannot be stored on S3: it marks a symlink there (only possible with plaintextnames)",
            ));
        }
        let mut up = self.check(self.store.put(&key, e.meta.size, &stored(e)))?;
        let keep = match fill(&mut up) {
            Ok(keep) => keep,
            // A failing store is named as such (and may end the run), not blamed on
            // the source.
            Err(err) => {
                return Err(match up.failure() {
                    Some(r) => self.note(r),
                    None => err,
                })
            }
        };
        if !keep {
            up.abort();
            return Ok(None);
        }
        self.check(up.finish())?;
        self.note_stored(&key, stored(e), None);
        parent.touch();
        self.replaced(parent, name, &key)?;
        Ok(Some(self.fresh_identity(S_IFREG)))
    }

    fn write_other(&self, parent: &RemoteDir, name: &[u8], e: &Entry, bytes: &[u8]) -> Result<()> {
        let key = self.key(parent, name)?;
        let written = match &e.payload {
            Payload::Symlink { target } if self.s3 => {
                let k = format!("{key}{RCLONE_LINK_SUFFIX}");
                self.check(self.store.put_bytes(&k, target, &stored(e)))?;
                self.note_stored(&k, stored(e), Some(target));
                k
            }
            Payload::Symlink { target } => {
                let t = std::str::from_utf8(target).map_err(|_| {
                    Error::invalid(
                        self.shown("", &key),
                        "the symlink target is not UTF-8, which SFTP paths must be (only possible with plaintextnames)",
                    )
                })?;
                self.check(self.store.symlink(&key, t))?;
                key
            }
            Payload::Special if !self.s3 => {
                return Err(Error::invalid(
                    self.shown("", &key),
                    "FIFOs and device nodes cannot be created over SFTP; not backed up (leave it out with --exclude)",
                ));
            }
            Payload::Dir { .. } => {
                return Err(Error::invalid(
                    self.shown("", &key),
                    "directories are not leaves",
                ))
            }
            // Virtual files; on S3 also FIFOs and devices (zero bytes, the type in
            // the stored mode).
            _ => {
                self.check(self.store.put_bytes(&key, bytes, &stored(e)))?;
                self.note_stored(&key, stored(e), None);
                key
            }
        };
        parent.touch();
        self.replaced(parent, name, &written)
    }

    fn link(
        &self,
        parent: &RemoteDir,
        name: &[u8],
        e: &Entry,
        primary: &[u8],
        _expect: Option<Identity>,
    ) -> Result<()> {
        let from = std::str::from_utf8(primary).map_err(|_| {
            Error::invalid(
                self.shown("", &String::from_utf8_lossy(primary)),
                "the name is not UTF-8",
            )
        })?;
        let to = self.key(parent, name)?;
        self.check(self.store.link(from, &to, e.meta.size, &stored(e)))?;
        self.note_stored(&to, stored(e), None);
        parent.touch();
        self.replaced(parent, name, &to)
    }

    fn fix_metadata(
        &self,
        parent: &RemoteDir,
        seen: &Existing,
        e: &Entry,
        _d: &Delta,
    ) -> Result<()> {
        let key = self.key(parent, &seen.name)?;
        if self.s3 {
            // The plan rewrites instead (Fidelity::fix_in_place is false).
            return Err(Error::invalid(
                self.shown("", &key),
                "S3 metadata cannot be changed in place",
            ));
        }
        self.check(self.store.set_meta(&key, &stored(e)))
    }

    fn same_bytes(&self, parent: &RemoteDir, seen: &Existing, fill: &mut Fill) -> Result<bool> {
        let key = self.key(parent, &seen.name)?;
        let mut cmp = CompareWriter {
            store: self.store,
            key: &key,
            size: seen.meta.size,
            at: 0,
            buf: Vec::new(),
            buf_at: 0,
            equal: true,
            failed: None,
        };
        let complete = match fill(&mut cmp) {
            Ok(c) => c,
            Err(err) => {
                return Err(match cmp.failed.take() {
                    Some(r) => self.note(r),
                    None => err,
                })
            }
        };
        Ok(complete && cmp.equal && cmp.at == seen.meta.size)
    }

    fn remove(&self, parent: &RemoteDir, seen: &Existing) -> Result<()> {
        let key = self.key(parent, &seen.name)?;
        let keys = if seen.is_dir() {
            let dir = format!("{key}/");
            let mut keys = self.tree.keys_below(&dir);
            keys.push(dir);
            keys
        } else if self
            .tree
            .find(&parent.key, &seen.name)
            .is_some_and(|h| h.link_object)
        {
            vec![format!("{key}{RCLONE_LINK_SUFFIX}")]
        } else {
            vec![key]
        };
        self.check(self.store.delete(&keys))?;
        parent.touch();
        Ok(())
    }

    fn count(&self, parent: &RemoteDir, seen: &Existing) -> Result<u64> {
        if !seen.is_dir() {
            return Ok(1);
        }
        let key = self.key(parent, &seen.name)?;
        Ok(1 + self.tree.count_below(&format!("{key}/")))
    }

    fn read_name_file(&self, dir: &RemoteDir, name: &[u8]) -> Option<Vec<u8>> {
        let held = self.tree.find(&dir.key, name)?;
        let max = crate::restore::MAX_NAME_FILE;
        if held.meta.file_type() != S_IFREG || held.meta.size > max as u64 {
            return None;
        }
        self.store.get(&self.key(dir, name).ok()?).ok()
    }

    fn resolve(&self, cpath: &[u8]) -> Result<RemoteDir> {
        if cpath.is_empty() {
            return Ok(RemoteDir::new(String::new(), self.tree.root.clone()));
        }
        let (pdir, name) = crate::cpath::split(cpath);
        let pkey = if pdir.is_empty() {
            String::new()
        } else {
            format!("{}/", String::from_utf8_lossy(pdir))
        };
        let seen = self
            .tree
            .find(&pkey, name)
            .filter(|n| n.is_listed())
            .map(|n| n.meta.clone());
        let key = format!("{}/", self.key(&RemoteDir::new(pkey, None), name)?);
        Ok(RemoteDir::new(key, seen))
    }

    fn sync(&self) -> Result<()> {
        // Whatever a store acknowledged is stored (S3); SFTP offers no flush of a whole
        // tree, and fsync per file would cost a round trip each (docs/remote.md).
        Ok(())
    }

    fn fidelity(&self) -> Fidelity {
        if self.s3 {
            Fidelity {
                mtime_ns: 1,
                fix_in_place: false,
            }
        } else {
            Fidelity {
                mtime_ns: self.store.mtime_resolution_ns(),
                fix_in_place: true,
            }
        }
    }
}

impl super::key::Evidence for RemoteSink<'_> {
    fn shown(&self) -> PathBuf {
        PathBuf::from(self.store.location().to_string())
    }

    fn root_names(&self) -> Result<Vec<Vec<u8>>> {
        Ok(self.tree.dir("").map(|n| n.name.clone()).collect())
    }

    fn root_config(&self, max: usize) -> Option<Vec<u8>> {
        let name = crate::format::names::CONF_NAME;
        let h = self.tree.find("", name.as_bytes())?;
        if h.meta.file_type() != S_IFREG || h.meta.size > max as u64 {
            return None;
        }
        self.store.get(name).ok()
    }

    fn root_has_file(&self, name: &[u8]) -> bool {
        self.tree
            .find("", name)
            .is_some_and(|h| h.meta.file_type() == S_IFREG)
    }

    fn first_file(
        &self,
        skip: &dyn Fn(&[u8]) -> bool,
        min: u64,
        len: usize,
        limit: usize,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut queue = std::collections::VecDeque::from([String::new()]);
        let mut seen = 0usize;
        while let Some(dir) = queue.pop_front() {
            let mut held: Vec<&Node> = self.tree.dir(&dir).collect();
            held.sort_by(|a, b| a.name.cmp(&b.name));
            for h in held {
                seen += 1;
                if seen > limit {
                    return Ok(None);
                }
                let name = &h.name;
                if skip(name) {
                    continue;
                }
                let cpath = format!("{dir}{}", String::from_utf8_lossy(name));
                if h.is_dir() {
                    queue.push_back(format!("{cpath}/"));
                } else if h.meta.file_type() == S_IFREG && !h.link_object && h.meta.size > min {
                    let head = self.check(self.store.get_range(&cpath, 0..len as u64))?;
                    return Ok(Some((cpath.into_bytes(), head)));
                }
            }
        }
        Ok(None)
    }
}
