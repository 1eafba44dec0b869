//! The subcommands: turn parsed arguments into library calls.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cryptbak::exclude::{Excludes, Selection};
use cryptbak::export::{export_tree, Summary, TreeOptions};
use cryptbak::format::config::MAX_CONFIG_LEN;
use cryptbak::format::config::{Config, Format, InitOptions};
use cryptbak::format::keys::MasterKey;
use cryptbak::format::names::REVERSE_CONF_NAME;
use cryptbak::fs::lock::RunLock;
use cryptbak::fs::Dir;
use cryptbak::remote::cache::MetaCache;
use cryptbak::remote::Location;
use cryptbak::sink::dir::DirSink;
use cryptbak::sink::remote::RemoteSink;
use cryptbak::view::Meta;
use cryptbak::{Error, Result};

use super::args::{ExportArgs, InitArgs, KeyArgs, PasswordArgs, SelectArgs};
use super::exit;
use super::password::{read_master_key, PasswordSource};
use super::report::{self, show_path, Output, StderrReport};
use super::source::{open_dir_arg, open_source};

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

/// What the master key is for, said where it is shown (`gocryptfs -init` says as much).
const MASTER_KEY_NOTE: &str = "It opens the backup without the password and without the config \
(cryptbak restore --masterkey, gocryptfs -masterkey): write it down and keep it apart from the \
backup. It is not shown again.";

pub fn init(a: &InitArgs) -> Result<i32> {
    let path = a
        .config
        .clone()
        .unwrap_or_else(|| a.src.join(REVERSE_CONF_NAME));
    open_dir_arg(&a.src, "SRC")?;
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
    // The key file first: if it cannot be written, no config exists whose key is lost.
    let key_file = match &a.masterkey_file {
        Some(f) => Some(write_key_file(f, &master)?),
        None => None,
    };
    if let Err(e) = cfg.write_new(&path) {
        if let Some((dir, name)) = &key_file {
            let _ = dir.unlink_at(name);
        }
        return Err(e);
    }
    if !a.quiet {
        eprintln!("cryptbak: created {}", show_path(&path));
        match &a.masterkey_file {
            Some(f) => eprintln!(
                "cryptbak: master key written to {} (mode 0400). {MASTER_KEY_NOTE}",
                show_path(f)
            ),
            None => println!(
                "Your master key is:\n\n    {}\n\n{MASTER_KEY_NOTE}",
                master.to_grouped_hex().as_str()
            ),
        }
    }
    Ok(exit::OK)
}

/// Write the master key (grouped hex and a newline) to a new file, mode 0400, through
/// its directory's handle: never over an existing file, never through a symlink.
fn write_key_file(path: &Path, master: &MasterKey) -> Result<(Dir, Vec<u8>)> {
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(path, "not a file name"))?
        .as_bytes()
        .to_vec();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = open_dir_arg(parent, "the directory of --masterkey-file")?;
    let mut f = dir.create_new(&name, 0o400).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::invalid(path, "already exists; refusing to overwrite it")
        } else {
            Error::io(path, e)
        }
    })?;
    let mut text = master.to_grouped_hex();
    text.push('\n');
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(path, e));
    if let Err(e) = written {
        let _ = dir.unlink_at(&name);
        return Err(e);
    }
    Ok((dir, name))
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

/// Where a config is read from.
pub(crate) enum ConfigAt<'a> {
    /// A path the user gave (or one derived from it for a backup).
    Path(PathBuf),
    /// `.gocryptfs.reverse.conf` in the source directory, through its handle; `PathBuf`
    /// names it in messages.
    Source(&'a Dir, PathBuf),
    /// A config already read (the `gocryptfs.conf` object of a remote backup), or
    /// `None` when there is none; `PathBuf` names it in messages.
    Bytes(Option<Vec<u8>>, PathBuf),
}

/// A config as read: parsed, its bytes, and the attributes of the file they came from
/// (when read through a handle).
pub(crate) struct LoadedConfig {
    pub(crate) config: Config,
    pub(crate) bytes: Vec<u8>,
    pub(crate) meta: Option<Meta>,
}

fn load_config(at: &ConfigAt) -> Result<LoadedConfig> {
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::ConfigUnreadable { path, source }
    };
    let (bytes, meta, path) = match at {
        // The config of a backup is as untrusted as the rest of it: no FIFO, no huge file.
        ConfigAt::Path(p) => (
            cryptbak::fs::handle::read_small_named(p, MAX_CONFIG_LEN, true)
                .map_err(unreadable(p))?,
            None,
            p,
        ),
        ConfigAt::Source(dir, shown) => {
            let (b, st) = dir
                .read_small_following(REVERSE_CONF_NAME.as_bytes(), MAX_CONFIG_LEN)
                .map_err(unreadable(shown))?;
            (b, Some(Meta::from_stat(&st)), shown)
        }
        ConfigAt::Bytes(b, shown) => match b {
            Some(b) => (b.clone(), None, shown),
            None => {
                return Err(unreadable(shown)(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such object",
                )))
            }
        },
    };
    if bytes.len() > MAX_CONFIG_LEN {
        return Err(Error::ConfigInvalid {
            path: path.clone(),
            msg: "larger than any gocryptfs config".into(),
        });
    }
    let config = Config::parse(&bytes).map_err(|msg| Error::ConfigInvalid {
        path: path.clone(),
        msg,
    })?;
    Ok(LoadedConfig {
        config,
        bytes,
        meta,
    })
}

pub(crate) fn unlock(key: &KeyArgs, default_config: &Path, missing_hint: &str) -> Result<Unlocked> {
    unlock_at(
        key,
        ConfigAt::Path(default_config.to_path_buf()),
        missing_hint,
    )
    .map(|(u, _)| u)
}

/// Unlock the key with `--masterkey`, or with the config (`--config`, else `at`) and the
/// password. Also returns the config as read, when one was.
pub(crate) fn unlock_at(
    key: &KeyArgs,
    at: ConfigAt,
    missing_hint: &str,
) -> Result<(Unlocked, Option<LoadedConfig>)> {
    let at = match &key.config {
        Some(p) => ConfigAt::Path(p.clone()),
        None => at,
    };
    let config_path = match &at {
        ConfigAt::Path(p) | ConfigAt::Source(_, p) | ConfigAt::Bytes(_, p) => p.clone(),
    };
    if let Some(hex) = &key.masterkey {
        let master = read_master_key(hex, &mut warn_to_stderr)?;
        // gocryptfs -masterkey reads no config; we still honour its flags when one is there,
        // so the output matches what the password would have given.
        let loaded = match load_config(&at) {
            Ok(l) => Some(l),
            Err(Error::ConfigUnreadable { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        let format = loaded
            .as_ref()
            .map_or(Format::DEFAULT_REVERSE, |l| l.config.format());
        let unlocked = Unlocked {
            master,
            format,
            from_config: loaded.is_some(),
        };
        return Ok((unlocked, loaded));
    }
    let loaded = load_config(&at).map_err(|e| match e {
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
    let master = loaded
        .config
        .unlock(&password)
        .ok_or(Error::WrongPassword { path: config_path })?;
    let unlocked = Unlocked {
        master,
        format: loaded.config.format(),
        from_config: true,
    };
    Ok((unlocked, Some(loaded)))
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
        let summary = with_total(&source.view, &source.dir, &progress, || {
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

    let output = if a.json {
        Output::Json
    } else if a.verbose || a.dry_run {
        Output::Itemize
    } else {
        Output::Quiet
    };
    let progress = StderrReport::new(a.quiet, output, !a.no_progress);
    let opts = TreeOptions {
        dry_run: a.dry_run,
        checksum: a.checksum,
        delete: !a.no_delete,
        max_delete: a.max_delete,
        owners: root,
        sync: !a.no_sync,
        ..TreeOptions::default()
    };
    let summary = with_total(&source.view, &source.dir, &progress, || {
        export_tree(
            &source.view,
            source.dir.try_clone().map_err(|e| Error::io(&a.src, e))?,
            &sink,
            &opts,
            &progress,
        )
    });
    sink.close();
    progress.finish();
    finish_export(a, &summary?, started, &show_path(dest))
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

/// The largest metadata cache read (about 200 bytes an object: 2.5 million objects).
const MAX_CACHE: usize = 512 << 20;

/// The file name of a location's metadata cache ([`MetaCache`]): a hash of its id, so
/// that neither bucket nor prefix appears in a file name.
fn cache_name(id: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(id.as_bytes());
    let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("remote-{hex}.json")
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
    let cache = store.cache_id().map(|id| {
        let bytes = cryptbak::fs::cache::read(&cache_name(id), MAX_CACHE).unwrap_or_default();
        MetaCache::from_bytes(id, &bytes)
    });
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
    let output = if a.json {
        Output::Json
    } else if a.verbose || a.dry_run {
        Output::Itemize
    } else {
        Output::Quiet
    };
    let progress = StderrReport::new(a.quiet, output, !a.no_progress);
    let opts = TreeOptions {
        dry_run: a.dry_run,
        checksum: a.checksum,
        delete: !a.no_delete,
        max_delete: a.max_delete,
        // Owners are stored on S3 (rclone's uid and gid keys) whoever runs the export;
        // SFTP cannot set them.
        owners: matches!(loc, Location::S3 { .. }),
        sync: true,
        ..TreeOptions::default()
    };
    let summary = with_total(&source.view, &source.dir, &progress, || {
        export_tree(
            &source.view,
            source.dir.try_clone().map_err(|e| Error::io(&a.src, e))?,
            &sink,
            &opts,
            &progress,
        )
    });
    progress.finish();
    // A failure that doomed every request (credentials, the bucket, the connection)
    // stopped the run: that, not the stop, is what to report.
    if let Some(e) = sink.fatal() {
        return Err(e.clone().into());
    }
    let summary = summary?;
    if let (Some(id), false) = (store.cache_id(), a.dry_run) {
        match sink.updated_cache(id) {
            Ok(Some(c)) => {
                if let Err(e) = cryptbak::fs::cache::write(&cache_name(id), &c.to_bytes()) {
                    report::warn(&format!(
                        "cannot keep the metadata cache ({e}); the next run reads each object's metadata again"
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => report::warn(&format!(
                "{}; the next run reads each object's metadata again",
                report::sanitize(&e.to_string())
            )),
        }
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

/// Run `work` while, on a terminal, another thread counts the view for the progress
/// line's total and ETA (the way rsync and restic do): it never delays the export, and
/// stops when the export is done.
pub(crate) fn with_total<T: Send>(
    view: &cryptbak::view::View,
    src: &Dir,
    progress: &StderrReport,
    work: impl FnOnce() -> T + Send,
) -> T {
    if !progress.shows_progress() {
        return work();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(size) = cryptbak::export::count(view, src, &stop) {
                progress.set_total(size);
            }
        });
        let out = work();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
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
