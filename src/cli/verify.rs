//! `cryptbak verify`: authenticate a backup without writing plaintext (a restore into a
//! writer that discards), and with `--source` compare it with a fresh encryption of the
//! source (see docs/verify.md).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cryptbak::export::plan::{Action, Change};
use cryptbak::export::{export_tree, TreeOptions};
use cryptbak::format::names::CONF_NAME;
use cryptbak::format::Cryptor;
use cryptbak::progress::{Problem, Progress, Severity};
use cryptbak::restore::{Aead, Layout};
use cryptbak::sink::dir::DirSink;
use cryptbak::sink::remote::RemoteSink;
use cryptbak::sink::TreeSink;
use cryptbak::verify::{self, Summary, VerifyOptions};
use cryptbak::view::View;
use cryptbak::{Error, Result};

use super::args::{SelectArgs, VerifyArgs};
use super::commands::{same_place, set_threads};
use super::exit;
use super::report::{count, sanitize, show_path, Output, StderrReport};
use super::restore::{
    backup_url, key_args, keys_from_files, keys_from_store, local_backup, open_remote,
    policy_notes, tar_input, tar_keys, tar_unlock,
};
use super::source::{open_dir_arg, open_source, Source};

const SOURCE_CONFIG_HINT: &str =
    "no such file (the source's config gives the keys with --source; pass --config or --masterkey otherwise)";

/// Collects the changes a dry-run export into BACKUP would make: each is a difference.
struct Differences<'a> {
    inner: &'a StderrReport,
    changes: Mutex<Vec<Change>>,
    errors: AtomicU64,
}

impl Progress for Differences<'_> {
    fn problem(&self, p: &Problem) {
        if p.severity == Severity::Error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.problem(p);
    }

    fn change(&self, c: &Change) {
        if c.action != Action::Unchanged {
            self.changes
                .lock()
                .expect("no panics while held")
                .push(c.clone());
        }
    }
}

fn selects_anything(s: &SelectArgs) -> bool {
    !s.exclude.is_empty()
        || !s.exclude_wildcard.is_empty()
        || !s.exclude_from.is_empty()
        || s.one_file_system
        || s.exclude_caches
        || !s.exclude_if_present.is_empty()
}

pub fn verify(a: &VerifyArgs) -> Result<i32> {
    let started = Instant::now();
    if let Some(url) = backup_url(&a.backup) {
        return verify_remote(a, url, started);
    }
    local_backup(&a.remote)?;
    let stdin = a.tar && a.backup.as_os_str() == "-";
    if !a.tar && !a.backup.is_dir() {
        return Err(super::source::not_a_backup_dir(&a.backup));
    }
    if a.tar && !stdin && !a.backup.exists() {
        return Err(Error::invalid(&a.backup, "no such file or directory"));
    }
    if a.source.is_none() && selects_anything(&a.select) {
        return Err(Error::Usage(
            "the selection options only apply with --source".into(),
        ));
    }
    set_threads(a.jobs);
    let progress = StderrReport::new(false, Output::Quiet, false).with_details(a.verbose);
    if a.tar {
        let (in_stream, now) = tar_keys(&a.key)?;
        let input = tar_input(&a.backup)?;
        let opts = VerifyOptions {
            expect_reverse: a.reverse,
        };
        let summary = verify::verify_tar(
            input,
            &a.backup,
            tar_unlock(&a.key, now),
            in_stream,
            &opts,
            &progress,
        )?;
        return Ok(report(a, &summary, &[], 0, started));
    }
    // With --source, one unlock gives the keys of both sides (one password prompt).
    let (keys, view) = match &a.source {
        None => (keys_from_files(&a.key, &a.backup.join(CONF_NAME))?, None),
        Some(src) => {
            if same_place(src, &a.backup) {
                return Err(Error::Usage(
                    "BACKUP must not be inside SRC (or SRC inside BACKUP)".into(),
                ));
            }
            let (keys, source) = source_and_keys(a, src)?;
            (keys, Some((source.dir, source.view)))
        }
    };
    let opts = VerifyOptions {
        // An export's tree is reverse-made by construction.
        expect_reverse: a.reverse || a.source.is_some(),
    };
    let summary = verify::verify_dir(&a.backup, keys, &opts, &progress)?;

    let (diffs, compare_errors) = match view {
        Some((src_dir, view)) => {
            let backup = open_dir_arg(&a.backup, "BACKUP")?;
            let sink = DirSink::new(Some(backup), a.backup.clone(), false);
            differences(&view, src_dir, &sink, false, &progress)?
        }
        None => (Vec::new(), 0),
    };
    Ok(finish(a, &summary, &diffs, compare_errors, started))
}

/// `--source SRC`: open it, and make the keys for reading the backup from its key (one
/// unlock, one password prompt, for both sides).
fn source_and_keys(a: &VerifyArgs, src: &Path) -> Result<(Cryptor, Source)> {
    let source = open_source(
        src,
        &key_args(&a.key),
        a.compat,
        &a.select,
        SOURCE_CONFIG_HINT,
    )?;
    Ok((source.backup_keys()?, source))
}

/// The plan of an export into BACKUP, with --checksum: every entry of it is a
/// difference. Returns them, sorted, and the number of entries that could not be
/// compared.
fn differences<S: TreeSink>(
    view: &View,
    src_dir: cryptbak::fs::Dir,
    sink: &S,
    owners: bool,
    progress: &StderrReport,
) -> Result<(Vec<Change>, u64)> {
    let d = Differences {
        inner: progress,
        changes: Mutex::new(Vec::new()),
        errors: AtomicU64::new(0),
    };
    let opts = TreeOptions {
        dry_run: true,
        checksum: true,
        owners,
        ..TreeOptions::default()
    };
    let s = export_tree(view, src_dir, sink, &opts, &d)?;
    let errors = s.errors.max(d.errors.load(Ordering::Relaxed));
    let mut diffs = d.changes.into_inner().expect("no panics while held");
    diffs.sort_by(|x, y| x.cpath.cmp(&y.cpath));
    Ok((diffs, errors))
}

/// `verify s3://…` or `sftp://…`: the same reader over the remote source; with
/// --source, the plan of an export into the location.
fn verify_remote(a: &VerifyArgs, url: &str, started: Instant) -> Result<i32> {
    if a.tar {
        return Err(Error::Usage(
            "--tar reads a tar stream; an s3:// or sftp:// BACKUP is a tree".into(),
        ));
    }
    if a.source.is_none() && selects_anything(&a.select) {
        return Err(Error::Usage(
            "the selection options only apply with --source".into(),
        ));
    }
    let store = open_remote(url, a.jobs, &a.remote)?;
    let progress = StderrReport::new(false, Output::Quiet, false).with_details(a.verbose);
    let (keys, source) = match &a.source {
        None => (keys_from_store(&a.key, &store)?, None),
        Some(src) => {
            let (keys, source) = source_and_keys(a, src)?;
            (keys, Some(source))
        }
    };
    let opts = VerifyOptions {
        expect_reverse: a.reverse || a.source.is_some(),
    };
    let cache = super::cache::load(&store);
    let summary = verify::verify_remote(&store, cache.as_ref(), keys, &opts, &progress)?;
    let (diffs, compare_errors) = match source {
        Some(source) => {
            let (sink, problems) = RemoteSink::open(&store, cache.as_ref())?;
            for p in problems {
                progress.problem(&Problem::error(&a.backup, p.to_string()));
            }
            differences(&source.view, source.dir, &sink, store.is_s3(), &progress)?
        }
        None => (Vec::new(), 0),
    };
    Ok(finish(a, &summary, &diffs, compare_errors, started))
}

/// The differences (stdout), the summary or JSON, and the exit code.
fn finish(
    a: &VerifyArgs,
    summary: &Summary,
    diffs: &[Change],
    compare_errors: u64,
    started: Instant,
) -> i32 {
    if !a.json {
        // Each line names the plaintext (the plan knows it), as export -v does.
        for c in diffs {
            println!("{}", sanitize(&c.itemize()));
        }
    }
    report(a, summary, diffs, compare_errors, started)
}

/// Print the summary (or JSON) and return the exit code.
fn report(
    a: &VerifyArgs,
    summary: &Summary,
    diffs: &[Change],
    compare_errors: u64,
    started: Instant,
) -> i32 {
    if a.json {
        print_json(summary, diffs, compare_errors, started);
    } else if !a.quiet {
        print_summary(
            summary,
            a.source
                .as_deref()
                .map(|s| (s, diffs.len(), compare_errors)),
            &a.backup,
            started,
        );
    }
    if summary.integrity_errors > 0 {
        exit::INTEGRITY
    } else if summary.errors > 0 || compare_errors > 0 || !diffs.is_empty() {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

/// Everything that authenticated: files, symlinks and names.
fn authenticated(s: &Summary) -> u64 {
    s.files + s.symlinks + s.names
}

/// What the format authenticates and what not, said once per run (docs/verify.md).
fn authentication_note(s: &Summary) -> String {
    let place = if s.layout == Layout::Reverse {
        ", and (reverse-made backup) each entry's place in the tree"
    } else {
        ""
    };
    format!(
        "cryptbak: authenticated: file contents, names and symlink targets{place}; not authenticated (the format cannot): owners, modes, times, file types"
    )
}

fn print_summary(
    s: &Summary,
    compared: Option<(&Path, usize, u64)>,
    backup: &Path,
    started: Instant,
) {
    let secs = started.elapsed().as_secs_f64();
    let mb = s.bytes as f64 / 1e6;
    let mut tail = policy_notes(s, false);
    if s.integrity_errors > 0 {
        tail.push_str(&format!(
            "; {} INTEGRITY ERRORS (tampered or damaged backup)",
            s.integrity_errors
        ));
        if authenticated(s) == 0 {
            tail.push_str(
                "; nothing authenticated: is this the right key or config for this backup?",
            );
        }
    }
    if s.errors > 0 {
        tail.push_str(&format!(
            "; {} could not be read",
            count(s.errors, "entry", "entries")
        ));
    }
    if let Some((src, n, errors)) = compared {
        if n == 0 && errors == 0 {
            tail.push_str(&format!("; identical to {}", show_path(src)));
        } else {
            tail.push_str(&format!(
                "; DOES NOT MATCH {}: {}{}",
                show_path(src),
                count(n as u64, "difference", "differences"),
                if errors > 0 {
                    format!(
                        ", {} could not be read",
                        count(errors, "source entry", "source entries")
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    let ok =
        s.integrity_errors == 0 && s.errors == 0 && compared.is_none_or(|c| c.1 == 0 && c.2 == 0);
    eprintln!(
        "cryptbak: verified {}: {} authenticated ({}) in {:.2} s ({:.0} MB/s); backup: {}, {}{tail}{}",
        show_path(backup),
        super::restore::restore_kinds(s),
        count(s.names, "name", "names"),
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        s.layout.describe(),
        s.aead.map_or("no content", Aead::name),
        if ok { "; OK" } else { "" }
    );
    eprintln!("{}", authentication_note(s));
}

fn print_json(s: &Summary, diffs: &[Change], compare_errors: u64, started: Instant) {
    let differences: Vec<serde_json::Value> = diffs
        .iter()
        .map(|c| {
            serde_json::json!({
                "itemized": c.itemize(),
                "path": c.path.as_ref().map(|p| p.to_string_lossy()),
                "view_file": c.view_file,
                "cpath": c.cpath.to_string_lossy(),
            })
        })
        .collect();
    let v = serde_json::json!({
        "event": "summary",
        "ok": s.integrity_errors == 0 && s.errors == 0 && diffs.is_empty() && compare_errors == 0,
        "files": s.files,
        "dirs": s.dirs,
        "names": s.names,
        "symlinks": s.symlinks,
        "specials": s.specials,
        "hard_links": s.hard_links,
        "bytes_authenticated": s.bytes,
        "layout": match s.layout { Layout::Reverse => "reverse", _ => "forward" },
        "aead": s.aead.map(Aead::name),
        "warnings": s.warnings,
        "errors": s.errors,
        "integrity_errors": s.integrity_errors,
        "split_hard_links_rejoined": s.rejoined,
        "setuid_dropped": s.setuid_dropped,
        "devices_skipped": s.devices_skipped,
        "differences": differences,
        "compare_errors": compare_errors,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{v}");
}
