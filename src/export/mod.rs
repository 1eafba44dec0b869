//! The export driver: the one place that walks the source and decides.
//!
//! It walks the plaintext tree in one canonical order (depth-first, a directory before
//! its contents, each directory in [`View::listing`] order) through directory handles
//! ([`source`]), and decides each thing once, for every destination:
//! * which name of a hard-linked file holds the data (the first one in that order;
//!   the others become links to it),
//! * what happens to a file that changed while it was read ([`encrypt`]),
//! * what is counted ([`Summary`]).
//!
//! A destination that holds a tree ([`TreeSink`]: a directory, an object store) gets a
//! plan, the view diffed against what it holds ([`plan`]), applied in parallel by
//! [`tree`]; `--dry-run` prints the plan and applies nothing. A stream ([`StreamSink`]:
//! a tar archive) gets every entry in order from [`stream`]. Listing directories is done
//! ahead of the walk on all cores ([`walk`]); so is encryption.

pub mod encrypt;
pub mod plan;
pub mod source;
pub mod stream;
pub mod tree;
pub mod walk;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::progress::{Problem, Progress, Severity, Size};
use crate::view::{Entry, Payload, View};
use plan::{Action, Change, Delta};

pub use stream::{export_stream, StreamOptions};
pub use tree::{export_tree, TreeOptions};

/// Counts of one export run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub specials: u64,
    pub virtual_files: u64,
    pub hard_links: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Entries created or rewritten.
    pub written: u64,
    /// Entries whose mode or owner alone was fixed.
    pub metadata_only: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub warnings: u64,
    pub errors: u64,
}

macro_rules! counters {
    ($($f:ident),*) => {
        #[derive(Default)]
        pub(crate) struct Counters { $(pub(crate) $f: AtomicU64),* }
        impl Counters {
            pub(crate) fn summary(&self) -> Summary {
                Summary { $($f: self.$f.load(Ordering::Relaxed)),* }
            }
        }
    };
}
counters!(
    dirs,
    files,
    symlinks,
    specials,
    virtual_files,
    hard_links,
    bytes_read,
    bytes_written,
    written,
    metadata_only,
    unchanged,
    deleted,
    warnings,
    errors
);

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The part of the driver both destination shapes share: what is reported and counted.
pub(crate) struct Tally<'a> {
    pub view: &'a View,
    pub progress: &'a dyn Progress,
    pub counters: Counters,
}

impl<'a> Tally<'a> {
    pub fn new(view: &'a View, progress: &'a dyn Progress) -> Self {
        Tally {
            view,
            progress,
            counters: Counters::default(),
        }
    }

    pub fn problem(&self, p: Problem) {
        if crate::cancel::requested() {
            // Files cut short by the stop are not errors of their own.
            return;
        }
        match p.severity {
            Severity::Warning => add(&self.counters.warnings, 1),
            Severity::Error => add(&self.counters.errors, 1),
        }
        self.progress.problem(&p);
    }

    pub fn error(&self, e: &Entry, msg: impl Into<String>) {
        self.problem(Problem::error(&e.source, msg));
    }

    /// The plaintext path a person knows the entry by.
    pub fn plain_path(&self, e: &Entry) -> PathBuf {
        self.view.relative(e).to_path_buf()
    }

    /// Count an entry of the view by its kind.
    pub fn kind(&self, e: &Entry) {
        let c = &self.counters;
        match &e.payload {
            Payload::Dir { .. } => add(&c.dirs, 1),
            Payload::File { .. } => add(&c.files, 1),
            Payload::Symlink { .. } => add(&c.symlinks, 1),
            Payload::Special => add(&c.specials, 1),
            _ => add(&c.virtual_files, 1),
        }
    }

    /// Count what was done to an entry and report it when it is a change.
    pub fn action(&self, action: Action, e: &Entry, delta: Delta) {
        let c = &self.counters;
        match action {
            Action::Unchanged => add(&c.unchanged, 1),
            Action::Metadata => add(&c.metadata_only, 1),
            Action::Delete => add(&c.deleted, 1),
            Action::Create | Action::Rewrite => add(&c.written, 1),
        }
        if action != Action::Unchanged {
            self.progress
                .change(&Change::new(action, e, delta, Some(self.plain_path(e))));
        }
    }

    pub fn done(&self, e: &Entry, bytes: u64) {
        self.progress.entry_done(self.view.relative(e), bytes);
    }
}

/// Count the view of the tree `src` the way an export walks it (same listings, same
/// selection), without reading any file: for a progress line's total. Gives up, with
/// `None`, as soon as `stop` is set.
pub fn count(
    view: &View,
    src: &crate::fs::Dir,
    stop: &std::sync::atomic::AtomicBool,
) -> Option<Size> {
    let meta = crate::view::Meta::from_stat(&src.stat().ok()?);
    let root = view.root_entry(meta);
    let mut size = Size {
        entries: 1,
        bytes: 0,
    };
    let mut stack = vec![(src.try_clone().ok()?, root)];
    while let Some((dir, e)) = stack.pop() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        for child in source::listing(view, &dir, &e).entries {
            size.entries += 1;
            match &child.payload {
                Payload::File { plain_size, .. } => size.bytes += plain_size,
                Payload::Dir { .. } => {
                    if let Ok(d) = source::open_dir(&dir, &child) {
                        stack.push((d, child));
                    }
                }
                _ => {}
            }
        }
    }
    Some(size)
}
