//! The subcommands: turn parsed arguments into library calls.

use std::path::{Path, PathBuf};

use cryptbak::exclude::{Excludes, Selection};
use cryptbak::format::config::MAX_CONFIG_LEN;
use cryptbak::format::config::{Config, Format, InitOptions};
use cryptbak::format::keys::MasterKey;
use cryptbak::format::names::REVERSE_CONF_NAME;
use cryptbak::fs::Dir;
use cryptbak::view::Meta;
use cryptbak::{Error, Result};

use super::args::{InitArgs, KeyArgs, PasswordArgs, SelectArgs};
use super::exit;
use super::password::{read_master_key, PasswordSource};
use super::report::{self, show_path};
use super::source::open_dir_arg;

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
