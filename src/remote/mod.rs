//! Remote destinations and sources (issue 15): a small synchronous storage layer over
//! S3 (Apache OpenDAL) and SFTP (openssh-sftp-client over the system `ssh`), for the
//! export driver's remote sink and the Reader's remote source, which call it from many
//! rayon threads at once.
//!
//! - [`Location`]: `s3://BUCKET/PREFIX`, `sftp://[USER@]HOST[:PORT]/PATH` (pure).
//! - [`Store`]: one open location. Keys are relative to it, `/`-separated; a directory's
//!   key ends in `/`. Every call blocks the calling thread on the store's own tokio
//!   runtime (two worker threads drive the connections).
//! - [`Meta`]: mtime, mode, uid, gid, stored in rclone's metadata keys on S3 (so that
//!   `rclone copy --metadata` restores them) and as file attributes on SFTP.
//! - [`Env`]: where credentials come from (the AWS variables and files; the ssh
//!   configuration, keys and agent, and `CRYPTBAK_SSH`).
//!
//! Bounded memory: an [`Upload`] holds at most two parts (`2 × part_size`) and a 1 MiB
//! buffer on S3 (one 1 MiB buffer on SFTP), whatever the object's size; listings hold
//! one small record per object.
//!
//! The lock: [`Store::lock`] creates `.cryptbak-lock` inside the location with a
//! conditional write (S3 `If-None-Match: *`, SFTP `O_CREAT|O_EXCL`), and removes it on
//! release. It exists only while a run holds it; [`Store::list`] never shows it.

pub mod cache;
mod env;
mod error;
mod location;
mod meta;
mod s3;
mod sftp;
pub mod tree;

use std::io;
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

pub use env::{resolve_s3, Env, S3Settings, SSH_VAR};
pub use error::{Error, ErrorKind, Result};
pub use location::{Location, ParseError};
pub use meta::{format_mtime, parse_mtime, Meta};
pub use sftp::{is_temp_name, TEMP_PREFIX};

use crate::view::Time;

/// The lock object's key (inside the location; see the module docs).
pub const LOCK_KEY: &str = ".cryptbak-lock";

/// Tuning knobs. The defaults suit a home uplink and a LAN alike.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many objects the caller moves at once (the `--transfers` option). The store
    /// sizes its connection pool and its listing/HEAD parallelism by it.
    pub transfers: usize,
    /// S3 multipart part size (S3's minimum is 5 MiB, except for the last part).
    pub part_size: usize,
    /// Parts of one object uploaded at once. 1: OpenDAL 0.55's concurrent multipart
    /// writer keeps every finished part's buffer queued until the upload is closed (its
    /// task queue is built with a prefetch of 8192), so with 2 the memory of one upload
    /// grew with the file (250 MiB peak for a 1 GiB file on s3s-fs); with 1 it takes
    /// the sequential path: one part being sent, the next being filled. Parallelism
    /// comes from `transfers` objects at once.
    pub part_concurrency: usize,
    /// Attempts after the first on throttling, 5xx and dropped connections.
    pub retries: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            transfers: 8,
            part_size: 8 << 20,
            part_concurrency: 1,
            retries: 5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    /// An S3 marker object (`key/`) or an SFTP directory.
    Dir,
    /// SFTP only.
    Symlink,
    /// Anything else SFTP reports (a device, a FIFO): never written by us.
    Other,
}

/// One object or directory below the location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    /// Relative to the location; ends in `/` for a directory.
    pub key: String,
    pub kind: Kind,
    pub size: u64,
    /// Stored metadata: complete on SFTP (mtime to the second) and after
    /// [`Store::fill_meta`]/[`Store::stat`] on S3; empty from an S3 listing.
    pub meta: Meta,
    /// Whether `meta` was read (false: an S3 listing, which carries no user metadata).
    pub meta_known: bool,
    /// S3's ETag (the MD5 of a single-part object's bytes), when the service lists it.
    pub etag: Option<String>,
    /// The service's own Last-Modified time (S3), not the source mtime.
    pub modified: Option<Time>,
}

enum Backend {
    S3(s3::S3),
    Sftp(Box<sftp::SftpStore>),
}

/// An open remote location. `Sync`: share it between threads by reference.
pub struct Store {
    loc: Location,
    backend: Backend,
    opts: Options,
    // Last, so that it is dropped after the backend (whose connections it drives).
    rt: tokio::runtime::Runtime,
}

impl Store {
    /// Opens `loc` and checks it can be reached with the credentials found in `env`:
    /// a missing bucket, failed authentication or an unreachable server is reported
    /// here ([`Error::is_fatal`]). A missing prefix or directory is not an error (an
    /// empty listing: nothing exported yet).
    pub fn open(loc: &Location, env: &Env, opts: Options) -> Result<Store> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cryptbak-remote")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    loc.to_string(),
                    format!("cannot start the I/O runtime: {e}"),
                )
            })?;
        let backend = match loc {
            Location::S3 { bucket, prefix } => {
                let settings = env::resolve_s3(env, |p| std::fs::read_to_string(p).ok())
                    .map_err(|m| Error::new(ErrorKind::Auth, loc.to_string(), m))?;
                Backend::S3(rt.block_on(s3::S3::open(loc, bucket, prefix, &settings, &opts))?)
            }
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => Backend::Sftp(Box::new(rt.block_on(sftp::SftpStore::connect(
                loc,
                user.as_deref(),
                host,
                *port,
                path,
                env,
            ))?)),
        };
        Ok(Store {
            loc: loc.clone(),
            backend,
            opts,
            rt,
        })
    }

    pub fn location(&self) -> &Location {
        &self.loc
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// What names this location for a [`cache::MetaCache`] (endpoint, bucket, prefix),
    /// on S3; SFTP needs no cache (its listing carries the metadata).
    pub fn cache_id(&self) -> Option<&str> {
        match &self.backend {
            Backend::S3(b) => Some(&b.id),
            Backend::Sftp(_) => None,
        }
    }

    /// Whether this is an S3 location (else SFTP).
    pub fn is_s3(&self) -> bool {
        matches!(self.backend, Backend::S3(_))
    }

    /// The finest mtime difference the store keeps: 1 ns on S3 (rclone's metadata),
    /// 1 s on SFTP (protocol v3). A plan compares mtimes truncated to this.
    pub fn mtime_resolution_ns(&self) -> u32 {
        match self.backend {
            Backend::S3(_) => 1,
            Backend::Sftp(_) => 1_000_000_000,
        }
    }

    /// Everything below the location, from one recursive listing (S3: ListObjectsV2
    /// pages; SFTP: a walk of parallel readdirs). Sorted by key. The lock object is
    /// left out. On S3 the entries carry size, ETag and Last-Modified but no user
    /// metadata: see [`Store::fill_meta`]. On S3 the prefix's own marker, when the
    /// service lists it, comes first with the key `""` (the root directory).
    pub fn list(&self) -> Result<Vec<RemoteEntry>> {
        let mut v = match &self.backend {
            Backend::S3(b) => self.rt.block_on(b.list())?,
            Backend::Sftp(b) => self.rt.block_on(b.list())?,
        };
        v.retain(|e| e.key != LOCK_KEY);
        v.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(v)
    }

    /// Reads the stored metadata of the entries for which `want` is true and which do
    /// not have it yet: one HEAD each on S3, `transfers` at a time (nothing to do on
    /// SFTP, whose listing has it). A plan asks only for the candidates it cannot decide
    /// from the listing alone (same size as the source). Errors are per entry.
    pub fn fill_meta(
        &self,
        entries: &mut [RemoteEntry],
        want: impl Fn(&RemoteEntry) -> bool,
    ) -> Vec<Error> {
        let Backend::S3(b) = &self.backend else {
            return Vec::new();
        };
        let todo: Vec<usize> = (0..entries.len())
            .filter(|&i| !entries[i].meta_known && want(&entries[i]))
            .collect();
        let width = self.opts.transfers.max(1) * 2;
        let mut errors = Vec::new();
        self.rt.block_on(async {
            use futures_util::StreamExt;
            let keys: Vec<(usize, String)> =
                todo.iter().map(|&i| (i, entries[i].key.clone())).collect();
            let mut results = futures_util::stream::iter(keys)
                .map(|(i, k)| async move { (i, b.stat(&k).await) })
                .buffer_unordered(width);
            while let Some((i, r)) = results.next().await {
                match r {
                    Ok(Some(st)) => {
                        entries[i].meta = st.meta;
                        entries[i].meta_known = true;
                    }
                    // Deleted since the listing: the plan will upload it again.
                    Ok(None) => entries[i].meta_known = true,
                    Err(e) => errors.push(e),
                }
            }
        });
        errors
    }

    /// One object's size and metadata (S3: HEAD), or `None` when it does not exist.
    pub fn stat(&self, key: &str) -> Result<Option<RemoteEntry>> {
        match &self.backend {
            Backend::S3(b) => self.rt.block_on(b.stat(key)),
            Backend::Sftp(b) => self.rt.block_on(b.stat(key)),
        }
    }

    /// Starts writing `key`, which will hold exactly `len` bytes and `meta`. Write the
    /// bytes through [`io::Write`], then call [`Upload::finish`]. Nothing appears under
    /// `key` before `finish` succeeds; an upload dropped unfinished (or finished with
    /// the wrong length) is aborted: S3's multipart upload is aborted, SFTP's temporary
    /// file removed.
    pub fn put(&self, key: &str, len: u64, meta: &Meta) -> Result<Upload<'_>> {
        let inner = match &self.backend {
            Backend::S3(b) => Inner::S3(self.rt.block_on(b.writer(key, len, meta, &self.opts))?),
            Backend::Sftp(b) => {
                let (f, tmp) = self.rt.block_on(b.create_temp(key))?;
                Inner::Sftp(f, tmp)
            }
        };
        Ok(Upload {
            store: self,
            key: key.to_string(),
            meta: *meta,
            len,
            written: 0,
            buf: Vec::new(),
            inner: Some(inner),
            failed: None,
        })
    }

    /// `put` for bytes in memory.
    pub fn put_bytes(&self, key: &str, data: &[u8], meta: &Meta) -> Result<()> {
        let mut u = self.put(key, data.len() as u64, meta)?;
        io::Write::write_all(&mut u, data).map_err(|e| u.take_error(e))?;
        u.finish()
    }

    /// A directory: the zero-length `key/` marker object on S3 (with `meta`), a real
    /// directory on SFTP (parents created as needed, then `meta` applied).
    pub fn mkdir(&self, key: &str, meta: &Meta) -> Result<()> {
        match &self.backend {
            Backend::S3(b) => self.rt.block_on(b.mkdir(key, meta)),
            Backend::Sftp(b) => self.rt.block_on(b.mkdir(key, meta)),
        }
    }

    /// Applies `meta` to an existing entry. SFTP: setstat (a directory's mtime is set
    /// after its contents are written, as the directory sink does). S3: only markers,
    /// which are rewritten; an object's metadata cannot change without rewriting its
    /// bytes, so for a file this returns an error and the caller uploads it again.
    pub fn set_meta(&self, key: &str, meta: &Meta) -> Result<()> {
        match &self.backend {
            Backend::S3(b) if key.ends_with('/') => self.rt.block_on(b.mkdir(key, meta)),
            Backend::S3(_) => Err(Error::new(
                ErrorKind::Other,
                self.loc.display_key(key),
                "S3 object metadata cannot be changed in place; upload the object again",
            )),
            Backend::Sftp(b) => self.rt.block_on(b.set_meta(key, meta)),
        }
    }

    /// Makes `to` hold what `from` holds, bytes and metadata: on S3 a server-side copy
    /// (nothing passes through this machine); on SFTP a hard link (one file with two
    /// names, as in the directory export). `len` is the object's size: an object S3
    /// cannot copy in one request (over 5 GiB), or a server without OpenSSH's hardlink
    /// extension, gets the bytes read back and written again, `part_size` at a time.
    pub fn link(&self, from: &str, to: &str, len: u64, meta: &Meta) -> Result<()> {
        const MAX_COPY: u64 = 5 << 30;
        let done = match &self.backend {
            Backend::S3(b) if len <= MAX_COPY => {
                self.rt.block_on(b.copy(from, to)).map(|()| true)?
            }
            Backend::S3(_) => false,
            Backend::Sftp(b) => self.rt.block_on(b.hard_link(from, to))?,
        };
        if done {
            return Ok(());
        }
        let mut up = self.put(to, len, meta)?;
        let step = self.opts.part_size.max(1 << 20) as u64;
        let mut at = 0;
        while at < len {
            let chunk = self.get_range(from, at..(at + step).min(len))?;
            if chunk.is_empty() {
                break;
            }
            at += chunk.len() as u64;
            io::Write::write_all(&mut up, &chunk).map_err(|e| up.take_error(e))?;
        }
        up.finish()
    }

    /// A symlink `key` pointing to `target` (SFTP; made under a temporary name and
    /// renamed into place). S3 has no symlinks: how the view's symlinks are stored there
    /// (e.g. rclone's `.rclonelink` objects) is the remote sink's decision, so this
    /// returns an error on S3.
    pub fn symlink(&self, key: &str, target: &str) -> Result<()> {
        match &self.backend {
            Backend::Sftp(b) => self.rt.block_on(b.symlink(key, target)),
            Backend::S3(_) => Err(Error::new(
                ErrorKind::Other,
                self.loc.display_key(key),
                "S3 has no symlinks",
            )),
        }
    }

    /// The target of the symlink `key` (SFTP).
    pub fn read_link(&self, key: &str) -> Result<String> {
        match &self.backend {
            Backend::Sftp(b) => self.rt.block_on(b.read_link(key)),
            Backend::S3(_) => Err(Error::new(
                ErrorKind::Other,
                self.loc.display_key(key),
                "S3 has no symlinks",
            )),
        }
    }

    /// Bytes `range` of an object (a ranged GET on S3); shorter only at the end of
    /// the object. Call from many threads at once for a parallel read.
    pub fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        match &self.backend {
            Backend::S3(b) => self.rt.block_on(b.get_range(key, range)),
            Backend::Sftp(b) => self.rt.block_on(b.get_range(key, range)),
        }
    }

    /// A whole (small) object.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        match &self.backend {
            Backend::S3(b) => self.rt.block_on(b.get(key)),
            Backend::Sftp(b) => self.rt.block_on(b.get(key)),
        }
    }

    /// Deletes `keys` (directories as `key/`, listed after their contents). S3 batches
    /// them (DeleteObjects); keys that are already gone are not an error.
    pub fn delete(&self, keys: &[String]) -> Result<()> {
        match &self.backend {
            Backend::S3(b) => self.rt.block_on(b.delete(keys)),
            Backend::Sftp(b) => self.rt.block_on(b.delete(keys)),
        }
    }

    /// Takes the location's lock for one run (see [`Lock`]). `owner` is free text shown
    /// to whoever finds the lock taken (e.g. `cryptbak export on host, pid 123`).
    pub fn lock(&self, owner: &str) -> Result<Lock<'_>> {
        let mut tok = [0u8; 16];
        getrandom::getrandom(&mut tok).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                self.loc.display_key(LOCK_KEY),
                format!("no randomness: {e}"),
            )
        })?;
        let token: String = tok.iter().map(|b| format!("{b:02x}")).collect();
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let body = format!(
            "cryptbak lock\ntoken {token}\nsince {since}\nowner {}\n",
            one_line(owner)
        );
        let what = self.loc.display_key(LOCK_KEY);
        let taken = |store: &Store| -> Error {
            let holder = store
                .get(LOCK_KEY)
                .ok()
                .map(|b| describe_lock(&String::from_utf8_lossy(&b)))
                .unwrap_or_else(|| "an unknown holder".into());
            Error::new(
                ErrorKind::Locked,
                &what,
                format!(
                    "another run holds the lock ({holder}); if that run is dead, remove the lock object and run again"
                ),
            )
        };
        let enforced = match &self.backend {
            Backend::Sftp(b) => match self.rt.block_on(b.put_new(LOCK_KEY, body.as_bytes())) {
                Ok(()) => true,
                Err(e) if e.kind == ErrorKind::Exists => return Err(taken(self)),
                Err(e) => return Err(e),
            },
            Backend::S3(b) => {
                let put = |data: &str| {
                    self.rt.block_on(b.put_small(
                        LOCK_KEY,
                        data.as_bytes().to_vec(),
                        &Meta::default(),
                        true,
                    ))
                };
                // A service that ignores If-None-Match would let a second run overwrite
                // a held lock: look first, so that at least a lock already there stops us.
                if self.stat(LOCK_KEY)?.is_some() {
                    return Err(taken(self));
                }
                match put(&body) {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrorKind::Exists => return Err(taken(self)),
                    Err(e) => return Err(e),
                }
                // Does the service honour the condition? Ask again, now that the key
                // exists: a service that does refuses (our lock is untouched); one that
                // does not rewrites the same bytes.
                let enforced = match put(&body) {
                    Err(e) if e.kind == ErrorKind::Exists => true,
                    Ok(()) => false,
                    Err(e) => return Err(e),
                };
                // Without the condition, two runs starting together may both have
                // written: the last write wins, so read back and keep the lock only if
                // it is still ours.
                if !enforced {
                    let now = self.get(LOCK_KEY)?;
                    if now != body.as_bytes() {
                        return Err(taken(self));
                    }
                }
                enforced
            }
        };
        Ok(Lock {
            store: self,
            body,
            enforced,
            released: false,
        })
    }

    /// Removes a lock left by a dead run (whoever holds it).
    pub fn break_lock(&self) -> Result<()> {
        self.delete(&[LOCK_KEY.to_string()])
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// "owner …, since <time>" from a lock object's text, for the message.
fn describe_lock(text: &str) -> String {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    match (field("owner "), field("since ")) {
        (Some(o), Some(s)) => format!("{o}, since {s} (seconds since 1970)"),
        (Some(o), None) => o,
        _ => "an unknown holder".into(),
    }
}

/// The location's lock, held until [`Lock::release`] or drop.
///
/// `enforced()` says whether the service made the creation atomic (SFTP's exclusive
/// create; S3's `If-None-Match: *` where the service honours it). When it is false, a
/// lock already present still stops a second run, but two runs that start within the
/// same moment may both proceed: the caller should say so.
pub struct Lock<'s> {
    store: &'s Store,
    body: String,
    enforced: bool,
    released: bool,
}

impl Lock<'_> {
    pub fn enforced(&self) -> bool {
        self.enforced
    }

    /// Removes the lock object, if it is still ours (a lock broken and retaken by
    /// another run is left alone).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.remove()
    }

    fn remove(&self) -> Result<()> {
        match self.store.get(LOCK_KEY) {
            Ok(b) if b == self.body.as_bytes() => self.store.break_lock(),
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.remove();
        }
    }
}

enum Inner {
    S3(opendal::Writer),
    Sftp(openssh_sftp_client::file::File, String),
}

/// An object being written (see [`Store::put`]).
pub struct Upload<'s> {
    store: &'s Store,
    key: String,
    meta: Meta,
    len: u64,
    written: u64,
    buf: Vec<u8>,
    inner: Option<Inner>,
    /// The first error, kept whole: `io::Write` can only pass a copy of its text.
    failed: Option<Error>,
}

/// Bytes gathered before they are handed to the backend (S3 then groups them into
/// parts of `part_size`).
const UPLOAD_BUF: usize = 1 << 20;

impl Upload<'_> {
    fn what(&self) -> String {
        self.store.loc.display_key(&self.key)
    }

    fn push(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.buf);
        let r = match (self.inner.as_mut(), &self.store.backend) {
            (Some(Inner::S3(w)), Backend::S3(b)) => self
                .store
                .rt
                .block_on(w.write(data))
                .map_err(|e| b.err_for(&self.key, e)),
            (Some(Inner::Sftp(f, _)), Backend::Sftp(b)) => {
                self.store.rt.block_on(b.write(&self.key, f, &data))
            }
            _ => Err(Error::new(
                ErrorKind::Other,
                self.what(),
                "upload already ended",
            )),
        };
        if let Err(e) = &r {
            self.failed.get_or_insert(e.clone());
        }
        r
    }

    /// The error that made a write fail, whole (an [`io::Write`] caller only sees its
    /// text): taken, so that the caller can tell a failing store from a failing source.
    pub fn failure(&mut self) -> Option<Error> {
        self.failed.take()
    }

    fn take_error(&mut self, e: io::Error) -> Error {
        self.failed
            .take()
            .unwrap_or_else(|| Error::new(ErrorKind::Other, self.what(), e.to_string()))
    }

    /// Completes the object. Fails (and aborts) if a write failed or the number of
    /// bytes written differs from the announced length.
    pub fn finish(mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            self.abort();
            return Err(e);
        }
        if let Err(e) = self.push() {
            self.abort();
            return Err(e);
        }
        if self.written != self.len {
            let msg = format!(
                "{} bytes were written where {} were announced (the source changed while it was read?); nothing was stored",
                self.written, self.len
            );
            self.abort();
            return Err(Error::new(ErrorKind::SizeMismatch, self.what(), msg));
        }
        let r = match (self.inner.take(), &self.store.backend) {
            (Some(Inner::S3(mut w)), Backend::S3(b)) => {
                let r = self
                    .store
                    .rt
                    .block_on(w.close())
                    .map(|_| ())
                    .map_err(|e| b.err_for(&self.key, e));
                if r.is_err() {
                    let _ = self.store.rt.block_on(w.abort());
                }
                r
            }
            (Some(Inner::Sftp(f, tmp)), Backend::Sftp(b)) => self
                .store
                .rt
                .block_on(b.commit(&self.key, f, &tmp, &self.meta)),
            _ => Err(Error::new(
                ErrorKind::Other,
                self.what(),
                "upload already ended",
            )),
        };
        r
    }

    /// Aborts the upload: nothing is stored under the key.
    pub fn abort(&mut self) {
        match (self.inner.take(), &self.store.backend) {
            (Some(Inner::S3(mut w)), Backend::S3(_)) => {
                let _ = self.store.rt.block_on(w.abort());
            }
            (Some(Inner::Sftp(f, tmp)), Backend::Sftp(b)) => {
                self.store.rt.block_on(b.discard(f, &tmp));
            }
            _ => {}
        }
    }
}

impl io::Write for Upload<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(io::Error::other(e.to_string()));
        }
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buf.len() >= UPLOAD_BUF {
            self.push().map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        self.abort();
    }
}
