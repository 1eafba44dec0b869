//! How the library reports what it does without printing: per-entry problems and
//! progress go through this trait; the binary decides what reaches the terminal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something was deliberately left out (a socket); the run is still complete.
    Warning,
    /// Something that should be in the output is not, or may be wrong; exit code 2.
    Error,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub path: PathBuf,
    pub msg: String,
    pub severity: Severity,
}

impl Problem {
    pub fn error(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            msg: msg.into(),
            severity: Severity::Error,
        }
    }
    pub fn warning(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            msg: msg.into(),
            severity: Severity::Warning,
        }
    }
}

pub trait Progress: Sync {
    fn problem(&self, _problem: &Problem) {}
    /// Something about one entry the user may want to know, not a problem (a setuid bit
    /// a restore left out): shown with `-v` only, never counted as a warning.
    fn detail(&self, _detail: &Problem) {}
    /// One entry of the output was completed (`shown`: its path as a person knows it);
    /// `bytes` is what was written for it.
    fn entry_done(&self, _shown: &std::path::Path, _bytes: u64) {}
    /// An entry of the destination was (or, in a dry run, would be) changed.
    fn change(&self, _change: &crate::export::plan::Change) {}
    /// What the whole run will handle, once known (counted alongside the run, or read
    /// from a listing): `entries` in the unit of [`Progress::entry_done`] calls.
    fn total(&self, _size: Size) {}
    /// Whether a total is shown, and so worth counting.
    fn wants_total(&self) -> bool {
        false
    }
}

/// Run `work` while, if `progress` shows a total, another thread sizes the run with
/// `count` (the way rsync and restic count alongside): it never delays the work, and
/// is told to stop, through the flag it is given, when the work is done.
pub fn with_total<T: Send>(
    progress: &dyn Progress,
    count: impl FnOnce(&AtomicBool) -> Option<Size> + Send,
    work: impl FnOnce() -> T + Send,
) -> T {
    if !progress.wants_total() {
        return work();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(size) = count(&stop) {
                progress.total(size);
            }
        });
        let out = work();
        stop.store(true, Ordering::Relaxed);
        out
    })
}

/// The size of a run: how many entries it reports done and how many bytes they hold.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub entries: u64,
    pub bytes: u64,
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
