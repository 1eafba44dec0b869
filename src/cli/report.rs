//! Messages on stderr. Names from the backup or the source may contain control
//! characters; they are escaped so a crafted name cannot rewrite the terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::path::Path;

use cryptbak::export::plan::{Action, Change};
use cryptbak::meter;
use cryptbak::progress::{Problem, Progress, Severity, Size};

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

/// `1 file`, `2 files`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What an export consisted of, the same way for a directory and a tar stream:
/// `5 files (5.1 MB), 4 directories, 1 symlink, 1 hard link, 7 gocryptfs files`
/// (kinds with none left out, files and directories always shown).
pub fn export_kinds(s: &cryptbak::export::Summary) -> String {
    kinds(
        s.files,
        s.bytes_read,
        s.dirs,
        &[
            (s.symlinks, "symlink", "symlinks"),
            (s.specials, "special file", "special files"),
            (s.hard_links, "hard link", "hard links"),
            (s.virtual_files, "gocryptfs file", "gocryptfs files"),
        ],
    )
}

/// The one way every summary lists what it handled: files (with their plaintext bytes)
/// and directories always, the other kinds when there are any.
pub fn kinds(files: u64, bytes: u64, dirs: u64, others: &[(u64, &str, &str)]) -> String {
    let mut parts = vec![
        format!(
            "{} ({:.1} MB)",
            count(files, "file", "files"),
            bytes as f64 / 1e6
        ),
        count(dirs, "directory", "directories"),
    ];
    for &(n, one, many) in others {
        if n > 0 {
            parts.push(count(n, one, many));
        }
    }
    parts.join(", ")
}

/// `; 3 ERRORS, the backup is incomplete` when there were errors.
pub fn errors_tail(errors: u64, what: &str) -> String {
    if errors == 0 {
        String::new()
    } else {
        format!("; {}, {what}", count(errors, "ERROR", "ERRORS"))
    }
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

/// Prints problems on stderr as they happen, one line each, and changes on stdout;
/// shows a live progress line on stderr when it is a terminal (never in cron logs).
pub struct StderrReport {
    pub quiet: bool,
    pub output: Output,
    bar: Option<Bar>,
    /// Print details (`Progress::detail`), for `-v`.
    details: bool,
}

/// The progress line, and where its byte figures start.
struct Bar {
    bar: ProgressBar,
    /// `meter::total()` when the run started, and when.
    base: u64,
    started: Instant,
    /// What the line counts: "entries" (export), "files" (restore).
    unit: &'static str,
    /// Estimate the time left from bytes (a restore writes every byte) rather than
    /// from entries (an export skips unchanged files, so its bytes say little).
    eta_by_bytes: bool,
}

impl Bar {
    /// The line's look, before (`None`) and after the total is known. The byte figures
    /// are drawn at every tick from `meter`, so they move while one large file is
    /// written (the count and the name move per entry).
    fn style(&self, total: Option<Size>) -> ProgressStyle {
        let (base, started) = (self.base, self.started);
        let total_mb = total.map(|t| t.bytes as f64 / 1e6);
        let data = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let mb = (meter::total() - base) as f64 / 1e6;
            let rate = mb / started.elapsed().as_secs_f64().max(0.001);
            let _ = match total_mb {
                Some(t) => write!(w, "{mb:.1} MB written (of {t:.1} MB), {rate:.0} MB/s"),
                None => write!(w, "{mb:.1} MB written, {rate:.0} MB/s"),
            };
        };
        let unit = self.unit;
        let eta = if self.eta_by_bytes {
            "{bytes_eta}"
        } else {
            "{eta}"
        };
        let template = match total {
            Some(_) => format!(
                "{{spinner}} {{elapsed_precise}} {{pos}}/{{len}} {unit}, {{data}}, ETA {eta}, {{wide_msg}}"
            ),
            None => format!("{{spinner}} {{elapsed_precise}} {{pos}} {unit}, {{data}}, {{wide_msg}}"),
        };
        let total_bytes = total.map_or(0, |t| t.bytes);
        let bytes_eta = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let done = meter::total() - base;
            let _ = match left(done, total_bytes, started.elapsed()) {
                Some(d) => w.write_str(&short_duration(d)),
                None => w.write_str("-"),
            };
        };
        ProgressStyle::with_template(&template)
            .expect("valid template")
            .with_key("data", data)
            .with_key("bytes_eta", bytes_eta)
    }
}

/// The time left when `done` of `total` bytes took `elapsed`, at the same rate; `None`
/// before anything is done, and in the first seconds, when the rate of a few small
/// files says little (it would promise hours, or seconds).
fn left(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    if done == 0 || elapsed < Duration::from_secs(2) {
        return None;
    }
    let rest = total.saturating_sub(done) as f64;
    Some(Duration::from_secs_f64(
        elapsed.as_secs_f64() * rest / done as f64,
    ))
}

/// `42s`, `3m05s`, `2h07m`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl StderrReport {
    pub fn new(quiet: bool, output: Output, show_progress: bool) -> StderrReport {
        let bar = (show_progress && !quiet && std::io::stderr().is_terminal()).then(|| {
            let b = Bar {
                bar: ProgressBar::new_spinner(),
                base: meter::total(),
                started: Instant::now(),
                unit: "entries",
                eta_by_bytes: false,
            };
            b.bar.set_style(b.style(None));
            b.bar.enable_steady_tick(Duration::from_millis(200));
            // Draw now, not at the first tick: a run shorter than the tick interval
            // still shows the user that it started.
            b.bar.force_draw();
            b
        });
        StderrReport {
            quiet,
            output,
            bar,
            details: false,
        }
    }

    /// Also print details about single entries (`-v`).
    pub fn with_details(mut self, on: bool) -> Self {
        self.details = on;
        self
    }

    /// A restore's line: it counts files (the only entries a restore reports done) and
    /// estimates the time left from bytes.
    pub fn for_restore(mut self) -> Self {
        if let Some(b) = &mut self.bar {
            b.unit = "files";
            b.eta_by_bytes = true;
            b.bar.set_style(b.style(None));
        }
        self
    }

    /// Whether a progress line is shown (and a total is worth counting).
    pub fn shows_progress(&self) -> bool {
        self.bar.is_some()
    }

    /// Remove the progress line before the summary is printed.
    pub fn finish(&self) {
        if let Some(Bar { bar, .. }) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Print without tearing the progress line.
    fn print(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(b) => b.bar.suspend(f),
            None => f(),
        }
    }
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
    fn wants_total(&self) -> bool {
        self.shows_progress()
    }

    /// The line then shows `done/total`, the bytes to come and an ETA.
    fn total(&self, size: Size) {
        if let Some(b) = &self.bar {
            b.bar.set_length(size.entries);
            b.bar.set_style(b.style(Some(size)));
            // Now, not at the next tick: the total is news even in a short run.
            b.bar.force_draw();
        }
    }

    fn entry_done(&self, shown: &Path, _bytes: u64) {
        let Some(Bar { bar, .. }) = &self.bar else {
            return;
        };
        bar.inc(1);
        let mut name = show_path(shown);
        if name.chars().count() > 50 {
            let tail: String = name
                .chars()
                .rev()
                .take(49)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            name = format!("…{tail}");
        }
        bar.set_message(name);
    }

    fn problem(&self, p: &Problem) {
        self.print(|| self.print_problem(p));
    }

    fn detail(&self, p: &Problem) {
        if self.details {
            self.print(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "cryptbak: {}: {}",
                    show_path(&p.path),
                    sanitize(&p.msg)
                );
            });
        }
    }

    fn change(&self, c: &Change) {
        self.print(|| self.print_change(c));
    }
}

impl StderrReport {
    fn print_problem(&self, p: &Problem) {
        if self.output == Output::Json {
            let v = serde_json::json!({
                "event": match p.severity { Severity::Warning => "warning", Severity::Error => "error" },
                "path": p.path.to_string_lossy(),
                "message": p.msg,
            });
            println!("{v}");
        }
        // Library errors often name the same path already; say it once.
        let path = show_path(&p.path);
        let msg = sanitize(&p.msg);
        let msg = msg.strip_prefix(&format!("{path}: ")).unwrap_or(&msg);
        let line = format!("{path}: {msg}");
        match p.severity {
            Severity::Warning if !self.quiet => warn(&line),
            Severity::Warning => {}
            Severity::Error => error(&line),
        }
    }

    fn print_change(&self, c: &Change) {
        match self.output {
            Output::Quiet => {}
            Output::Itemize => println!("{}", sanitize(&c.itemize())),
            Output::Json => {
                let v = serde_json::json!({
                    "event": "change",
                    "action": action_name(c.action),
                    "kind": c.kind.to_string(),
                    "path": c.path.as_ref().map(|p| p.to_string_lossy()),
                    "view_file": c.view_file,
                    "cpath": c.cpath.to_string_lossy(),
                    "itemized": c.itemize(),
                });
                println!("{v}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_follows_the_byte_rate() {
        let ten = Duration::from_secs(10);
        assert_eq!(left(0, 100, ten), None);
        assert_eq!(left(1, 100, Duration::from_millis(300)), None);
        assert_eq!(left(25, 100, ten), Some(Duration::from_secs(30)));
        assert_eq!(left(100, 100, ten), Some(Duration::ZERO));
        // More written than counted (the tree grew): nothing left, not negative.
        assert_eq!(left(150, 100, ten), Some(Duration::ZERO));
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(short_duration(Duration::from_secs(7620)), "2h07m");
    }
}
