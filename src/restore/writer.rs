//! Where a restore's plaintext goes: the [`Writer`] trait, and [`Dest`], the real
//! destination directory. (`verify` and `ls --tar` use [`super::discard::Discard`],
//! which writes nothing, so they judge a backup exactly as a restore does.)
//!
//! Nothing is ever written outside DEST:
//!
//! * every operation is relative to a directory file descriptor, and directories are
//!   opened one component at a time with `O_NOFOLLOW | O_DIRECTORY`, so a symlink planted
//!   in DEST (or swapped in while we run) is never followed;
//! * every entry is first made in a private staging directory (`DEST/.cryptbak-restore-*`,
//!   mode 0700) with its final mode, owner and times, then moved into place with
//!   `renameat2(RENAME_NOREPLACE)`: an existing entry is never overwritten, and a file
//!   appears under its real name only when it was completely authenticated;
//! * names handed in are single components already checked by the name rules
//!   (no `/`, NUL, `.` or `..`).
//!
//! Plaintext blocks of 4096 zero bytes are not written but skipped over, leaving holes,
//! as `cp --sparse=auto` and `tar -S` do: a sparse VM image comes back sparse.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, Timespec, Timestamps, CWD,
};

use crate::error::{Error, Result};
use crate::format::content::BLOCK_SIZE;
use crate::view::{Meta, Time};

/// Prefix of the staging directory; recognisable for cleanup after a crash.
pub const STAGING_PREFIX: &str = ".cryptbak-restore-";

/// A name in the staging directory.
pub type StageId = u64;

/// The destination of a restore, as the engine uses it. Paths are relative to the
/// destination root, built from names the name rules accepted.
pub trait Writer: Sync {
    /// A staged file's plaintext, written in order from offset 0.
    type File: Write + Send;

    /// A new, empty file in the staging area.
    fn stage_file(&self) -> Result<(StageId, Self::File)>;
    /// The staged file is complete: fix its length and, with `meta`, give it its final
    /// owner, mode and times (without, it stays 0600: a `.corrupt` file).
    fn finish_file(&self, id: StageId, f: Self::File, meta: Option<&Meta>) -> Result<()>;
    /// A staged symlink with its owner and times.
    fn stage_symlink(&self, target: &[u8], meta: &Meta) -> Result<StageId>;
    /// A staged FIFO or device node with its owner, mode and times.
    fn stage_special(&self, meta: &Meta) -> Result<StageId>;
    /// Move a staged entry to `parent/name`, never replacing anything. A staged entry
    /// that could not be placed stays staged.
    fn place_or_keep(&self, id: StageId, parent: &Path, name: &OsStr) -> Result<()>;
    /// Remove a staged entry.
    fn discard(&self, id: StageId);
    /// Create directory `parent/name`; `true` if created, `false` if an existing real
    /// directory is merged into.
    fn mkdir(&self, parent: &Path, name: &OsStr) -> Result<bool>;
    /// `parent/name` becomes another name of the restored `target`.
    fn hard_link(&self, target: &Path, parent: &Path, name: &OsStr) -> Result<()>;
    /// Replace `rel` (a file this run placed) by another name of the restored `target`.
    fn relink(&self, target: &Path, rel: &Path) -> Result<()>;
    /// Remove a placed non-directory entry, or rename it to `keep_as` in its directory.
    fn retract(&self, rel: &Path, keep_as: Option<&OsStr>) -> Result<()>;
    /// Apply a directory's final owner, mode and times.
    fn finish_dir(&self, rel: &Path, meta: &Meta) -> Result<()>;
    /// Remove the staging area. Call once at the end.
    fn close(&self) -> Result<()>;
    /// Undo the run after a failure before anything was restored.
    fn abandon(&self);
    /// The destination was missing or empty before the run.
    fn was_empty(&self) -> bool;
    /// An anonymous scratch file (ciphertext that waits for the config in a tar stream).
    fn spool(&self) -> Result<File>;

    /// Like [`Writer::place_or_keep`], but the staged entry is gone afterwards whether or
    /// not this succeeded.
    fn place(&self, id: StageId, parent: &Path, name: &OsStr) -> Result<()> {
        let r = self.place_or_keep(id, parent, name);
        if r.is_err() {
            self.discard(id);
        }
        r
    }
}

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
    was_empty: bool,
    /// DEST was created by this run (removed again if the run fails before writing).
    created: bool,
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

/// A staged plaintext file. Blocks of zeros are skipped (holes); a write that ends in
/// one sets the file's length, so zeros at the end are not lost.
pub struct SparseFile {
    file: File,
    pos: u64,
}

impl SparseFile {
    pub fn new(file: File) -> Self {
        SparseFile { file, pos: 0 }
    }

    /// The file, complete. (Its length is right already: a write that ends in a hole
    /// extends the file itself, so no extra call per file is needed here.)
    pub fn complete(self) -> io::Result<File> {
        Ok(self.file)
    }
}

fn all_zero(b: &[u8]) -> bool {
    // Word at a time: data that is not zero stops at the first word.
    let (words, tail) = b.split_at(b.len() / 8 * 8);
    words
        .chunks_exact(8)
        .all(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) == 0)
        && tail.iter().all(|&x| x == 0)
}

impl Write for SparseFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // Split at file block boundaries; write each run of blocks that are not all
        // zeros with one pwrite, skip the rest.
        let mut off = 0usize;
        let mut run: Option<(u64, usize)> = None;
        while off < buf.len() {
            let at = self.pos + off as u64;
            let len = (BLOCK_SIZE - (at % BLOCK_SIZE as u64) as usize).min(buf.len() - off);
            let chunk = &buf[off..off + len];
            if all_zero(chunk) {
                if let Some((start, from)) = run.take() {
                    self.file.write_all_at(&buf[from..off], start)?;
                }
            } else if run.is_none() {
                run = Some((at, off));
            }
            off += len;
        }
        let end = self.pos + buf.len() as u64;
        match run {
            Some((start, from)) => self.file.write_all_at(&buf[from..], start)?,
            // Ends in a hole: extend the file now (no blocks are allocated), so its size
            // follows the progress, as a file written densely would.
            None if !buf.is_empty() => self.file.set_len(end)?,
            None => {}
        }
        self.pos = end;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
    fn show(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
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

    fn next_id(&self) -> StageId {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn staging_path(&self, id: StageId) -> PathBuf {
        self.root_path.join(&self.staging_name).join(id.to_string())
    }

    fn exists_error(&self, rel: &Path, e: rustix::io::Errno) -> Error {
        if e == rustix::io::Errno::EXIST {
            Error::invalid(self.show(rel), "already exists; not overwritten")
        } else {
            self.err(rel, e)
        }
    }

    /// Owner first: chown clears setuid bits.
    fn apply(&self, fd: impl AsFd, m: &Meta) -> rustix::io::Result<()> {
        if self.chown {
            let (u, g) = owner(m);
            rfs::fchown(&fd, u, g)?;
        }
        rfs::fchmod(&fd, perm(m))?;
        rfs::futimens(&fd, &times(m))
    }
}

impl Writer for Dest {
    type File = SparseFile;

    fn stage_file(&self) -> Result<(StageId, SparseFile)> {
        let id = self.next_id();
        let fd = rfs::openat(
            &self.staging,
            id.to_string(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| Error::io(self.staging_path(id), e.into()))?;
        Ok((id, SparseFile::new(File::from(fd))))
    }

    fn finish_file(&self, id: StageId, f: SparseFile, meta: Option<&Meta>) -> Result<()> {
        let f = f
            .complete()
            .map_err(|e| Error::io(self.staging_path(id), e))?;
        match meta {
            Some(m) => self
                .apply(&f, m)
                .map_err(|e| Error::io(self.staging_path(id), e.into())),
            None => Ok(()),
        }
    }

    fn stage_symlink(&self, target: &[u8], m: &Meta) -> Result<StageId> {
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

    /// Nobody else can write to the staging directory, so setting the mode by name
    /// cannot be redirected.
    fn stage_special(&self, m: &Meta) -> Result<StageId> {
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

    fn place_or_keep(&self, id: StageId, parent: &Path, name: &OsStr) -> Result<()> {
        let rel = parent.join(name);
        let pfd = self.dir(parent).map_err(|e| self.err(parent, e))?;
        rfs::renameat_with(
            &self.staging,
            id.to_string(),
            &*pfd,
            name,
            RenameFlags::NOREPLACE,
        )
        .map_err(|e| self.exists_error(&rel, e))
    }

    fn discard(&self, id: StageId) {
        let _ = rfs::unlinkat(&self.staging, id.to_string(), AtFlags::empty());
    }

    fn mkdir(&self, parent: &Path, name: &OsStr) -> Result<bool> {
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

    fn hard_link(&self, target: &Path, parent: &Path, name: &OsStr) -> Result<()> {
        let rel = parent.join(name);
        let (tparent, tname) = split(target);
        let tfd = self.dir(tparent).map_err(|e| self.err(tparent, e))?;
        let pfd = self.dir(parent).map_err(|e| self.err(parent, e))?;
        // Without AT_SYMLINK_FOLLOW, linkat links the entry itself, never a symlink's target.
        rfs::linkat(&*tfd, tname, &*pfd, name, AtFlags::empty())
            .map_err(|e| self.exists_error(&rel, e))
    }

    fn relink(&self, target: &Path, rel: &Path) -> Result<()> {
        // Link the target into staging, then rename that over `rel`: `rel` is never
        // missing, and only ever becomes what this run restored.
        let id = self.next_id();
        let (tparent, tname) = split(target);
        let tfd = self.dir(tparent).map_err(|e| self.err(tparent, e))?;
        rfs::linkat(
            &*tfd,
            tname,
            &self.staging,
            id.to_string(),
            AtFlags::empty(),
        )
        .map_err(|e| self.err(target, e))?;
        let (parent, name) = split(rel);
        let r = self
            .dir(parent)
            .map_err(|e| self.err(parent, e))
            .and_then(|pfd| {
                rfs::renameat(&self.staging, id.to_string(), &*pfd, name)
                    .map_err(|e| self.err(rel, e))
            });
        if r.is_err() {
            self.discard(id);
        }
        r
    }

    fn retract(&self, rel: &Path, keep_as: Option<&OsStr>) -> Result<()> {
        let (parent, name) = split(rel);
        let pfd = self.dir(parent).map_err(|e| self.err(parent, e))?;
        match keep_as {
            Some(new) => rfs::renameat_with(&*pfd, name, &*pfd, new, RenameFlags::NOREPLACE),
            None => rfs::unlinkat(&*pfd, name, AtFlags::empty()),
        }
        .map_err(|e| self.err(rel, e))
    }

    fn finish_dir(&self, rel: &Path, m: &Meta) -> Result<()> {
        let fd = self.dir(rel).map_err(|e| self.err(rel, e))?;
        self.apply(&*fd, m).map_err(|e| self.err(rel, e))
    }

    fn close(&self) -> Result<()> {
        self.cache.lock().expect("no panics while held").clear();
        if let Ok(dir) = rfs::Dir::read_from(&self.staging) {
            for e in dir.flatten() {
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    let _ = rfs::unlinkat(&self.staging, e.file_name(), AtFlags::empty());
                }
            }
        }
        rfs::unlinkat(&*self.root, &self.staging_name, AtFlags::REMOVEDIR)
            .map_err(|e| Error::io(self.root_path.join(&self.staging_name), e.into()))
    }

    fn abandon(&self) {
        let _ = self.close();
        if self.created {
            let _ = rfs::unlinkat(CWD, &self.root_path, AtFlags::REMOVEDIR);
        }
    }

    fn was_empty(&self) -> bool {
        self.was_empty
    }

    fn spool(&self) -> Result<File> {
        // Created in the private staging directory and unlinked at once: nothing to clean
        // up, whatever happens.
        let id = self.next_id();
        let fd = rfs::openat(
            &self.staging,
            id.to_string(),
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| Error::io(self.staging_path(id), e.into()))?;
        self.discard(id);
        Ok(File::from(fd))
    }
}

/// `a/b/c` → (`a/b`, `c`); a single component has the empty parent.
pub fn split(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or(OsStr::new("")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn zero_blocks_become_holes_and_the_content_is_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut f = SparseFile::new(File::create(&p).unwrap());
        let mut data = vec![0u8; 64 * BLOCK_SIZE + 100];
        data[10 * BLOCK_SIZE + 5] = 1; // one block of data in the middle
        data[64 * BLOCK_SIZE + 99] = 2; // and a short last block
                                        // Written in uneven pieces, as a stream would.
        for piece in data.chunks(3 * BLOCK_SIZE + 17) {
            f.write_all(piece).unwrap();
        }
        let file = f.complete().unwrap();
        drop(file);
        assert_eq!(std::fs::read(&p).unwrap(), data);
        let md = std::fs::metadata(&p).unwrap();
        assert!(
            md.blocks() * 512 < 16 * BLOCK_SIZE as u64,
            "{} blocks allocated",
            md.blocks()
        );
        // Zeros at the end: the length is still right.
        let q = d.path().join("g");
        let mut f = SparseFile::new(File::create(&q).unwrap());
        f.write_all(b"x").unwrap();
        f.write_all(&vec![0u8; 5 * BLOCK_SIZE]).unwrap();
        drop(f.complete().unwrap());
        let back = std::fs::read(&q).unwrap();
        assert_eq!(back.len(), 5 * BLOCK_SIZE + 1);
        assert_eq!(back[0], b'x');
        assert!(back[1..].iter().all(|&b| b == 0));
    }

    #[test]
    fn all_zero_checks_every_byte() {
        let mut b = vec![0u8; 4099];
        assert!(all_zero(&b));
        for i in [0, 7, 8, 4095, 4098] {
            b[i] = 1;
            assert!(!all_zero(&b), "{i}");
            b[i] = 0;
        }
    }
}
