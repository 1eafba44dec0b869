//! Export into a destination that holds a tree (a directory, an object store): plan,
//! then apply.
//!
//! For every directory, what the destination holds is listed ahead of the walk, beside
//! the source listing ([`super::walk`]), and each entry of the view is paired with what
//! holds its name: the plan ([`super::plan::decide`]). The walk then applies the plan in
//! canonical order, handing the writing of each entry to the thread pool:
//! * a directory is made (or made writable) before anything inside it, and gets its
//!   final mode and times as soon as everything inside it is done (post-order, so its
//!   handle is released early and a read-only directory can still be filled);
//! * the first name of a hard-linked file in walk order holds the data; the other names
//!   are linked to it once it is placed;
//! * a file that changed while it was read is read and written once more;
//! * names that are no longer in the view are removed only at the end, after
//!   everything new is durable, so a crash never loses both the old and the new copy
//!   of a renamed file.
//!
//! `--dry-run` makes the same plan and reports it without changing anything.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::encrypt::{self, Encryptors};
use super::plan::{self, Action, Change, Decision, Delta, Existing};
use super::source;
use super::walk::{Ahead, Prefetch, Window};
use super::{add, Summary, Tally};
use crate::cpath;
use crate::error::{Error, Result};
use crate::format::content::cipher_size;
use crate::fs::{Dir, Identity};
use crate::progress::{Problem, Progress};
use crate::sink::TreeSink;
use crate::view::{Entry, Listing, Payload, View};

#[derive(Clone, Copy, Debug)]
pub struct TreeOptions {
    /// Decide and report, but change nothing.
    pub dry_run: bool,
    /// Re-encrypt files whose size and mtime match and compare the bytes too.
    pub checksum: bool,
    /// Remove destination entries that are no longer in the view.
    pub delete: bool,
    /// Refuse to delete more than this many entries (nothing is deleted then).
    pub max_delete: Option<u64>,
    /// Owners count in the plan (they can be set: running as root; or they are stored,
    /// as in S3 metadata).
    pub owners: bool,
    /// Make what was written durable (syncfs) before deleting and before returning.
    pub sync: bool,
    /// Entries handed to the pool and not yet written, at most.
    pub window: usize,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            dry_run: false,
            checksum: false,
            delete: true,
            max_delete: None,
            owners: false,
            sync: true,
            window: 1024,
        }
    }
}

/// What is known of one directory before the walk reaches it.
struct DirWork<D> {
    src: Option<Arc<Dir>>,
    listing: Listing,
    /// The destination directory, when it existed before the run.
    dest: Option<Arc<D>>,
    /// What the destination holds under each entry's name, aligned with the listing.
    existing: Vec<Option<Existing>>,
    /// Names the destination holds that the view does not (when the listing is whole).
    stale: Vec<Existing>,
    /// Leftovers of an interrupted run.
    temps: Vec<Existing>,
    problems: Vec<Problem>,
}

/// A directory being written: finished when its last pending piece of work is done.
struct Node<D> {
    entry: Entry,
    src: Option<Arc<Dir>>,
    dest: Option<Arc<D>>,
    /// Work inside it not yet done, plus one while the walk is still inside it.
    pending: AtomicUsize,
    parent: Option<Arc<Node<D>>>,
}

/// A name that is no longer in the view, removed at the end.
struct Stale {
    parent: Entry,
    seen: Existing,
}

/// A hard-link name waiting for its group's first name to be placed.
struct Waiting<D> {
    node: Arc<Node<D>>,
    e: Entry,
    seen: Option<Existing>,
}

enum Primary<D> {
    /// Not placed yet: the other names wait here.
    Pending(Vec<Waiting<D>>),
    /// Placed; its identity in the destination, when known (a dry run does not know
    /// it for a file it would write).
    Placed(Option<Identity>),
    Failed,
}

/// Hard-linked files met so far, by (device, inode).
type Groups<D> = HashMap<(u64, u64), Group<D>>;

/// The names of one hard-linked file met so far.
struct Group<D> {
    /// View path of the first name, which holds the data.
    primary: Vec<u8>,
    /// Names still to come; the group is forgotten when none are.
    left: u64,
    state: Primary<D>,
}

struct Tree<'a, S: TreeSink> {
    view: &'a View,
    sink: &'a S,
    opts: TreeOptions,
    rules: plan::Rules,
    tally: Tally<'a>,
    encryptors: Encryptors<'a>,
    prefetch: Prefetch,
    window: Window,
    links: Mutex<Groups<S::Dir>>,
    stale: Mutex<Vec<Stale>>,
}

/// Export the view of the source tree `src` into `sink`. Per-entry problems are
/// reported and counted; only failures that make the whole run pointless (the
/// destination root) are returned as errors.
pub fn export_tree<S: TreeSink>(
    view: &View,
    src: Dir,
    sink: &S,
    opts: &TreeOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let root_meta =
        crate::view::Meta::from_stat(&src.stat().map_err(|e| Error::io(view.root(), e))?);
    let root = view.root_entry(root_meta);
    let dest = sink.open_root()?.map(Arc::new);
    let t = Tree {
        view,
        sink,
        opts: *opts,
        rules: plan::Rules {
            owners: opts.owners,
            checksum: opts.checksum,
            fidelity: sink.fidelity(),
        },
        tally: Tally::new(view, progress),
        encryptors: Encryptors::new(&view.cryptor().content),
        prefetch: Prefetch::default(),
        window: Window::new(opts.window),
        links: Mutex::new(HashMap::new()),
        stale: Mutex::new(Vec::new()),
    };
    let src = Arc::new(src);
    // The walk itself runs on the pool: where it waits (for a listing made ahead, for
    // room in the window) it does queued work instead of leaving a core idle.
    rayon::scope(|scope| {
        let work = t.dir_work(Some(src), &root, dest, None);
        t.walk(scope, root, work);
    });
    // Stopped by a signal: what was written is complete (temporary files of the files
    // in flight are gone), but deleting now would make a partial tree look finished.
    crate::cancel::check()?;
    // Whatever replaces a stale entry (a renamed file's new name) is on disk before the
    // stale entry goes, and everything is before success is reported.
    let sync = opts.sync && !opts.dry_run;
    if sync {
        sink.sync()?;
    }
    t.delete_stale();
    if sync {
        sink.sync()?;
    }
    crate::cancel::check()?;
    Ok(t.tally.counters.summary())
}

impl<'a, S: TreeSink> Tree<'a, S> {
    /// List the source directory `dir` and what the destination holds for it. Runs on
    /// the pool, ahead of the walk. `parent_src` is the parent's source handle (or the
    /// root's own handle for the root); `seen` is what the destination parent holds
    /// under the directory's name.
    fn dir_work(
        &self,
        src: Option<Arc<Dir>>,
        dir: &Entry,
        dest: Option<Arc<S::Dir>>,
        listing_problem: Option<Problem>,
    ) -> DirWork<S::Dir> {
        let mut problems: Vec<Problem> = listing_problem.into_iter().collect();
        let listing = match &src {
            Some(s) => source::listing(self.view, s, dir),
            None => Listing {
                complete: false,
                ..Listing::default()
            },
        };
        let mut work = DirWork {
            src,
            existing: vec![None; listing.entries.len()],
            listing,
            dest: None,
            stale: Vec::new(),
            temps: Vec::new(),
            problems: Vec::new(),
        };
        if let Some(d) = dest {
            match self.sink.list(&d) {
                Ok(held) => self.pair(&mut work, held),
                Err(e) => problems.push(Problem::error(&dir.source, e.to_string())),
            }
            work.dest = Some(d);
        }
        problems.append(&mut work.problems);
        work.problems = problems;
        work
    }

    /// Pair the view's entries with what the destination holds under their names.
    fn pair(&self, work: &mut DirWork<S::Dir>, held: Vec<Existing>) {
        let mut by_name: HashMap<Vec<u8>, Existing> = HashMap::with_capacity(held.len());
        for ex in held {
            if crate::format::names::is_temp_name(&ex.name) {
                work.temps.push(ex);
            } else {
                by_name.insert(ex.name.clone(), ex);
            }
        }
        for (e, slot) in work.listing.entries.iter().zip(work.existing.iter_mut()) {
            *slot = by_name.remove(cpath::name(&e.cpath));
        }
        if work.listing.complete {
            for name in &work.listing.protected {
                by_name.remove(name);
            }
            let mut stale: Vec<Existing> = by_name.into_values().collect();
            stale.sort_by(|a, b| a.name.cmp(&b.name));
            work.stale = stale;
        }
    }

    /// Work out a child directory ahead of the walk.
    fn queue_dir<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        parent: &Arc<Node<S::Dir>>,
        e: &Entry,
        seen: Option<&Existing>,
    ) -> Arc<Ahead<'s, DirWork<S::Dir>>>
    where
        'a: 's,
    {
        let psrc = parent.src.clone();
        let pdest = parent.dest.clone();
        let seen = seen.filter(|s| s.is_dir()).cloned();
        let e = e.clone();
        self.prefetch.queue(scope, move || {
            let mut problem = None;
            let src = psrc.and_then(|p| match source::open_dir(&p, &e) {
                Ok(d) => Some(Arc::new(d)),
                Err(p) => {
                    problem = Some(p);
                    None
                }
            });
            let dest = match (pdest, &seen) {
                (Some(pd), Some(s)) => match self.sink.open_dir(&pd, s) {
                    Ok(d) => Some(Arc::new(d)),
                    Err(err) => {
                        problem.get_or_insert(Problem::error(&e.source, err.to_string()));
                        None
                    }
                },
                _ => None,
            };
            self.dir_work(src, &e, dest, problem)
        })
    }

    /// The walk: in canonical order, on the calling thread.
    fn walk<'s>(&'s self, scope: &rayon::Scope<'s>, root: Entry, work: DirWork<S::Dir>)
    where
        'a: 's,
    {
        type Frame<'s, D> = (
            Arc<Node<D>>,
            std::iter::Zip<std::vec::IntoIter<Entry>, std::vec::IntoIter<Option<Existing>>>,
            std::collections::VecDeque<Arc<Ahead<'s, DirWork<D>>>>,
        );
        let mut stack: Vec<Frame<'s, S::Dir>> = Vec::new();
        if let Some(frame) = self.enter(scope, None, root, None, work) {
            stack.push(frame);
        }
        while let Some((node, items, children)) = stack.last_mut() {
            if crate::cancel::requested() {
                break;
            }
            let Some((e, seen)) = items.next() else {
                let (node, _, _) = stack.pop().expect("not empty");
                self.child_done(&node);
                continue;
            };
            if e.is_dir() {
                let ahead = children
                    .pop_front()
                    .expect("one queued per child directory");
                let node = Arc::clone(node);
                let work = ahead.take(&self.prefetch);
                if let Some(frame) = self.enter(scope, Some(&node), e, seen, work) {
                    stack.push(frame);
                }
            } else {
                let node = Arc::clone(node);
                if matches!(e.payload, Payload::File { .. }) && e.meta.nlink > 1 {
                    self.hard_link(scope, &node, e, seen);
                } else {
                    self.leaf(scope, &node, e, seen, None);
                }
            }
        }
        // Cut short by a stop request: release what the walk still holds.
        for (node, _, _) in stack.into_iter().rev() {
            self.child_done(&node);
        }
    }

    /// Make the directory `e` exist in the destination and start on its contents.
    #[allow(clippy::type_complexity)]
    fn enter<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        parent: Option<&Arc<Node<S::Dir>>>,
        e: Entry,
        seen: Option<Existing>,
        mut work: DirWork<S::Dir>,
    ) -> Option<(
        Arc<Node<S::Dir>>,
        std::iter::Zip<std::vec::IntoIter<Entry>, std::vec::IntoIter<Option<Existing>>>,
        std::collections::VecDeque<Arc<Ahead<'s, DirWork<S::Dir>>>>,
    )>
    where
        'a: 's,
    {
        for p in work.problems.drain(..) {
            self.tally.problem(p);
        }
        for p in work.listing.problems.drain(..) {
            self.tally.problem(p);
        }
        self.tally.kind(&e);
        // A destination that held nothing at all counts as made by this run, the same
        // whether it existed empty, was made by the caller, or is only planned.
        let fresh = parent.is_none()
            && work.existing.iter().all(Option::is_none)
            && work.stale.is_empty()
            && work.temps.is_empty();
        let dest = match self.make_dir(parent, &e, seen.as_ref(), work.dest.take(), fresh) {
            Ok(d) => d,
            Err(err) => {
                self.tally.error(&e, err.to_string());
                return None;
            }
        };
        if !self.opts.dry_run {
            if let Some(d) = &dest {
                for t in &work.temps {
                    // Left by an interrupted run (the lock rules out a running one).
                    let _ = self.sink.remove(d, t);
                }
            }
        }
        if !work.stale.is_empty() {
            let mut stale = self.stale.lock().expect("no panics while held");
            stale.extend(work.stale.drain(..).map(|seen| Stale {
                parent: e.clone(),
                seen,
            }));
        }
        if let Some(p) = parent {
            p.pending.fetch_add(1, Ordering::AcqRel);
        }
        let node = Arc::new(Node {
            entry: e,
            src: work.src,
            dest,
            pending: AtomicUsize::new(1),
            parent: parent.cloned(),
        });
        let mut children = std::collections::VecDeque::new();
        for (child, seen) in work.listing.entries.iter().zip(&work.existing) {
            if child.is_dir() {
                children.push_back(self.queue_dir(scope, &node, child, seen.as_ref()));
            }
        }
        let items = work.listing.entries.into_iter().zip(work.existing);
        Some((node, items, children))
    }

    /// The destination directory for `e`: the existing one, or a new one.
    fn make_dir(
        &self,
        parent: Option<&Arc<Node<S::Dir>>>,
        e: &Entry,
        seen: Option<&Existing>,
        existing: Option<Arc<S::Dir>>,
        fresh: bool,
    ) -> Result<Option<Arc<S::Dir>>> {
        if let Some(d) = existing {
            if !self.opts.dry_run {
                self.sink.prepare_dir(&d, e)?;
            }
            // Its final mode and times come once its contents are done.
            let action = if fresh {
                Action::Create
            } else {
                Action::Unchanged
            };
            self.tally.action(action, e, Delta::default());
            return Ok(Some(d));
        }
        let Some(parent) = parent else {
            // The root of a dry run into a destination that does not exist yet.
            self.tally.action(Action::Create, e, Delta::default());
            return Ok(None);
        };
        if seen.is_some_and(Existing::is_dir) {
            // It exists but could not be opened (reported with the listing): leave it
            // alone, and everything inside it.
            return Err(Error::invalid(
                &e.source,
                "its backup directory could not be opened; left as it is",
            ));
        }
        self.tally.action(Action::Create, e, Delta::default());
        if self.opts.dry_run {
            return Ok(None);
        }
        let Some(pdest) = &parent.dest else {
            return Ok(None);
        };
        if let Some(s) = seen {
            self.sink.remove(pdest, s)?;
        }
        Ok(Some(Arc::new(self.sink.make_dir(
            pdest,
            cpath::name(&e.cpath),
            e,
        )?)))
    }

    /// One piece of work inside `node` is done; finish every directory this completes.
    fn child_done(&self, node: &Arc<Node<S::Dir>>) {
        let mut n = Arc::clone(node);
        loop {
            if n.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
                return;
            }
            self.finish(&n);
            match &n.parent {
                Some(p) => n = Arc::clone(p),
                None => return,
            }
        }
    }

    fn finish(&self, n: &Node<S::Dir>) {
        if let (Some(d), false, false) = (&n.dest, self.opts.dry_run, crate::cancel::requested()) {
            if let Err(err) = self.sink.finish_dir(d, &n.entry) {
                self.tally.error(&n.entry, err.to_string());
            }
        }
        self.tally.done(&n.entry, 0);
    }

    /// Hand work inside `node` to the pool.
    fn spawn<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        node: &Arc<Node<S::Dir>>,
        job: impl FnOnce(&Node<S::Dir>) + Send + 's,
    ) where
        'a: 's,
    {
        node.pending.fetch_add(1, Ordering::AcqRel);
        self.window.acquire();
        let node = Arc::clone(node);
        scope.spawn(move |_| {
            if !crate::cancel::requested() {
                job(&node);
            }
            self.window.release();
            self.child_done(&node);
        });
    }

    /// A leaf of the view: decide, then write it on the pool. `key` is set for the first
    /// name of a hard-linked file, whose other names wait for its result.
    fn leaf<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        node: &Arc<Node<S::Dir>>,
        e: Entry,
        seen: Option<Existing>,
        key: Option<(u64, u64)>,
    ) where
        'a: 's,
    {
        let seen_id = seen.as_ref().map(Existing::identity);
        match plan::decide(seen.as_ref(), &e, &self.rules) {
            Decision::Unchanged => {
                self.tally.kind(&e);
                self.tally.action(Action::Unchanged, &e, Delta::default());
                self.tally.done(&e, 0);
                self.settle(key, Ok(seen_id));
            }
            Decision::Compare(d) => self.spawn(scope, node, move |n| {
                let seen = seen.as_ref().expect("compared with something");
                let r = self.compare(n, &e, seen, d);
                self.settle(key, r);
            }),
            Decision::Metadata(d) if self.opts.dry_run => {
                self.dry(&e, Action::Metadata, d);
                self.settle(key, Ok(seen_id));
            }
            Decision::Write(a, d) if self.opts.dry_run => {
                self.dry(&e, a, d);
                self.settle(key, Ok(None));
            }
            Decision::Metadata(d) => self.spawn(scope, node, move |n| {
                let seen = seen.as_ref().expect("metadata of something");
                let r = match self.sink.fix_metadata(self.dest(n), seen, &e, &d) {
                    Ok(()) => {
                        self.tally.kind(&e);
                        self.tally.action(Action::Metadata, &e, d);
                        self.tally.done(&e, 0);
                        Ok(seen_id)
                    }
                    Err(err) => {
                        self.tally.error(&e, err.to_string());
                        Err(())
                    }
                };
                self.settle(key, r);
            }),
            Decision::Write(a, d) => self.spawn(scope, node, move |n| {
                let r = self.write(n, e, seen.as_ref(), a, d).ok_or(());
                self.settle(key, r.map(Some));
            }),
        }
    }

    fn dry(&self, e: &Entry, a: Action, d: Delta) {
        self.tally.kind(e);
        self.tally.action(a, e, d);
        self.tally.done(e, 0);
    }

    fn dest<'n>(&self, n: &'n Node<S::Dir>) -> &'n S::Dir {
        n.dest
            .as_deref()
            .expect("only directories that exist get work outside a dry run")
    }

    /// Write a leaf; returns its identity in the destination when it was placed.
    fn write(
        &self,
        n: &Node<S::Dir>,
        e: Entry,
        seen: Option<&Existing>,
        action: Action,
        delta: Delta,
    ) -> Option<Identity> {
        let dest = self.dest(n);
        let name = cpath::name(&e.cpath).to_vec();
        if let Some(s) = seen.filter(|s| s.is_dir()) {
            if let Err(err) = self.sink.remove(dest, s) {
                self.tally.error(&e, err.to_string());
                return None;
            }
        }
        let mut e = e;
        let (written, read, id) = if let Payload::File { .. } = e.payload {
            match self.write_file(n, dest, &name, &mut e) {
                Ok(x) => x,
                Err(msg) => {
                    self.tally.error(&e, msg);
                    return None;
                }
            }
        } else {
            let bytes = e.payload.virtual_bytes().unwrap_or(b"");
            if let Err(err) = self.sink.write_other(dest, &name, &e, bytes) {
                self.tally.error(&e, err.to_string());
                return None;
            }
            (bytes.len() as u64, 0, None)
        };
        self.tally.kind(&e);
        add(&self.tally.counters.bytes_written, written);
        add(&self.tally.counters.bytes_read, read);
        self.tally.action(action, &e, delta);
        self.tally.done(&e, written);
        id
    }

    /// Write a regular file, reading it once more if it changed while it was read (`e`
    /// is then updated to what it is now). Returns the bytes written and read and the
    /// identity of what was placed, or what went wrong (the previous backup of it is
    /// then kept).
    fn write_file(
        &self,
        n: &Node<S::Dir>,
        dest: &S::Dir,
        name: &[u8],
        e: &mut Entry,
    ) -> std::result::Result<(u64, u64, Option<Identity>), String> {
        let Some(src) = n.src.as_deref() else {
            return Err("its directory could not be read".into());
        };
        for attempt in 0..2 {
            let last = attempt == 1;
            let mut file = match source::open_file(src, e) {
                Ok(f) => f,
                Err(_) if !last => {
                    *e = source::refresh(self.view, src, e).map_err(|p| p.msg)?;
                    continue;
                }
                Err(err) => return Err(format!("cannot open: {}", crate::error::in_words(&err))),
            };
            let plain = plain_size(e);
            let mut outcome = None;
            let placed = self.encryptors.with(|enc| {
                self.sink.write_file(dest, name, e, &mut |w| {
                    let o = encrypt::encrypt(enc, src, e, &mut file, w)?;
                    let keep = o.error.is_none() && (last || o.is_clean(plain));
                    outcome = Some(o);
                    Ok(keep)
                })
            });
            let o = outcome.unwrap_or_default();
            match placed {
                Err(err) => return Err(err.to_string()),
                Ok(Some(id)) => {
                    if !o.is_clean(plain) {
                        let msg = format!(
                            "changed as we read it, twice: {}",
                            o.problem(
                                plain,
                                "the backup holds what was read; the next run writes it again"
                            )
                        );
                        self.tally.error(e, msg);
                    }
                    return Ok((cipher_size(o.read), o.read, Some(id)));
                }
                Ok(None) if o.error.is_some() => {
                    return Err(o.problem(plain, "the previous backup of it is kept"));
                }
                Ok(None) => *e = source::refresh(self.view, src, e).map_err(|p| p.msg)?,
            }
        }
        unreachable!("the second attempt always returns")
    }

    /// `--checksum`: re-encrypt a file whose quick check matched and compare the bytes.
    fn compare(
        &self,
        n: &Node<S::Dir>,
        e: &Entry,
        seen: &Existing,
        quick: Delta,
    ) -> std::result::Result<Option<Identity>, ()> {
        let (Some(src), Some(dest)) = (n.src.as_deref(), n.dest.as_deref()) else {
            self.tally.error(e, "its directory could not be read");
            return Err(());
        };
        let same = match e.payload.virtual_bytes() {
            Some(bytes) => self
                .sink
                .same_bytes(dest, seen, &mut |w| {
                    w.write_all(bytes)
                        .map_err(|err| Error::io(cpath::as_path(&e.cpath), err))?;
                    Ok(true)
                })
                .map_err(|err| err.to_string()),
            None => source::open_file(src, e)
                .map_err(|err| format!("cannot open: {}", crate::error::in_words(&err)))
                .and_then(|mut file| {
                    self.encryptors.with(|enc| {
                        self.sink
                            .same_bytes(dest, seen, &mut |w| {
                                let o = encrypt::encrypt(enc, src, e, &mut file, w)?;
                                Ok(o.error.is_none())
                            })
                            .map_err(|err| err.to_string())
                    })
                }),
        };
        match same {
            Ok(true) => {
                self.tally.kind(e);
                self.tally.action(Action::Unchanged, e, quick);
                self.tally.done(e, 0);
                Ok(Some(seen.identity()))
            }
            Ok(false) => {
                let d = Delta {
                    content: true,
                    ..quick
                };
                if self.opts.dry_run {
                    self.dry(e, Action::Rewrite, d);
                    Ok(None)
                } else {
                    self.write(n, e.clone(), Some(seen), Action::Rewrite, d)
                        .map(Some)
                        .ok_or(())
                }
            }
            Err(msg) => {
                self.tally.error(e, msg);
                Err(())
            }
        }
    }

    /// A regular file with more than one link. The first of its names the walk meets
    /// holds the data; the others become links to it once it is placed.
    fn hard_link<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        node: &Arc<Node<S::Dir>>,
        e: Entry,
        seen: Option<Existing>,
    ) where
        'a: 's,
    {
        let key = (e.meta.dev, e.meta.ino);
        let mut links = self.links.lock().expect("no panics while held");
        let Some(group) = links.get_mut(&key) else {
            links.insert(
                key,
                Group {
                    primary: e.cpath.clone(),
                    left: e.meta.nlink - 1,
                    state: Primary::Pending(Vec::new()),
                },
            );
            drop(links);
            return self.leaf(scope, node, e, seen, Some(key));
        };
        group.left = group.left.saturating_sub(1);
        let primary = group.primary.clone();
        let result = match &mut group.state {
            Primary::Pending(waiting) => {
                node.pending.fetch_add(1, Ordering::AcqRel);
                waiting.push(Waiting {
                    node: Arc::clone(node),
                    e,
                    seen,
                });
                return;
            }
            Primary::Placed(id) => Ok(*id),
            Primary::Failed => Err(()),
        };
        if group.left == 0 {
            links.remove(&key);
        }
        drop(links);
        self.make_link(node, &e, seen.as_ref(), &primary, result);
    }

    /// The first name of a hard-linked file is placed (with its identity in the
    /// destination when known) or failed: make the names that waited for it.
    fn settle(&self, key: Option<(u64, u64)>, result: std::result::Result<Option<Identity>, ()>) {
        let Some(key) = key else { return };
        let (primary, waiting) = {
            let mut links = self.links.lock().expect("no panics while held");
            let Some(group) = links.get_mut(&key) else {
                return;
            };
            let state = match result {
                Ok(id) => Primary::Placed(id),
                Err(()) => Primary::Failed,
            };
            let waiting = match std::mem::replace(&mut group.state, state) {
                Primary::Pending(w) => w,
                _ => Vec::new(),
            };
            let primary = group.primary.clone();
            if group.left == 0 {
                links.remove(&key);
            }
            (primary, waiting)
        };
        for w in waiting {
            self.make_link(&w.node, &w.e, w.seen.as_ref(), &primary, result);
            self.child_done(&w.node);
        }
    }

    /// Make `e` a link to the placed first name `primary` of its file.
    fn make_link(
        &self,
        n: &Node<S::Dir>,
        e: &Entry,
        seen: Option<&Existing>,
        primary: &[u8],
        result: std::result::Result<Option<Identity>, ()>,
    ) {
        let Ok(primary_id) = result else {
            let msg = format!(
                "not backed up: it is a hard link to {}, which could not be written",
                self.view.root().join(cpath::as_path(primary)).display()
            );
            return self.tally.error(e, msg);
        };
        let add_link = |action| {
            add(&self.tally.counters.hard_links, 1);
            self.tally.action(action, e, Delta::default());
            self.tally.done(e, 0);
        };
        if primary_id.is_some() && seen.map(Existing::identity) == primary_id {
            return add_link(Action::Unchanged);
        }
        let action = if seen.is_some() {
            Action::Rewrite
        } else {
            Action::Create
        };
        if self.opts.dry_run || crate::cancel::requested() {
            return add_link(action);
        }
        let dest = self.dest(n);
        let result = seen
            .filter(|s| s.is_dir())
            .map_or(Ok(()), |s| self.sink.remove(dest, s))
            .and_then(|()| {
                self.sink
                    .link(dest, cpath::name(&e.cpath), e, primary, primary_id)
            });
        match result {
            Ok(()) => add_link(action),
            Err(err) => self.tally.error(e, err.to_string()),
        }
    }

    /// Which plaintext the destination name `name` in the directory of `parent` stands
    /// for (for the change list of a deletion): decrypted with the directory's IV, a
    /// long name through its `.name` file.
    fn stale_name(
        &self,
        parent: &Entry,
        dir: &S::Dir,
        name: &[u8],
    ) -> (Option<PathBuf>, Option<&'static str>) {
        use crate::backup::names::{name_file_of, Kind, NameRules};
        let base = self.view.relative(parent).to_path_buf();
        let rules = NameRules::new(self.view.cryptor());
        let Payload::Dir { dir_iv } = &parent.payload else {
            return (None, None);
        };
        // The same rules a restore reads the backup by: a `.name` file counts only if it
        // hashes to its entry's name.
        let (entry, view_file) = match rules.classify(parent.cpath.is_empty(), name) {
            Kind::DirIv => return (Some(base), Some("gocryptfs.diriv")),
            Kind::Config => return (Some(base), Some("gocryptfs.conf")),
            Kind::NameFile(entry) => (entry, Some("long name")),
            _ => (name, None),
        };
        let name_file = rules
            .needs_name_file(entry)
            .then(|| self.sink.read_name_file(dir, &name_file_of(entry)))
            .flatten();
        match rules.plain_name(dir_iv, entry, name_file.as_deref()) {
            Ok(plain) => (Some(base.join(OsStr::from_bytes(&plain))), view_file),
            Err(_) => (None, None),
        }
    }

    /// Remove what the destination holds that the view no longer has: only now, once
    /// everything new is in place and durable, and not at all beyond `--max-delete`.
    fn delete_stale(&self) {
        let stale = std::mem::take(&mut *self.stale.lock().expect("no panics while held"));
        if !self.opts.delete || stale.is_empty() {
            return;
        }
        // Group by parent, resolving each parent directory once.
        let mut by_parent: Vec<(Entry, Vec<Existing>)> = Vec::new();
        for s in stale {
            match by_parent.last_mut() {
                Some((p, v)) if p.cpath == s.parent.cpath => v.push(s.seen),
                _ => by_parent.push((s.parent, vec![s.seen])),
            }
        }
        let mut resolved = Vec::with_capacity(by_parent.len());
        let mut total = 0u64;
        for (parent, items) in by_parent {
            let dir = match self.sink.resolve(&parent.cpath) {
                Ok(d) => d,
                Err(err) => {
                    self.tally.error(&parent, err.to_string());
                    continue;
                }
            };
            let mut counted = Vec::with_capacity(items.len());
            for seen in items {
                match self.sink.count(&dir, &seen) {
                    Ok(c) => {
                        total += c;
                        // Named now: a long name's .name file may go first.
                        let shown = self.stale_name(&parent, &dir, &seen.name);
                        counted.push((seen, c, shown));
                    }
                    Err(err) => self.tally.error(&parent, err.to_string()),
                }
            }
            resolved.push((parent, dir, counted));
        }
        if let Some(max) = self.opts.max_delete.filter(|&m| total > m) {
            self.tally.problem(Problem::error(
                self.view.root(),
                format!("{total} entries would be deleted, more than --max-delete {max}; nothing was deleted"),
            ));
            return;
        }
        for (parent, dir, items) in resolved {
            for (seen, count, (path, view_file)) in items.iter() {
                if !self.opts.dry_run {
                    if let Err(err) = self.sink.remove(&dir, seen) {
                        self.tally.error(&parent, err.to_string());
                        continue;
                    }
                }
                add(&self.tally.counters.deleted, *count);
                self.tally.progress.change(&Change {
                    action: Action::Delete,
                    kind: plan::kind_char(seen.meta.mode),
                    delta: Delta::default(),
                    cpath: cpath::as_path(&cpath::join(&parent.cpath, &seen.name)).to_path_buf(),
                    path: path.clone(),
                    view_file: *view_file,
                });
            }
            if !self.opts.dry_run && !items.is_empty() {
                // Removing entries changed the directory's times: put them back.
                if let Err(err) = self.sink.finish_dir(&dir, &parent) {
                    self.tally.error(&parent, err.to_string());
                }
            }
        }
    }
}

fn plain_size(e: &Entry) -> u64 {
    match e.payload {
        Payload::File { plain_size, .. } => plain_size,
        _ => 0,
    }
}
