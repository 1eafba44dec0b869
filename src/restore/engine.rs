//! The restore engine: ciphertext entries in, plaintext tree out, in whatever order the
//! entries arrive.
//!
//! A directory source can hand entries over in a convenient order (`gocryptfs.diriv` and
//! `.name` files before the entries that need them), but a tar stream cannot: in a tar of
//! a real reverse mount a directory's `gocryptfs.diriv` and its `.name` files come *after*
//! its entries. So an entry whose plaintext name cannot be worked out yet waits, while
//! its content is already decrypted and authenticated into the staging directory; it is
//! moved into place as soon as the missing piece arrives. Only metadata waits in memory.
//!
//! Reverse-made trees (cryptbak export, `gocryptfs -reverse`) derive every IV from the
//! entry's ciphertext path (FORMAT.md §4). Once the tree is known to be one, the engine
//! recomputes dir IVs instead of waiting for `gocryptfs.diriv`, and checks that every
//! stored dir IV, file ID and symlink nonce matches its path: this catches files that were
//! moved or swapped, and tampered names, which forward-mode gocryptfs cannot detect.
//! A tree is taken to be reverse-made as soon as one such value matches its path (this
//! cannot happen by chance with forward mode's random IVs).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::format::config::Format;
use crate::format::content::{Aead, ContentCipher, FileReport};
use crate::format::names::{
    is_valid_plain_name, parse_long_name, NameCodec, DIRIV_NAME, LONGNAME_PREFIX, LONGNAME_SUFFIX,
};
use crate::format::Cryptor;
use crate::pathiv::{self, Purpose};
use crate::progress::{Problem, Progress};
use crate::view::{Meta, S_IFDIR};

use super::writer::{split, Dest, StageId};
use super::{Summary, MAX_NAME_FILE};

/// Ciphertext path: `/`-separated components as stored in the backup, `""` for the root.
pub type CPath = Vec<u8>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// No evidence yet.
    Unknown,
    /// IVs derived from paths: cryptbak export or gocryptfs -reverse.
    Reverse,
    /// Random IVs stored on disk: a forward-mode gocryptfs directory.
    Forward,
}

/// Restore-wide settings the engine needs.
pub struct EngineOptions {
    pub keep_corrupt: bool,
    /// Only restore this plaintext path (components) and what is below it.
    pub filter: Option<Vec<Vec<u8>>>,
    /// Treat the tree as reverse-made from the start.
    pub expect_reverse: bool,
}

/// A restorable entry, as a source hands it over.
pub enum Item {
    Dir {
        meta: Meta,
    },
    File {
        meta: Meta,
        staged: Staged,
    },
    Symlink {
        meta: Meta,
        target: Vec<u8>,
        /// Its nonce does not match its path (see [`Suspect`]).
        suspect: bool,
    },
    Special {
        meta: Meta,
    },
    /// Another name of the regular file at `target`.
    Link {
        target: CPath,
    },
}

/// A file whose content has been decrypted into the staging directory.
pub struct Staged {
    id: StageId,
    report: FileReport,
    /// One of its path-derived values did not match (see [`Suspect`]).
    suspect: bool,
}

/// A path-derived value that did not match: an error if the tree is reverse-made.
enum Suspect {
    DirIv(CPath),
    File { cpath: CPath, file_id: [u8; 16] },
    Holes(CPath),
    Symlink(CPath),
}

#[derive(Default)]
struct DirState {
    /// Created in DEST, at this DEST-relative path.
    plain: Option<PathBuf>,
    /// Could not be restored, or filtered out: entries below it are dropped.
    dead: bool,
    /// Its own entry was seen (else it is implied by its contents).
    seen: bool,
    meta: Option<Meta>,
    stored_iv: Option<[u8; 16]>,
    diriv_seen: bool,
    /// A `gocryptfs.diriv` was there but unusable (already reported).
    diriv_bad: bool,
    waiting: Vec<(CPath, Item)>,
}

struct State {
    layout: Layout,
    dirs: HashMap<CPath, DirState>,
    /// Contents of `.name` files that hash to their entry's name, keyed by the
    /// long-named entry's cpath.
    long_names: HashMap<CPath, Vec<u8>>,
    /// What was wrong with `.name` files that did not (in case no right one comes).
    bad_long_names: HashMap<CPath, String>,
    /// Entries waiting for their `.name` file.
    name_waiters: HashMap<CPath, Item>,
    links: Vec<(CPath, CPath)>,
    /// Non-directories this run put into DEST under their own name (or as a hard link),
    /// as keyed hashes of their cpaths: the only things a hard link may point to. Eight
    /// bytes per entry; the random key makes collisions impossible to aim for.
    placed: HashSet<u64>,
    /// Authenticated files whose own name could not be taken (it exists in DEST), kept in
    /// staging until the end: their hard links may still give the content a name.
    unplaced: HashMap<CPath, StageId>,
    suspects: Vec<Suspect>,
    /// Directories whose waiting entries can be placed now (see `retry_dir`).
    ready: Vec<CPath>,
    draining: bool,
    /// Suspect files and symlinks this run put into DEST, and what each is: only the
    /// entry a suspect is about may be taken out again, never another entry that the
    /// backup holds under the same path.
    placed_suspects: HashMap<CPath, Placed>,
    filter_hit: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Placed {
    File,
    Symlink,
}

impl State {
    fn push_suspect(&mut self, s: Suspect) {
        self.suspects.push(s);
    }
}

pub struct Engine<'a> {
    pub(crate) codec: Option<NameCodec>,
    pub(crate) format: Format,
    pub(crate) dec: ContentCipher,
    dest: &'a Dest,
    progress: &'a dyn Progress,
    opts: EngineOptions,
    st: Mutex<State>,
    pub(crate) counters: Counters,
    /// Keys of [`State::placed`].
    hasher: RandomState,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub dirs: AtomicU64,
    pub files: AtomicU64,
    pub symlinks: AtomicU64,
    pub specials: AtomicU64,
    pub hard_links: AtomicU64,
    pub bytes: AtomicU64,
    pub warnings: AtomicU64,
    pub errors: AtomicU64,
    pub integrity_errors: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub use crate::cpath::{join as join_cpath, split as split_cpath};

pub fn show_cpath(cpath: &[u8]) -> PathBuf {
    if cpath.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(OsStr::from_bytes(cpath))
    }
}

/// What resolving a name gave.
enum Res {
    Ready(PathBuf),
    /// The parent is not restored yet, or its dir IV or the layout is not known yet.
    WaitDir,
    /// The `.name` file of this long name has not been seen yet.
    WaitName,
    /// The entry cannot be restored.
    Fail {
        msg: String,
        integrity: bool,
    },
    /// The parent was dropped (failed or filtered out).
    Drop,
}

impl<'a> Engine<'a> {
    pub fn new(
        keys: Cryptor,
        dest: &'a Dest,
        progress: &'a dyn Progress,
        opts: EngineOptions,
    ) -> Self {
        let Cryptor {
            format,
            names: codec,
            content: dec,
        } = keys;
        let layout = if opts.expect_reverse {
            Layout::Reverse
        } else if dec.aead().is_some_and(|a| a != Aead::Siv) {
            // Reverse mode always uses AES-SIV.
            Layout::Forward
        } else {
            Layout::Unknown
        };
        let mut dirs = HashMap::new();
        dirs.insert(
            Vec::new(),
            DirState {
                plain: Some(PathBuf::new()),
                seen: true,
                ..Default::default()
            },
        );
        Engine {
            codec,
            format,
            dec,
            dest,
            progress,
            opts,
            st: Mutex::new(State {
                layout,
                dirs,
                long_names: HashMap::new(),
                bad_long_names: HashMap::new(),
                name_waiters: HashMap::new(),
                links: Vec::new(),
                placed: HashSet::new(),
                unplaced: HashMap::new(),
                suspects: Vec::new(),
                ready: Vec::new(),
                draining: false,
                placed_suspects: Default::default(),
                filter_hit: false,
            }),
            counters: Counters::default(),
            hasher: RandomState::new(),
        }
    }

    fn key(&self, cpath: &[u8]) -> u64 {
        self.hasher.hash_one(cpath)
    }

    pub fn layout(&self) -> Layout {
        self.lock().layout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st
            .lock()
            .expect("no panics while the restore state is held")
    }

    // After a stop request, entries fail only because of it: the run's one
    // "interrupted" message says it all, so these stay quiet then.

    pub fn warn(&self, path: impl Into<PathBuf>, msg: impl Into<String>) {
        if crate::cancel::requested() {
            return;
        }
        inc(&self.counters.warnings, 1);
        self.progress.problem(&Problem::warning(path, msg));
    }

    pub fn error(&self, path: impl Into<PathBuf>, msg: impl Into<String>) {
        if crate::cancel::requested() {
            return;
        }
        inc(&self.counters.errors, 1);
        self.progress.problem(&Problem::error(path, msg));
    }

    pub fn integrity(&self, path: impl Into<PathBuf>, msg: impl Into<String>) {
        if crate::cancel::requested() {
            return;
        }
        inc(&self.counters.integrity_errors, 1);
        self.progress.problem(&Problem::error(
            path,
            format!("integrity check failed: {}", msg.into()),
        ));
    }

    /// Whether forward-mode file holes are accepted (not in reverse-made trees).
    fn allow_holes(&self) -> bool {
        self.layout() != Layout::Reverse
    }

    /// The metadata of the restore root (DEST itself).
    pub fn set_root_meta(&self, meta: Meta) {
        let mut st = self.lock();
        st.dirs.get_mut(&Vec::new()).expect("root exists").meta = Some(meta);
    }

    /// Evidence about the layout: a stored value and the one its path would give.
    /// Returns whether `suspect` was recorded (to be judged once the layout is known).
    fn observe(&self, st: &mut State, matched: bool, suspect: Suspect) -> bool {
        if st.layout == Layout::Unknown && self.dec.aead().is_some_and(|a| a != Aead::Siv) {
            // Detected on the first file: reverse mode always uses AES-SIV.
            st.layout = Layout::Forward;
            self.retry_all(st);
        }
        if matched {
            if st.layout == Layout::Unknown {
                st.layout = Layout::Reverse;
                self.retry_all(st);
            }
        } else if st.layout != Layout::Forward {
            st.push_suspect(suspect);
            return true;
        }
        false
    }

    /// Decrypt a file's content into the staging directory. Runs without the lock, so
    /// several files can be decrypted at once.
    pub fn stage_file(
        &self,
        cpath: &[u8],
        meta: &Meta,
        src: &mut impl std::io::Read,
    ) -> Result<Staged> {
        let (id, f) = self.dest.stage_file()?;
        let mut w = WriteSide {
            inner: std::io::BufWriter::with_capacity(64 * 1024, f),
            failed: false,
        };
        // A full or failing DEST is the user's to fix, so it is named by where the file
        // was going; a read error is the backup's, named by the backup file.
        let write_error = |e: std::io::Error| {
            Error::invalid(
                self.shown(cpath),
                format!("cannot write the plaintext: {e}; not restored"),
            )
        };
        let r = self
            .dec
            .decrypt_file(src, &mut w, self.allow_holes())
            .map_err(|e| {
                if w.failed {
                    write_error(e)
                } else {
                    Error::io(show_cpath(cpath), e)
                }
            })
            .and_then(|report| {
                let f = w
                    .inner
                    .into_inner()
                    .map_err(|e| write_error(e.into_error()))?;
                if report.is_ok() {
                    self.dest.finish_file(id, &f, meta)?;
                }
                Ok(report)
            });
        match r {
            Ok(report) => Ok(Staged {
                id,
                report,
                suspect: false,
            }),
            Err(e) => {
                self.dest.discard(id);
                Err(e)
            }
        }
    }

    /// Report an error of `stage_file` for the backup file at `backup_path`, naming the
    /// file once: I/O errors concern the backup file; the others name their own file
    /// (where a plaintext could not be written).
    pub fn error_from(&self, backup_path: &Path, err: &Error) {
        match err {
            Error::Io { source, .. } => self.error(backup_path, source.to_string()),
            Error::Invalid { path, msg } => self.error(path.as_path(), msg.clone()),
            other => self.error(backup_path, other.to_string()),
        }
    }

    /// How to name `cpath` in a message: where it would go in DEST if its name is known
    /// yet, with the backup path; else the backup path.
    pub fn shown(&self, cpath: &[u8]) -> PathBuf {
        let st = self.lock();
        match self.resolve(&st, cpath) {
            Res::Ready(p) => PathBuf::from(format!(
                "{} (backup file {})",
                self.dest.show(&p).display(),
                show_cpath(cpath).display()
            )),
            _ => show_cpath(cpath),
        }
    }

    /// Throw away a staged file that will not be handed over.
    pub fn drop_staged(&self, staged: Staged) {
        self.dest.discard(staged.id);
    }

    /// Hand over one entry (see [`Item`]).
    pub fn add(&self, cpath: CPath, mut item: Item) {
        let mut st = self.lock();
        match &mut item {
            Item::File { staged, .. } => {
                if let Some(file_id) = staged.report.file_id {
                    let matched = file_id == pathiv::derive(&cpath, Purpose::FileId);
                    // A file that failed anyway is reported as such; no second verdict.
                    if matched || staged.report.is_ok() {
                        let suspect = Suspect::File {
                            cpath: cpath.clone(),
                            file_id,
                        };
                        staged.suspect |= self.observe(&mut st, matched, suspect);
                    }
                }
                if staged.report.holes > 0 && staged.report.is_ok() {
                    st.push_suspect(Suspect::Holes(cpath.clone()));
                    staged.suspect = true;
                }
            }
            Item::Link { target } => {
                st.links.push((cpath.clone(), target.clone()));
                return;
            }
            _ => {}
        }
        let (parent, _) = split_cpath(&cpath);
        st.dirs.entry(parent.to_vec()).or_default();
        self.try_place(&mut st, cpath, item);
    }

    /// A symlink: its target is decrypted here (it is small).
    pub fn add_symlink(&self, cpath: CPath, meta: Meta, stored_target: &[u8]) {
        let target = match &self.codec {
            None => Ok((stored_target.to_vec(), false)),
            Some(codec) => match codec.b64_decode(stored_target) {
                None => Err("symlink target is not valid base64".to_string()),
                Some(blob) => match self.dec.open_symlink(&blob) {
                    None => Err("symlink target does not authenticate".to_string()),
                    Some(t) => {
                        let nonce = &blob[..16];
                        let derived =
                            pathiv::derive(&pathiv::symlink_iv_path(&cpath), Purpose::SymlinkIv);
                        let mut st = self.lock();
                        let suspect = Suspect::Symlink(cpath.clone());
                        Ok((t, self.observe(&mut st, nonce == derived, suspect)))
                    }
                },
            },
        };
        match target {
            Ok((t, suspect)) if !t.is_empty() && !t.contains(&0) => self.add(
                cpath,
                Item::Symlink {
                    meta,
                    target: t,
                    suspect,
                },
            ),
            Ok(_) => self.integrity(
                show_cpath(&cpath),
                "symlink target is empty or contains NUL",
            ),
            Err(msg) => self.integrity(show_cpath(&cpath), msg),
        }
    }

    /// The content of a directory's `gocryptfs.diriv`.
    pub fn add_diriv(&self, dir: CPath, bytes: &[u8]) {
        let Ok(iv) = <[u8; 16]>::try_from(bytes) else {
            // Sources read at most 17 bytes.
            let size = if bytes.len() > 16 {
                "more than 16 bytes long".to_string()
            } else {
                format!("{} bytes long, not 16", bytes.len())
            };
            self.bad_diriv(dir, size);
            return;
        };
        let mut st = self.lock();
        let derived = pathiv::derive(&dir, Purpose::DirIv);
        let d = st.dirs.entry(dir.clone()).or_default();
        d.stored_iv = Some(iv);
        d.diriv_seen = true;
        self.observe(&mut st, iv == derived, Suspect::DirIv(dir.clone()));
        self.retry_dir(&mut st, &dir);
    }

    /// A directory's `gocryptfs.diriv` is there but unusable (wrong size, not a file).
    pub fn bad_diriv(&self, dir: CPath, msg: impl Into<String>) {
        self.integrity(show_cpath(&join_cpath(&dir, DIRIV_NAME.as_bytes())), msg);
        self.lock().dirs.entry(dir).or_default().diriv_bad = true;
    }

    /// Drop a directory of the stream that is not an entry, and everything below it.
    pub fn skip_dir(&self, cpath: CPath) {
        let mut st = self.lock();
        self.kill_dir(&mut st, &cpath);
    }

    /// The content of `gocryptfs.longname.H.name`, for the entry `gocryptfs.longname.H`.
    ///
    /// Only content that hashes to H is used. A tar stream can carry the file twice: a
    /// wrong copy must neither replace a right one nor fail the entry before the right one
    /// arrives, so it is only remembered, for the report if no right one comes.
    pub fn add_long_name(&self, entry: CPath, cname: &[u8]) {
        let (_, comp) = split_cpath(&entry);
        let problem = if cname.len() > MAX_NAME_FILE {
            // Sources read at most one byte more than allowed.
            Some(format!(
                "its .name file is larger than any encrypted name (over {MAX_NAME_FILE} bytes)"
            ))
        } else if !self
            .codec
            .as_ref()
            .is_some_and(|c| long_name_matches(c, comp, cname))
        {
            Some(
                "its .name file does not match the hashed name (tampered or swapped .name file)"
                    .to_string(),
            )
        } else {
            None
        };
        let mut nf = entry.clone();
        nf.extend_from_slice(LONGNAME_SUFFIX.as_bytes());
        let report_copy = || {
            self.integrity(
                show_cpath(&nf),
                "the stream has another copy of this .name file that does not match the hashed name; that copy was ignored",
            )
        };
        let mut st = self.lock();
        match problem {
            Some(_) if st.long_names.contains_key(&entry) => report_copy(),
            Some(msg) => {
                st.bad_long_names.insert(entry, msg);
            }
            None => {
                if st.bad_long_names.remove(&entry).is_some() {
                    report_copy();
                }
                st.long_names.insert(entry.clone(), cname.to_vec());
                if let Some(item) = st.name_waiters.remove(&entry) {
                    self.try_place(&mut st, entry, item);
                }
            }
        }
    }

    /// Try to restore the plaintext path of `cpath` without changing anything: `Some(true)`
    /// when it is wanted (inside the `--path` filter or on the way to it), `Some(false)`
    /// when it is not (or cannot be restored), `None` when it is not known yet.
    pub fn wanted(&self, cpath: &[u8]) -> Option<bool> {
        let st = self.lock();
        match self.resolve(&st, cpath) {
            Res::Ready(p) => Some(self.filter_relation(&p).is_some()),
            Res::Drop => Some(false),
            _ => None,
        }
    }

    /// `Some(inside)` if `p` is in or on the way to the filter; `None` if unrelated.
    fn filter_relation(&self, p: &Path) -> Option<bool> {
        let Some(f) = &self.opts.filter else {
            return Some(true);
        };
        let comps: Vec<&[u8]> = p.iter().map(|c| c.as_bytes()).collect();
        let n = comps.len().min(f.len());
        if comps[..n]
            .iter()
            .zip(&f[..n])
            .all(|(a, b)| *a == b.as_slice())
        {
            Some(comps.len() >= f.len())
        } else {
            None
        }
    }

    /// The name key tweak of directory `dir`, if it can be known now.
    fn dir_iv(&self, st: &State, dir: &[u8], d: &DirState) -> Option<[u8; 16]> {
        if !self.format.dir_iv {
            return Some([0; 16]);
        }
        match st.layout {
            Layout::Reverse => Some(pathiv::derive(dir, Purpose::DirIv)),
            Layout::Forward => d.stored_iv,
            // A stored IV might be a tampered one in a reverse tree: wait for the evidence.
            Layout::Unknown => None,
        }
    }

    fn resolve(&self, st: &State, cpath: &[u8]) -> Res {
        let (parent, comp) = split_cpath(cpath);
        let Some(d) = st.dirs.get(parent) else {
            return Res::WaitDir;
        };
        if d.dead {
            return Res::Drop;
        }
        let Some(parent_plain) = &d.plain else {
            return Res::WaitDir;
        };
        // The plaintext directory is known: say where the entry would have gone.
        let fail = |msg: String| Res::Fail {
            msg: format!("in {}: {msg}", self.dest.show(parent_plain).display()),
            integrity: true,
        };
        let name = match &self.codec {
            None => {
                if !is_valid_plain_name(comp) {
                    return fail(
                        "forbidden name (empty, '.', '..', or containing '/' or NUL)".into(),
                    );
                }
                comp.to_vec()
            }
            Some(codec) => {
                let Some(iv) = self.dir_iv(st, parent, d) else {
                    return Res::WaitDir;
                };
                let long = self.format.long_names && comp.starts_with(LONGNAME_PREFIX.as_bytes());
                let cname: &[u8] = if long {
                    // Only checked content is there (see add_long_name).
                    let Some(cname) = st.long_names.get(cpath) else {
                        return Res::WaitName;
                    };
                    cname
                } else {
                    comp
                };
                match codec.decrypt(&iv, cname) {
                    Ok(n) => n,
                    Err(e) => return fail(format!("cannot decrypt name: {e}")),
                }
            }
        };
        Res::Ready(parent_plain.join(OsStr::from_bytes(&name)))
    }

    fn discard(&self, item: Item) {
        if let Item::File { staged, .. } = item {
            self.dest.discard(staged.id);
        }
    }

    /// Drop a directory and everything waiting below it (a work list, not recursion: a
    /// stream may nest thousands of directories).
    fn kill_dir(&self, st: &mut State, cpath: &[u8]) {
        let mut todo = vec![cpath.to_vec()];
        while let Some(c) = todo.pop() {
            let d = st.dirs.entry(c).or_default();
            d.dead = true;
            for (c, item) in std::mem::take(&mut d.waiting) {
                if matches!(item, Item::Dir { .. }) {
                    todo.push(c);
                }
                self.discard(item);
            }
        }
    }

    fn try_place(&self, st: &mut State, cpath: CPath, item: Item) {
        match self.resolve(st, &cpath) {
            Res::Ready(p) => match self.filter_relation(&p) {
                None => {
                    if matches!(item, Item::Dir { .. }) {
                        self.kill_dir(st, &cpath);
                    }
                    self.discard(item);
                }
                Some(inside) => {
                    if inside {
                        st.filter_hit = true;
                    }
                    // On the way to the filter, only directories are restored.
                    if inside || matches!(item, Item::Dir { .. }) {
                        self.place(st, cpath, p, item);
                    } else {
                        self.discard(item);
                    }
                }
            },
            Res::WaitDir => {
                let (parent, _) = split_cpath(&cpath);
                st.dirs
                    .entry(parent.to_vec())
                    .or_default()
                    .waiting
                    .push((cpath, item));
            }
            Res::WaitName => {
                st.name_waiters.insert(cpath, item);
            }
            Res::Fail { msg, integrity } => {
                let shown = show_cpath(&cpath);
                if integrity {
                    self.integrity(shown, msg);
                } else {
                    self.error(shown, msg);
                }
                match item {
                    // Its name is lost, its content is not: a hard link may still name it.
                    Item::File { staged, .. } if staged.report.is_ok() => {
                        st.unplaced.insert(cpath, staged.id);
                    }
                    item => {
                        if matches!(item, Item::Dir { .. }) {
                            self.kill_dir(st, &cpath);
                        }
                        self.discard(item);
                    }
                }
            }
            Res::Drop => {
                if matches!(item, Item::Dir { .. }) {
                    self.kill_dir(st, &cpath);
                }
                self.discard(item);
            }
        }
    }

    fn place(&self, st: &mut State, cpath: CPath, path: PathBuf, item: Item) {
        let (parent, name) = split(&path);
        let shown = self.dest.show(&path);
        match item {
            Item::Dir { meta } => {
                let created = match self.dest.mkdir(parent, name) {
                    Ok(c) => c,
                    Err(e) => {
                        self.error(shown, e.to_string());
                        self.kill_dir(st, &cpath);
                        return;
                    }
                };
                inc(&self.counters.dirs, 1);
                let d = st.dirs.entry(cpath.clone()).or_default();
                d.plain = Some(path);
                // A directory that was in DEST before the run (--force) keeps its own mode,
                // owner and times: nothing existing is changed. One this run made (the
                // stream may name it twice) takes the latest metadata.
                if created || d.meta.is_some() {
                    d.meta = Some(meta);
                }
                d.seen = true;
                self.retry_dir(st, &cpath);
            }
            Item::File { meta, staged } => {
                if !staged.report.is_ok() {
                    self.integrity(
                        &shown,
                        format!(
                            "{} (backup file {}); {}",
                            staged.report.describe(),
                            show_cpath(&cpath).display(),
                            if self.opts.keep_corrupt {
                                "kept with a .corrupt suffix, bad blocks zeroed"
                            } else {
                                "not restored"
                            }
                        ),
                    );
                    if self.opts.keep_corrupt {
                        let mut n = name.to_os_string();
                        n.push(".corrupt");
                        if let Err(e) = self.dest.place(staged.id, parent, &n) {
                            self.error(self.dest.show(&parent.join(&n)), e.to_string());
                        }
                    } else {
                        self.dest.discard(staged.id);
                    }
                    return;
                }
                match self.dest.place_or_keep(staged.id, parent, name) {
                    Ok(()) => {
                        inc(&self.counters.files, 1);
                        inc(&self.counters.bytes, staged.report.plain_len);
                        let _ = meta;
                        self.progress.entry_done(&cpath, staged.report.plain_len);
                        st.placed.insert(self.key(&cpath));
                        if staged.suspect {
                            st.placed_suspects.insert(cpath, Placed::File);
                        }
                    }
                    Err(e) => {
                        self.error(shown, e.to_string());
                        st.unplaced.insert(cpath, staged.id);
                    }
                }
            }
            Item::Symlink {
                meta,
                target,
                suspect,
            } => {
                match self
                    .dest
                    .stage_symlink(&target, &meta)
                    .and_then(|id| self.dest.place(id, parent, name))
                {
                    Ok(()) => {
                        inc(&self.counters.symlinks, 1);
                        st.placed.insert(self.key(&cpath));
                        if suspect {
                            st.placed_suspects.insert(cpath, Placed::Symlink);
                        }
                    }
                    Err(e) => self.error(shown, e.to_string()),
                }
            }
            Item::Special { meta } => {
                match self
                    .dest
                    .stage_special(&meta)
                    .and_then(|id| self.dest.place(id, parent, name))
                {
                    Ok(()) => {
                        inc(&self.counters.specials, 1);
                        st.placed.insert(self.key(&cpath));
                    }
                    Err(e) => self.error(shown, e.to_string()),
                }
            }
            Item::Link { .. } => unreachable!("hard links are made at the end"),
        }
    }

    /// Place what waited for directory `dir`. Placing a directory makes what waits for it
    /// ready in turn; that goes on a work list instead of recursing, since a stream may
    /// hold thousands of nested directories deepest first (a stack overflow otherwise).
    fn retry_dir(&self, st: &mut State, dir: &[u8]) {
        st.ready.push(dir.to_vec());
        if st.draining {
            return;
        }
        st.draining = true;
        while let Some(d) = st.ready.pop() {
            let Some(ds) = st.dirs.get_mut(&d) else {
                continue;
            };
            for (c, item) in std::mem::take(&mut ds.waiting) {
                self.try_place(st, c, item);
            }
        }
        st.draining = false;
    }

    fn retry_all(&self, st: &mut State) {
        let keys: Vec<CPath> = st
            .dirs
            .iter()
            .filter(|(_, d)| !d.waiting.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.retry_dir(st, &k);
        }
    }

    /// Stop after a signal instead of `finish`: what is placed is complete; whatever
    /// still waits in the staging directory goes with it.
    pub fn abort(&self) -> Error {
        let _ = self.dest.close();
        Error::RestoreInterrupted
    }

    /// After the last entry: resolve what still waits, make hard links, judge the
    /// path-derived values, and give directories their final metadata.
    pub fn finish(&self) -> Result<Summary> {
        let mut st = self.lock();
        if st.layout == Layout::Unknown {
            st.layout = Layout::Forward;
        }
        self.retry_all(&mut st);

        // Directories that have contents but no entry of their own.
        loop {
            let implied: Vec<CPath> = st
                .dirs
                .iter()
                .filter(|(k, d)| !k.is_empty() && !d.seen && !d.dead && !d.waiting.is_empty())
                .map(|(k, _)| k.clone())
                .collect();
            let mut progress = false;
            for k in implied {
                // Only where its name can be worked out: else its own entry may just be
                // waiting for the same missing piece (a forward-mode dir IV, a .name file).
                if !matches!(self.resolve(&st, &k), Res::WaitDir | Res::WaitName) {
                    self.warn(
                        show_cpath(&k),
                        "directory entry missing from the backup; created with mode 0700",
                    );
                    let meta = default_dir_meta();
                    st.dirs.get_mut(&k).expect("listed").seen = true;
                    self.try_place(&mut st, k, Item::Dir { meta });
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }

        // Whatever still waits cannot be restored.
        let waiters: Vec<(CPath, Item)> = st.name_waiters.drain().collect();
        for (c, item) in waiters {
            let mut name_file = c.clone();
            name_file.extend_from_slice(LONGNAME_SUFFIX.as_bytes());
            let msg = match st.bad_long_names.get(&c) {
                Some(m) => m.clone(),
                None => format!(
                    "its long-name file {} is missing: the name cannot be restored",
                    show_cpath(&name_file).display()
                ),
            };
            let (parent, _) = split_cpath(&c);
            let msg = match st.dirs.get(parent).and_then(|d| d.plain.as_ref()) {
                Some(p) => format!("in {}: {msg}", self.dest.show(p).display()),
                None => msg,
            };
            self.integrity(show_cpath(&c), msg);
            if matches!(item, Item::Dir { .. }) {
                self.kill_dir(&mut st, &c);
            }
            self.discard(item);
        }
        let mut stuck: Vec<CPath> = st
            .dirs
            .iter()
            .filter(|(_, d)| !d.waiting.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        // Parents first: dropping one drops what waits below it, which needs no second report.
        stuck
            .sort_by_key(|k| k.iter().filter(|&&b| b == b'/').count() + usize::from(!k.is_empty()));
        for k in stuck {
            let d = st.dirs.get(&k).expect("listed");
            let n = d.waiting.len();
            if n == 0 {
                continue;
            }
            let (shown, msg) = match &d.plain {
                Some(p) if !d.diriv_seen => {
                    let what = if d.diriv_bad { "unusable" } else { "missing" };
                    (
                        self.dest.show(p),
                        format!("gocryptfs.diriv of backup directory {} is {what}: the names of its {n} entries cannot be decrypted (forward-mode directory IVs are random)", show_cpath(&k).display()),
                    )
                }
                _ => (
                    show_cpath(&k),
                    format!(
                        "the directory could not be restored, so its {n} entries were not either"
                    ),
                ),
            };
            self.integrity(shown, msg);
            self.kill_dir(&mut st, &k);
        }

        let layout = st.layout;
        if layout == Layout::Reverse && self.codec.is_some() && self.format.dir_iv {
            let missing: Vec<CPath> = st
                .dirs
                .iter()
                .filter(|(_, d)| d.plain.is_some() && !d.diriv_seen && !d.diriv_bad)
                .map(|(k, _)| k.clone())
                .collect();
            for k in missing {
                self.warn(
                    show_cpath(&k),
                    "gocryptfs.diriv is missing; recomputed from the path (reverse-made backup)",
                );
            }
        }

        // Path-derived values that did not match their path, judged before the hard links
        // are made: a file taken back out must not live on under its other names.
        let links = std::mem::take(&mut st.links);
        let mut link_paths: HashMap<CPath, Vec<CPath>> = HashMap::new();
        for (c, target) in &links {
            link_paths
                .entry(target.clone())
                .or_default()
                .push(c.clone());
        }
        let suspects = std::mem::take(&mut st.suspects);
        if layout == Layout::Reverse {
            for s in suspects {
                self.judge(&mut st, s, &link_paths);
            }
        }
        self.make_links(&mut st, &links);

        let missing = match &self.opts.filter {
            Some(f) if !st.filter_hit => Some(PathBuf::from(OsStr::from_bytes(&f.join(&b'/')))),
            _ => None,
        };

        // Directory metadata, deepest first: a read-only parent must not stop its children.
        let mut dirs: Vec<(PathBuf, Meta)> = st
            .dirs
            .iter()
            .filter_map(|(k, d)| {
                let (p, m) = (d.plain.as_ref()?, d.meta.as_ref()?);
                if k.is_empty() && (self.opts.filter.is_some() || !self.dest.was_empty) {
                    // DEST itself keeps its own metadata unless the whole tree went into an empty DEST.
                    return None;
                }
                Some((p.clone(), m.clone()))
            })
            .collect();
        drop(st);
        self.dest.close()?;
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (p, m) in &dirs {
            if m.mode & 0o170000 != S_IFDIR {
                continue;
            }
            if let Err(e) = self.dest.finish_dir(p, m) {
                self.error(self.dest.show(p), e.to_string());
            }
        }
        if let Some(p) = missing {
            return Err(Error::invalid(p, "no such path in the backup"));
        }
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Ok(Summary {
            dirs: get(&c.dirs),
            files: get(&c.files),
            symlinks: get(&c.symlinks),
            specials: get(&c.specials),
            hard_links: get(&c.hard_links),
            bytes: get(&c.bytes),
            warnings: get(&c.warnings),
            errors: get(&c.errors),
            integrity_errors: get(&c.integrity_errors),
            layout,
            aead: self.dec.aead(),
        })
    }

    /// Make the hard links, now that every target is in place. A link only ever points to
    /// what this run restored from the backup: never to a file that was in DEST before
    /// (--force), to a name the backup does not have, or to a directory. When the
    /// target's own name was taken in DEST, its content (kept in staging) goes to the first
    /// of its links instead, so it is not lost.
    fn make_links(&self, st: &mut State, links: &[(CPath, CPath)]) {
        // Targets whose content went to one of their links: later links point there.
        let mut moved: HashMap<&[u8], PathBuf> = HashMap::new();
        for (c, target) in links {
            let pp = match self.resolve(st, c) {
                Res::Ready(pp) => pp,
                Res::Drop => continue,
                Res::Fail { msg, .. } => {
                    self.integrity(show_cpath(c), format!("hard link: {msg}"));
                    continue;
                }
                _ => {
                    self.error(show_cpath(c), "hard link whose name cannot be restored");
                    continue;
                }
            };
            if self.filter_relation(&pp) != Some(true) {
                continue;
            }
            st.filter_hit = true;
            let tp = match self.resolve(st, target) {
                Res::Ready(tp) if self.filter_relation(&tp) == Some(true) => Some(tp),
                Res::Ready(tp) => {
                    // Its content was left out with the target: tar stores it only once.
                    self.error(
                        self.dest.show(&pp),
                        format!(
                            "hard link to {}, which is outside --path: restore a path that holds both names",
                            tp.display()
                        ),
                    );
                    continue;
                }
                // Its name could not be restored; its content may still be in staging.
                _ => None,
            };
            let shown_target = match &tp {
                Some(tp) => tp.clone(),
                None => show_cpath(target),
            };
            let (parent, name) = split(&pp);
            let made = if let Some(tp) = tp
                .as_ref()
                .filter(|_| st.placed.contains(&self.key(target)))
            {
                self.dest.hard_link(tp, parent, name)
            } else if let Some(first) = moved.get(target.as_slice()) {
                self.dest.hard_link(first, parent, name)
            } else if let Some(id) = st.unplaced.remove(target) {
                let r = self.dest.place(id, parent, name);
                if r.is_ok() {
                    moved.insert(target, pp.clone());
                }
                r
            } else {
                let why = if tp.is_none() {
                    "could not be restored"
                } else if st.dirs.get(target).is_some_and(|d| d.plain.is_some()) {
                    "is a directory"
                } else {
                    "was not restored from this backup (it is not in it, or it failed)"
                };
                self.error(
                    self.dest.show(&pp),
                    format!("hard link to {}, which {why}", shown_target.display()),
                );
                continue;
            };
            match made {
                Ok(()) => {
                    inc(&self.counters.hard_links, 1);
                    st.placed.insert(self.key(c));
                }
                Err(e) => self.error(
                    self.dest.show(&pp),
                    format!("cannot make hard link to {}: {e}", shown_target.display()),
                ),
            }
        }
    }

    /// In a reverse-made tree, a stored IV that does not match its path means the entry
    /// was moved, swapped or tampered with. Files and symlinks already placed are taken
    /// back out (or renamed to `.corrupt`).
    fn judge(&self, st: &mut State, s: Suspect, link_paths: &HashMap<CPath, Vec<CPath>>) {
        let (cpath, msg, counter, kind) = match s {
            Suspect::DirIv(d) => {
                self.integrity(
                    show_cpath(&join_cpath(&d, b"gocryptfs.diriv")),
                    "does not match its directory's path (tampered); names were decrypted with the IV derived from the path",
                );
                return;
            }
            Suspect::File { cpath, file_id } => {
                // Hard links share the IVs of one of their names (FORMAT.md §10).
                let proven = link_paths.get(&cpath).is_some_and(|others| {
                    others
                        .iter()
                        .any(|o| pathiv::derive(o, Purpose::FileId) == file_id)
                });
                if proven {
                    return;
                }
                (
                    cpath,
                    "its file ID belongs to another path: the file was moved or swapped with another",
                    &self.counters.files,
                    Placed::File,
                )
            }
            Suspect::Holes(cpath) => (
                cpath,
                "it has all-zero blocks, which a reverse-made backup never contains (tampered)",
                &self.counters.files,
                Placed::File,
            ),
            Suspect::Symlink(cpath) => (
                cpath,
                "its target's nonce belongs to another path: the symlink was moved or swapped",
                &self.counters.symlinks,
                Placed::Symlink,
            ),
        };
        // Neither it nor its content under another name may be used by a hard link.
        st.placed.remove(&self.key(&cpath));
        if let Some(id) = st.unplaced.remove(&cpath) {
            self.dest.discard(id);
        }
        let Res::Ready(p) = self.resolve(st, &cpath) else {
            return;
        };
        // Only the suspect entry itself is taken back, once: not another entry the
        // backup holds under the same path (a tar may hold a path twice), and not twice.
        let was_placed = st.placed_suspects.get(&cpath) == Some(&kind);
        if was_placed {
            st.placed_suspects.remove(&cpath);
        }
        if !was_placed {
            // Not restored (filtered out, failed already, or already taken back).
            if self.filter_relation(&p) == Some(true) {
                self.integrity(
                    self.dest.show(&p),
                    format!("{msg} (backup file {})", show_cpath(&cpath).display()),
                );
            }
            return;
        }
        let keep = self.opts.keep_corrupt.then(|| {
            let mut n = p.file_name().unwrap_or_default().to_os_string();
            n.push(".corrupt");
            n
        });
        let outcome = match self.dest.retract(&p, keep.as_deref()) {
            Ok(()) if keep.is_some() => "kept with a .corrupt suffix",
            Ok(()) => "removed",
            Err(_) => "could not be removed",
        };
        self.integrity(
            self.dest.show(&p),
            format!(
                "{msg} (backup file {}); {outcome}",
                show_cpath(&cpath).display()
            ),
        );
        // Counted as restored before; it is not.
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether `gocryptfs.longname.<hash>` is the hashed form of the full encrypted name.
pub(crate) fn long_name_matches(codec: &NameCodec, comp: &[u8], cname: &[u8]) -> bool {
    let Some((hash, false)) = parse_long_name(comp) else {
        return false;
    };
    let Ok(cname) = std::str::from_utf8(cname) else {
        return false;
    };
    codec
        .long_name(cname)
        .as_bytes()
        .get(LONGNAME_PREFIX.len()..)
        == Some(hash)
}

fn default_dir_meta() -> Meta {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let t = crate::view::Time {
        sec: now.as_secs() as i64,
        nsec: now.subsec_nanos(),
    };
    Meta {
        mode: S_IFDIR | 0o700,
        uid: u32::MAX,
        gid: u32::MAX,
        size: 0,
        atime: t,
        mtime: t,
        dev: 0,
        ino: 0,
        nlink: 1,
        rdev: 0,
    }
}

/// The writer of a staged file, remembering whether an error came from it (DEST) rather
/// than from the reader (the backup).
struct WriteSide<W> {
    inner: W,
    failed: bool,
}

impl<W: std::io::Write> std::io::Write for WriteSide<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}
