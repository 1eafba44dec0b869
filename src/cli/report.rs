//! Messages on stderr. Names from the backup or the source may contain control
//! characters; they are escaped so a crafted name cannot rewrite the terminal.

use std::io::Write;
use std::path::Path;

use cryptbak::progress::{Problem, Progress, Severity};

/// Escape control characters (and show invalid UTF-8 lossily) for one-line messages.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

pub fn show_path(p: &Path) -> String {
    sanitize(&p.to_string_lossy())
}

pub fn warn(msg: &str) {
    let _ = writeln!(std::io::stderr(), "cryptbak: warning: {msg}");
}

pub fn error(msg: &str) {
    let _ = writeln!(std::io::stderr(), "cryptbak: error: {msg}");
}

/// Prints problems on stderr as they happen, one line each.
pub struct StderrReport {
    pub quiet: bool,
}

impl Progress for StderrReport {
    fn problem(&self, p: &Problem) {
        let line = format!("{}: {}", show_path(&p.path), sanitize(&p.msg));
        match p.severity {
            Severity::Warning if !self.quiet => warn(&line),
            Severity::Warning => {}
            Severity::Error => error(&line),
        }
    }
}
