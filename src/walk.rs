//! The parallel export walk: lists directories through the `View` and hands every entry
//! to a `Sink`, on all cores.
//!
//! Output does not depend on thread timing: what each entry contains is decided by the
//! view alone, and the one order-dependent choice, which path's IVs the links of a
//! hard-linked file share, is made after the walk from the sorted list of links.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::content::FileEncryptor;
use crate::error::Result;
use crate::progress::{Problem, Progress, Severity};
use crate::sink::Sink;
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
    pub warnings: u64,
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    dirs: AtomicU64,
    files: AtomicU64,
    symlinks: AtomicU64,
    specials: AtomicU64,
    virtual_files: AtomicU64,
    hard_links: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    warnings: AtomicU64,
    errors: AtomicU64,
}

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
/// counted; only a failure to create the destination root is returned as an error.
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
    walk.write_hard_links();
    let dirs = std::mem::take(&mut *walk.finished_dirs.lock().expect("no panics while held"));
    // Only adding or removing entries changes a directory's mtime, and all of that is
    // done now, so the order of finishing does not matter.
    dirs.par_iter().for_each(|d| {
        if let Err(e) = walk.sink.finish_dir(d) {
            walk.report(Problem::error(&d.source, e.to_string()));
        }
    });
    let c = &walk.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(Summary {
        dirs: get(&c.dirs),
        files: get(&c.files),
        symlinks: get(&c.symlinks),
        specials: get(&c.specials),
        virtual_files: get(&c.virtual_files),
        hard_links: get(&c.hard_links),
        bytes_read: get(&c.bytes_read),
        bytes_written: get(&c.bytes_written),
        warnings: get(&c.warnings),
        errors: get(&c.errors),
    })
}

impl Walk<'_> {
    fn report(&self, p: Problem) {
        match p.severity {
            Severity::Warning => add(&self.counters.warnings, 1),
            Severity::Error => add(&self.counters.errors, 1),
        }
        self.progress.problem(&p);
    }

    fn visit_dir(&self, dir: Entry) {
        add(&self.counters.dirs, 1);
        match self.view.list(&dir) {
            Ok(listing) => {
                for p in listing.problems {
                    self.report(p);
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
        match &e.payload {
            Payload::Dir { .. } => match self.sink.create_dir(&e) {
                Ok(()) => self.visit_dir(e),
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
        match self.sink.write_leaf(e, self.view, enc) {
            Ok(w) => {
                let c = &self.counters;
                match &e.payload {
                    Payload::File { plain_size, .. } => {
                        add(&c.files, 1);
                        add(&c.bytes_read, w.read);
                        if w.read != *plain_size {
                            self.report(Problem::error(
                                &e.source,
                                format!("file changed as we read it ({plain_size} bytes expected, {} read)", w.read),
                            ));
                        }
                    }
                    Payload::Symlink { .. } => add(&c.symlinks, 1),
                    Payload::Special => add(&c.specials, 1),
                    _ => add(&c.virtual_files, 1),
                }
                add(&c.bytes_written, w.bytes);
                self.progress.entry_done(&e.cpath, w.bytes);
            }
            Err(err) => self.report(Problem::error(&e.source, err.to_string())),
        }
    }

    /// Hard links: every name of an inode gets the bytes encrypted with the IVs of the
    /// name met first in a depth-first walk with names in bytewise order (the order the
    /// tar stream uses too), and the other names become hard
    /// links to it, as `cp -a` of a mount would make them. gocryptfs 2.3 itself picks
    /// whichever name was looked up last before the first open (FORMAT.md §10).
    fn write_hard_links(&self) {
        let links = std::mem::take(&mut *self.hard_links.lock().expect("no panics while held"));
        let mut groups: BTreeMap<(u64, u64), Vec<Entry>> = BTreeMap::new();
        for e in links {
            groups.entry((e.meta.dev, e.meta.ino)).or_default().push(e);
        }
        groups.into_par_iter().for_each_init(
            || FileEncryptor::new(&self.view.cryptor().content),
            |enc, (_, mut group)| {
                group.sort_by(|a, b| {
                    a.source
                        .as_os_str()
                        .as_bytes()
                        .cmp(b.source.as_os_str().as_bytes())
                });
                let primary = &group[0];
                self.write_leaf(primary, enc);
                let primary_path = primary_iv_path(primary);
                for e in &group[1..] {
                    let mut e = e.clone();
                    if let Payload::File { iv_path, .. } = &mut e.payload {
                        iv_path.clone_from(&primary_path);
                    }
                    match self.sink.link(&e, primary) {
                        Ok(()) => {
                            add(&self.counters.hard_links, 1);
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

fn primary_iv_path(e: &Entry) -> Vec<u8> {
    match &e.payload {
        Payload::File { iv_path, .. } => iv_path.clone(),
        _ => e.cpath.clone(),
    }
}

/// A view path as a `Path`, for messages.
pub fn cpath_display(cpath: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(cpath))
}

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
