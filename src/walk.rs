//! The parallel export walk: lists directories through the `View` and hands every entry
//! to a `Sink`, on all cores.
//!
//! Output does not depend on thread timing: what each entry contains is decided by the
//! view alone, and the one order-dependent choice, which path's IVs the links of a
//! hard-linked file share, is made after the walk from the sorted list of links.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::content::FileEncryptor;
use crate::error::Result;
use crate::progress::{Problem, Progress, Severity};
use crate::sink::{Sink, Written};
use crate::sync::{Action, Change, Delta};
use crate::view::{Entry, Payload, View};

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
        struct Counters { $($f: AtomicU64),* }
        impl Counters {
            fn summary(&self) -> Summary {
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

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Walk<'a> {
    view: &'a View,
    sink: &'a dyn Sink,
    progress: &'a dyn Progress,
    counters: Counters,
    /// Directories whose final mode and times are applied after everything is written.
    finished_dirs: Mutex<Vec<Entry>>,
    /// Regular files with more than one link, written after the walk.
    hard_links: Mutex<Vec<Entry>>,
}

/// Export the whole view of `view` into `sink`. Per-entry problems are reported and
/// counted; only a failure at the destination root is returned as an error.
pub fn export(view: &View, sink: &dyn Sink, progress: &dyn Progress) -> Result<Summary> {
    let root = view.root_entry()?;
    sink.create_dir(&root)?;
    let walk = Walk {
        view,
        sink,
        progress,
        counters: Counters::default(),
        finished_dirs: Mutex::new(Vec::new()),
        hard_links: Mutex::new(Vec::new()),
    };
    walk.visit_dir(root);
    // Stopped by a signal: what was written is complete (temporary files of the files
    // in flight are gone), but deleting stale entries or finishing directories now would
    // make a partial tree look finished. The next run converges.
    crate::cancel::check()?;
    walk.write_hard_links();
    crate::cancel::check()?;
    match sink.delete_stale() {
        Ok(deleted) => {
            add(&walk.counters.deleted, deleted.len() as u64);
            for p in deleted {
                progress.change(&Change {
                    action: Action::Delete,
                    kind: ' ',
                    delta: Delta::default(),
                    cpath: p,
                });
            }
        }
        Err(e) => walk.report(Problem::error(view.root(), e.to_string())),
    }
    let dirs = std::mem::take(&mut *walk.finished_dirs.lock().expect("no panics while held"));
    // Only adding or removing entries changes a directory's mtime, and all of that is
    // done now, so the order of finishing does not matter.
    dirs.par_iter().for_each(|d| {
        if let Err(e) = walk.sink.finish_dir(d) {
            walk.report(Problem::error(&d.source, e.to_string()));
        }
    });
    Ok(walk.counters.summary())
}

impl Walk<'_> {
    fn report(&self, p: Problem) {
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

    fn count_action(&self, action: Action, e: &Entry, delta: Delta) {
        let c = &self.counters;
        match action {
            Action::Unchanged => add(&c.unchanged, 1),
            Action::Metadata => add(&c.metadata_only, 1),
            _ => add(&c.written, 1),
        }
        if action != Action::Unchanged {
            self.progress.change(&Change::for_entry(action, e, delta));
        }
    }

    fn visit_dir(&self, dir: Entry) {
        add(&self.counters.dirs, 1);
        match self.view.list(&dir) {
            Ok(listing) => {
                for p in listing.problems {
                    self.report(p);
                }
                if listing.complete {
                    let keep: Vec<&[u8]> = listing
                        .entries
                        .iter()
                        .map(|e| crate::cpath::name(&e.cpath))
                        .chain(listing.protected.iter().map(Vec::as_slice))
                        .collect();
                    if let Err(err) = self.sink.prune(&dir, &keep) {
                        self.report(Problem::error(&dir.source, err.to_string()));
                    }
                }
                listing.entries.into_par_iter().for_each_init(
                    || FileEncryptor::new(&self.view.cryptor().content),
                    |enc, e| self.visit(e, enc),
                );
            }
            Err(err) => self.report(Problem::error(&dir.source, err.to_string())),
        }
        self.progress.entry_done(&dir.cpath, 0);
        self.finished_dirs
            .lock()
            .expect("no panics while held")
            .push(dir);
    }

    fn visit(&self, e: Entry, enc: &mut FileEncryptor) {
        if crate::cancel::requested() {
            return;
        }
        match &e.payload {
            Payload::Dir { .. } => match self.sink.create_dir(&e) {
                Ok(action) => {
                    if action == Action::Create {
                        self.progress
                            .change(&Change::for_entry(action, &e, Delta::default()));
                    }
                    self.visit_dir(e)
                }
                Err(err) => self.report(Problem::error(&e.source, err.to_string())),
            },
            Payload::File { .. } if e.meta.nlink > 1 => {
                self.hard_links
                    .lock()
                    .expect("no panics while held")
                    .push(e);
            }
            _ => self.write_leaf(&e, enc),
        }
    }

    fn write_leaf(&self, e: &Entry, enc: &mut FileEncryptor) {
        let written = match self.sink.write_leaf(e, self.view, enc) {
            Ok(w) => w,
            Err(err) => return self.report(Problem::error(&e.source, err.to_string())),
        };
        // A file that changed while being read is written once more with what it is now
        // (like tar's "file changed as we read it", but trying to get it right).
        let (e, written) =
            match self.changed_while_read(e, &written) {
                None => (e.clone(), written),
                Some(fresh) => match self.sink.write_leaf(&fresh, self.view, enc) {
                    Ok(w2) if self.changed_while_read(&fresh, &w2).is_none() => (fresh, w2),
                    Ok(_) => return self.report(Problem::error(
                        &e.source,
                        "file changed as we read it, twice; the backup holds a mix of its states",
                    )),
                    Err(err) => return self.report(Problem::error(&e.source, err.to_string())),
                },
            };
        let c = &self.counters;
        match &e.payload {
            Payload::File { .. } => add(&c.files, 1),
            Payload::Symlink { .. } => add(&c.symlinks, 1),
            Payload::Special => add(&c.specials, 1),
            _ => add(&c.virtual_files, 1),
        }
        add(&c.bytes_read, written.read.unwrap_or(0));
        add(&c.bytes_written, written.bytes);
        self.count_action(written.action, &e, written.delta);
        self.progress.entry_done(&e.cpath, written.bytes);
    }

    /// If `e` is a regular file that was read and no longer matches what it was when
    /// listed, its fresh entry.
    fn changed_while_read(&self, e: &Entry, w: &Written) -> Option<Entry> {
        let Payload::File { plain_size, .. } = &e.payload else {
            return None;
        };
        let read = w.read?;
        let fresh = self.view.refresh(e).ok()?;
        let Payload::File {
            plain_size: now, ..
        } = &fresh.payload
        else {
            return None;
        };
        (read != *plain_size || now != plain_size || fresh.meta.mtime != e.meta.mtime)
            .then_some(fresh)
    }

    /// Hard links: every name of an inode gets the bytes encrypted with the IVs of the
    /// name met first in a depth-first walk with names in bytewise order (the order the
    /// tar stream uses too), and the other names become hard links to it, as `cp -a`
    /// of a mount would make them. gocryptfs 2.3 itself picks whichever name was looked
    /// up last before the first open (FORMAT.md §10).
    fn write_hard_links(&self) {
        let links = std::mem::take(&mut *self.hard_links.lock().expect("no panics while held"));
        let mut groups: BTreeMap<(u64, u64), Vec<Entry>> = BTreeMap::new();
        for e in links {
            groups.entry((e.meta.dev, e.meta.ino)).or_default().push(e);
        }
        groups.into_par_iter().for_each_init(
            || FileEncryptor::new(&self.view.cryptor().content),
            |enc, (_, mut group)| {
                group.sort_by(|a, b| traversal_order(&a.source, &b.source));
                let primary = &group[0];
                self.write_leaf(primary, enc);
                for e in &group[1..] {
                    match self.sink.link(e, primary) {
                        Ok(action) => {
                            add(&self.counters.hard_links, 1);
                            self.count_action(action, e, Delta::default());
                            self.progress.entry_done(&e.cpath, 0);
                        }
                        Err(err) => self.report(Problem::error(&e.source, err.to_string())),
                    }
                }
            },
        );
    }
}

/// Depth-first order with each directory's names sorted bytewise: paths compared
/// component by component (so `a/b` comes before `a-c`, unlike a plain byte compare).
pub fn traversal_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    a.components()
        .map(|c| c.as_os_str().as_bytes())
        .cmp(b.components().map(|c| c.as_os_str().as_bytes()))
}

/// A view path as a `Path`, for messages.
pub use crate::cpath::as_path as cpath_display;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_order_is_depth_first_by_name() {
        let mut v = vec![
            Path::new("r/a-c"),
            Path::new("r/a/b"),
            Path::new("r/a"),
            Path::new("r/B"),
        ];
        v.sort_by(|a, b| traversal_order(a, b));
        assert_eq!(
            v,
            [
                Path::new("r/B"),
                Path::new("r/a"),
                Path::new("r/a/b"),
                Path::new("r/a-c")
            ]
        );
    }
}
