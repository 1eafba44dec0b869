//! The run lock: two exports into one destination (cron and a manual run) must not
//! interleave.
//!
//! The lock is an `flock` on a file only the running user can open. A lock on DEST
//! itself, or on a file inside it, could be taken by anyone who can open DEST for
//! reading, which on a shared machine is every local user: `flock DEST sleep 1000`
//! would stop every nightly run. So the lock file lives in a directory that belongs to
//! the running user and nobody else can enter: `/run/cryptbak` for root,
//! `$XDG_RUNTIME_DIR/cryptbak` or `~/.cache/cryptbak` for others (`CRYPTBAK_LOCK_DIR`
//! overrides). It is named after DEST's device and inode, so every path to one
//! destination takes the same lock, and it lives outside DEST, so it is never copied
//! with the backup.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use super::handle::{Dir, S_IFDIR, S_IFMT};
use crate::error::{Error, Result};

/// Held for the life of the run; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

/// Where lock files may go for this user, best first.
fn lock_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os("CRYPTBAK_LOCK_DIR") {
        return vec![PathBuf::from(d)];
    }
    let uid = rustix::process::geteuid();
    if uid.is_root() {
        return vec![PathBuf::from("/run/cryptbak")];
    }
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        dirs.push(Path::new(&d).join("cryptbak"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        dirs.push(Path::new(&home).join(".cache").join("cryptbak"));
    }
    // Last resort (HOME may be someone else's, as under setpriv): refused below unless
    // it is ours and private, so nobody else can prepare it for us.
    dirs.push(PathBuf::from(format!("/tmp/cryptbak-{}", uid.as_raw())));
    dirs
}

/// Open (creating it if needed) a directory that belongs to us and that no one else
/// may write or enter; refuse one that is anything else.
pub(crate) fn private_dir(path: &Path) -> io::Result<Dir> {
    let d = open_or_make(path, 1)?;
    let st = d.stat()?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_mode & S_IFMT != S_IFDIR || st.st_uid != me || st.st_mode & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "must be a directory owned by uid {me} that nobody else can enter (mode 0700)"
        )));
    }
    Ok(d)
}

/// Open the directory `path`, making it (mode 0700) if missing, and its parents up to
/// `parents` levels (`~/.cache` may not exist yet).
fn open_or_make(path: &Path, parents: usize) -> io::Result<Dir> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Dir::open_root(path),
    };
    let name = path
        .file_name()
        .map(std::os::unix::ffi::OsStrExt::as_bytes)
        .ok_or_else(|| io::Error::other("not a directory name"))?;
    let p = match Dir::open_root(parent) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && parents > 0 => {
            open_or_make(parent, parents - 1)?
        }
        other => other?,
    };
    match p.mkdir_at(name, 0o700) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    p.open_dir(name)
}

impl RunLock {
    /// Take the lock for the destination directory `dest`, or say that another run
    /// holds it.
    pub fn acquire(dest: &Dir) -> Result<RunLock> {
        let st = dest.stat().map_err(|e| Error::io(dest.path(), e))?;
        let mut tried = Vec::new();
        let dir = lock_dirs()
            .into_iter()
            .find_map(|p| match private_dir(&p) {
                Ok(d) => Some(d),
                Err(e) => {
                    tried.push(format!("{}: {}", p.display(), crate::error::in_words(&e)));
                    None
                }
            })
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no private directory for the run lock ({}); set CRYPTBAK_LOCK_DIR to a directory only you can write",
                    tried.join("; ")
                ))
            })?;
        let name: OsString = format!("dest-{}-{}.lock", st.st_dev, st.st_ino).into();
        let name = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).to_vec();
        let path = dir.show(&name);
        let fd = rustix::fs::openat(
            dir.fd(),
            name.as_slice(),
            rustix::fs::OFlags::RDWR
                | rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io(&path, e.into()))?;
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(RunLock {
                _file: File::from(fd),
                path,
            }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::invalid(
                dest.path(),
                "another cryptbak export is writing into this destination",
            )),
            Err(e) => Err(Error::io(&path, e.into())),
        }
    }
}
