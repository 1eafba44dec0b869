//! The subcommands: turn parsed arguments into library calls.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cryptbak::config::{Config, Format, InitOptions};
use cryptbak::cryptor::Cryptor;
use cryptbak::exclude::{Excludes, Selection};
use cryptbak::keys::MasterKey;
use cryptbak::names::REVERSE_CONF_NAME;
use cryptbak::sink::dir::{DestLock, DirOptions, DirSink};
use cryptbak::sync;
use cryptbak::view::{View, ViewOptions, ViewVersion};
use cryptbak::walk::{self, Summary};
use cryptbak::{Error, Result};

use super::args::{Compat, ExportArgs, InitArgs, KeyArgs, PasswordArgs, SelectArgs};
use super::exit;
use super::password::{read_master_key, PasswordSource};
use super::report::{self, show_path, Output, StderrReport};

pub(crate) fn password_source(p: &PasswordArgs, confirm: bool) -> PasswordSource {
    if !p.passfile.is_empty() {
        PasswordSource::Files(p.passfile.clone())
    } else if !p.extpass.is_empty() {
        PasswordSource::Command(p.extpass.clone())
    } else {
        PasswordSource::Prompt { confirm }
    }
}

pub(crate) fn warn_to_stderr(msg: String) {
    report::warn(&msg);
}

pub fn init(a: &InitArgs) -> Result<i32> {
    let path = a
        .config
        .clone()
        .unwrap_or_else(|| a.src.join(REVERSE_CONF_NAME));
    if !a.src.is_dir() {
        return Err(Error::invalid(&a.src, "not a directory"));
    }
    if path.symlink_metadata().is_ok() {
        return Err(Error::ConfigExists { path });
    }
    let password = password_source(&a.password, true).read(&mut warn_to_stderr)?;
    let opts = InitOptions {
        log_n: a.scryptn,
        deterministic_names: a.deterministic_names,
        plaintext_names: a.plaintextnames,
        long_name_max: a.longnamemax,
    };
    let master = MasterKey::generate();
    let cfg = Config::create(&master, &password, &opts);
    cfg.write_new(&path)?;
    if !a.quiet {
        eprintln!("cryptbak: created {}", show_path(&path));
        if std::io::stderr().is_terminal() {
            // Shown once, on a terminal only, so it never lands in a cron log.
            eprintln!(
                "Your master key is:\n\n    {}\n\nKeep it somewhere safe: with it, the backup can be opened even if the config or the password is lost.",
                master.to_grouped_hex().as_str()
            );
        }
    }
    Ok(exit::OK)
}

/// The master key and the format it is used with, from `--masterkey` or config + password.
pub(crate) struct Unlocked {
    pub(crate) master: MasterKey,
    pub(crate) format: Format,
    /// The format came from a config file (not the `--masterkey` defaults).
    pub(crate) from_config: bool,
}

/// Hint shown when export finds no config.
const EXPORT_CONFIG_HINT: &str =
    "no such file (run `cryptbak init` on the source first, or pass --config or --masterkey)";

pub(crate) fn unlock(key: &KeyArgs, default_config: &Path, missing_hint: &str) -> Result<Unlocked> {
    let config_path = key
        .config
        .clone()
        .unwrap_or_else(|| default_config.to_path_buf());
    if let Some(hex) = &key.masterkey {
        let master = read_master_key(hex, &mut warn_to_stderr)?;
        // gocryptfs -masterkey reads no config; we still honour its flags when one is there,
        // so the output matches what the password would have given.
        let (format, from_config) = match Config::load(&config_path) {
            Ok(cfg) => (cfg.format(), true),
            Err(Error::ConfigUnreadable { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                (Format::DEFAULT_REVERSE, false)
            }
            Err(e) => return Err(e),
        };
        return Ok(Unlocked {
            master,
            format,
            from_config,
        });
    }
    let cfg = Config::load(&config_path).map_err(|e| match e {
        Error::ConfigUnreadable { path, source }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Error::ConfigUnreadable {
                path,
                source: std::io::Error::new(source.kind(), missing_hint.to_string()),
            }
        }
        other => other,
    })?;
    let password = password_source(&key.password, false).read(&mut warn_to_stderr)?;
    let master = cfg
        .unlock(&password)
        .ok_or(Error::WrongPassword { path: config_path })?;
    Ok(Unlocked {
        master,
        format: cfg.format(),
        from_config: true,
    })
}

pub(crate) fn set_threads(jobs: Option<usize>) {
    // Deep trees recurse once per level; give workers room for paths of PATH_MAX depth.
    let mut b = rayon::ThreadPoolBuilder::new().stack_size(64 << 20);
    if let Some(j) = jobs {
        b = b.num_threads(j.max(1));
    }
    let _ = b.build_global();
}

/// Whether one path lies inside the other (the destination need not exist yet).
pub(crate) fn same_place(a: &Path, b: &Path) -> bool {
    fn resolve(p: &Path) -> Option<PathBuf> {
        let mut missing = Vec::new();
        let mut cur = p.to_path_buf();
        loop {
            if let Ok(c) = cur.canonicalize() {
                return Some(missing.iter().rev().fold(c, |acc, part| acc.join(part)));
            }
            missing.push(cur.file_name()?.to_os_string());
            cur = match cur.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            };
        }
    }
    match (resolve(a), resolve(b)) {
        (Some(x), Some(y)) => y.starts_with(&x) || x.starts_with(&y),
        _ => false,
    }
}

/// The selection options as the view takes them; reads the `--exclude-from` files.
pub fn selection(a: &SelectArgs) -> Result<Selection> {
    for p in &a.exclude {
        if p.starts_with('/') {
            report::warn(&format!(
                "--exclude {}: the path is relative to SRC; with a leading slash it matches nothing (as in gocryptfs). Did you mean --exclude {}?",
                report::sanitize(p),
                report::sanitize(p.trim_start_matches('/'))
            ));
        }
    }
    let mut files = Vec::with_capacity(a.exclude_from.len());
    for f in &a.exclude_from {
        files.push((f.as_path(), std::fs::read(f).map_err(|e| Error::io(f, e))?));
    }
    let excludes = Excludes::from_options(
        a.exclude.iter().map(String::as_str),
        a.exclude_wildcard.iter().map(String::as_str),
        files.iter().map(|(p, c)| (*p, c.as_slice())),
    )
    .map_err(|e| Error::Usage(report::sanitize(&e.to_string())))?;
    for name in &a.exclude_if_present {
        let b = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str());
        if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
            return Err(Error::Usage(format!(
                "--exclude-if-present {}: NAME must be a plain file name (no '/', not '.' or '..')",
                report::sanitize(&name.to_string_lossy())
            )));
        }
    }
    Ok(Selection {
        excludes,
        one_file_system: a.one_file_system,
        exclude_caches: a.exclude_caches,
        exclude_if_present: a.exclude_if_present.clone(),
    })
}

pub fn export(a: &ExportArgs) -> Result<i32> {
    let started = Instant::now();
    if !a.src.is_dir() {
        return Err(Error::invalid(&a.src, "not a directory"));
    }
    let selection = selection(&a.select)?;
    if let Some(tar) = &a.tar {
        super::tar::check_output(tar, &a.src)?;
    }
    if a.dest.as_ref().is_some_and(|dest| same_place(&a.src, dest)) {
        return Err(Error::Usage(
            "DEST must not be inside SRC (or SRC inside DEST)".into(),
        ));
    }
    let unlocked = unlock(&a.key, &a.src.join(REVERSE_CONF_NAME), EXPORT_CONFIG_HINT)?;
    set_threads(a.jobs);
    // Reverse mode needs AES-SIV: the library refuses other formats.
    let cryptor =
        Cryptor::new(&unlocked.master, unlocked.format).map_err(|e| Error::ConfigUnsupported {
            path: a
                .key
                .config
                .clone()
                .unwrap_or_else(|| a.src.join(REVERSE_CONF_NAME)),
            msg: e.to_string(),
        })?;
    drop(unlocked);
    let opts = ViewOptions {
        config_in_root: a.key.config.is_none(),
        version: match a.compat {
            Compat::V2_3 => ViewVersion::V2_3,
            Compat::V2_5 => ViewVersion::V2_5,
        },
        selection,
    };
    let view = View::new(a.src.clone(), cryptor, opts);
    let Some(dest) = &a.dest else {
        let tar = a.tar.as_deref().expect("clap requires DEST or --tar");
        let progress = StderrReport::new(a.quiet, Output::Quiet, !a.no_progress);
        let summary = super::tar::export(&view, tar, &progress);
        progress.finish();
        return Ok(super::tar::report(&summary?, tar, a.quiet, started));
    };

    if !a.dry_run {
        std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    }
    let _lock = if dest.exists() {
        Some(DestLock::acquire(dest)?)
    } else {
        None
    };
    // The config in DEST proves nothing about a key given with --masterkey.
    sync::check_dest_key(dest, &view, a.key.masterkey.is_none())?;

    let sink = DirSink::new(
        dest.clone(),
        DirOptions {
            dry_run: a.dry_run,
            checksum: a.checksum,
            delete: !a.no_delete,
            max_delete: a.max_delete,
        },
    );
    let output = if a.json {
        Output::Json
    } else if a.verbose || a.dry_run {
        Output::Itemize
    } else {
        Output::Quiet
    };
    let progress = StderrReport::new(a.quiet, output, !a.no_progress);
    let summary = walk::export(&view, &sink, &progress);
    progress.finish();
    let summary = summary?;
    if a.json {
        print_json_summary(&summary, started);
    } else if !a.quiet {
        print_summary(&summary, started, dest, a.dry_run);
    }
    Ok(if summary.errors > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

fn print_summary(s: &Summary, started: Instant, dest: &Path, dry_run: bool) {
    let secs = started.elapsed().as_secs_f64();
    let mb = s.bytes_read as f64 / 1e6;
    eprintln!(
        "cryptbak: {}{} files, {} dirs, {} symlinks, {} special, {} hard links in {}: \
{} written, {} metadata only, {} unchanged, {} deleted; {:.1} MB read, {:.1} MB written, {:.2} s, {:.0} MB/s{}",
        if dry_run { "DRY RUN, nothing changed: " } else { "" },
        s.files,
        s.dirs,
        s.symlinks,
        s.specials,
        s.hard_links,
        show_path(dest),
        s.written,
        s.metadata_only,
        s.unchanged,
        s.deleted,
        mb,
        s.bytes_written as f64 / 1e6,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        if s.errors > 0 { format!("; {} ERRORS, the backup is incomplete", s.errors) } else { String::new() }
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

pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    use clap::CommandFactory;
    let mut cmd = super::args::Cli::command();
    clap_complete::generate(shell, &mut cmd, "cryptbak", &mut std::io::stdout());
    Ok(exit::OK)
}

/// Man pages generated from the clap definitions, so they never drift from `--help`
/// (a test regenerates them and compares with the committed `man/`).
pub fn man_pages(dir: &Path) -> Result<i32> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cmd = super::args::Cli::command();
    let render = |c: clap::Command, name: &str| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(c)
            .render(&mut out)
            .map_err(|e| Error::io(&path, e))?;
        std::fs::write(&path, out).map_err(|e| Error::io(&path, e))
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("cryptbak-{}", sub.get_name());
        render(sub.clone().name(name.clone()), &name)?;
    }
    render(cmd, "cryptbak")?;
    Ok(exit::OK)
}
