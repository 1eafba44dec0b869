//! A backup directory, read through handles only (DESIGN.md, "handles, never paths").
//!
//! A backup is untrusted and may change while it is read (someone with write access to
//! the storage, a sync client). So every directory is opened relative to its parent with
//! `O_DIRECTORY | O_NOFOLLOW`, every file with `O_NOFOLLOW | O_NONBLOCK` (a FIFO swapped
//! in where a file was listed must not block the run: without `O_NONBLOCK`, opening it
//! waits forever for a writer), and what was opened is checked with `fstat`: a regular
//! file, and the same one the listing saw. Paths are built only for messages.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};

use crate::view::{Meta, Time};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);

fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
}

/// The backup's root directory. The path is the user's choice, so a symlink there is
/// followed; below it, never.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The directory `name` of `parent`, never through a symlink.
pub fn open_dir(parent: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

/// The names in a directory (without `.` and `..`), sorted bytewise.
pub fn list(dir: impl AsFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for e in rfs::Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n.to_vec()));
        }
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// `lstat` of `name` in `dir`.
pub fn stat(dir: impl AsFd, name: &OsStr) -> io::Result<Stat> {
    Ok(rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// The file type of a stat.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Open the regular file `name` of `dir` for reading: no symlink followed, never blocking
/// (a FIFO or device is refused after opening, without reading), and, when `listed` is
/// given, only the file the listing saw (same device and inode).
pub fn open_file(dir: impl AsFd, name: &OsStr, listed: Option<&Stat>) -> io::Result<File> {
    let fd = rfs::openat(dir, name, FILE_FLAGS, Mode::empty())?;
    let st = rfs::fstat(&fd)?;
    if file_type(&st) != FileType::RegularFile {
        return Err(not_regular());
    }
    if let Some(l) = listed {
        if (st.st_dev, st.st_ino) != (l.st_dev, l.st_ino) {
            return Err(io::Error::other(
                "replaced while being read (not the file that was listed)",
            ));
        }
    }
    Ok(File::from(fd))
}

/// At most `max + 1` bytes of the small regular file `name` of `dir` (more than `max`
/// tells the caller the file is larger than it may be). For `gocryptfs.diriv`, `.name`
/// files and configs: a hostile backup may put a FIFO, a device or gigabytes there.
pub fn read_small(dir: impl AsFd, name: &OsStr, max: usize) -> io::Result<Vec<u8>> {
    // Checked before opening too, so that a device is never opened at all (opening one
    // talks to its driver); `open_file` checks again what it opened.
    let st = stat(&dir, name)?;
    if file_type(&st) != FileType::RegularFile {
        return Err(not_regular());
    }
    let f = open_file(dir, name, Some(&st))?;
    let mut v = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut v)?;
    Ok(v)
}

/// The target of the symlink `name` of `dir`.
pub fn read_link(dir: impl AsFd, name: &OsStr) -> io::Result<Vec<u8>> {
    Ok(rfs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// The metadata of an entry as restore needs it.
#[allow(clippy::unnecessary_cast)] // field types differ between architectures
pub fn meta(st: &Stat) -> Meta {
    Meta {
        mode: st.st_mode as u32,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        size: st.st_size.max(0) as u64,
        atime: Time {
            sec: st.st_atime as i64,
            nsec: st.st_atime_nsec as u32,
        },
        mtime: Time {
            sec: st.st_mtime as i64,
            nsec: st.st_mtime_nsec as u32,
        },
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        nlink: st.st_nlink as u64,
        rdev: st.st_rdev as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fifo(p: &Path) {
        rfs::mknodat(rfs::CWD, p, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
    }

    #[test]
    fn small_files_are_capped_and_only_regular() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), b"0123456789").unwrap();
        fifo(&d.path().join("fifo"));
        symlink("f", d.path().join("link")).unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let root = open_root(d.path()).unwrap();
        assert_eq!(read_small(&root, OsStr::new("f"), 4).unwrap(), b"01234");
        assert_eq!(
            read_small(&root, OsStr::new("f"), 10).unwrap(),
            b"0123456789"
        );
        // Nobody writes to the FIFO: a blocking open would never return.
        let e = read_small(&root, OsStr::new("fifo"), 16).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(read_small(&root, OsStr::new("link"), 16).is_err());
        assert!(read_small(&root, OsStr::new("sub"), 16).is_err());
        assert!(open_dir(&root, OsStr::new("link")).is_err());
        let sub = open_dir(&root, OsStr::new("sub")).unwrap();
        assert!(list(&sub).unwrap().is_empty());
        assert_eq!(list(&root).unwrap(), ["f", "fifo", "link", "sub"]);
        assert_eq!(read_link(&root, OsStr::new("link")).unwrap(), b"f");
    }

    /// A file that was listed as a regular file and is a FIFO (with no writer) by the
    /// time it is opened: refused at once, never waited on. Without O_NONBLOCK the open
    /// blocks forever; the helper thread lets the test fail instead of hanging.
    #[test]
    fn fifo_swapped_in_after_the_listing_does_not_block() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("entry");
        std::fs::write(&p, b"data").unwrap();
        let root = open_root(d.path()).unwrap();
        let listed = stat(&root, OsStr::new("entry")).unwrap();
        std::fs::remove_file(&p).unwrap();
        fifo(&p);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = open_file(&root, OsStr::new("entry"), Some(&listed)).map(|_| ());
            let _ = tx.send(r.map_err(|e| e.kind()));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60));
        // Unblock a hung open, if any, so the process can exit.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags_nonblock()
            .open(&p);
        assert_eq!(
            got.expect("opening a swapped-in FIFO blocked"),
            Err(io::ErrorKind::InvalidInput)
        );
        // A regular file replaced by another one is refused too.
        let d2 = tempfile::tempdir().unwrap();
        std::fs::write(d2.path().join("a"), b"a").unwrap();
        let root = open_root(d2.path()).unwrap();
        let listed = stat(&root, OsStr::new("a")).unwrap();
        // Made while "a" still exists, so it cannot reuse its inode number.
        std::fs::write(d2.path().join("b"), b"b").unwrap();
        std::fs::rename(d2.path().join("b"), d2.path().join("a")).unwrap();
        assert!(open_file(&root, OsStr::new("a"), Some(&listed)).is_err());
        assert!(open_file(&root, OsStr::new("a"), None).is_ok());
    }

    trait NonBlock {
        fn custom_flags_nonblock(&mut self) -> &mut Self;
    }
    impl NonBlock for std::fs::OpenOptions {
        fn custom_flags_nonblock(&mut self) -> &mut Self {
            use std::os::unix::fs::OpenOptionsExt;
            self.custom_flags(OFlags::NONBLOCK.bits() as i32)
        }
    }
}
