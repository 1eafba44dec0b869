//! The restore engine: ciphertext entries in, plaintext tree out, in whatever order the
//! entries arrive.
//!
//! A directory source can hand entries over in a convenient order (`gocryptfs.diriv` and
//! `.name` files before the entries that need them), but a tar stream cannot: in a tar of
//! a real reverse mount a directory's `gocryptfs.diriv` and its `.name` files come *after*
//! its entries. So an entry whose plaintext name cannot be worked out yet waits, while
//! its content is already decrypted and authenticated into the staging area; it is moved
//! into place as soon as the missing piece arrives. Only metadata waits in memory.
//!
//! The format's rules are not here but in the reader ([`crate::backup`]): names come
//! from [`crate::backup::names::NameRules`], and the layout and integrity judgement from
//! [`crate::backup::verdict`]. Reverse-made trees derive every IV from the entry's path;
//! once the tree is known to be one, the engine recomputes dir IVs instead of waiting
//! for `gocryptfs.diriv`, and judges every stored value against its path.
//!
//! The engine is split along its concerns: this module (the state and the entry points
//! sources call), `names` (where an entry goes), `place` (putting entries into the
//! [`Writer`], waiting, the metadata policy), `links` (hard links, and the judgement
//! of suspect entries once the layout is final), `finish` (the end of a run),
//! [`report`] (messages, counts).
//! `restore` runs it with [`super::writer::Dest`], `verify` with
//! [`super::discard::Discard`]: one verdict for one backup.

mod finish;
mod links;
mod names;
mod place;
pub mod report;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::backup::names::{name_file_of, NameRules};
use crate::backup::verdict::{self, Layout, LayoutVerdict};
use crate::format::content::FileReport;
use crate::format::names::DIRIV_NAME;
use crate::format::Cryptor;
use crate::progress::Progress;
use crate::view::{Meta, S_IFDIR};

use super::writer::{StageId, Writer};
use names::Res;
use report::{At, Reporter, Style};

pub use crate::cpath::{join as join_cpath, split as split_cpath};
pub use report::show_cpath;

/// Ciphertext path: `/`-separated components as stored in the backup, `""` for the root.
pub type CPath = Vec<u8>;

/// Restore-wide settings the engine needs.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    pub keep_corrupt: bool,
    /// Only restore this plaintext path (components) and what is below it.
    pub filter: Option<Vec<Vec<u8>>>,
    /// Treat the tree as reverse-made from the start.
    pub expect_reverse: bool,
    /// Keep setuid and setgid bits of files (else they are dropped and counted).
    pub keep_setuid: bool,
    /// Create device nodes (else they are skipped and counted).
    pub devices: bool,
    /// Remember every authenticated file whose ID is its own path's, for the rule on
    /// split hard links (a stream cannot be looked at again; a directory can).
    pub record_homes: bool,
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
        /// Its nonce does not match its path (see `Suspect`).
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

/// A file whose content has been decrypted into the staging area.
pub struct Staged {
    id: StageId,
    report: FileReport,
    /// One of its path-derived values did not match (see `Suspect`).
    suspect: bool,
    /// Its setuid or setgid bit was dropped (counted once it is placed).
    setuid_dropped: bool,
}

/// A path-derived value that did not match: an error if the tree is reverse-made.
enum Suspect {
    DirIv(CPath),
    File {
        cpath: CPath,
        file_id: [u8; 16],
        fingerprint: [u8; 32],
    },
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

/// A file whose ID is its own path's: a possible owner of split hard links' IDs.
struct Home {
    cpath: CPath,
    fingerprint: [u8; 32],
}

struct State {
    verdict: LayoutVerdict,
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
    /// Authenticated files not placed under their own name (it exists in DEST, or it
    /// lies outside `--path`), kept in staging until the end: their hard links may still
    /// give the content a name.
    unplaced: HashMap<CPath, StageId>,
    suspects: Vec<Suspect>,
    /// By file ID (see [`EngineOptions::record_homes`] and [`Engine::add_home`]).
    homes: HashMap<[u8; 16], Home>,
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

pub struct Engine<'a, W: Writer> {
    keys: Cryptor,
    w: &'a W,
    rep: Reporter<'a>,
    opts: EngineOptions,
    st: Mutex<State>,
    /// Keys of [`State::placed`].
    hasher: RandomState,
}

impl<'a, W: Writer> Engine<'a, W> {
    pub fn new(
        keys: Cryptor,
        w: &'a W,
        progress: &'a dyn Progress,
        style: Style,
        opts: EngineOptions,
    ) -> Self {
        let verdict = LayoutVerdict::new(opts.expect_reverse, keys.content.aead());
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
            keys,
            w,
            rep: Reporter {
                progress,
                style,
                counters: Default::default(),
            },
            opts,
            st: Mutex::new(State {
                verdict,
                dirs,
                long_names: HashMap::new(),
                bad_long_names: HashMap::new(),
                name_waiters: HashMap::new(),
                links: Vec::new(),
                placed: HashSet::new(),
                unplaced: HashMap::new(),
                suspects: Vec::new(),
                homes: HashMap::new(),
                ready: Vec::new(),
                draining: false,
                placed_suspects: HashMap::new(),
                filter_hit: false,
            }),
            hasher: RandomState::new(),
        }
    }

    pub fn keys(&self) -> &Cryptor {
        &self.keys
    }

    /// Whether the whole backup is restored (no `--path`): a count of the backup is
    /// then the size of the run.
    pub fn restores_everything(&self) -> bool {
        self.opts.filter.is_none()
    }

    /// The name rules of this backup.
    pub fn rules(&self) -> NameRules<'_> {
        NameRules::new(&self.keys)
    }

    fn key(&self, cpath: &[u8]) -> u64 {
        self.hasher.hash_one(cpath)
    }

    pub fn layout(&self) -> Layout {
        self.lock().verdict.layout()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st
            .lock()
            .expect("no panics while the restore state is held")
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

    // ------------------------------------------------------------------- messages

    /// Report a problem with the backup entry `cpath`, naming its plaintext path too if
    /// it is known yet.
    pub fn entry_problem(&self, cpath: &[u8], kind: Severity, msg: impl Into<String>) {
        let plain = match self.resolve(&self.lock(), cpath) {
            Res::Ready(p) => Some(p),
            _ => None,
        };
        let at = match &plain {
            Some(p) => At::Entry { cpath, plain: p },
            None => At::Backup(cpath),
        };
        match kind {
            Severity::Warning => self.rep.warn(at, msg),
            Severity::Error => self.rep.error(at, msg),
            Severity::Integrity => self.rep.integrity(at, msg),
        }
    }

    /// An error with the backup entry `cpath` that keeps it out of DEST.
    pub fn entry_not_restored(&self, cpath: &[u8], msg: impl Into<String>) {
        let plain = match self.resolve(&self.lock(), cpath) {
            Res::Ready(p) => Some(p),
            _ => None,
        };
        let at = match &plain {
            Some(p) => At::Entry { cpath, plain: p },
            None => At::Backup(cpath),
        };
        self.rep.error_outcome(at, msg, "not restored");
    }

    /// A plaintext directory for a message: its DEST path (restore) or its plaintext path.
    pub(super) fn show_dir(&self, p: &Path) -> String {
        let (path, _) = self.rep.style.render(At::Plain(p), String::new());
        path.display().to_string()
    }

    /// Report a problem of the source as a whole (the tar stream).
    pub fn source_error(&self, what: &Path, msg: impl Into<String>) {
        self.rep.error(At::Other(what), msg);
    }

    // ---------------------------------------------------------------- evidence

    /// Evidence about the layout: a stored value and the one its path would give.
    /// Returns whether `suspect` was recorded (to be judged once the layout is final).
    fn observe(&self, st: &mut State, matched: bool, suspect: Suspect) -> bool {
        if st.verdict.content_cipher(self.keys.content.aead()) {
            // Detected on the first file: reverse mode always uses AES-SIV.
            self.retry_all(st);
        }
        let o = st.verdict.observe(matched);
        if o.decided {
            self.retry_all(st);
        }
        if o.suspect {
            st.suspects.push(suspect);
        }
        o.suspect
    }

    // ------------------------------------------------------------------- entries

    /// Decrypt a file's content into the staging area. Runs without the lock, so
    /// several files can be decrypted at once. Problems are reported here; `None` means
    /// nothing is staged.
    pub fn stage_file(
        &self,
        cpath: &[u8],
        meta: &Meta,
        src: &mut impl std::io::Read,
    ) -> Option<Staged> {
        let mut meta = meta.clone();
        let setuid_dropped = !self.opts.keep_setuid && meta.mode & 0o6000 != 0;
        if setuid_dropped {
            meta.mode &= !0o6000;
        }
        let (id, f) = match self.w.stage_file() {
            Ok(x) => x,
            Err(e) => {
                self.entry_problem(cpath, Severity::Error, e.to_string());
                return None;
            }
        };
        let mut w = WriteSide {
            inner: f,
            failed: false,
        };
        let r = self
            .keys
            .content
            .decrypt_file(src, &mut w, self.allow_holes());
        let failed = w.failed;
        let r = r.map_err(|e| (e, failed)).and_then(|report| {
            let meta = report.is_ok().then_some(&meta);
            self.w
                .finish_file(id, w.inner, meta)
                .map(|()| report)
                .map_err(|e| (std::io::Error::other(e.to_string()), true))
        });
        match r {
            Ok(report) => Some(Staged {
                id,
                report,
                suspect: false,
                setuid_dropped,
            }),
            Err((e, written)) => {
                self.w.discard(id);
                // A full or failing DEST is the user's to fix; a read error is the
                // backup's.
                if written {
                    self.entry_not_restored(
                        cpath,
                        format!("cannot write the plaintext: {}", crate::error::in_words(&e)),
                    );
                } else {
                    self.entry_problem(
                        cpath,
                        Severity::Error,
                        format!("cannot read: {}", crate::error::in_words(&e)),
                    );
                }
                None
            }
        }
    }

    /// Throw away a staged file that will not be handed over.
    pub fn drop_staged(&self, staged: Staged) {
        self.w.discard(staged.id);
    }

    /// Hand over one entry (see [`Item`]).
    pub fn add(&self, cpath: CPath, mut item: Item) {
        let mut st = self.lock();
        match &mut item {
            Item::File { staged, .. } => {
                if let Some(file_id) = staged.report.file_id {
                    let matched = file_id == verdict::reverse_file_id(&cpath);
                    let fingerprint = staged.report.fingerprint.unwrap_or_default();
                    if matched && staged.report.is_ok() && self.opts.record_homes {
                        st.homes.entry(file_id).or_insert_with(|| Home {
                            cpath: cpath.clone(),
                            fingerprint,
                        });
                    }
                    // A file that failed anyway is reported as such; no second verdict.
                    if matched || staged.report.is_ok() {
                        let suspect = Suspect::File {
                            cpath: cpath.clone(),
                            file_id,
                            fingerprint,
                        };
                        staged.suspect |= self.observe(&mut st, matched, suspect);
                    }
                }
                if staged.report.holes > 0 && staged.report.is_ok() {
                    st.suspects.push(Suspect::Holes(cpath.clone()));
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

    /// A file the engine does not restore, seen only for the rule on split hard links
    /// (outside `--path`, or found by a second look at a directory): if its ID is its own
    /// path's, it may be the owner of a split hard link's ID.
    pub fn add_home(&self, cpath: CPath, file_id: [u8; 16], fingerprint: [u8; 32]) {
        if file_id != verdict::reverse_file_id(&cpath) {
            return;
        }
        let mut st = self.lock();
        st.homes
            .entry(file_id)
            .or_insert(Home { cpath, fingerprint });
    }

    /// The file IDs whose owner the rule on split hard links still needs to see: those
    /// of suspect files, when the tree is reverse-made, except where another name of the
    /// same file (a hard link the copy kept) owns the ID, as is common: a walk may meet
    /// any name of a file first.
    pub fn missing_homes(&self) -> HashSet<[u8; 16]> {
        let st = self.lock();
        if st.verdict.layout() != Layout::Reverse {
            return HashSet::new();
        }
        let mut linked: HashMap<&[u8], Vec<&[u8]>> = HashMap::new();
        for (name, target) in &st.links {
            linked.entry(target).or_default().push(name);
        }
        st.suspects
            .iter()
            .filter_map(|s| match s {
                Suspect::File { cpath, file_id, .. } if !st.homes.contains_key(file_id) => {
                    let owned = linked.get(cpath.as_slice()).is_some_and(|names| {
                        names
                            .iter()
                            .any(|n| verdict::reverse_file_id(n) == *file_id)
                    });
                    (!owned).then_some(*file_id)
                }
                _ => None,
            })
            .collect()
    }

    /// A symlink: its target is decrypted here (it is small).
    pub fn add_symlink(&self, cpath: CPath, meta: Meta, stored_target: &[u8]) {
        let target = match &self.keys.names {
            None => Ok((stored_target.to_vec(), false)),
            Some(codec) => match codec.b64_decode(stored_target) {
                None => Err("symlink target is not valid base64".to_string()),
                Some(blob) => match self.keys.content.open_symlink(&blob) {
                    None => Err("symlink target does not authenticate".to_string()),
                    Some(t) => {
                        let matched = verdict::symlink_nonce_matches(&cpath, &blob);
                        let mut st = self.lock();
                        let suspect = Suspect::Symlink(cpath.clone());
                        Ok((t, self.observe(&mut st, matched, suspect)))
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
            Ok(_) => self.entry_problem(
                &cpath,
                Severity::Integrity,
                "symlink target is empty or contains NUL",
            ),
            Err(msg) => self.entry_problem(&cpath, Severity::Integrity, msg),
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
        let matched = iv == verdict::reverse_dir_iv(&dir);
        let d = st.dirs.entry(dir.clone()).or_default();
        d.stored_iv = Some(iv);
        d.diriv_seen = true;
        self.observe(&mut st, matched, Suspect::DirIv(dir.clone()));
        self.retry_dir(&mut st, &dir);
    }

    /// A directory's `gocryptfs.diriv` is there but unusable (wrong size, not a file).
    pub fn bad_diriv(&self, dir: CPath, msg: impl Into<String>) {
        let at = join_cpath(&dir, DIRIV_NAME.as_bytes());
        self.rep.integrity(At::Backup(&at), msg);
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
        let problem = self.rules().check_name_file(comp, cname).err();
        let nf = name_file_of(&entry);
        let report_copy = || {
            self.rep.integrity(
                At::Backup(&nf),
                "the stream has another copy of this .name file that does not match the hashed name; that copy was ignored",
            )
        };
        let mut st = self.lock();
        match problem {
            Some(_) if st.long_names.contains_key(&entry) => report_copy(),
            Some(p) => {
                st.bad_long_names.insert(entry, p.to_string());
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

    /// Try to work out the plaintext path of `cpath` without changing anything:
    /// `Some(true)` when it is wanted (inside the `--path` filter or on the way to it),
    /// `Some(false)` when it is not (or cannot be restored), `None` when it is not known
    /// yet.
    pub fn wanted(&self, cpath: &[u8]) -> Option<bool> {
        let st = self.lock();
        match self.resolve(&st, cpath) {
            Res::Ready(p) => Some(self.filter_relation(&p).is_some()),
            Res::Drop => Some(false),
            _ => None,
        }
    }

    /// Stop after a signal instead of `finish`: what is placed is complete; whatever
    /// still waits in the staging area goes with it.
    pub fn abort(&self) -> crate::Error {
        let _ = self.w.close();
        crate::Error::RestoreInterrupted
    }
}

/// The number of components of a cpath (0 for the root).
fn depth(cpath: &[u8]) -> usize {
    if cpath.is_empty() {
        0
    } else {
        1 + cpath.iter().filter(|&&b| b == b'/').count()
    }
}

/// How bad a problem with an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Left out on purpose (a socket, a temporary file); exit code unchanged.
    Warning,
    /// Could not be restored (I/O, already exists); exit code 2.
    Error,
    /// Failed authentication or the path checks; exit code 26.
    Integrity,
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
struct WriteSide<F> {
    inner: F,
    failed: bool,
}

impl<F: std::io::Write> std::io::Write for WriteSide<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner
            .write_all(buf)
            .inspect_err(|_| self.failed = true)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::config::Format;
    use crate::format::keys::MasterKey;
    use crate::progress::NoProgress;
    use crate::restore::discard::Discard;
    use crate::view::Time;

    fn plaintext_names() -> Cryptor {
        let f = Format {
            plaintext_names: true,
            dir_iv: false,
            long_names: false,
            raw64: false,
            ..Format::DEFAULT_REVERSE
        };
        Cryptor::new(&MasterKey::from_bytes([1; 32]), f).unwrap()
    }

    fn dir() -> Item {
        Item::Dir {
            meta: Meta {
                mode: S_IFDIR | 0o755,
                uid: 0,
                gid: 0,
                size: 0,
                atime: Time { sec: 0, nsec: 0 },
                mtime: Time { sec: 0, nsec: 0 },
                dev: 0,
                ino: 0,
                nlink: 1,
                rdev: 0,
            },
        }
    }

    fn engine(w: &Discard) -> Engine<'_, Discard> {
        let style = Style::Verify {
            backup: PathBuf::from("b"),
        };
        Engine::new(
            plaintext_names(),
            w,
            &NoProgress,
            style,
            EngineOptions::default(),
        )
    }

    /// A stream that names `a/b` and `a/b/c` but not `a`: `a` is made at the end, and
    /// `a/b`, placed by that, is not made a second time (it was, depending on the
    /// order of a hash map: found by the fuzz oracle comparing restore and verify).
    #[test]
    fn implied_directories_are_made_once() {
        let w = Discard::new();
        let e = engine(&w);
        e.add(b"a/b/c".to_vec(), dir());
        e.add(b"a/b".to_vec(), dir());
        let s = e.finish().unwrap();
        // a, a/b, a/b/c, and the root (counted as every summary counts it).
        assert_eq!((s.dirs, s.warnings, s.errors), (4, 1, 0));
    }

    fn file_meta() -> Meta {
        let Item::Dir { mut meta } = dir() else {
            unreachable!()
        };
        meta.mode = crate::view::S_IFREG | 0o644;
        meta
    }

    /// Stage `data` encrypted with the IVs of `iv_path` as the file `cpath`.
    fn file(e: &Engine<'_, Discard>, cpath: &[u8], iv_path: &[u8], data: &[u8]) {
        let mut ct = Vec::new();
        crate::format::content::FileEncryptor::new(&e.keys.content)
            .encrypt(
                &crate::format::content::FileIvs::for_path(iv_path),
                &mut &data[..],
                &mut ct,
            )
            .unwrap();
        let meta = file_meta();
        let staged = e.stage_file(cpath, &meta, &mut &ct[..]).unwrap();
        e.add(cpath.to_vec(), Item::File { meta, staged });
    }

    /// Which files need the rule on split hard links: not one whose ID another of its
    /// names owns (a walk may meet any name first), but one whose ID belongs to a path
    /// the walk did not see as a name of it. With that path's file (identical
    /// ciphertext) found, it is a split copy; without, it was moved.
    #[test]
    fn foreign_file_ids_and_their_owners() {
        let ids = |owner_found: bool| {
            let w = Discard::new();
            let e = engine(&w);
            file(&e, b"own", b"own", b"evidence: reverse-made");
            file(&e, b"linked", b"other-name", b"hard link met first");
            e.add(
                b"other-name".to_vec(),
                Item::Link {
                    target: b"linked".to_vec(),
                },
            );
            file(&e, b"split", b"owner", b"split copy");
            let missing = e.missing_homes();
            assert_eq!(missing, HashSet::from([verdict::reverse_file_id(b"owner")]));
            if owner_found {
                let mut ct = Vec::new();
                crate::format::content::FileEncryptor::new(&e.keys.content)
                    .encrypt(
                        &crate::format::content::FileIvs::for_path(b"owner"),
                        &mut &b"split copy"[..],
                        &mut ct,
                    )
                    .unwrap();
                let (id, fp) = crate::format::content::fingerprint(
                    &mut &ct[..],
                    crate::format::content::Aead::Siv,
                )
                .unwrap()
                .unwrap();
                e.add_home(b"owner".to_vec(), id, fp);
                assert!(e.missing_homes().is_empty());
            }
            e.finish().unwrap()
        };
        let s = ids(false);
        assert_eq!(
            (s.layout, s.integrity_errors, s.rejoined),
            (Layout::Reverse, 1, 0)
        );
        let s = ids(true);
        assert_eq!(
            (s.integrity_errors, s.rejoined, s.files, s.hard_links),
            (0, 1, 3, 1)
        );
    }

    #[test]
    fn depths() {
        assert_eq!(depth(b""), 0);
        assert_eq!(depth(b"a"), 1);
        assert_eq!(depth(b"a/b/c"), 3);
    }
}
