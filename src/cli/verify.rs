//! `cryptbak verify`: authenticate a backup without writing plaintext, and with
//! `--source` compare it with a fresh encryption of the source (see docs/verify.md).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cryptbak::format::names::{CONF_NAME, REVERSE_CONF_NAME};
use cryptbak::format::Cryptor;
use cryptbak::progress::{Problem, Progress, Severity};
use cryptbak::restore::{Aead, Layout};
use cryptbak::sink::dir::{DirOptions, DirSink};
use cryptbak::sync::{Action, Change};
use cryptbak::verify::{self, PathNames, Summary, VerifyOptions};
use cryptbak::view::{View, ViewOptions, ViewVersion};
use cryptbak::{walk, Error, Result};

use super::args::{Compat, SelectArgs, VerifyArgs};
use super::commands::{same_place, selection, set_threads, unlock};
use super::exit;
use super::report::{sanitize, show_path, Output, StderrReport};
use super::restore::{key_args, unlock_backup};

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
    if !a.backup.is_dir() {
        return Err(Error::invalid(&a.backup, "not a directory"));
    }
    if a.source.is_none() && selects_anything(&a.select) {
        return Err(Error::Usage(
            "the selection options only apply with --source".into(),
        ));
    }
    // With --source, one unlock gives the keys of both sides (one password prompt).
    let (keys, names, view) = match &a.source {
        None => {
            let default = a.backup.join(CONF_NAME);
            let (u, aead) = unlock_backup(&a.key, &default)?;
            let names = PathNames::new(&a.backup, &u.master, u.format);
            let keys = Cryptor::for_reading(&u.master, u.format, aead).map_err(|e| {
                Error::ConfigUnsupported {
                    path: a.key.config.clone().unwrap_or(default),
                    msg: e.to_string(),
                }
            })?;
            (keys, names, None)
        }
        Some(src) => {
            if !src.is_dir() {
                return Err(Error::invalid(src, "not a directory"));
            }
            if same_place(src, &a.backup) {
                return Err(Error::Usage(
                    "BACKUP must not be inside SRC (or SRC inside BACKUP)".into(),
                ));
            }
            let selection = selection(&a.select)?;
            let u = unlock(
                &key_args(&a.key),
                &src.join(REVERSE_CONF_NAME),
                SOURCE_CONFIG_HINT,
            )?;
            let unsupported = |e: cryptbak::format::FormatError| Error::ConfigUnsupported {
                path: a
                    .key
                    .config
                    .clone()
                    .unwrap_or_else(|| src.join(REVERSE_CONF_NAME)),
                msg: e.to_string(),
            };
            let cryptor = Cryptor::new(&u.master, u.format).map_err(unsupported)?;
            let opts = ViewOptions {
                config_in_root: a.key.config.is_none(),
                version: match a.compat {
                    Compat::V2_3 => ViewVersion::V2_3,
                    Compat::V2_5 => ViewVersion::V2_5,
                },
                selection,
            };
            let keys = Cryptor::new(&u.master, u.format).map_err(unsupported)?;
            let names = PathNames::new(&a.backup, &u.master, u.format);
            (keys, names, Some(View::new(src.clone(), cryptor, opts)))
        }
    };
    set_threads(a.jobs);
    let progress = StderrReport::new(false, Output::Quiet, false);
    let opts = VerifyOptions {
        // An export's tree is reverse-made by construction.
        expect_reverse: a.reverse || view.is_some(),
    };
    let summary = verify::verify_dir(&a.backup, keys, &opts, &progress)?;

    let mut diffs = Vec::new();
    let mut compare_errors = 0;
    if let Some(view) = &view {
        let sink = DirSink::new(
            a.backup.clone(),
            DirOptions {
                dry_run: true,
                checksum: true,
                delete: true,
                max_delete: None,
            },
        );
        let d = Differences {
            inner: &progress,
            changes: Mutex::new(Vec::new()),
            errors: AtomicU64::new(0),
        };
        let s = walk::export(view, &sink, &d)?;
        compare_errors = s.errors.max(d.errors.load(Ordering::Relaxed));
        diffs = d.changes.into_inner().expect("no panics while held");
        diffs.sort_by(|x, y| x.cpath.cmp(&y.cpath));
    }
    let plain_of =
        |c: &Change| names.plain(std::os::unix::ffi::OsStrExt::as_bytes(c.cpath.as_os_str()));
    if !a.json {
        for c in &diffs {
            let plain = plain_of(c)
                .map(|p| format!("  [plaintext: {}]", show_path(&p)))
                .unwrap_or_default();
            println!("{}{plain}", sanitize(&c.itemize()));
        }
    }
    if a.json {
        print_json(&summary, &diffs, compare_errors, &plain_of, started);
    } else if !a.quiet {
        print_summary(
            &summary,
            a.source
                .as_deref()
                .map(|s| (s, diffs.len(), compare_errors)),
            &a.backup,
            started,
        );
    }
    Ok(if summary.integrity_errors > 0 {
        exit::INTEGRITY
    } else if summary.errors > 0 || compare_errors > 0 || !diffs.is_empty() {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

fn layout_name(s: &Summary) -> &'static str {
    match s.layout {
        Layout::Reverse => "reverse-made (path IVs verified)",
        Layout::Forward | Layout::Unknown => "forward-mode",
    }
}

fn print_summary(
    s: &Summary,
    compared: Option<(&Path, usize, u64)>,
    backup: &Path,
    started: Instant,
) {
    let secs = started.elapsed().as_secs_f64();
    let mb = s.bytes as f64 / 1e6;
    let mut tail = String::new();
    if s.integrity_errors > 0 {
        tail.push_str(&format!(
            "; {} INTEGRITY ERRORS (tampered or damaged backup)",
            s.integrity_errors
        ));
        if s.authenticated == 0 {
            tail.push_str(
                "; nothing authenticated: is this the right key or config for this backup?",
            );
        }
    }
    if s.errors > 0 {
        tail.push_str(&format!("; {} entries could not be read", s.errors));
    }
    if let Some((src, n, errors)) = compared {
        if n == 0 && errors == 0 {
            tail.push_str(&format!("; identical to {}", show_path(src)));
        } else {
            tail.push_str(&format!(
                "; DOES NOT MATCH {}: {n} differences{}",
                show_path(src),
                if errors > 0 {
                    format!(", {errors} source entries could not be read")
                } else {
                    String::new()
                }
            ));
        }
    }
    if s.reverse_hints > 0 && s.layout != Layout::Reverse {
        tail.push_str(&format!(
            "; {} IVs match their paths: if this backup was made by cryptbak export or gocryptfs -reverse, run again with --reverse",
            s.reverse_hints
        ));
    }
    let ok =
        s.integrity_errors == 0 && s.errors == 0 && compared.is_none_or(|c| c.1 == 0 && c.2 == 0);
    eprintln!(
        "cryptbak: verified {}: {} files ({:.1} MB authenticated), {} dirs, {} names, {} symlinks, {} special \
in {:.2} s ({:.0} MB/s); backup: {}, {}{tail}{}",
        show_path(backup),
        s.files,
        mb,
        s.dirs,
        s.names,
        s.symlinks,
        s.specials,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        layout_name(s),
        s.aead.map_or("no content", Aead::name),
        if ok { "; OK" } else { "" }
    );
}

fn print_json(
    s: &Summary,
    diffs: &[Change],
    compare_errors: u64,
    plain_of: &dyn Fn(&Change) -> Option<std::path::PathBuf>,
    started: Instant,
) {
    let differences: Vec<serde_json::Value> = diffs
        .iter()
        .map(|c| {
            serde_json::json!({
                "itemized": c.itemize(),
                "path": c.cpath.to_string_lossy(),
                "plaintext": plain_of(c).map(|p| p.to_string_lossy().into_owned()),
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
        "bytes_authenticated": s.bytes,
        "layout": match s.layout { Layout::Reverse => "reverse", _ => "forward" },
        "aead": s.aead.map(Aead::name),
        "warnings": s.warnings,
        "errors": s.errors,
        "integrity_errors": s.integrity_errors,
        "differences": differences,
        "compare_errors": compare_errors,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{v}");
}
