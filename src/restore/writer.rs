//! The plaintext destination of a restore. Nothing is ever written outside DEST:
//!
//! * every operation is relative to a directory file descriptor, and directories are
//!   opened one component at a time with `O_NOFOLLOW | O_DIRECTORY`, so a symlink planted
//!   in DEST (or swapped in while we run) is never followed;
//! * every entry is first made in a private staging directory (`DEST/.cryptbak-restore-*`,
//!   mode 0700) with its final mode, owner and times, then moved into place with
//!   `renameat2(RENAME_NOREPLACE)`: an existing entry is never overwritten, and a file
//!   appears under its real name only when it was completely authenticated;
//! * names handed in are single components already checked by the name decryption
//!   (no `/`, NUL, `.` or `..`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, Timespec, Timestamps, CWD,
};

use crate::error::{Error, Result};
use crate::view::{Meta, Time};

/// Prefix of the staging directory; recognisable for cleanup after a crash.
pub const STAGING_PREFIX: &str = ".cryptbak-restore-";

/// A name in the staging directory.
pub type StageId = u64;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Keep at most this many directory descriptors open.
const MAX_CACHED_DIRS: usize = 128;

pub struct Dest {
    root_path: PathBuf,
    root: Arc<OwnedFd>,
    staging_name: OsString,
    staging: OwnedFd,
    chown: bool,
    counter: AtomicU64,
    cache: Mutex<HashMap<PathBuf, Arc<OwnedFd>>>,
    /// DEST did not exist or was empty before the run.
    pub was_empty: bool,
    /// DEST was created by this run (removed again if the run fails before writing).
    pub created: bool,
}

fn ts(t: Time) -> Timespec {
    Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec.min(999_999_999) as _,
    }
}

fn times(m: &Meta) -> Timestamps {
    Timestamps {
        last_access: ts(m.atime),
        last_modification: ts(m.mtime),
    }
}

fn owner(m: &Meta) -> (Option<rfs::Uid>, Option<rfs::Gid>) {
    // -1 means "do not change" to chown; a hostile backup must not turn it into a panic.
    (
        (m.uid != u32::MAX).then(|| rfs::Uid::from_raw(m.uid)),
        (m.gid != u32::MAX).then(|| rfs::Gid::from_raw(m.gid)),
    )
}

fn perm(m: &Meta) -> Mode {
    Mode::from_raw_mode(m.mode & 0o7777)
}

/// Whether `path` is missing or an empty directory.
pub fn is_missing_or_empty(path: &Path) -> Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl Dest {
    /// Open (creating it if needed) DEST. A non-empty DEST is refused unless `force`.
    pub fn open(path: &Path, force: bool, chown: bool) -> Result<Dest> {
        let existed = path.symlink_metadata().is_ok();
        let was_empty = is_missing_or_empty(path)?;
        if !was_empty && !force {
            return Err(Error::invalid(
                path,
                "destination is not empty; refusing to restore into it (pass --force to add to it; existing entries are never overwritten)",
            ));
        }
        if !existed {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(path)
                .map_err(|e| Error::io(path, e))?;
        }
        // DEST itself is the user's choice, so a symlink there is followed; below it, never.
        let root = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(path, e.into()))?;
        let mut rnd = [0u8; 6];
        getrandom::getrandom(&mut rnd).expect("the OS random generator failed");
        let staging_name = OsString::from(format!(
            "{STAGING_PREFIX}{}-{}",
            std::process::id(),
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        rfs::mkdirat(&root, &staging_name, Mode::RWXU)
            .map_err(|e| Error::io(path.join(&staging_name), e.into()))?;
        let staging = rfs::openat(&root, &staging_name, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io(path.join(&staging_name), e.into()))?;
        Ok(Dest {
            root_path: path.to_path_buf(),
            root: Arc::new(root),
            staging_name,
            staging,
            chown,
            counter: AtomicU64::new(0),
            cache: Mutex::new(HashMap::new()),
            was_empty,
            created: !existed,
        })
    }

    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// The full path of a DEST-relative path, for messages.
    pub fn show(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            // join("") would add a trailing slash.
            return self.root_path.clone();
        }
        self.root_path.join(rel)
    }

    /// A descriptor of the directory `rel` (relative to DEST), opened without following
    /// any symlink on the way.
    fn dir(&self, rel: &Path) -> io::Result<Arc<OwnedFd>> {
        if rel.as_os_str().is_empty() {
            return Ok(self.root.clone());
        }
        // From the cached parent when there is one, and every level opened is cached: a deep
        // tree is created parents first and finished children first, and opening each path
        // from the root would be quadratic in its depth.
        let (mut cur, mut done, skip) = {
            let cache = self.cache.lock().expect("no panics while held");
            if let Some(fd) = cache.get(rel) {
                return Ok(fd.clone());
            }
            match rel.parent().and_then(|p| Some((p, cache.get(p)?))) {
                Some((p, fd)) => (fd.clone(), p.to_path_buf(), p.components().count()),
                None => (self.root.clone(), PathBuf::new(), 0),
            }
        };
        for c in rel.components().skip(skip) {
            let Component::Normal(name) = c else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a plain relative path",
                ));
            };
            done.push(name);
            let fd = rfs::openat(&*cur, name, DIR_FLAGS, Mode::empty()).map_err(|e| {
                if e == rustix::io::Errno::NOTDIR || e == rustix::io::Errno::LOOP {
                    // A file, or a symlink put there before or during the run. Callers name
                    // `rel`; say which part of it when it is not the last.
                    let what = if done.as_path() == rel {
                        String::new()
                    } else {
                        format!("{} is ", self.show(&done).display())
                    };
                    io::Error::other(format!(
                        "{what}not a directory (symlinks in DEST are never followed)"
                    ))
                } else {
                    e.into()
                }
            })?;
            cur = Arc::new(fd);
            let mut cache = self.cache.lock().expect("no panics while held");
            if cache.len() >= MAX_CACHED_DIRS {
                cache.clear();
            }
            cache.insert(done.clone(), cur.clone());
        }
        Ok(cur)
    }

    fn err(&self, rel: &Path, e: impl Into<io::Error>) -> Error {
        Error::io(self.show(rel), e.into())
    }

    /// Create directory `parent/name` (mode 0700 until `finish_dir`); `true` if it was
    /// created. An existing real directory is accepted (merging into it); anything else
    /// in the way is an error.
    pub fn mkdir(&self, parent: &Path, name: &OsStr) -> Result<bool> {
        let rel = parent.join(name);
        let pfd = self.dir(parent).map_err(|e| self.err(parent, e))?;
        match rfs::mkdirat(&*pfd, name, Mode::RWXU) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => {
                match rfs::statat(&*pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        Ok(false)
                    }
                    _ => Err(Error::invalid(
                        self.show(&rel),
                        "exists and is not a directory; not overwritten (its contents are skipped)",
                    )),
                }
            }
            Err(e) => Err(self.err(&rel, e)),
        }
    }

    fn next_id(&self) -> StageId {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn staging_path(&self, id: StageId) -> PathBuf {
        self.root_path.join(&self.staging_name).join(id.to_string())
    }

    /// A new empty file in the staging directory, mode 0600.
    pub fn stage_file(&self) -> Result<(StageId, File)> {
        let id = self.next_id();
        let fd = rfs::openat(
            &self.staging,
            id.to_string(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| Error::io(self.staging_path(id), e.into()))?;
        Ok((id, File::from(fd)))
    }

    /// Read back a staged file (ciphertext spooled from a tar stream before its config).
    pub fn open_staged(&self, id: StageId) -> Result<File> {
        rfs::openat(
            &self.staging,
            id.to_string(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| Error::io(self.staging_path(id), e.into()))
    }

    /// Give a staged file its final owner, mode and times (owner first: chown clears
    /// setuid bits).
    pub fn finish_file(&self, id: StageId, f: &File, m: &Meta) -> Result<()> {
        let at = |e: rustix::io::Errno| Error::io(self.staging_path(id), e.into());
        if self.chown {
            let (u, g) = owner(m);
            rfs::fchown(f, u, g).map_err(at)?;
        }
        rfs::fchmod(f, perm(m)).map_err(at)?;
        rfs::futimens(f, &times(m)).map_err(at)
    }

    /// A symlink in the staging directory with its owner and times.
    pub fn stage_symlink(&self, target: &[u8], m: &Meta) -> Result<StageId> {
        let id = self.next_id();
        let name = id.to_string();
        let at = |e: rustix::io::Errno| Error::io(self.staging_path(id), e.into());
        rfs::symlinkat(OsStr::from_bytes(target), &self.staging, &name).map_err(at)?;
        let r = (|| {
            if self.chown {
                let (u, g) = owner(m);
                rfs::chownat(&self.staging, &name, u, g, AtFlags::SYMLINK_NOFOLLOW).map_err(at)?;
            }
            rfs::utimensat(&self.staging, &name, &times(m), AtFlags::SYMLINK_NOFOLLOW).map_err(at)
        })();
        if let Err(e) = r {
            self.discard(id);
            return Err(e);
        }
        Ok(id)
    }

    /// A FIFO or device node in the staging directory. Nobody else can write to the
    /// staging directory, so setting its mode by name cannot be redirected.
    pub fn stage_special(&self, m: &Meta) -> Result<StageId> {
        let id = self.next_id();
        let name = id.to_string();
        let ft = FileType::from_raw_mode(m.mode);
        if !matches!(
            ft,
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice
        ) {
            return Err(Error::invalid(
                self.staging_path(id),
                "not a FIFO or device",
            ));
        }
        rfs::mknodat(
            &self.staging,
            &name,
            ft,
            Mode::RUSR | Mode::WUSR,
            m.rdev as _,
        )
        .map_err(|e| {
            if e == rustix::io::Errno::PERM {
                Error::invalid(
                    self.staging_path(id),
                    "cannot create a device node (only root can)",
                )
            } else {
                Error::io(self.staging_path(id), e.into())
            }
        })?;
        let at = |e: rustix::io::Errno| Error::io(self.staging_path(id), e.into());
        let r = (|| {
            if self.chown {
                let (u, g) = owner(m);
                rfs::chownat(&self.staging, &name, u, g, AtFlags::SYMLINK_NOFOLLOW).map_err(at)?;
            }
            rfs::chmodat(&self.staging, &name, perm(m), AtFlags::empty()).map_err(at)?;
            rfs::utimensat(&self.staging, &name, &times(m), AtFlags::SYMLINK_NOFOLLOW).map_err(at)
        })();
        if let Err(e) = r {
            self.discard(id);
            return Err(e);
        }
        Ok(id)
    }

    /// Move a staged entry to `parent/name`, never replacing anything. The staged entry
    /// is gone afterwards whether or not this succeeded.
    pub fn place(&self, id: StageId, parent: &Path, name: &OsStr) -> Result<()> {
        let r = self.place_or_keep(id, parent, name);
        if r.is_err() {
            self.discard(id);
        }
        r
    }

    /// Like [`Dest::place`], but a staged entry that could not be placed stays staged.
    pub fn place_or_keep(&self, id: StageId, parent: &Path, name: &OsStr) -> Result<()> {
        let rel = parent.join(name);
        self.dir(parent)
            .map_err(|e| self.err(parent, e))
            .and_then(|pfd| {
                rfs::renameat_with(
                    &self.staging,
                    id.to_string(),
                    &*pfd,
                    name,
                    RenameFlags::NOREPLACE,
                )
                .map_err(|e| {
                    if e == rustix::io::Errno::EXIST {
                        Error::invalid(self.show(&rel), "already exists; not overwritten")
                    } else {
                        self.err(&rel, e)
                    }
                })
            })
    }

    /// Remove a staged entry.
    pub fn discard(&self, id: StageId) {
        let _ = rfs::unlinkat(&self.staging, id.to_string(), AtFlags::empty());
    }

    /// `parent/name` becomes another name of the already restored `target`.
    pub fn hard_link(&self, target: &Path, parent: &Path, name: &OsStr) -> Result<()> {
        let rel = parent.join(name);
        let (tparent, tname) = split(target);
        let tfd = self.dir(tparent).map_err(|e| self.err(tparent, e))?;
        let pfd = self.dir(parent).map_err(|e| self.err(parent, e))?;
        // Without AT_SYMLINK_FOLLOW, linkat links the entry itself, never a symlink's target.
        rfs::linkat(&*tfd, tname, &*pfd, name, AtFlags::empty()).map_err(|e| {
            if e == rustix::io::Errno::EXIST {
                Error::invalid(self.show(&rel), "already exists; not overwritten")
            } else {
                self.err(&rel, e)
            }
        })
    }

    /// Remove a placed non-directory entry, or rename it to `name.corrupt`.
    pub fn retract(&self, rel: &Path, keep_as: Option<&OsStr>) -> Result<()> {
        let (parent, name) = split(rel);
        let pfd = self.dir(parent).map_err(|e| self.err(parent, e))?;
        match keep_as {
            Some(new) => rfs::renameat_with(&*pfd, name, &*pfd, new, RenameFlags::NOREPLACE),
            None => rfs::unlinkat(&*pfd, name, AtFlags::empty()),
        }
        .map_err(|e| self.err(rel, e))
    }

    /// Apply a directory's final owner, mode and times.
    pub fn finish_dir(&self, rel: &Path, m: &Meta) -> Result<()> {
        let fd = self.dir(rel).map_err(|e| self.err(rel, e))?;
        let at = |e: rustix::io::Errno| self.err(rel, e);
        if self.chown {
            let (u, g) = owner(m);
            rfs::fchown(&*fd, u, g).map_err(at)?;
        }
        rfs::fchmod(&*fd, perm(m)).map_err(at)?;
        rfs::futimens(&*fd, &times(m)).map_err(at)
    }

    /// Remove the staging directory (and anything left in it). Call once at the end.
    pub fn close(&self) -> Result<()> {
        self.cache.lock().expect("no panics while held").clear();
        if let Ok(rd) = std::fs::read_dir(self.root_path.join(&self.staging_name)) {
            for e in rd.flatten() {
                let _ = rfs::unlinkat(&self.staging, e.file_name(), AtFlags::empty());
            }
        }
        rfs::unlinkat(&*self.root, &self.staging_name, AtFlags::REMOVEDIR)
            .map_err(|e| Error::io(self.root_path.join(&self.staging_name), e.into()))
    }

    /// Undo `open` after a failure before anything was restored: remove the staging
    /// directory, and DEST itself if this run created it.
    pub fn abandon(self) {
        let _ = self.close();
        if self.created {
            let _ = rfs::unlinkat(CWD, &self.root_path, AtFlags::REMOVEDIR);
        }
    }
}

/// `a/b/c` → (`a/b`, `c`); a single component has the empty parent.
pub fn split(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or(OsStr::new("")),
    )
}
