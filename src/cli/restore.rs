//! `cryptbak restore` and `cryptbak ls`.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cryptbak::backup::ls::{self, ListEntry};
use cryptbak::format::config::Config;
use cryptbak::format::names::CONF_NAME;
use cryptbak::format::Cryptor;
use cryptbak::remote::{Env, Location, Options, Store};
use cryptbak::restore::{self, Aead, Layout, RestoreOptions, Summary};
use cryptbak::{Error, Result};

use super::args::{BackupKeyArgs, KeyArgs, LsArgs, PasswordArgs, ReadTransferArgs, RestoreArgs};
use super::commands::{
    password_source, same_place, set_threads, unlock, unlock_at, warn_to_stderr, ConfigAt,
};
use super::exit;
use super::report::{count, sanitize, show_path, Output, StderrReport};

const RESTORE_CONFIG_HINT: &str =
    "no such file (pass --config FILE, or --masterkey if the config is lost)";

pub(crate) fn key_args(k: &BackupKeyArgs) -> KeyArgs {
    KeyArgs {
        password: PasswordArgs {
            passfile: k.password.passfile.clone(),
            extpass: k.password.extpass.clone(),
        },
        masterkey: k.masterkey.clone(),
        config: k.config.clone(),
    }
}

/// `--aessiv`/`--gcm`, if given.
fn aead_flag(k: &BackupKeyArgs) -> Option<Aead> {
    if k.aessiv {
        Some(Aead::Siv)
    } else if k.gcm {
        Some(Aead::Gcm)
    } else {
        None
    }
}

/// The content cipher a config's flags say, checked against `--aessiv`/`--gcm`.
fn aead_of_config(k: &BackupKeyArgs, format: &cryptbak::format::config::Format) -> Result<Aead> {
    let a = Aead::of(format);
    match aead_flag(k) {
        Some(flag) if flag != a => Err(Error::Usage(format!(
            "the config says the content is {}, which --{} contradicts",
            a.name(),
            if flag == Aead::Gcm { "gcm" } else { "aessiv" }
        ))),
        _ => Ok(a),
    }
}

/// The unlocked master key and format from a config file or `--masterkey`, and the
/// content cipher: from the config; without one, from `--aessiv`/`--gcm`, else (`None`)
/// detected from the first file.
pub(crate) fn unlock_backup(
    k: &BackupKeyArgs,
    default_config: &Path,
) -> Result<(super::commands::Unlocked, Option<Aead>)> {
    let u = unlock(&key_args(k), default_config, RESTORE_CONFIG_HINT)?;
    let aead = if u.from_config {
        Some(aead_of_config(k, &u.format)?)
    } else {
        aead_flag(k)
    };
    Ok((u, aead))
}

/// BACKUP as a remote location, when it is an `s3://` or `sftp://` URL.
pub(crate) fn backup_url(backup: &Path) -> Option<&str> {
    backup.to_str().filter(|s| Location::is_url(s))
}

/// Open a remote BACKUP with the user's credentials (a missing bucket, refused
/// credentials or an unreachable server end the run here, saying which). The worker
/// threads grow to one per transfer: they wait on the network.
pub(crate) fn open_remote(
    url: &str,
    jobs: Option<usize>,
    remote: &ReadTransferArgs,
) -> Result<Store> {
    let loc =
        Location::parse(url).map_err(|e| Error::Usage(format!("BACKUP {}: {e}", sanitize(url))))?;
    let mut opts = Options::default();
    if let Some(t) = remote.transfers {
        opts.transfers = usize::from(t);
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    set_threads(Some(jobs.unwrap_or(cores).max(opts.transfers)));
    Ok(Store::open(&loc, &Env::from_process(), opts)?)
}

/// `--transfers` with a BACKUP that is not a URL is a mistake worth saying.
pub(crate) fn local_backup(remote: &ReadTransferArgs) -> Result<()> {
    match remote.transfers {
        Some(_) => Err(Error::Usage(
            "--transfers applies to an s3:// or sftp:// BACKUP only".into(),
        )),
        None => Ok(()),
    }
}

/// The keys of a remote backup: from its `gocryptfs.conf` object, or `--config` /
/// `--masterkey` (see [`unlock_backup`]).
pub(crate) fn keys_from_store(k: &BackupKeyArgs, store: &Store) -> Result<Cryptor> {
    let shown = PathBuf::from(store.location().display_key(CONF_NAME));
    let at = match &k.config {
        Some(p) => ConfigAt::Path(p.clone()),
        None => {
            // One byte more than any config: a larger object is refused as such.
            let max = cryptbak::format::config::MAX_CONFIG_LEN as u64 + 1;
            let bytes = match store.get_range(CONF_NAME, 0..max) {
                Ok(b) => Some(b),
                Err(e) if e.kind == cryptbak::remote::ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            ConfigAt::Bytes(bytes, shown.clone())
        }
    };
    let (u, _) = unlock_at(&key_args(k), at, RESTORE_CONFIG_HINT)?;
    let aead = if u.from_config {
        Some(aead_of_config(k, &u.format)?)
    } else {
        aead_flag(k)
    };
    cryptor_for_reading(&u, aead, &shown, k)
}

/// The key bundle for reading a backup (see [`unlock_backup`]).
pub(crate) fn keys_from_files(k: &BackupKeyArgs, default_config: &Path) -> Result<Cryptor> {
    let (u, aead) = unlock_backup(k, default_config)?;
    cryptor_for_reading(&u, aead, default_config, k)
}

fn cryptor_for_reading(
    u: &super::commands::Unlocked,
    aead: Option<Aead>,
    default_config: &Path,
    k: &BackupKeyArgs,
) -> Result<Cryptor> {
    Cryptor::for_reading(&u.master, u.format, aead).map_err(|e| Error::ConfigUnsupported {
        path: k
            .config
            .clone()
            .unwrap_or_else(|| default_config.to_path_buf()),
        msg: e.to_string(),
    })
}

/// Keys from a config found in the tar stream, and the password.
fn keys_from_stream(k: &BackupKeyArgs, bytes: &[u8]) -> Result<Cryptor> {
    let path = PathBuf::from("gocryptfs.conf (in the tar stream)");
    let cfg = Config::parse(bytes).map_err(|msg| Error::ConfigInvalid {
        path: path.clone(),
        msg,
    })?;
    let password = password_source(&k.password, false).read(&mut warn_to_stderr)?;
    let master = cfg
        .unlock(&password)
        .ok_or(Error::WrongPassword { path: path.clone() })?;
    let format = cfg.format();
    let aead = aead_of_config(k, &format)?;
    Cryptor::for_reading(&master, format, Some(aead)).map_err(|e| Error::ConfigUnsupported {
        path,
        msg: e.to_string(),
    })
}

/// The stream of `--tar BACKUP`: standard input for `-`, else the file.
pub(crate) fn tar_input(backup: &Path) -> Result<Box<dyn Read>> {
    if backup.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let f = std::fs::File::open(backup).map_err(|e| Error::io(backup, e))?;
    if f.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::Usage(
            "--tar expects a tar file or -, not a directory".into(),
        ));
    }
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
}

/// The keys of a tar stream: from `--config`/`--masterkey` now, or (`None`, with `true`)
/// from the stream's own `gocryptfs.conf` when it arrives.
pub(crate) fn tar_keys(k: &BackupKeyArgs) -> Result<(bool, Option<Cryptor>)> {
    let in_stream = k.config.is_none() && k.masterkey.is_none();
    if in_stream {
        return Ok((true, None));
    }
    let cfg = k.config.clone().unwrap_or_default();
    Ok((false, Some(keys_from_files(k, &cfg)?)))
}

/// The `unlock` callback of the tar readers.
pub(crate) fn tar_unlock(
    k: &BackupKeyArgs,
    now: Option<Cryptor>,
) -> impl FnOnce(Option<&[u8]>) -> Result<Cryptor> + '_ {
    move |bytes: Option<&[u8]>| match (now, bytes) {
        (Some(c), _) => Ok(c),
        (None, Some(b)) => keys_from_stream(k, b),
        (None, None) => Err(Error::Usage("no config".into())),
    }
}

pub fn restore(a: &RestoreArgs) -> Result<i32> {
    let started = Instant::now();
    let filter = match &a.path {
        Some(p) => restore::parse_path(p)?,
        None => None,
    };
    let url = backup_url(&a.backup);
    if url.is_some() && a.tar {
        return Err(Error::Usage(
            "--tar reads a tar stream; an s3:// or sftp:// BACKUP is a tree".into(),
        ));
    }
    let stdin = a.tar && a.backup.as_os_str() == "-";
    if url.is_none() && !stdin && !a.backup.exists() {
        return Err(Error::invalid(&a.backup, "no such file or directory"));
    }
    if a.tar && !stdin && a.backup.is_dir() {
        return Err(Error::Usage(
            "--tar expects a tar file or -, not a directory".into(),
        ));
    }
    if url.is_none() && !a.tar && !a.backup.is_dir() {
        return Err(super::source::not_a_backup_dir(&a.backup));
    }
    if url.is_none() && !stdin && a.dest.exists() && same_place(&a.backup, &a.dest) {
        return Err(Error::Usage(
            "DEST must not be inside BACKUP (or BACKUP inside DEST)".into(),
        ));
    }
    // Refuse before asking for a password.
    if !a.force && !restore::writer::is_missing_or_empty(&a.dest)? {
        return Err(Error::invalid(
            &a.dest,
            "destination is not empty; refusing to restore into it (pass --force to add to it; existing entries are never overwritten)",
        ));
    }
    let opts = RestoreOptions {
        force: a.force,
        keep_corrupt: a.keep_corrupt,
        filter,
        expect_reverse: a.reverse,
        chown: rustix::process::geteuid().is_root(),
        keep_setuid: a.keep_setuid,
        devices: a.devices,
    };
    if url.is_none() {
        local_backup(&a.remote)?;
    }
    let store = url.map(|u| open_remote(u, a.jobs, &a.remote)).transpose()?;
    if store.is_none() {
        set_threads(a.jobs);
    }
    let progress = StderrReport::new(a.quiet, Output::Quiet, !a.no_progress)
        .with_details(a.verbose)
        .for_restore();
    let summary = if let Some(store) = &store {
        let keys = keys_from_store(&a.key, store)?;
        let cache = super::cache::load(store);
        restore::restore_remote(store, cache.as_ref(), &a.dest, keys, &opts, &progress)?
    } else if a.tar {
        let (in_stream, now) = tar_keys(&a.key)?;
        let input = tar_input(&a.backup)?;
        restore::restore_tar(
            input,
            &a.dest,
            tar_unlock(&a.key, now),
            in_stream,
            &opts,
            &progress,
        )?
    } else {
        let keys = keys_from_files(&a.key, &a.backup.join(CONF_NAME))?;
        restore::restore_dir(&a.backup, &a.dest, keys, &opts, &progress)?
    };
    progress.finish();
    if a.json {
        print_json_summary(&summary, started);
    } else if !a.quiet {
        print_summary(&summary, started, &a.dest);
    }
    Ok(exit_code(&summary))
}

fn print_json_summary(s: &Summary, started: Instant) {
    let v = serde_json::json!({
        "event": "summary",
        "files": s.files,
        "dirs": s.dirs,
        "symlinks": s.symlinks,
        "specials": s.specials,
        "hard_links": s.hard_links,
        "bytes": s.bytes,
        "warnings": s.warnings,
        "errors": s.errors,
        "integrity_errors": s.integrity_errors,
        "split_hard_links_rejoined": s.rejoined,
        "setuid_dropped": s.setuid_dropped,
        "devices_skipped": s.devices_skipped,
        "layout": match s.layout { Layout::Reverse => "reverse", Layout::Forward => "forward", Layout::Unknown => "unknown" },
        "content": s.aead.map(Aead::name),
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{v}");
}

pub(crate) fn exit_code(s: &Summary) -> i32 {
    if s.integrity_errors > 0 {
        exit::INTEGRITY
    } else if s.errors > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

/// `; 3 setuid/setgid bits not restored (--keep-setuid)` and the like: what the metadata
/// policy left out and what the rule on split hard links accepted.
pub(crate) fn policy_notes(s: &Summary, restored: bool) -> String {
    let mut t = String::new();
    let would = if restored { "" } else { "would be " };
    if s.rejoined > 0 {
        t.push_str(&format!(
            "; {} hard-linked names split by a copy tool (rsync -a without -H) {would}rejoined",
            s.rejoined
        ));
    }
    if s.setuid_dropped > 0 {
        t.push_str(&format!(
            "; {} setuid/setgid bits {would}dropped (--keep-setuid keeps them)",
            s.setuid_dropped
        ));
    }
    if s.devices_skipped > 0 {
        t.push_str(&format!(
            "; {} device nodes {}(--devices creates them)",
            s.devices_skipped,
            if restored {
                "not created "
            } else {
                "would not be created "
            }
        ));
    }
    t
}

/// What a restore or verify handled, worded as every summary words it.
pub(crate) fn restore_kinds(s: &Summary) -> String {
    super::report::kinds(
        s.files,
        s.bytes,
        s.dirs,
        &[
            (s.symlinks, "symlink", "symlinks"),
            (s.specials, "special file", "special files"),
            (s.hard_links, "hard link", "hard links"),
        ],
    )
}

fn print_summary(s: &Summary, started: Instant, dest: &Path) {
    let secs = started.elapsed().as_secs_f64();
    let mb = s.bytes as f64 / 1e6;
    let mut problems = policy_notes(s, true);
    if s.integrity_errors > 0 {
        problems.push_str(&format!(
            "; {} (tampered or damaged backup)",
            count(s.integrity_errors, "INTEGRITY ERROR", "INTEGRITY ERRORS")
        ));
    }
    if s.errors > 0 {
        problems.push_str(&format!("; {}", count(s.errors, "error", "errors")));
    }
    eprintln!(
        "cryptbak: restored {} into {} in {:.2} s ({:.0} MB/s); backup: {}, {}{problems}",
        restore_kinds(s),
        show_path(dest),
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        s.layout.describe(),
        s.aead.map_or("no content", Aead::name),
    );
}

pub fn ls(a: &LsArgs) -> Result<i32> {
    let path = match &a.path {
        Some(p) => restore::parse_path(p)?,
        None => None,
    };
    let progress = StderrReport::new(false, Output::Quiet, false);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_err = None;
    let mut print = |e: &ListEntry| {
        if write_err.is_none() {
            if let Err(err) = writeln!(out, "{}", format_entry(e)) {
                write_err = Some(err);
            }
        }
    };
    let url = backup_url(&a.backup);
    if url.is_none() {
        local_backup(&a.remote)?;
    }
    let problems = if let Some(url) = url {
        if a.tar {
            return Err(Error::Usage(
                "--tar reads a tar stream; an s3:// or sftp:// BACKUP is a tree".into(),
            ));
        }
        let store = open_remote(url, None, &a.remote)?;
        let keys = keys_from_store(&a.key, &store)?;
        let cache = super::cache::load(&store);
        ls::list_remote(
            &store,
            cache.as_ref(),
            keys,
            path,
            a.recursive,
            &progress,
            &mut print,
        )?
    } else if a.tar {
        let (in_stream, now) = tar_keys(&a.key)?;
        let input = tar_input(&a.backup)?;
        let (entries, problems) = ls::list_tar(
            input,
            tar_unlock(&a.key, now),
            in_stream,
            &a.backup,
            path,
            a.recursive,
            &progress,
        )?;
        entries.iter().for_each(&mut print);
        problems
    } else {
        if !a.backup.is_dir() {
            return Err(super::source::not_a_backup_dir(&a.backup));
        }
        let keys = keys_from_files(&a.key, &a.backup.join(CONF_NAME))?;
        ls::list(&a.backup, keys, path, a.recursive, &progress, &mut print)?
    };
    // `print` borrows `out` and `write_err` until its last use above.
    if let Some(e) = write_err.or_else(|| out.flush().err()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Error::io("stdout", e));
        }
    }
    Ok(if problems > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// `drwxr-xr-x  1000  1000        4096  2024-05-01 12:00:00  path -> target`
fn format_entry(e: &ListEntry) -> String {
    let size = e.size.map_or_else(|| "-".to_string(), |s| s.to_string());
    let mut line = format!(
        "{} {:>5} {:>5} {:>12}  {}  {}",
        mode_string(e.mode),
        e.uid,
        e.gid,
        size,
        utc(e.mtime.sec),
        show(&e.path)
    );
    if let Some(t) = &e.target {
        line.push_str(" -> ");
        line.push_str(&show(t));
    }
    line
}

fn show(b: &[u8]) -> String {
    sanitize(&String::from_utf8_lossy(OsStr::from_bytes(b).as_bytes()))
}

fn mode_string(mode: u32) -> String {
    let t = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o010000 => 'p',
        0o020000 => 'c',
        0o060000 => 'b',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        let set = mode & bit != 0;
        s.push(match (special, set, i) {
            (true, true, 8) => 't',
            (true, false, 8) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => *c,
            (false, false, _) => '-',
        });
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (days-from-civil inverse, H. Hinnant's algorithm).
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_modes() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
    }
}
