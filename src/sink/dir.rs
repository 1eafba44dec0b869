//! Writes the view into a directory, the way `cp -a` of a reverse mount would.
//!
//! Every file is written under a temporary name in its final directory and renamed into
//! place only when complete, with its mode, owner and times already set: an interrupted
//! export never leaves a file that looks complete and is not. Directories are created
//! 0700 and get their real mode and times last, because adding entries changes a
//! directory's mtime and a read-only directory could not be filled.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use filetime::FileTime;
use nix::sys::stat::{Mode, SFlag};

use super::{Sink, Written};
use crate::content::FileEncryptor;
use crate::error::{Error, IoContext, Result};
use crate::view::{Entry, Meta, Payload, Time, View, S_IFDIR};

/// Prefix of temporary files; never a name the view can contain with encrypted names
/// (base64 has no `.`), and recognisable for cleanup after a crash.
pub const TEMP_PREFIX: &str = ".cryptbak-tmp-";

pub struct DirSink {
    root: PathBuf,
    /// Set owners as in the source (only root may).
    chown: bool,
    counter: AtomicU64,
}

fn filetime(t: Time) -> FileTime {
    FileTime::from_unix_time(t.sec, t.nsec)
}

impl DirSink {
    pub fn new(root: PathBuf) -> DirSink {
        DirSink {
            root,
            chown: nix::unistd::geteuid().is_root(),
            counter: AtomicU64::new(0),
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
    fn atomically(
        &self,
        target: &Path,
        make: impl FnOnce(&Path) -> Result<Written>,
    ) -> Result<Written> {
        let tmp = self.temp_beside(target);
        let result = make(&tmp).and_then(|w| {
            fs::rename(&tmp, target).at(target)?;
            Ok(w)
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
    ) -> Result<Written> {
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
        Ok(Written {
            bytes: e.meta.size,
            read,
        })
    }

    fn write_symlink(&self, e: &Entry, target: &[u8], tmp: &Path) -> Result<Written> {
        std::os::unix::fs::symlink(OsStr::from_bytes(target), tmp).at(tmp)?;
        self.chown(tmp, &e.meta)?;
        filetime::set_symlink_file_times(tmp, filetime(e.meta.atime), filetime(e.meta.mtime))
            .at(tmp)?;
        Ok(Written { bytes: 0, read: 0 })
    }

    fn write_special(&self, e: &Entry, tmp: &Path) -> Result<Written> {
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
        filetime::set_file_times(tmp, filetime(e.meta.atime), filetime(e.meta.mtime)).at(tmp)?;
        Ok(Written { bytes: 0, read: 0 })
    }
}

impl Sink for DirSink {
    fn create_dir(&self, e: &Entry) -> Result<()> {
        let path = self.path_of(&e.cpath);
        let made = if e.cpath.is_empty() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
        } else {
            fs::DirBuilder::new().mode(0o700).create(&path)
        };
        match made {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {
                        // An existing directory (re-export, or a read-only one): make it writable for now.
                        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).at(&path)
                    }
                    _ => Err(Error::invalid(&path, "exists and is not a directory")),
                }
            }
            Err(err) => Err(Error::io(&path, err)),
        }
    }

    fn write_leaf(&self, e: &Entry, view: &View, enc: &mut FileEncryptor) -> Result<Written> {
        let target = self.path_of(&e.cpath);
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(Error::invalid(&target, "a directory is in the way"));
        }
        match &e.payload {
            Payload::Symlink { target: t } => {
                self.atomically(&target, |tmp| self.write_symlink(e, t, tmp))
            }
            Payload::Special => self.atomically(&target, |tmp| self.write_special(e, tmp)),
            Payload::Dir { .. } => Err(Error::invalid(&target, "directories are not leaves")),
            _ => self.atomically(&target, |tmp| self.write_file(e, view, enc, tmp)),
        }
    }

    fn link(&self, e: &Entry, primary: &Entry) -> Result<()> {
        let target = self.path_of(&e.cpath);
        let existing = self.path_of(&primary.cpath);
        self.atomically(&target, |tmp| {
            fs::hard_link(&existing, tmp).at(tmp)?;
            Ok(Written { bytes: 0, read: 0 })
        })
        .map(|_| ())
    }

    fn finish_dir(&self, e: &Entry) -> Result<()> {
        debug_assert_eq!(e.meta.file_type(), S_IFDIR);
        let path = self.path_of(&e.cpath);
        self.chown(&path, &e.meta)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(e.meta.permissions())).at(&path)?;
        filetime::set_file_times(&path, filetime(e.meta.atime), filetime(e.meta.mtime)).at(&path)
    }
}
