//! Writes the view into a directory, the way `cp -a` of a reverse mount would, and keeps
//! it up to date on later runs. Everything happens through directory handles
//! ([`crate::fs::handle`]): DEST may hold directories that belong to the users whose
//! files are backed up, and they can rename or replace anything in them at any moment.
//!
//! * Every file is written under a temporary name in its final directory through a
//!   handle we created (`O_CREAT | O_EXCL | O_NOFOLLOW`), given its owner, mode and
//!   times on that handle, and renamed into place only when complete: an interrupted
//!   export never leaves a file that looks complete and is not.
//! * Symlinks, FIFOs and device nodes can only be changed by name, so they are made in
//!   a private staging directory (mode 0700, in DEST's root) and renamed into place
//!   finished: nobody can swap them for something else while we set their owner.
//! * An existing file's mode and owner are fixed in place only through a handle whose
//!   identity was checked, and only when it has one link (see [`crate::export::plan`]).
//! * Something of the wrong type is removed (a whole tree, handle by handle), never
//!   followed.
//! * A directory gets its final mode, owner and times on its own handle once its
//!   contents are written.

use std::ffi::OsString;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::{Fill, TreeSink};
use crate::error::{Error, IoContext, Result};
use crate::export::plan::{Delta, Existing, TEMP_PREFIX};
use crate::fs::handle::{self, Dir, Identity};
use crate::view::{Entry, Meta, Payload, S_IFDIR};

pub struct DirSink {
    /// DEST's handle (`None` in a dry run into a destination that does not exist yet).
    root: Option<Dir>,
    /// DEST as the user named it, for messages.
    path: PathBuf,
    /// Set owners as in the source (only root may).
    chown: bool,
    counter: AtomicU64,
    stage: OnceLock<io::Result<Dir>>,
}

fn times(m: &Meta) -> ((i64, u32), (i64, u32)) {
    ((m.atime.sec, m.atime.nsec), (m.mtime.sec, m.mtime.nsec))
}

impl DirSink {
    pub fn new(root: Option<Dir>, path: PathBuf, chown: bool) -> DirSink {
        DirSink {
            root,
            path,
            chown,
            counter: AtomicU64::new(0),
            stage: OnceLock::new(),
        }
    }

    fn root(&self) -> Result<&Dir> {
        self.root
            .as_ref()
            .ok_or_else(|| Error::invalid(&self.path, "does not exist"))
    }

    /// A fresh temporary name; never a name of the view, and recognised for cleanup.
    fn temp_name(&self) -> Vec<u8> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{TEMP_PREFIX}{}-{n}", std::process::id()).into_bytes()
    }

    /// The private staging directory in DEST's root.
    fn stage(&self) -> Result<&Dir> {
        let root = self.root()?;
        let stage = self.stage.get_or_init(|| {
            let name = format!("{TEMP_PREFIX}{}-stage", std::process::id()).into_bytes();
            root.mkdir_at(&name, 0o700)?;
            let d = root.open_dir(&name)?;
            let st = d.stat()?;
            if st.st_uid != rustix::process::geteuid().as_raw() || st.st_mode & 0o077 != 0 {
                return Err(io::Error::other("staging directory is not private"));
            }
            Ok(d)
        });
        stage.as_ref().map_err(|e| {
            Error::invalid(
                root.path(),
                format!(
                    "cannot make a staging directory: {}",
                    crate::error::in_words(e)
                ),
            )
        })
    }

    /// Remove the staging directory (empty after a run that finished). Done before the
    /// root gets its final times, which removing it would change.
    pub fn close(&self) {
        if let (Some(Ok(stage)), Some(root)) = (self.stage.get(), &self.root) {
            let name = stage
                .path()
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default();
            let _ = root.rmdir_at(&name);
        }
    }

    /// Place the finished temporary `tmp` of `from` under `name` in `parent`.
    fn place(&self, from: &Dir, tmp: &[u8], parent: &Dir, name: &[u8]) -> Result<()> {
        from.rename_to(tmp, parent, name).map_err(|e| {
            let _ = from.unlink_at(tmp);
            Error::io(parent.show(name), e)
        })
    }

    fn make_symlink(&self, stage: &Dir, tmp: &[u8], e: &Entry, target: &[u8]) -> io::Result<()> {
        stage.symlink_at(target, tmp)?;
        if self.chown {
            stage.chown_at(tmp, e.meta.uid, e.meta.gid)?;
        }
        let (a, m) = times(&e.meta);
        stage.set_times_at(tmp, a, m)
    }

    fn make_special(&self, stage: &Dir, tmp: &[u8], e: &Entry) -> Result<()> {
        // The process umask is 0 during an export (set by the CLI), so the node gets
        // exactly these bits.
        stage
            .mknod_at(tmp, e.meta.mode, e.meta.rdev)
            .map_err(|err| {
                let why = if err.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) {
                    "cannot create this special file (device nodes need root)".to_string()
                } else {
                    format!(
                        "cannot create special file: {}",
                        crate::error::in_words(&err)
                    )
                };
                Error::invalid(&e.source, why)
            })?;
        let io = (|| {
            if self.chown {
                stage.chown_at(tmp, e.meta.uid, e.meta.gid)?;
            }
            let (a, m) = times(&e.meta);
            stage.set_times_at(tmp, a, m)
        })();
        io.map_err(|err| Error::io(stage.show(tmp), err))
    }

    /// Remove the tree below `dir` (not `dir` itself), one handle at a time.
    fn empty_dir(&self, dir: Dir) -> io::Result<()> {
        // Iterative, so a deep tree cannot exhaust the stack.
        let mut stack: Vec<(Dir, Vec<OsString>, Option<Vec<u8>>)> = Vec::new();
        let names = self.writable_names(&dir)?;
        stack.push((dir, names, None));
        while let Some((d, names, _)) = stack.last_mut() {
            let Some(name) = names.pop() else {
                let (_, _, name) = stack.pop().expect("not empty");
                if let (Some(name), Some((parent, _, _))) = (name, stack.last()) {
                    parent.rmdir_at(&name)?;
                }
                continue;
            };
            let n = name.as_bytes().to_vec();
            let st = d.stat_at(&n)?;
            if st.st_mode & handle::S_IFMT == S_IFDIR {
                let sub = d.open_dir_checked(&n, Identity::of(&st))?;
                let names = self.writable_names(&sub)?;
                stack.push((sub, names, Some(n)));
            } else {
                d.unlink_at(&n)?;
            }
        }
        Ok(())
    }

    /// The names in `dir`, after making it writable if we cannot otherwise empty it.
    fn writable_names(&self, dir: &Dir) -> io::Result<Vec<OsString>> {
        if !self.chown {
            let st = dir.stat()?;
            if st.st_mode & 0o700 != 0o700 {
                dir.chmod((st.st_mode | 0o700) & 0o7777)?;
            }
        }
        let (names, err) = dir.names()?;
        match err {
            Some(e) => Err(e),
            None => Ok(names),
        }
    }

    /// How many entries are in the tree below `dir`.
    fn count_tree(dir: Dir) -> io::Result<u64> {
        let mut total = 0;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let (names, err) = d.names()?;
            if let Some(e) = err {
                return Err(e);
            }
            for name in names {
                total += 1;
                let n = name.as_bytes();
                let st = d.stat_at(n)?;
                if st.st_mode & handle::S_IFMT == S_IFDIR {
                    stack.push(d.open_dir_checked(n, Identity::of(&st))?);
                }
            }
        }
        Ok(total)
    }

    /// Refuse to write into an existing destination that does not hold a backup made
    /// with this key (see [`super::key::check_key`]).
    pub fn check_key(&self, cryptor: &crate::format::Cryptor, config: Option<&[u8]>) -> Result<()> {
        super::key::check_key(self, cryptor, config)
    }
}

impl super::key::Evidence for DirSink {
    fn shown(&self) -> PathBuf {
        self.path.clone()
    }

    fn root_names(&self) -> Result<Vec<Vec<u8>>> {
        let Some(root) = &self.root else {
            return Ok(Vec::new());
        };
        let (names, _) = root.names().at(&self.path)?;
        Ok(names.iter().map(|n| n.as_bytes().to_vec()).collect())
    }

    fn root_config(&self, max: usize) -> Option<Vec<u8>> {
        let (bytes, _) = self
            .root
            .as_ref()?
            .read_small(crate::format::names::CONF_NAME.as_bytes(), max)
            .ok()?;
        Some(bytes).filter(|b| b.len() <= max)
    }

    fn root_has_file(&self, name: &[u8]) -> bool {
        self.root.as_ref().is_some_and(|r| {
            r.stat_at(name)
                .is_ok_and(|st| st.st_mode & handle::S_IFMT == handle::S_IFREG)
        })
    }

    fn first_file(
        &self,
        skip: &dyn Fn(&[u8]) -> bool,
        min: u64,
        len: usize,
        limit: usize,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        let mut queue = std::collections::VecDeque::from([(
            root.try_clone().at(&self.path)?,
            Vec::<u8>::new(),
        )]);
        let mut seen = 0usize;
        while let Some((dir, cdir)) = queue.pop_front() {
            let Ok((names, _)) = dir.names() else {
                continue;
            };
            for name in names {
                seen += 1;
                if seen > limit {
                    return Ok(None);
                }
                let name = name.as_bytes();
                if skip(name) {
                    continue;
                }
                let cpath = crate::cpath::join(&cdir, name);
                let Ok(st) = dir.stat_at(name) else { continue };
                let m = Meta::from_stat(&st);
                if m.file_type() == S_IFDIR {
                    if let Ok(sub) = dir.open_dir_checked(name, m.identity()) {
                        queue.push_back((sub, cpath));
                    }
                } else if m.file_type() == handle::S_IFREG && m.size > min {
                    let (f, _) = dir.open_file(name, Some(m.identity())).at(dir.show(name))?;
                    let mut head = vec![0u8; len];
                    let got = crate::format::content::read_full(&mut f.take(len as u64), &mut head)
                        .at(dir.show(name))?;
                    head.truncate(got);
                    return Ok(Some((cpath, head)));
                }
            }
        }
        Ok(None)
    }
}

/// A writer that remembers whether writing failed (so the failure is blamed on the
/// destination file, not on the source being read).
struct Recorder<W: Write> {
    inner: W,
    failed: Option<io::Error>,
}

impl<W: Write> Write for Recorder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            self.failed = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            self.failed = Some(io::Error::new(e.kind(), e.to_string()));
        })
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
            let got = crate::format::content::read_full(&mut self.file, &mut self.buf)?;
            self.equal = got == data.len() && self.buf[..] == *data;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TreeSink for DirSink {
    type Dir = Dir;

    fn open_root(&self) -> Result<Option<Dir>> {
        self.root
            .as_ref()
            .map(|r| r.try_clone().at(&self.path))
            .transpose()
    }

    fn list(&self, dir: &Dir) -> Result<Vec<Existing>> {
        let (names, err) = dir.names().at(dir.path())?;
        if let Some(e) = err {
            return Err(Error::io(dir.path(), e));
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let n = name.as_bytes();
            let st = match dir.stat_at(n) {
                Ok(st) => st,
                // Gone since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(dir.show(n), e)),
            };
            let meta = Meta::from_stat(&st);
            let target = if meta.file_type() == crate::view::S_IFLNK {
                dir.read_link_at(n).ok()
            } else {
                None
            };
            out.push(Existing {
                name: n.to_vec(),
                meta,
                target,
            });
        }
        Ok(out)
    }

    fn open_dir(&self, parent: &Dir, seen: &Existing) -> Result<Dir> {
        parent
            .open_dir_checked(&seen.name, seen.identity())
            .at(parent.show(&seen.name))
    }

    fn make_dir(&self, parent: &Dir, name: &[u8], _e: &Entry) -> Result<Dir> {
        parent.mkdir_at(name, 0o700).at(parent.show(name))?;
        parent.open_dir(name).at(parent.show(name))
    }

    fn prepare_dir(&self, dir: &Dir, _e: &Entry) -> Result<()> {
        // Without root, a read-only directory from an earlier run must be made writable
        // for now; finish_dir puts its mode back.
        if !self.chown {
            let st = dir.stat().at(dir.path())?;
            if st.st_mode & 0o700 != 0o700 {
                dir.chmod((st.st_mode | 0o700) & 0o7777).at(dir.path())?;
            }
        }
        Ok(())
    }

    fn finish_dir(&self, dir: &Dir, e: &Entry) -> Result<()> {
        if e.cpath.is_empty() {
            self.close();
        }
        let m = Meta::from_stat(&dir.stat().at(dir.path())?);
        let owner_differs = self.chown && (m.uid != e.meta.uid || m.gid != e.meta.gid);
        if owner_differs {
            dir.chown(e.meta.uid, e.meta.gid).at(dir.path())?;
        }
        // chown may clear setgid bits, so the mode is set after it.
        if owner_differs || m.permissions() != e.meta.permissions() {
            dir.chmod(e.meta.permissions()).at(dir.path())?;
        }
        if m.mtime != e.meta.mtime {
            let (a, mt) = times(&e.meta);
            dir.set_times(a, mt).at(dir.path())?;
        }
        Ok(())
    }

    fn write_file(
        &self,
        parent: &Dir,
        name: &[u8],
        e: &Entry,
        fill: &mut Fill,
    ) -> Result<Option<Identity>> {
        let tmp = self.temp_name();
        let shown = parent.show(name);
        let file = parent.create_new(&tmp, 0o600).at(&shown)?;
        let result = (|| {
            let mut w = Recorder {
                inner: BufWriter::with_capacity(256 * 1024, &file),
                failed: None,
            };
            let keep = match fill(&mut w) {
                Ok(keep) => keep,
                Err(err) => {
                    return Err(match w.failed.take() {
                        Some(io) => Error::io(&shown, io),
                        None => err,
                    })
                }
            };
            w.flush().map_err(|io| Error::io(&shown, io))?;
            if !keep {
                return Ok(None);
            }
            // chown clears setuid bits, so ownership goes first, then the mode.
            if self.chown {
                handle::fchown(&file, e.meta.uid, e.meta.gid).at(&shown)?;
            }
            handle::fchmod(&file, e.meta.permissions()).at(&shown)?;
            let (a, m) = times(&e.meta);
            handle::set_times(&file, a, m).at(&shown)?;
            let id = Identity::of(&handle::fstat(&file).at(&shown)?);
            parent.rename_to(&tmp, parent, name).at(&shown)?;
            Ok(Some(id))
        })();
        if !matches!(result, Ok(Some(_))) {
            let _ = parent.unlink_at(&tmp);
        }
        result
    }

    fn write_other(&self, parent: &Dir, name: &[u8], e: &Entry, bytes: &[u8]) -> Result<()> {
        match &e.payload {
            Payload::Symlink { target } => {
                let stage = self.stage()?;
                let tmp = self.temp_name();
                self.make_symlink(stage, &tmp, e, target).map_err(|err| {
                    let _ = stage.unlink_at(&tmp);
                    Error::io(parent.show(name), err)
                })?;
                self.place(stage, &tmp, parent, name)
            }
            Payload::Special => {
                let stage = self.stage()?;
                let tmp = self.temp_name();
                if let Err(err) = self.make_special(stage, &tmp, e) {
                    let _ = stage.unlink_at(&tmp);
                    return Err(err);
                }
                self.place(stage, &tmp, parent, name)
            }
            Payload::Dir { .. } => Err(Error::invalid(
                parent.show(name),
                "directories are not leaves",
            )),
            _ => {
                // Virtual files: written like a regular file.
                self.write_file(parent, name, e, &mut |w| {
                    w.write_all(bytes)
                        .map_err(|err| Error::io(parent.show(name), err))?;
                    Ok(true)
                })
                .map(|_| ())
            }
        }
    }

    fn link(
        &self,
        parent: &Dir,
        name: &[u8],
        _e: &Entry,
        primary: &[u8],
        expect: Option<Identity>,
    ) -> Result<()> {
        let (pdir, pname) = crate::cpath::split(primary);
        let from = self.resolve(pdir)?;
        let tmp = self.temp_name();
        let shown = parent.show(name);
        parent.link_from(&from, pname, &tmp).at(&shown)?;
        // The link must be to the file we placed, not to whatever someone may have put
        // under the first name since.
        let ok = match parent.stat_at(&tmp) {
            Ok(st) => {
                st.st_mode & handle::S_IFMT == handle::S_IFREG
                    && expect.is_none_or(|id| id == Identity::of(&st))
            }
            Err(_) => false,
        };
        if !ok {
            let _ = parent.unlink_at(&tmp);
            return Err(Error::invalid(
                &shown,
                "its first name changed during the backup; not linked",
            ));
        }
        self.place(parent, &tmp, parent, name)
    }

    fn fix_metadata(&self, parent: &Dir, seen: &Existing, e: &Entry, d: &Delta) -> Result<()> {
        let shown = parent.show(&seen.name);
        let (f, st) = parent
            .open_file(&seen.name, Some(seen.identity()))
            .at(&shown)?;
        if st.st_nlink != 1 {
            return Err(Error::invalid(
                &shown,
                "gained another link during the backup; left as it is",
            ));
        }
        if self.chown && (d.owner || d.group) {
            handle::fchown(&f, e.meta.uid, e.meta.gid).at(&shown)?;
        }
        // chown may have cleared setuid bits, so the mode is set after it.
        handle::fchmod(&f, e.meta.permissions()).at(&shown)
    }

    fn same_bytes(&self, parent: &Dir, seen: &Existing, fill: &mut Fill) -> Result<bool> {
        let shown = parent.show(&seen.name);
        let (f, st) = parent
            .open_file(&seen.name, Some(seen.identity()))
            .at(&shown)?;
        let mut cmp = CompareWriter {
            file: io::BufReader::with_capacity(256 * 1024, f.take(st.st_size as u64)),
            equal: true,
            buf: Vec::new(),
        };
        let complete = fill(&mut cmp)?;
        let mut rest = [0u8; 1];
        Ok(complete && cmp.equal && cmp.file.read(&mut rest).at(&shown)? == 0)
    }

    fn remove(&self, parent: &Dir, seen: &Existing) -> Result<()> {
        let shown = parent.show(&seen.name);
        if seen.is_dir() {
            let d = parent
                .open_dir_checked(&seen.name, seen.identity())
                .at(&shown)?;
            self.empty_dir(d).at(&shown)?;
            parent.rmdir_at(&seen.name).at(&shown)
        } else {
            parent.unlink_at(&seen.name).at(&shown)
        }
    }

    fn count(&self, parent: &Dir, seen: &Existing) -> Result<u64> {
        if !seen.is_dir() {
            return Ok(1);
        }
        let shown = parent.show(&seen.name);
        let d = parent
            .open_dir_checked(&seen.name, seen.identity())
            .at(&shown)?;
        Ok(1 + Self::count_tree(d).at(&shown)?)
    }

    fn read_name_file(&self, dir: &Dir, name: &[u8]) -> Option<Vec<u8>> {
        let max = crate::restore::MAX_NAME_FILE;
        dir.read_small(name, max)
            .ok()
            .map(|(bytes, _)| bytes)
            .filter(|b| b.len() <= max)
    }

    fn resolve(&self, cpath: &[u8]) -> Result<Dir> {
        let mut d = self.root()?.try_clone().at(&self.path)?;
        for part in cpath.split(|&c| c == b'/').filter(|p| !p.is_empty()) {
            d = d.open_dir(part).at(d.show(part))?;
        }
        Ok(d)
    }

    fn sync(&self) -> Result<()> {
        match &self.root {
            Some(r) => r.sync_fs().at(&self.path),
            None => Ok(()),
        }
    }
}
