//! Writes the view into a directory, the way `cp -a` of a reverse mount would, and keeps
//! it up to date on later runs (incremental export).
//!
//! Every file is written under a temporary name in its final directory and renamed into
//! place only when complete, with its mode, owner and times already set: an interrupted
//! export never leaves a file that looks complete and is not, and the next run converges.
//! An existing entry whose type, size and mtime already match is left alone (not even
//! its metadata is touched unless it differs), so `rsync` afterwards ships only real
//! changes. Directories get their final mode and times last, because adding entries
//! changes a directory's mtime and a read-only directory could not be filled.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use filetime::FileTime;
use nix::sys::stat::{Mode, SFlag};

use super::{Sink, Written};
use crate::content::FileEncryptor;
use crate::error::{Error, IoContext, Result};
use crate::sync::{leaf_delta, Action, Delta};
use crate::view::{Entry, Meta, Payload, Time, View};

/// Prefix of temporary files; never a name the view can contain with encrypted names
/// (base64 has no `.`), and recognisable for cleanup after a crash.
pub const TEMP_PREFIX: &str = ".cryptbak-tmp-";

#[derive(Clone, Copy, Debug, Default)]
pub struct DirOptions {
    /// Decide and report, but change nothing.
    pub dry_run: bool,
    /// Re-encrypt files whose size and mtime match and compare the bytes too.
    pub checksum: bool,
    /// Remove destination entries that are no longer in the view.
    pub delete: bool,
    /// Refuse to delete more than this many entries (nothing is deleted then).
    pub max_delete: Option<u64>,
}

pub struct DirSink {
    root: PathBuf,
    /// Set owners as in the source (only root may).
    chown: bool,
    opts: DirOptions,
    counter: AtomicU64,
    stale: Mutex<Vec<PathBuf>>,
}

fn filetime(t: Time) -> FileTime {
    FileTime::from_unix_time(t.sec, t.nsec)
}

/// Set atime and mtime of whatever is at `path` without following or opening it:
/// `filetime::set_file_times` opens the file on some paths, which blocks on a FIFO.
fn set_times(path: &Path, atime: Time, mtime: Time) -> Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let ts = |t: Time| TimeSpec::new(t.sec, i64::from(t.nsec));
    utimensat(
        None,
        path,
        &ts(atime),
        &ts(mtime),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| Error::io(path, io::Error::from(errno)))
}

fn same_time(m: &fs::Metadata, t: Time) -> bool {
    m.mtime() == t.sec && m.mtime_nsec() as u32 == t.nsec
}

impl DirSink {
    pub fn new(root: PathBuf, opts: DirOptions) -> DirSink {
        DirSink {
            root,
            chown: nix::unistd::geteuid().is_root(),
            opts,
            counter: AtomicU64::new(0),
            stale: Mutex::new(Vec::new()),
        }
    }

    pub fn path_of(&self, cpath: &[u8]) -> PathBuf {
        if cpath.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(cpath))
        }
    }

    /// A fresh temporary path beside `target`.
    fn temp_beside(&self, target: &Path) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        target.with_file_name(format!("{TEMP_PREFIX}{}-{n}", std::process::id()))
    }

    fn chown(&self, path: &Path, m: &Meta) -> Result<()> {
        if self.chown {
            std::os::unix::fs::lchown(path, Some(m.uid), Some(m.gid)).at(path)?;
        }
        Ok(())
    }

    /// Run `make` on a temporary path, then rename it over `target`; clean up on failure.
    fn atomically(&self, target: &Path, make: impl FnOnce(&Path) -> Result<u64>) -> Result<u64> {
        let tmp = self.temp_beside(target);
        let result = make(&tmp).and_then(|read| {
            fs::rename(&tmp, target).at(target)?;
            Ok(read)
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_file(
        &self,
        e: &Entry,
        view: &View,
        enc: &mut FileEncryptor,
        tmp: &Path,
    ) -> Result<u64> {
        let f = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .at(tmp)?;
        let mut w = BufWriter::with_capacity(64 * 1024, f);
        let read = view.write_content(e, enc, &mut w)?;
        let f = w
            .into_inner()
            .map_err(|e2| Error::io(tmp, e2.into_error()))?;
        // chown clears setuid bits, so ownership goes first, then the mode.
        if self.chown {
            std::os::unix::fs::fchown(&f, Some(e.meta.uid), Some(e.meta.gid)).at(tmp)?;
        }
        f.set_permissions(fs::Permissions::from_mode(e.meta.permissions()))
            .at(tmp)?;
        filetime::set_file_handle_times(
            &f,
            Some(filetime(e.meta.atime)),
            Some(filetime(e.meta.mtime)),
        )
        .at(tmp)?;
        Ok(read)
    }

    fn write_symlink(&self, e: &Entry, target: &[u8], tmp: &Path) -> Result<u64> {
        std::os::unix::fs::symlink(OsStr::from_bytes(target), tmp).at(tmp)?;
        self.chown(tmp, &e.meta)?;
        set_times(tmp, e.meta.atime, e.meta.mtime)?;
        Ok(0)
    }

    fn write_special(&self, e: &Entry, tmp: &Path) -> Result<u64> {
        let kind = SFlag::from_bits_truncate(e.meta.file_type());
        let perm = Mode::from_bits_truncate(e.meta.permissions());
        nix::sys::stat::mknod(tmp, kind, perm, e.meta.rdev).map_err(|errno| {
            let why = if errno == nix::errno::Errno::EPERM {
                "cannot create this special file (device nodes need root)".to_string()
            } else {
                format!("cannot create special file: {errno}")
            };
            Error::invalid(tmp, why)
        })?;
        self.chown(tmp, &e.meta)?;
        fs::set_permissions(tmp, fs::Permissions::from_mode(e.meta.permissions())).at(tmp)?;
        set_times(tmp, e.meta.atime, e.meta.mtime)?;
        Ok(0)
    }

    fn write_new(
        &self,
        e: &Entry,
        view: &View,
        enc: &mut FileEncryptor,
        target: &Path,
    ) -> Result<u64> {
        match &e.payload {
            Payload::Symlink { target: t } => {
                self.atomically(target, |tmp| self.write_symlink(e, t, tmp))
            }
            Payload::Special => self.atomically(target, |tmp| self.write_special(e, tmp)),
            Payload::Dir { .. } => Err(Error::invalid(target, "directories are not leaves")),
            _ => self.atomically(target, |tmp| self.write_file(e, view, enc, tmp)),
        }
    }

    /// Fix mode and owner in place (content and mtime already match).
    fn fix_metadata(&self, path: &Path, e: &Entry, d: &Delta) -> Result<()> {
        if d.owner || d.group {
            self.chown(path, &e.meta)?;
        }
        // chown may have cleared setuid bits, so the mode is set after it.
        if (d.perms || d.owner || d.group) && e.meta.file_type() != crate::view::S_IFLNK {
            fs::set_permissions(path, fs::Permissions::from_mode(e.meta.permissions())).at(path)?;
        }
        Ok(())
    }

    /// Whether the existing file holds exactly the bytes the view wants (`--checksum`).
    fn same_bytes(
        &self,
        path: &Path,
        e: &Entry,
        view: &View,
        enc: &mut FileEncryptor,
    ) -> Result<bool> {
        let f = File::open(path).at(path)?;
        let mut cmp = CompareWriter {
            file: io::BufReader::with_capacity(256 * 1024, f),
            equal: true,
            buf: Vec::new(),
        };
        view.write_content(e, enc, &mut cmp)?;
        let mut rest = [0u8; 1];
        Ok(cmp.equal && cmp.file.read(&mut rest).at(path)? == 0)
    }

    /// Remove whatever is at `path` (a file, or a whole directory tree).
    fn remove_any(&self, path: &Path) -> Result<()> {
        let m = fs::symlink_metadata(path).at(path)?;
        if m.is_dir() {
            if !self.chown {
                // Without root, read-only directories must be made writable to be emptied.
                for d in walkdir::WalkDir::new(path)
                    .into_iter()
                    .filter_map(|d| d.ok())
                {
                    if d.file_type().is_dir() {
                        let _ = fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700));
                    }
                }
            }
            fs::remove_dir_all(path).at(path)
        } else {
            fs::remove_file(path).at(path)
        }
    }
}

/// A writer that compares what is written with an existing file.
struct CompareWriter<R: Read> {
    file: R,
    equal: bool,
    buf: Vec<u8>,
}

impl<R: Read> Write for CompareWriter<R> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.equal {
            self.buf.resize(data.len(), 0);
            let got = crate::content::read_full(&mut self.file, &mut self.buf)?;
            self.equal = got == data.len() && self.buf[..] == *data;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for DirSink {
    fn create_dir(&self, e: &Entry) -> Result<Action> {
        let path = self.path_of(&e.cpath);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                // Without root, a read-only directory from an earlier run must be made
                // writable for now; finish_dir puts its mode back.
                if !self.chown && m.mode() & 0o700 != 0o700 && !self.opts.dry_run {
                    fs::set_permissions(&path, fs::Permissions::from_mode(m.mode() | 0o700))
                        .at(&path)?;
                }
                return Ok(Action::Unchanged);
            }
            Ok(_) if !self.opts.dry_run => self.remove_any(&path)?,
            Ok(_) => return Ok(Action::Create),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(&path, err)),
        }
        if self.opts.dry_run {
            return Ok(Action::Create);
        }
        let mut b = fs::DirBuilder::new();
        b.mode(0o700).recursive(e.cpath.is_empty());
        b.create(&path).at(&path)?;
        Ok(Action::Create)
    }

    fn write_leaf(&self, e: &Entry, view: &View, enc: &mut FileEncryptor) -> Result<Written> {
        let target = self.path_of(&e.cpath);
        let existing = match fs::symlink_metadata(&target) {
            Ok(m) => Some(m),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(Error::io(&target, err)),
        };
        let (action, delta) = match &existing {
            None => (Action::Create, Delta::default()),
            Some(m) => {
                let link_target = if m.file_type().is_symlink() {
                    Some(
                        fs::read_link(&target)
                            .at(&target)?
                            .into_os_string()
                            .into_vec(),
                    )
                } else {
                    None
                };
                let mut d = leaf_delta(m, link_target.as_deref(), e, self.chown);
                if !d.needs_rewrite()
                    && self.opts.checksum
                    && m.is_file()
                    && !self.same_bytes(&target, e, view, enc)?
                {
                    d.content = true;
                }
                if d.needs_rewrite() {
                    (Action::Rewrite, d)
                } else if d.needs_metadata() {
                    (Action::Metadata, d)
                } else {
                    (Action::Unchanged, d)
                }
            }
        };
        if self.opts.dry_run {
            return Ok(Written {
                delta,
                ..Written::nothing(action)
            });
        }
        match action {
            Action::Create | Action::Rewrite => {
                if existing.as_ref().is_some_and(|m| m.is_dir()) {
                    self.remove_any(&target)?;
                }
                let read = self.write_new(e, view, enc, &target)?;
                let read = matches!(e.payload, Payload::File { .. }).then_some(read);
                Ok(Written {
                    action,
                    bytes: e.meta.size,
                    read,
                    delta,
                })
            }
            Action::Metadata => {
                self.fix_metadata(&target, e, &delta)?;
                Ok(Written {
                    delta,
                    ..Written::nothing(action)
                })
            }
            _ => Ok(Written::nothing(action)),
        }
    }

    fn link(&self, e: &Entry, primary: &Entry) -> Result<Action> {
        let target = self.path_of(&e.cpath);
        let existing = self.path_of(&primary.cpath);
        let same_inode = match (
            fs::symlink_metadata(&target),
            fs::symlink_metadata(&existing),
        ) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same_inode {
            return Ok(Action::Unchanged);
        }
        let action = if target.symlink_metadata().is_ok() {
            Action::Rewrite
        } else {
            Action::Create
        };
        if self.opts.dry_run {
            return Ok(action);
        }
        if target.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            self.remove_any(&target)?;
        }
        self.atomically(&target, |tmp| {
            fs::hard_link(&existing, tmp).at(tmp)?;
            Ok(0)
        })?;
        Ok(action)
    }

    fn finish_dir(&self, e: &Entry) -> Result<()> {
        if self.opts.dry_run {
            return Ok(());
        }
        let path = self.path_of(&e.cpath);
        let m = fs::symlink_metadata(&path).at(&path)?;
        let owner_differs = self.chown && (m.uid() != e.meta.uid || m.gid() != e.meta.gid);
        if owner_differs {
            self.chown(&path, &e.meta)?;
        }
        if owner_differs || m.mode() & 0o7777 != e.meta.permissions() {
            fs::set_permissions(&path, fs::Permissions::from_mode(e.meta.permissions()))
                .at(&path)?;
        }
        if !same_time(&m, e.meta.mtime) {
            set_times(&path, e.meta.atime, e.meta.mtime)?;
        }
        Ok(())
    }

    fn prune(&self, dir: &Entry, keep: &[&[u8]]) -> Result<()> {
        let path = self.path_of(&dir.cpath);
        let rd = match fs::read_dir(&path) {
            Ok(rd) => rd,
            // In a dry run the directory may not exist yet.
            Err(err) if err.kind() == io::ErrorKind::NotFound && self.opts.dry_run => return Ok(()),
            Err(err) => return Err(Error::io(&path, err)),
        };
        let keep: HashSet<&[u8]> = keep.iter().copied().collect();
        let mut stale = Vec::new();
        for item in rd {
            let item = item.at(&path)?;
            let name = item.file_name();
            if keep.contains(name.as_bytes()) {
                continue;
            }
            if name.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
                // Left by an interrupted run (the lock rules out a running one): never counted.
                if !self.opts.dry_run {
                    let _ = self.remove_any(&item.path());
                }
                continue;
            }
            stale.push(item.path());
        }
        if !stale.is_empty() {
            self.stale
                .lock()
                .expect("no panics while held")
                .extend(stale);
        }
        Ok(())
    }

    fn delete_stale(&self) -> Result<Vec<PathBuf>> {
        let mut stale = std::mem::take(&mut *self.stale.lock().expect("no panics while held"));
        if !self.opts.delete || stale.is_empty() {
            return Ok(Vec::new());
        }
        stale.sort();
        if let Some(max) = self.opts.max_delete {
            let count: u64 = stale
                .iter()
                .map(|p| walkdir::WalkDir::new(p).into_iter().count() as u64)
                .sum();
            if count > max {
                return Err(Error::invalid(
                    &self.root,
                    format!("{count} entries would be deleted, more than --max-delete {max}; nothing was deleted"),
                ));
            }
        }
        if !self.opts.dry_run {
            for p in &stale {
                self.remove_any(p)?;
            }
        }
        Ok(stale
            .into_iter()
            .map(|p| {
                p.strip_prefix(&self.root)
                    .map(Path::to_path_buf)
                    .unwrap_or(p)
            })
            .collect())
    }
}

/// Holds an exclusive lock on the destination directory for the life of the run, so two
/// exports (say, cron and a manual run) never write into one destination at once.
pub struct DestLock {
    _lock: nix::fcntl::Flock<File>,
}

impl DestLock {
    pub fn acquire(dest: &Path) -> Result<DestLock> {
        let dir = File::open(dest).at(dest)?;
        match nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(DestLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(Error::invalid(
                dest,
                "another cryptbak export is writing into this destination",
            )),
            Err((_, errno)) => Err(Error::io(dest, io::Error::from(errno))),
        }
    }
}
