//! Messages on stderr. Names from the backup or the source may contain control
//! characters; they are escaped so a crafted name cannot rewrite the terminal.

use std::io::Write;
use std::path::Path;

use cryptbak::progress::{Problem, Progress, Severity};
use cryptbak::sync::{Action, Change};

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

/// What goes to stdout besides problems on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Quiet,
    /// One rsync-style line per change.
    Itemize,
    /// JSON lines: changes, problems, and (from the caller) a summary.
    Json,
}

/// Prints problems on stderr as they happen, one line each, and changes on stdout.
pub struct StderrReport {
    pub quiet: bool,
    pub output: Output,
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Rewrite => "rewrite",
        Action::Metadata => "metadata",
        Action::Unchanged => "unchanged",
        Action::Delete => "delete",
    }
}

impl Progress for StderrReport {
    fn problem(&self, p: &Problem) {
        if self.output == Output::Json {
            let v = serde_json::json!({
                "event": match p.severity { Severity::Warning => "warning", Severity::Error => "error" },
                "path": p.path.to_string_lossy(),
                "message": p.msg,
            });
            println!("{v}");
        }
        let line = format!("{}: {}", show_path(&p.path), sanitize(&p.msg));
        match p.severity {
            Severity::Warning if !self.quiet => warn(&line),
            Severity::Warning => {}
            Severity::Error => error(&line),
        }
    }

    fn change(&self, c: &Change) {
        match self.output {
            Output::Quiet => {}
            Output::Itemize => println!("{}", sanitize(&c.itemize())),
            Output::Json => {
                let v = serde_json::json!({
                    "event": "change",
                    "action": action_name(c.action),
                    "path": c.cpath.to_string_lossy(),
                    "itemized": c.itemize(),
                });
                println!("{v}");
            }
        }
    }
}
