//! How the library reports what it does without printing: per-entry problems and
//! progress go through this trait; the binary decides what reaches the terminal.

use std::path::PathBuf;

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
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
