//! What the engine tells the user: one message per problem, named the way the run's
//! reader expects (a restore names where the entry would have gone in DEST and the
//! backup file; verify names the backup file and the plaintext path), and the counts.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::progress::{Problem, Progress};

/// How messages name entries.
#[derive(Clone, Debug)]
pub enum Style {
    /// `DEST/plain: message (backup file CPATH)`: a restore.
    Restore { dest: PathBuf },
    /// `BACKUP/CPATH: message [plaintext: plain]`: verify, ls.
    Verify { backup: PathBuf },
}

/// What a message is about.
#[derive(Clone, Copy, Debug)]
pub enum At<'a> {
    /// A backup entry whose plaintext path is not known.
    Backup(&'a [u8]),
    /// A backup entry and where it goes in the plaintext tree (DEST-relative).
    Entry { cpath: &'a [u8], plain: &'a Path },
    /// A plaintext path (DEST-relative) only.
    Plain(&'a Path),
    /// Something that is neither (the tar stream itself, a source file path).
    Other(&'a Path),
}

/// A ciphertext path for messages (`.` for the root).
pub fn show_cpath(cpath: &[u8]) -> PathBuf {
    if cpath.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(OsStr::from_bytes(cpath))
    }
}

fn joined(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        // join("") would add a trailing slash.
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

impl Style {
    /// The path and message a problem is shown with.
    pub fn render(&self, at: At<'_>, msg: String) -> (PathBuf, String) {
        self.render_outcome(at, msg, None)
    }

    /// Like [`Style::render`], with what became of the entry (`not restored`, `removed`):
    /// said by a restore, left out by verify, which changes nothing.
    pub fn render_outcome(
        &self,
        at: At<'_>,
        msg: String,
        outcome: Option<&str>,
    ) -> (PathBuf, String) {
        let (path, msg) = self.place(at, msg);
        match outcome {
            Some(o) if self.writes() => (path, format!("{msg}; {o}")),
            _ => (path, msg),
        }
    }

    fn place(&self, at: At<'_>, msg: String) -> (PathBuf, String) {
        match (self, at) {
            (_, At::Other(p)) => (p.to_path_buf(), msg),
            (Style::Restore { .. }, At::Backup(c)) => (show_cpath(c), msg),
            (Style::Restore { dest }, At::Plain(p)) => (joined(dest, p), msg),
            (Style::Restore { dest }, At::Entry { cpath, plain }) => (
                joined(dest, plain),
                format!("{msg} (backup file {})", show_cpath(cpath).display()),
            ),
            (Style::Verify { backup }, At::Backup(c)) => (joined(backup, &show_cpath(c)), msg),
            (Style::Verify { .. }, At::Plain(p)) => (
                PathBuf::from(format!("[plaintext: {}]", plain_name(p))),
                msg,
            ),
            (Style::Verify { backup }, At::Entry { cpath, plain }) => (
                joined(backup, &show_cpath(cpath)),
                format!("{msg} [plaintext: {}]", plain_name(plain)),
            ),
        }
    }

    /// Whether outcomes ("not restored", "removed") mean anything: not when nothing is
    /// written.
    pub fn writes(&self) -> bool {
        matches!(self, Style::Restore { .. })
    }
}

fn plain_name(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        "the backup's root".into()
    } else {
        p.display().to_string()
    }
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
    pub rejoined: AtomicU64,
    pub setuid_dropped: AtomicU64,
    pub devices_skipped: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn dec(c: &AtomicU64) {
    c.fetch_sub(1, Ordering::Relaxed);
}

pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The engine's reporting: counters and messages through [`Progress`].
pub(crate) struct Reporter<'a> {
    pub progress: &'a dyn Progress,
    pub style: Style,
    pub counters: Counters,
}

impl Reporter<'_> {
    fn send(&self, at: At<'_>, msg: String, warning: bool) {
        self.send_outcome(at, msg, None, warning);
    }

    fn send_outcome(&self, at: At<'_>, msg: String, outcome: Option<&str>, warning: bool) {
        let (path, msg) = self.style.render_outcome(at, msg, outcome);
        self.progress.problem(&if warning {
            Problem::warning(path, msg)
        } else {
            Problem::error(path, msg)
        });
    }

    // After a stop request, entries fail only because of it: the run's one
    // "interrupted" message says it all, so these stay quiet then.

    pub fn warn(&self, at: At<'_>, msg: impl Into<String>) {
        if crate::cancel::requested() {
            return;
        }
        inc(&self.counters.warnings, 1);
        self.send(at, msg.into(), true);
    }

    pub fn error(&self, at: At<'_>, msg: impl Into<String>) {
        if crate::cancel::requested() {
            return;
        }
        inc(&self.counters.errors, 1);
        self.send(at, msg.into(), false);
    }

    pub fn integrity(&self, at: At<'_>, msg: impl Into<String>) {
        if crate::cancel::requested() {
            return;
        }
        inc(&self.counters.integrity_errors, 1);
        self.send(at, format!("integrity check failed: {}", msg.into()), false);
    }

    /// An error about an entry, with what became of it (see [`Style::render_outcome`]).
    pub fn error_outcome(&self, at: At<'_>, msg: impl Into<String>, outcome: &str) {
        if crate::cancel::requested() {
            return;
        }
        inc(&self.counters.errors, 1);
        self.send_outcome(at, msg.into(), Some(outcome), false);
    }

    /// An integrity error about an entry, with what became of it.
    pub fn integrity_outcome(&self, at: At<'_>, msg: impl Into<String>, outcome: &str) {
        if crate::cancel::requested() {
            return;
        }
        inc(&self.counters.integrity_errors, 1);
        self.send_outcome(
            at,
            format!("integrity check failed: {}", msg.into()),
            Some(outcome),
            false,
        );
    }

    /// A detail shown with `-v` only (a dropped setuid bit, a skipped device node).
    pub fn detail(&self, at: At<'_>, msg: impl Into<String>) {
        let (path, msg) = self.style.render(at, msg.into());
        self.progress.detail(&Problem::warning(path, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_and_verify_name_entries_their_own_way() {
        let r = Style::Restore {
            dest: PathBuf::from("/out"),
        };
        let v = Style::Verify {
            backup: PathBuf::from("/bak"),
        };
        let entry = At::Entry {
            cpath: b"Xa/Yb",
            plain: Path::new("docs/a"),
        };
        assert_eq!(
            r.render(entry, "bad".into()),
            (
                PathBuf::from("/out/docs/a"),
                "bad (backup file Xa/Yb)".into()
            )
        );
        assert_eq!(
            v.render(entry, "bad".into()),
            (
                PathBuf::from("/bak/Xa/Yb"),
                "bad [plaintext: docs/a]".into()
            )
        );
        assert_eq!(
            r.render(At::Backup(b"Xa"), "m".into()).0,
            PathBuf::from("Xa")
        );
        assert_eq!(
            v.render(At::Backup(b""), "m".into()).0,
            PathBuf::from("/bak")
        );
        assert_eq!(
            v.render(
                At::Entry {
                    cpath: b"",
                    plain: Path::new("")
                },
                "m".into()
            )
            .1,
            "m [plaintext: the backup's root]"
        );
        assert_eq!(
            r.render(At::Plain(Path::new("")), "m".into()).0,
            PathBuf::from("/out")
        );
        // The outcome comes last, and only when something is written.
        assert_eq!(
            r.render_outcome(entry, "bad".into(), Some("removed")).1,
            "bad (backup file Xa/Yb); removed"
        );
        assert_eq!(
            v.render_outcome(entry, "bad".into(), Some("removed")).1,
            "bad [plaintext: docs/a]"
        );
        assert!(r.writes() && !v.writes());
    }
}
