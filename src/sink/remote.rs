//! Writes the view into a remote store ([`crate::remote::Store`]: S3 or SFTP) and keeps
//! it up to date on later runs, for the same export driver and plan as a directory.
//!
//! What the store holds is read once, at the start: one recursive listing of the
//! location, then (S3) one HEAD per object for the metadata a listing lacks, all in
//! parallel. [`TreeSink::list`] answers from that index, grouped by directory, so the
//! plan's quick check is size + stored mtime, as for a directory.
//!
//! Layout (docs/remote.md has the full story):
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
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use super::{Fill, TreeSink};
use crate::error::{Error, Result};
use crate::export::plan::{Delta, Existing, Fidelity};
use crate::fs::Identity;
use crate::remote::{self, Kind, RemoteEntry, Store};
use crate::view::{Entry, Meta, Payload, Time, S_IFDIR, S_IFLNK, S_IFREG};

/// The suffix rclone gives a symlink stored as an object (`rclone --links`): the object
/// holds the target. `rclone copy --links` turns it back into a symlink.
pub const RCLONE_LINK_SUFFIX: &str = ".rclonelink";

const S_IFMT: u32 = 0o170000;

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

/// One name of a listed directory.
struct Held {
    existing: Existing,
    /// S3: a symlink stored as `<name>.rclonelink`.
    link_object: bool,
}

/// The store's content before the run, by directory key.
#[derive(Default)]
struct Index {
    dirs: HashMap<String, HashMap<Vec<u8>, Held>>,
    /// The root directory's own metadata (S3: its marker's; SFTP: the directory's).
    root: Option<Meta>,
}

impl Index {
    fn find(&self, dir: &str, name: &[u8]) -> Option<&Held> {
        self.dirs.get(dir)?.get(name)
    }

    /// Every key below the directory `dir` (not its own marker): files first, then
    /// directories, deepest first, so that a store that only removes empty
    /// directories (SFTP, s3s-fs) can follow the order.
    fn keys_below(&self, dir: &str) -> Vec<String> {
        let mut files = Vec::new();
        let mut dirs: Vec<String> = Vec::new();
        let mut stack = vec![dir.to_string()];
        while let Some(d) = stack.pop() {
            for h in self.dirs.get(&d).into_iter().flat_map(|m| m.values()) {
                let name = String::from_utf8_lossy(&h.existing.name);
                if h.existing.is_dir() {
                    let k = format!("{d}{name}/");
                    dirs.push(k.clone());
                    stack.push(k);
                } else if h.link_object {
                    files.push(format!("{d}{name}{RCLONE_LINK_SUFFIX}"));
                } else {
                    files.push(format!("{d}{name}"));
                }
            }
        }
        files.sort();
        dirs.sort();
        dirs.sort_by_key(|k| std::cmp::Reverse(k.matches('/').count()));
        files.extend(dirs);
        files
    }

    fn count_below(&self, dir: &str) -> u64 {
        let mut n = 0;
        let mut stack = vec![dir.to_string()];
        while let Some(d) = stack.pop() {
            for h in self.dirs.get(&d).into_iter().flat_map(|m| m.values()) {
                n += 1;
                if h.existing.is_dir() {
                    stack.push(format!("{d}{}/", String::from_utf8_lossy(&h.existing.name)));
                }
            }
        }
        n
    }
}

pub struct RemoteSink<'s> {
    store: &'s Store,
    s3: bool,
    index: Index,
    /// The first error that makes going on pointless (authentication, a missing
    /// bucket, a lost connection); the run is stopped when it happens.
    fatal: OnceLock<remote::Error>,
    /// For the identities of objects written by this run.
    written: AtomicU64,
    /// The root directory's final metadata, once set (SFTP: set again after the lock
    /// object, which lives in the root, is removed).
    root_meta: Mutex<Option<remote::Meta>>,
}

/// A unique identity for an object written by this run (see the module docs).
const WRITTEN_DEV: u64 = u64::MAX;
/// The `dev` of every fingerprint identity.
const LISTED_DEV: u64 = u64::MAX - 1;

impl<'s> RemoteSink<'s> {
    /// Reads what the store holds: one listing, then (S3) the metadata of every
    /// object, `2 × transfers` requests at a time, and the symlink targets. Returns the
    /// sink and the objects whose metadata could not be read (they will be written
    /// again: harmless, but worth a warning).
    pub fn open(store: &'s Store) -> Result<(RemoteSink<'s>, Vec<remote::Error>)> {
        let s3 = store.mtime_resolution_ns() == 1;
        let mut entries = store.list()?;
        let mut problems = store.fill_meta(&mut entries, |_| true);
        if let Some(e) = problems.iter().find(|e| e.is_fatal()) {
            return Err(e.clone().into());
        }
        let mut root = None;
        if !s3 {
            // The listing holds what is below the directory; the directory itself:
            root = match store.stat("") {
                Ok(Some(st)) => Some(meta_from(&st, S_IFDIR)),
                Ok(None) => None,
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    problems.push(e);
                    None
                }
            };
        }
        // Symlink targets: the body of an rclone link object (S3), readlink (SFTP).
        let links: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                let e = &entries[i];
                if s3 {
                    e.kind == Kind::File
                        && e.key.ends_with(RCLONE_LINK_SUFFIX)
                        && e.size <= 64 * 1024
                } else {
                    e.kind == Kind::Symlink
                }
            })
            .collect();
        let width = store.options().transfers.max(1) * 2;
        let targets = par_map(&links, width, |&i| {
            let key = &entries[i].key;
            if s3 {
                store.get(key)
            } else {
                store.read_link(key).map(String::into_bytes)
            }
        });
        let mut target_of = HashMap::new();
        for (&i, t) in links.iter().zip(targets) {
            match t {
                Ok(t) => {
                    target_of.insert(i, t);
                }
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => problems.push(e),
            }
        }
        let mut index = Index {
            root,
            ..Index::default()
        };
        for (i, e) in entries.into_iter().enumerate() {
            index.add(e, s3, target_of.remove(&i));
        }
        let sink = RemoteSink {
            store,
            s3,
            index,
            fatal: OnceLock::new(),
            written: AtomicU64::new(0),
            root_meta: Mutex::new(None),
        };
        Ok((sink, problems))
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
        let Some(h) = self.index.find(&dir.key, name) else {
            return Ok(());
        };
        let old = if h.link_object {
            format!("{}{RCLONE_LINK_SUFFIX}", self.key(dir, name)?)
        } else {
            self.key(dir, name)?
        };
        if old != key && !h.existing.is_dir() {
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

impl Index {
    fn add(&mut self, e: RemoteEntry, s3: bool, target: Option<Vec<u8>>) {
        if e.key.is_empty() {
            self.root = Some(meta_from(&e, S_IFDIR));
            return;
        }
        let path = e.key.trim_end_matches('/');
        let (dir, name) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        if name.is_empty() || dir.contains("//") {
            return; // not a key any export writes
        }
        self.imply(dir);
        let (name, kind, link_object) = match e.kind {
            Kind::Dir => (name, S_IFDIR, false),
            Kind::Symlink => (name, S_IFLNK, false),
            Kind::File if s3 && name.len() > RCLONE_LINK_SUFFIX.len() => {
                match name.strip_suffix(RCLONE_LINK_SUFFIX) {
                    Some(n) => (n, S_IFLNK, true),
                    None => (name, S_IFREG, false),
                }
            }
            Kind::File => (name, S_IFREG, false),
            Kind::Other => (name, 0, false),
        };
        let mut meta = meta_from(&e, kind);
        if kind == S_IFLNK {
            meta.size = target.as_ref().map_or(0, |t| t.len() as u64);
        }
        let held = Held {
            existing: Existing {
                name: name.as_bytes().to_vec(),
                meta,
                target,
            },
            link_object,
        };
        let list = self.dirs.entry(dir.to_string()).or_default();
        match list.get_mut(name.as_bytes()) {
            // A directory implied by the keys below it, now listed itself (its marker);
            // otherwise a directory wins over an object of the same name, which only
            // another tool can have made.
            Some(h) if h.existing.is_dir() && kind != S_IFDIR => {}
            Some(h) => *h = held,
            None => {
                list.insert(name.as_bytes().to_vec(), held);
            }
        }
    }

    /// Make sure the directory `dir` (`a/b/`) and its parents are entries of their
    /// parents, whether or not the store listed them (s3s-fs lists no markers; other
    /// tools write none).
    fn imply(&mut self, dir: &str) {
        let mut d = dir.trim_end_matches('/');
        while !d.is_empty() {
            let (parent, name) = match d.rfind('/') {
                Some(i) => (&d[..=i], &d[i + 1..]),
                None => ("", d),
            };
            let list = self.dirs.entry(parent.to_string()).or_default();
            if list
                .get(name.as_bytes())
                .is_some_and(|h| h.existing.is_dir())
            {
                return;
            }
            list.insert(
                name.as_bytes().to_vec(),
                Held {
                    existing: Existing {
                        name: name.as_bytes().to_vec(),
                        meta: implied_dir_meta(),
                        target: None,
                    },
                    link_object: false,
                },
            );
            d = parent.trim_end_matches('/');
        }
    }
}

/// Metadata no view entry has: whatever is compared with it differs.
fn unknown_time() -> Time {
    Time {
        sec: i64::MIN,
        nsec: 0,
    }
}

fn implied_dir_meta() -> Meta {
    Meta {
        mode: S_IFDIR,
        uid: u32::MAX,
        gid: u32::MAX,
        size: 0,
        atime: unknown_time(),
        mtime: unknown_time(),
        dev: LISTED_DEV,
        ino: 0,
        nlink: 1,
        rdev: 0,
    }
}

/// A listed entry as the plan sees it. `kind` is the type the listing shows (S_IFREG
/// for an S3 object); the stored mode decides only the permission bits, and for an S3
/// object also whether it stands for a FIFO or device node.
fn meta_from(e: &RemoteEntry, kind: u32) -> Meta {
    let stored = e.meta.mode;
    let file_type = match (kind, stored.map(|m| m & S_IFMT)) {
        (S_IFREG, Some(t)) if is_special(t) => t,
        _ => kind,
    };
    let perms = stored.map_or(0, |m| m & 0o7777);
    let mtime = e.meta.mtime.unwrap_or_else(unknown_time);
    let mut m = Meta {
        mode: file_type | perms,
        uid: e.meta.uid.unwrap_or(u32::MAX),
        gid: e.meta.gid.unwrap_or(u32::MAX),
        size: e.size,
        atime: mtime,
        mtime,
        dev: LISTED_DEV,
        ino: 0,
        nlink: 1,
        rdev: e.meta.rdev.unwrap_or(0),
    };
    m.ino = fingerprint(&m);
    m
}

fn is_special(t: u32) -> bool {
    matches!(t, 0o010000 | 0o020000 | 0o060000)
}

/// What the quick check sees of an entry, as a number (see the module docs).
fn fingerprint(m: &Meta) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (m.mode, m.uid, m.gid, m.size, m.mtime.sec, m.mtime.nsec).hash(&mut h);
    h.finish()
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

/// `f` over `items`, `width` at a time, on threads of their own (the calls block on
/// the network, not on the CPU). Results in the order of `items`.
fn par_map<T: Sync, R: Send>(items: &[T], width: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    let next = AtomicUsize::new(0);
    let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..width.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *out[i].lock().expect("no panics while held") = Some(r);
            });
        }
    });
    out.into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no panics while held")
                .expect("every item was done")
        })
        .collect()
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
        Ok(Some(RemoteDir::new(String::new(), self.index.root.clone())))
    }

    fn list(&self, dir: &RemoteDir) -> Result<Vec<Existing>> {
        Ok(self
            .index
            .dirs
            .get(&dir.key)
            .into_iter()
            .flat_map(|m| m.values())
            .map(|h| h.existing.clone())
            .collect())
    }

    fn open_dir(&self, parent: &RemoteDir, seen: &Existing) -> Result<RemoteDir> {
        let key = format!("{}/", self.key(parent, &seen.name)?);
        // A directory only implied by the objects below it has no stored metadata.
        let known = seen.meta.mtime != unknown_time();
        Ok(RemoteDir::new(key, known.then(|| seen.meta.clone())))
    }

    fn make_dir(&self, parent: &RemoteDir, name: &[u8], e: &Entry) -> Result<RemoteDir> {
        let key = format!("{}/", self.key(parent, name)?);
        parent.touch();
        if self.s3 {
            // A marker's metadata does not change when objects below it do: it gets
            // the final one now.
            self.check(self.store.mkdir(&key, &stored(e)))?;
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
            let mut keys = self.index.keys_below(&dir);
            keys.push(dir);
            keys
        } else if self
            .index
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
        Ok(1 + self.index.count_below(&format!("{key}/")))
    }

    fn read_name_file(&self, dir: &RemoteDir, name: &[u8]) -> Option<Vec<u8>> {
        let held = self.index.find(&dir.key, name)?;
        let max = crate::restore::MAX_NAME_FILE;
        if held.existing.meta.file_type() != S_IFREG || held.existing.meta.size > max as u64 {
            return None;
        }
        self.store.get(&self.key(dir, name).ok()?).ok()
    }

    fn resolve(&self, cpath: &[u8]) -> Result<RemoteDir> {
        if cpath.is_empty() {
            return Ok(RemoteDir::new(String::new(), self.index.root.clone()));
        }
        let (pdir, name) = crate::cpath::split(cpath);
        let pkey = if pdir.is_empty() {
            String::new()
        } else {
            format!("{}/", String::from_utf8_lossy(pdir))
        };
        let seen = self
            .index
            .find(&pkey, name)
            .map(|h| h.existing.meta.clone())
            .filter(|m| m.mtime != unknown_time());
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
        Ok(self
            .index
            .dirs
            .get("")
            .into_iter()
            .flat_map(|m| m.keys())
            .cloned()
            .collect())
    }

    fn root_config(&self, max: usize) -> Option<Vec<u8>> {
        let name = crate::format::names::CONF_NAME;
        let h = self.index.find("", name.as_bytes())?;
        if h.existing.meta.file_type() != S_IFREG || h.existing.meta.size > max as u64 {
            return None;
        }
        self.store.get(name).ok()
    }

    fn root_has_file(&self, name: &[u8]) -> bool {
        self.index
            .find("", name)
            .is_some_and(|h| h.existing.meta.file_type() == S_IFREG)
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
            let mut held: Vec<&Held> = self
                .index
                .dirs
                .get(&dir)
                .into_iter()
                .flat_map(|m| m.values())
                .collect();
            held.sort_by(|a, b| a.existing.name.cmp(&b.existing.name));
            for h in held {
                seen += 1;
                if seen > limit {
                    return Ok(None);
                }
                let name = &h.existing.name;
                if skip(name) {
                    continue;
                }
                let cpath = format!("{dir}{}", String::from_utf8_lossy(name));
                if h.existing.is_dir() {
                    queue.push_back(format!("{cpath}/"));
                } else if h.existing.meta.file_type() == S_IFREG
                    && !h.link_object
                    && h.existing.meta.size > min
                {
                    let head = self.check(self.store.get_range(&cpath, 0..len as u64))?;
                    return Ok(Some((cpath.into_bytes(), head)));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, size: u64, mode: Option<u32>) -> RemoteEntry {
        RemoteEntry {
            key: key.into(),
            kind: if key.ends_with('/') {
                Kind::Dir
            } else {
                Kind::File
            },
            size,
            meta: remote::Meta {
                mtime: Some(Time { sec: 7, nsec: 9 }),
                mode,
                uid: Some(1),
                gid: Some(2),
                rdev: None,
            },
            meta_known: true,
            etag: None,
            modified: None,
        }
    }

    fn names(ix: &Index, dir: &str) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = ix.dirs[dir]
            .values()
            .map(|h| {
                (
                    String::from_utf8(h.existing.name.clone()).unwrap(),
                    h.existing.meta.mode,
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn index_groups_by_directory_and_implies_unlisted_ones() {
        let mut ix = Index::default();
        // s3s-fs lists no markers: a/ and a/b/ are implied by a/b/c.
        ix.add(file("a/b/c", 10, Some(0o100640)), true, None);
        ix.add(file("top", 3, Some(0o100600)), true, None);
        ix.add(
            file("l.rclonelink", 5, Some(0o120777)),
            true,
            Some(b"dGFy".to_vec()),
        );
        ix.add(file("fifo", 0, Some(0o010644)), true, None);
        assert_eq!(
            names(&ix, ""),
            vec![
                ("a".into(), S_IFDIR),
                ("fifo".into(), 0o010644),
                ("l".into(), 0o120777),
                ("top".into(), 0o100600),
            ]
        );
        assert_eq!(names(&ix, "a/"), vec![("b".into(), S_IFDIR)]);
        assert_eq!(names(&ix, "a/b/"), vec![("c".into(), 0o100640)]);
        let l = ix.find("", b"l").unwrap();
        assert!(l.link_object);
        assert_eq!(l.existing.target.as_deref(), Some(&b"dGFy"[..]));
        // A listed marker replaces the implied directory and brings its metadata.
        ix.add(file("a/", 0, Some(0o40750)), true, None);
        let a = ix.find("", b"a").unwrap();
        assert_eq!(a.existing.meta.mode, 0o40750);
        assert_eq!(a.existing.meta.mtime, Time { sec: 7, nsec: 9 });
        // A later implication does not undo it.
        ix.add(file("a/z", 1, None), true, None);
        assert_eq!(ix.find("", b"a").unwrap().existing.meta.mode, 0o40750);
        assert_eq!(ix.count_below(""), 7);
        assert_eq!(
            ix.keys_below("a/"),
            vec!["a/b/c".to_string(), "a/z".to_string(), "a/b/".to_string()]
        );
    }

    #[test]
    fn on_sftp_a_name_ending_in_rclonelink_is_a_file() {
        let mut ix = Index::default();
        ix.add(file("x.rclonelink", 5, Some(0o100644)), false, None);
        let x = ix.find("", b"x.rclonelink").unwrap();
        assert!(!x.link_object);
        assert_eq!(x.existing.meta.file_type(), S_IFREG);
    }

    #[test]
    fn copies_share_a_fingerprint_and_changes_break_it() {
        let a = meta_from(&file("a", 10, Some(0o100644)), S_IFREG);
        let b = meta_from(&file("b", 10, Some(0o100644)), S_IFREG);
        assert_eq!(a.identity(), b.identity());
        let c = meta_from(&file("c", 11, Some(0o100644)), S_IFREG);
        assert_ne!(a.identity(), c.identity());
        let mut unknown = file("d", 10, None);
        unknown.meta = remote::Meta::default();
        let d = meta_from(&unknown, S_IFREG);
        assert_eq!(d.mtime, unknown_time());
        assert_eq!(d.mode, S_IFREG);
    }

    #[test]
    fn par_map_keeps_order() {
        let items: Vec<u32> = (0..100).collect();
        assert_eq!(
            par_map(&items, 7, |x| x * 2),
            (0..100).map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(par_map(&[] as &[u32], 3, |x| *x).is_empty());
    }
}
