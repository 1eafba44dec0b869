//! `cryptbak export`: into a directory, a tar stream, or an `s3://`/`sftp://` location;
//! one export driver behind all three (see `cryptbak::export`).

use std::path::Path;
use std::time::Instant;

use cryptbak::export::{export_tree, Summary, TreeOptions};
use cryptbak::fs::lock::RunLock;
use cryptbak::fs::Dir;
use cryptbak::remote::Location;
use cryptbak::sink::dir::DirSink;
use cryptbak::sink::remote::RemoteSink;
use cryptbak::{Error, Result};

use super::args::ExportArgs;
use super::commands::{same_place, set_threads};
use super::exit;
use super::report::{self, show_path, Output, StderrReport};
use super::source::{open_dir_arg, open_source};

/// Hint shown when export finds no config.
const EXPORT_CONFIG_HINT: &str =
    "no such file (run `cryptbak init` on the source first, or pass --config or --masterkey)";

pub fn export(a: &ExportArgs) -> Result<i32> {
    let started = Instant::now();
    if let Some(tar) = &a.tar {
        super::tar::check_output(tar, &a.src)?;
    }
    let url = a
        .dest
        .as_ref()
        .and_then(|d| d.to_str())
        .filter(|d| Location::is_url(d));
    if let Some(url) = url {
        let loc = Location::parse(url)
            .map_err(|e| Error::Usage(format!("DEST {}: {e}", report::sanitize(url))))?;
        return export_remote(a, &loc, started);
    }
    if a.transfers.is_some() || a.break_lock {
        return Err(Error::Usage(
            "--transfers and --break-lock apply to an s3:// or sftp:// DEST only".into(),
        ));
    }
    if a.dest.as_ref().is_some_and(|dest| same_place(&a.src, dest)) {
        return Err(Error::Usage(
            "DEST must not be inside SRC (or SRC inside DEST)".into(),
        ));
    }
    let source = open_source(&a.src, &a.key, a.compat, &a.select, EXPORT_CONFIG_HINT)?;
    set_threads(a.jobs);
    // Every mode is set explicitly, and special files get theirs at creation.
    rustix::process::umask(rustix::fs::Mode::empty());
    let Some(dest) = &a.dest else {
        let tar = a.tar.as_deref().expect("clap requires DEST or --tar");
        let progress = StderrReport::new(a.quiet, Output::Quiet, !a.no_progress);
        let summary = with_view_total(&source.view, &source.dir, &progress, || {
            let dir = source.dir.try_clone().map_err(|e| Error::io(&a.src, e))?;
            super::tar::export(&source.view, dir, tar, &progress)
        });
        progress.finish();
        return Ok(super::tar::report(&summary?, tar, a.quiet, started));
    };

    let root = running_as_root();
    if root {
        warn_if_shared(dest);
    }
    if std::fs::metadata(dest).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::invalid(dest, "DEST is a file, not a directory"));
    }
    // DEST as the user named it is followed like any command-line path (cp, rsync do
    // the same; a /backup symlink to a disk is legitimate, and warn_if_shared has
    // said whether others can change the way there). Below it, only handles.
    if !a.dry_run {
        std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    }
    let dest_dir = match open_dir_arg(dest, "DEST") {
        Ok(d) => Some(d),
        Err(_) if a.dry_run && !dest.exists() => None,
        Err(e) => return Err(e),
    };
    let _lock = dest_dir.as_ref().map(RunLock::acquire).transpose()?;
    let sink = DirSink::new(dest_dir, dest.clone(), root);
    sink.check_key(
        source.view.cryptor(),
        source.key_config.as_deref().map(Vec::as_slice),
    )?;

    let progress = tree_report(a);
    let opts = tree_options(a, root, !a.no_sync);
    let summary = run_tree(a, &source, &sink, &opts, &progress);
    sink.close();
    progress.finish();
    finish_export(a, &summary?, started, &show_path(dest))
}

/// How an export into a tree reports: change lists with `-v`, `-n` or `--json`, and the
/// progress line on a terminal.
fn tree_report(a: &ExportArgs) -> StderrReport {
    let output = if a.json {
        Output::Json
    } else if a.verbose || a.dry_run {
        Output::Itemize
    } else {
        Output::Quiet
    };
    StderrReport::new(a.quiet, output, !a.no_progress)
}

/// The plan's options from the command line; `owners` when the destination can take
/// them, `sync` when it needs flushing to be durable.
fn tree_options(a: &ExportArgs, owners: bool, sync: bool) -> TreeOptions {
    TreeOptions {
        dry_run: a.dry_run,
        checksum: a.checksum,
        delete: !a.no_delete,
        max_delete: a.max_delete,
        owners,
        sync,
        ..TreeOptions::default()
    }
}

/// Export the source into a tree sink, counting it alongside for the progress line.
fn run_tree<S: cryptbak::sink::TreeSink>(
    a: &ExportArgs,
    source: &super::source::Source,
    sink: &S,
    opts: &TreeOptions,
    progress: &StderrReport,
) -> Result<Summary> {
    with_view_total(&source.view, &source.dir, progress, || {
        let dir = source.dir.try_clone().map_err(|e| Error::io(&a.src, e))?;
        export_tree(&source.view, dir, sink, opts, progress)
    })
}

/// The summary line (or JSON object) and the exit code of an export into a tree.
fn finish_export(a: &ExportArgs, summary: &Summary, started: Instant, dest: &str) -> Result<i32> {
    if a.json {
        print_json_summary(summary, started);
    } else if !a.quiet {
        print_summary(summary, started, dest, a.dry_run);
    }
    Ok(if summary.errors > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// `export SRC s3://…` or `sftp://…`: the same driver and plan, into a [`RemoteSink`].
fn export_remote(a: &ExportArgs, loc: &Location, started: Instant) -> Result<i32> {
    use cryptbak::remote::{Env, Options, Store};

    let source = open_source(&a.src, &a.key, a.compat, &a.select, EXPORT_CONFIG_HINT)?;
    let mut store_opts = Options::default();
    if let Some(t) = a.transfers {
        store_opts.transfers = usize::from(t);
    }
    // Uploads run on the worker threads, each blocked on the network while its object
    // is sent: at least one thread per transfer.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    set_threads(Some(a.jobs.unwrap_or(cores).max(store_opts.transfers)));
    rustix::process::umask(rustix::fs::Mode::empty());
    let store = Store::open(loc, &Env::from_process(), store_opts)?;
    // A dry run changes nothing, the lock object included.
    let lock = if a.dry_run {
        None
    } else {
        if matches!(loc, Location::Sftp { .. }) {
            // The lock lives in the directory, which must exist for it.
            store.mkdir("", &Default::default())?;
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "an unknown host".into());
        if a.break_lock {
            store.break_lock()?;
        }
        let lock = store
            .lock(&format!(
                "cryptbak export on {host}, pid {}",
                std::process::id()
            ))
            .map_err(|mut e| {
                if e.kind == cryptbak::remote::ErrorKind::Locked {
                    e.msg = e.msg.replace(
                        "remove the lock object and run again",
                        "run again with --break-lock",
                    );
                }
                e
            })?;
        if !lock.enforced() {
            report::warn(&format!(
                "{loc}: the service ignores conditional writes (If-None-Match), so the lock object cannot keep out a second run that starts at the same moment; do not run two exports into one prefix at once"
            ));
        }
        Some(lock)
    };
    let cache = super::cache::load(&store);
    let (sink, problems) = RemoteSink::open(&store, cache.as_ref())?;
    const SHOWN: usize = 10;
    for p in problems.iter().take(SHOWN) {
        report::warn(&format!(
            "{}; it will be uploaded again",
            report::sanitize(&p.to_string())
        ));
    }
    if problems.len() > SHOWN {
        report::warn(&format!(
            "metadata of {} more objects could not be read",
            problems.len() - SHOWN
        ));
    }
    sink.check_key(
        source.view.cryptor(),
        source.key_config.as_deref().map(Vec::as_slice),
    )?;
    let progress = tree_report(a);
    // Owners are stored on S3 (rclone's uid and gid keys) whoever runs the export; SFTP
    // cannot set them. What durability takes is the sink's business.
    let opts = tree_options(a, matches!(loc, Location::S3 { .. }), true);
    let summary = run_tree(a, &source, &sink, &opts, &progress);
    progress.finish();
    // A failure that doomed every request (credentials, the bucket, the connection)
    // stopped the run: that, not the stop, is what to report.
    if let Some(e) = sink.fatal() {
        return Err(e.clone().into());
    }
    let summary = summary?;
    if !a.dry_run {
        super::cache::save(&store, |id| sink.updated_cache(id));
    }
    if let Some(lock) = lock {
        if let Err(e) = sink.unlock(lock) {
            report::warn(&format!(
                "{}; remove the lock object before the next run",
                report::sanitize(&e.to_string())
            ));
        }
    }
    finish_export(a, &summary, started, &report::sanitize(&loc.to_string()))
}

/// Run `work` with the view of `src` counted alongside for the progress line's total.
fn with_view_total<T: Send>(
    view: &cryptbak::view::View,
    src: &Dir,
    progress: &StderrReport,
    work: impl FnOnce() -> T + Send,
) -> T {
    cryptbak::progress::with_total(
        progress,
        |stop| cryptbak::export::count(view, src, stop),
        work,
    )
}

pub(crate) fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A root export writes files owned by other users, so DEST and every directory above it
/// must be changeable by root alone: whoever else can write there can put a symlink or
/// another directory in DEST's place before the run opens it. A sticky directory such
/// as /tmp protects what root owns in it, so only its other entries count.
fn warn_if_shared(dest: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(mut p) = dest.canonicalize().or_else(|_| {
        dest.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .canonicalize()
    }) else {
        return;
    };
    // The owner of the entry below `p` on the way to DEST (`None` for DEST itself).
    let mut child_owner: Option<u32> = None;
    loop {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            return;
        };
        let writable_by_others = m.mode() & 0o002 != 0 || (m.mode() & 0o020 != 0 && m.gid() != 0);
        let sticky_protects = m.mode() & 0o1000 != 0 && child_owner == Some(0);
        if m.uid() != 0 || (writable_by_others && !sticky_protects) {
            report::warn(&format!(
                "{} can be changed by users other than root (owner uid {}, mode {:o}): a root export should write to a destination only root can reach, such as a directory under /var/backups",
                show_path(&p),
                m.uid(),
                m.mode() & 0o7777
            ));
            return;
        }
        child_owner = Some(m.uid());
        if !p.pop() {
            return;
        }
    }
}

/// One line, whose numbers add up: every entry of the view is one of the kinds listed,
/// and was written, updated in place or left unchanged.
fn print_summary(s: &Summary, started: Instant, dest: &str, dry_run: bool) {
    let secs = started.elapsed().as_secs_f64();
    let mb = s.bytes_read as f64 / 1e6;
    eprintln!(
        "cryptbak: {}{} in {}: {} written, {} updated in place, {} unchanged, {} deleted; {:.1} MB written, {:.2} s, {:.0} MB/s{}",
        if dry_run { "DRY RUN, nothing changed: " } else { "" },
        report::export_kinds(s),
        dest,
        s.written,
        s.metadata_only,
        s.unchanged,
        s.deleted,
        s.bytes_written as f64 / 1e6,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        report::errors_tail(s.errors, "the backup is incomplete")
    );
}

fn print_json_summary(s: &Summary, started: Instant) {
    let v = serde_json::json!({
        "event": "summary",
        "files": s.files,
        "dirs": s.dirs,
        "symlinks": s.symlinks,
        "specials": s.specials,
        "virtual_files": s.virtual_files,
        "hard_links": s.hard_links,
        "written": s.written,
        "metadata_only": s.metadata_only,
        "unchanged": s.unchanged,
        "deleted": s.deleted,
        "bytes_read": s.bytes_read,
        "bytes_written": s.bytes_written,
        "warnings": s.warnings,
        "errors": s.errors,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{v}");
}
