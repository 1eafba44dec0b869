//! A directory handle, and every filesystem operation cryptbak performs below a root the
//! user named: relative to an open directory, never following a symlink.
//!
//! cryptbak runs as root over other people's files and writes into directories other
//! people own (DESIGN.md, "handles, never paths"). A path string is resolved anew by
//! the kernel on every call, so any component of it can be swapped for a symlink
//! between two calls; a handle cannot. Every directory below a root is therefore opened
//! with `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)`, every other operation is an
//! `*at` call on such a handle with `AT_SYMLINK_NOFOLLOW` (or an `f*` call on a handle
//! whose identity was checked), and names never contain `/`. This is what gocryptfs's
//! reverse mode does too (`OpenDirNofollow`, `openBackingDir`).
//!
//! The path kept beside each handle is for messages only: nothing resolves it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, Stat, Timespec, Timestamps};

/// Flags of every directory open below a root.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Flags of every file opened for reading: no symlink is followed, a FIFO or device
/// swapped in does not block the open (the type is checked on the handle afterwards),
/// and a terminal never becomes our controlling terminal.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// What an entry is and which inode it is: enough to tell whether a handle opened later
/// is the entry a listing saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub file_type: u32,
    pub dev: u64,
    pub ino: u64,
}

impl Identity {
    pub fn of(st: &Stat) -> Identity {
        Identity {
            file_type: st.st_mode & S_IFMT,
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;

/// An open directory. Dropping it closes the descriptor.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only.
    path: PathBuf,
    /// Held while the directory is read: the descriptor's getdents position is shared.
    listing: std::sync::Mutex<()>,
}

/// The error returned when a handle turns out not to be what the listing saw.
pub fn replaced(what: &str) -> io::Error {
    io::Error::other(format!(
        "was replaced by {what} while the backup ran (changed during the backup)"
    ))
}

fn errno(e: rustix::io::Errno) -> io::Error {
    e.into()
}

impl Dir {
    /// Open a root the user named on the command line. A symlink there is followed,
    /// as every command-line tool does with the paths it is given.
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Dir::new(fd, path.to_path_buf()))
    }

    fn new(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir {
            fd,
            path,
            listing: std::sync::Mutex::new(()),
        }
    }

    /// The path this handle was reached by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name`, for messages.
    pub fn show(&self, name: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(name))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A second handle on the same directory.
    /// A second, independent handle on the same directory (its own getdents position:
    /// a `dup` would share it).
    pub fn try_clone(&self) -> io::Result<Dir> {
        let fd = rustix::fs::openat(&self.fd, c".", DIR_FLAGS, Mode::empty()).map_err(errno)?;
        Ok(Dir::new(fd, self.path.clone()))
    }

    /// Open the subdirectory `name` without following a symlink.
    pub fn open_dir(&self, name: &[u8]) -> io::Result<Dir> {
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()).map_err(errno)?;
        Ok(Dir::new(fd, self.show(name)))
    }

    /// Open the subdirectory `name` and check it is the directory a listing saw.
    pub fn open_dir_checked(&self, name: &[u8], want: Identity) -> io::Result<Dir> {
        let d = self.open_dir(name).map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
            {
                replaced("something that is not a directory")
            } else {
                e
            }
        })?;
        if Identity::of(&d.stat()?) != want {
            return Err(replaced("another directory"));
        }
        Ok(d)
    }

    pub fn stat(&self) -> io::Result<Stat> {
        rustix::fs::fstat(&self.fd).map_err(errno)
    }

    /// `lstat` of `name` in this directory.
    pub fn stat_at(&self, name: &[u8]) -> io::Result<Stat> {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
    }

    /// `lstat` of `name`, or `None` when nothing has that name.
    pub fn stat_at_opt(&self, name: &[u8]) -> io::Result<Option<Stat>> {
        match self.stat_at(name) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn read_link_at(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        Ok(rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .map_err(errno)?
            .into_bytes())
    }

    /// The names in this directory (without `.` and `..`), in getdents order. A read
    /// error part-way is returned beside what was read before it.
    pub fn names(&self) -> io::Result<(Vec<OsString>, Option<io::Error>)> {
        // Read from this handle itself, from the start: one open fewer per directory than
        // a fresh description, which on a walk of many small directories shows.
        let _reading = self.listing.lock().expect("no panics while held");
        rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Start(0)).map_err(errno)?;
        read_names(&self.fd)
    }

    /// Open the regular file `name` for reading: never a symlink, never blocking on a
    /// FIFO or device, and only if it is still the inode `want` (when given).
    pub fn open_file(&self, name: &[u8], want: Option<Identity>) -> io::Result<(File, Stat)> {
        open_regular(&self.fd, name, want)
    }

    /// Open `name` only when it is a regular file (no symlink, FIFO or device is ever
    /// opened) and read at most `max + 1` bytes: a longer result tells the caller the
    /// file is larger than it may be.
    pub fn read_small(&self, name: &[u8], max: usize) -> io::Result<(Vec<u8>, Stat)> {
        let (f, st) = open_regular(&self.fd, name, None)?;
        let mut v = Vec::new();
        f.take(max as u64 + 1).read_to_end(&mut v)?;
        Ok((v, st))
    }

    /// [`Dir::read_small`], except that a symlink at `name` is followed: gocryptfs
    /// follows one at the config's place, so a config may live elsewhere. It is still
    /// only ever a regular file that is opened and read.
    pub fn read_small_following(&self, name: &[u8], max: usize) -> io::Result<(Vec<u8>, Stat)> {
        let flags = READ_FLAGS.difference(OFlags::NOFOLLOW);
        // As `open_regular`: what is not a regular file is never opened.
        let before = rustix::fs::statat(&self.fd, name, AtFlags::empty()).map_err(errno)?;
        if before.st_mode & S_IFMT != S_IFREG {
            return Err(not_regular());
        }
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty()).map_err(errno)?;
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        if st.st_mode & S_IFMT != S_IFREG {
            return Err(not_regular());
        }
        let mut v = Vec::new();
        File::from(fd).take(max as u64 + 1).read_to_end(&mut v)?;
        Ok((v, st))
    }

    // ---- writing ----------------------------------------------------------------

    pub fn mkdir_at(&self, name: &[u8], mode: u32) -> io::Result<()> {
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)).map_err(errno)
    }

    /// Create a new regular file, failing if anything (a symlink included) has the name.
    pub fn create_new(&self, name: &[u8], mode: u32) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(errno)?;
        Ok(File::from(fd))
    }

    pub fn symlink_at(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        rustix::fs::symlinkat(target, &self.fd, name).map_err(errno)
    }

    /// Create a FIFO or device node.
    pub fn mknod_at(&self, name: &[u8], mode: u32, rdev: u64) -> io::Result<()> {
        let kind = FileType::from_raw_mode(mode);
        rustix::fs::mknodat(
            &self.fd,
            name,
            kind,
            Mode::from_raw_mode(mode & 0o7777),
            rdev,
        )
        .map_err(errno)
    }

    /// Rename `from` in this directory to `to` in `dest`, replacing a non-directory there.
    pub fn rename_to(&self, from: &[u8], dest: &Dir, to: &[u8]) -> io::Result<()> {
        rustix::fs::renameat(&self.fd, from, &dest.fd, to).map_err(errno)
    }

    /// Make `to` in this directory another name of `from` in `src` (never following a
    /// symlink at `from`).
    pub fn link_from(&self, src: &Dir, from: &[u8], to: &[u8]) -> io::Result<()> {
        rustix::fs::linkat(&src.fd, from, &self.fd, to, AtFlags::empty()).map_err(errno)
    }

    pub fn unlink_at(&self, name: &[u8]) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(errno)
    }

    pub fn rmdir_at(&self, name: &[u8]) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).map_err(errno)
    }

    /// Owner of `name` itself (a symlink is not followed).
    pub fn chown_at(&self, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
        rustix::fs::chownat(
            &self.fd,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)
    }

    /// Times of `name` itself (a symlink is not followed, nothing is opened).
    pub fn set_times_at(
        &self,
        name: &[u8],
        atime: (i64, u32),
        mtime: (i64, u32),
    ) -> io::Result<()> {
        rustix::fs::utimensat(
            &self.fd,
            name,
            &timestamps(atime, mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)
    }

    /// Mode of this directory itself.
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode)).map_err(errno)
    }

    pub fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        fchown(&self.fd, uid, gid)
    }

    pub fn set_times(&self, atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
        set_times(&self.fd, atime, mtime)
    }

    /// Flush everything written to this directory's filesystem to stable storage.
    pub fn sync_fs(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.fd).map_err(errno)
    }
}

fn timestamps(atime: (i64, u32), mtime: (i64, u32)) -> Timestamps {
    let ts = |(sec, nsec): (i64, u32)| Timespec {
        tv_sec: sec,
        tv_nsec: nsec.into(),
    };
    Timestamps {
        last_access: ts(atime),
        last_modification: ts(mtime),
    }
}

// ---- the same operations on a bare descriptor (the backup reader holds these) ------

fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
}

/// Open the regular file `name` of `dir` for reading: no symlink followed, never
/// blocking, and never a FIFO or device at all (checked with `lstat` before opening,
/// because opening a device talks to its driver, and with `fstat` after, in case it was
/// swapped in between); when `want` is given, only the inode a listing saw.
pub fn open_regular<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    name: P,
    want: Option<Identity>,
) -> io::Result<(File, Stat)> {
    let before = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
    match before.st_mode & S_IFMT {
        S_IFREG => {}
        S_IFLNK => return Err(replaced("a symlink")),
        _ => return Err(not_regular()),
    }
    let fd = rustix::fs::openat(&dir, name, READ_FLAGS, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            replaced("a symlink")
        } else {
            errno(e)
        }
    })?;
    let st = rustix::fs::fstat(&fd).map_err(errno)?;
    if st.st_mode & S_IFMT != S_IFREG {
        return Err(not_regular());
    }
    if want.is_some_and(|w| w != Identity::of(&st)) {
        return Err(replaced("another file"));
    }
    Ok((File::from(fd), st))
}

/// At most `max + 1` bytes of the small regular file the user named at `path` (a config
/// given with `--config`, or a backup's `gocryptfs.conf`), which may be hostile: see
/// [`read_small`]. With `follow`, a symlink there is followed (a config may be one).
pub fn read_small_named(path: &Path, max: usize, follow: bool) -> io::Result<Vec<u8>> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = Dir::open_root(parent)?;
    let (bytes, _) = if follow {
        dir.read_small_following(name.as_bytes(), max)?
    } else {
        dir.read_small(name.as_bytes(), max)?
    };
    Ok(bytes)
}

/// A root the user named (a symlink there is followed), as a bare descriptor.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(Dir::open_root(path)?.fd)
}

/// The directory `name` of `parent`, never through a symlink.
pub fn open_dir<P: rustix::path::Arg>(parent: impl AsFd, name: P) -> io::Result<OwnedFd> {
    rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()).map_err(errno)
}

/// The names in a directory (without `.` and `..`), sorted bytewise; an error if it
/// could not be read whole.
pub fn list(dir: impl AsFd) -> io::Result<Vec<OsString>> {
    let (mut names, err) = names_of(dir)?;
    if let Some(e) = err {
        return Err(e);
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// `lstat` of `name` in `dir`.
pub fn stat<P: rustix::path::Arg>(dir: impl AsFd, name: P) -> io::Result<Stat> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
}

/// The file type of a stat.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Open the regular file `name` of `dir` (see [`open_regular`]), only if it is the one
/// `listed` describes.
pub fn open_file<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    name: P,
    listed: Option<&Stat>,
) -> io::Result<File> {
    open_regular(dir, name, listed.map(Identity::of)).map(|(f, _)| f)
}

/// At most `max + 1` bytes of the small regular file `name` of `dir` (more than `max`
/// tells the caller the file is larger than it may be). For `gocryptfs.diriv`, `.name`
/// files and configs: a hostile backup may put a FIFO, a device or gigabytes there.
pub fn read_small<P: rustix::path::Arg + Copy>(
    dir: impl AsFd,
    name: P,
    max: usize,
) -> io::Result<Vec<u8>> {
    let (f, _) = open_regular(dir, name, None)?;
    let mut v = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut v)?;
    Ok(v)
}

/// The target of the symlink `name` of `dir`.
pub fn read_link<P: rustix::path::Arg>(dir: impl AsFd, name: P) -> io::Result<Vec<u8>> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())
        .map_err(errno)?
        .into_bytes())
}

/// The names of a directory in getdents order, and the error that ended a partial read.
fn names_of(dir: impl AsFd) -> io::Result<(Vec<OsString>, Option<io::Error>)> {
    // A fresh open description of the same directory, so that concurrent listings of
    // one descriptor never share a getdents position.
    let fd = rustix::fs::openat(dir, c".", DIR_FLAGS, Mode::empty()).map_err(errno)?;
    read_names(&fd)
}

/// Read a directory from its descriptor's current position to the end.
fn read_names(fd: &OwnedFd) -> io::Result<(Vec<OsString>, Option<io::Error>)> {
    let mut buf = Vec::with_capacity(32 * 1024);
    let mut iter = RawDir::new(fd, buf.spare_capacity_mut());
    let mut names = Vec::new();
    while let Some(item) = iter.next() {
        match item {
            Ok(entry) => {
                let n = entry.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(OsString::from_vec(n.to_vec()));
                }
            }
            Err(e) => return Ok((names, Some(errno(e)))),
        }
    }
    Ok((names, None))
}

pub fn fchown(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(errno)
}

pub fn fchmod(fd: impl AsFd, mode: u32) -> io::Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(errno)
}

pub fn set_times(fd: impl AsFd, atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
    rustix::fs::futimens(fd, &timestamps(atime, mtime)).map_err(errno)
}

pub fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    rustix::fs::fstat(fd).map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_follows_symlinks_below_the_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/f"), b"data").unwrap();
        std::os::unix::fs::symlink("d", t.path().join("ld")).unwrap();
        std::os::unix::fs::symlink("d/f", t.path().join("lf")).unwrap();
        let root = Dir::open_root(t.path()).unwrap();
        assert!(
            root.open_dir(b"ld").is_err(),
            "a symlinked directory is not opened"
        );
        let err = root.open_file(b"lf", None).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        let d = root.open_dir(b"d").unwrap();
        let (mut f, st) = d.open_file(b"f", None).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!((s.as_str(), st.st_size), ("data", 4));
        let want = Identity::of(&root.stat_at(b"d").unwrap());
        assert!(root.open_dir_checked(b"d", want).is_ok());
        let other = Identity {
            ino: want.ino + 1,
            ..want
        };
        assert!(root.open_dir_checked(b"d", other).is_err());
        let (mut names, err) = root.names().unwrap();
        names.sort();
        assert!(err.is_none());
        assert_eq!(names, ["d", "ld", "lf"]);
    }

    #[test]
    fn fifos_and_devices_are_never_opened_for_reading() {
        let t = tempfile::tempdir().unwrap();
        let root = Dir::open_root(t.path()).unwrap();
        root.mknod_at(b"fifo", 0o010600, 0).unwrap();
        let err = root.open_file(b"fifo", None).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(root.read_small(b"fifo", 10).is_err());
    }

    #[test]
    fn small_reads_are_capped() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), b"0123456789").unwrap();
        let root = Dir::open_root(t.path()).unwrap();
        assert_eq!(root.read_small(b"f", 4).unwrap().0, b"01234");
        assert_eq!(root.read_small(b"f", 10).unwrap().0, b"0123456789");
    }

    #[test]
    fn create_new_never_replaces_or_follows() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nonexistent-target", t.path().join("l")).unwrap();
        let root = Dir::open_root(t.path()).unwrap();
        assert!(root.create_new(b"l", 0o600).is_err());
        assert!(!Path::new("/nonexistent-target").exists());
        root.create_new(b"n", 0o600).unwrap();
        assert!(root.create_new(b"n", 0o600).is_err());
    }

    // The bare-descriptor functions the backup reader uses.
    use std::ffi::OsStr;
    use std::os::unix::fs::symlink;

    fn fifo(p: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
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
