//! The subcommands: turn parsed arguments into library calls.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use cryptbak::config::{Config, Format, InitOptions};
use cryptbak::cryptor::Cryptor;
use cryptbak::keys::MasterKey;
use cryptbak::names::{CONF_NAME, DIRIV_NAME, REVERSE_CONF_NAME};
use cryptbak::sink::dir::DirSink;
use cryptbak::view::{View, ViewOptions, ViewVersion};
use cryptbak::walk::{self, Summary};
use cryptbak::{Error, Result};

use super::args::{Compat, ExportArgs, InitArgs, KeyArgs, PasswordArgs};
use super::exit;
use super::password::{read_master_key, PasswordSource};
use super::report::{self, show_path, StderrReport};

fn password_source(p: &PasswordArgs, confirm: bool) -> PasswordSource {
    if !p.passfile.is_empty() {
        PasswordSource::Files(p.passfile.clone())
    } else if !p.extpass.is_empty() {
        PasswordSource::Command(p.extpass.clone())
    } else {
        PasswordSource::Prompt { confirm }
    }
}

fn warn_to_stderr(msg: String) {
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
struct Unlocked {
    master: MasterKey,
    format: Format,
}

fn unlock(key: &KeyArgs, default_config: &Path) -> Result<Unlocked> {
    let config_path = key
        .config
        .clone()
        .unwrap_or_else(|| default_config.to_path_buf());
    if let Some(hex) = &key.masterkey {
        let master = read_master_key(hex, &mut warn_to_stderr)?;
        // gocryptfs -masterkey reads no config; we still honour its flags when one is there,
        // so the output matches what the password would have given.
        let format = match Config::load(&config_path) {
            Ok(cfg) => cfg.format(),
            Err(Error::ConfigUnreadable { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Format::DEFAULT_REVERSE
            }
            Err(e) => return Err(e),
        };
        return Ok(Unlocked { master, format });
    }
    let cfg = Config::load(&config_path).map_err(|e| match e {
        Error::ConfigUnreadable { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            Error::ConfigUnreadable {
                path,
                source: std::io::Error::new(
                    source.kind(),
                    "no such file (run `cryptbak init` on the source first, or pass --config or --masterkey)",
                ),
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
    })
}

fn set_threads(jobs: Option<usize>) {
    // Deep trees recurse once per level; give workers room for paths of PATH_MAX depth.
    let mut b = rayon::ThreadPoolBuilder::new().stack_size(64 << 20);
    if let Some(j) = jobs {
        b = b.num_threads(j.max(1));
    }
    let _ = b.build_global();
}

/// A destination must be empty, missing, or look like an earlier export: never write
/// ciphertext into (and later delete from) a directory of unrelated files.
fn check_dest(dest: &Path) -> Result<()> {
    let mut entries = match std::fs::read_dir(dest) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dest, e)),
    };
    if entries.next().is_none() {
        return Ok(());
    }
    if dest.join(CONF_NAME).exists() || dest.join(DIRIV_NAME).exists() {
        return Ok(());
    }
    Err(Error::invalid(
        dest,
        "destination is not empty and does not look like a cryptbak or gocryptfs -reverse copy (no gocryptfs.conf); refusing to write into it",
    ))
}

fn same_place(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => y.starts_with(&x) || x.starts_with(&y),
        _ => false,
    }
}

pub fn export(a: &ExportArgs) -> Result<i32> {
    let started = Instant::now();
    if !a.src.is_dir() {
        return Err(Error::invalid(&a.src, "not a directory"));
    }
    if let Some(tar) = &a.tar {
        super::tar::check_output(tar, &a.src)?;
    }
    if let Some(dest) = &a.dest {
        if dest.exists() && same_place(&a.src, dest) {
            return Err(Error::Usage(
                "DEST must not be inside SRC (or SRC inside DEST)".into(),
            ));
        }
        check_dest(dest)?;
    }
    let unlocked = unlock(&a.key, &a.src.join(REVERSE_CONF_NAME))?;
    if !unlocked.format.aes_siv {
        return Err(Error::ConfigUnsupported {
            path: a
                .key
                .config
                .clone()
                .unwrap_or_else(|| a.src.join(REVERSE_CONF_NAME)),
            msg: "not a reverse-mode config (no AESSIV flag): create one with `cryptbak init`"
                .into(),
        });
    }
    set_threads(a.jobs);
    let cryptor = Cryptor::new(&unlocked.master, unlocked.format);
    drop(unlocked);
    let opts = ViewOptions {
        config_in_root: a.key.config.is_none(),
        version: match a.compat {
            Compat::V2_3 => ViewVersion::V2_3,
            Compat::V2_5 => ViewVersion::V2_5,
        },
    };
    let view = View::new(a.src.clone(), cryptor, opts);
    let progress = StderrReport { quiet: a.quiet };
    let Some(dest) = &a.dest else {
        let tar = a.tar.as_deref().expect("clap requires DEST or --tar");
        return super::tar::export(&view, tar, &progress, a.quiet, started);
    };
    let sink = DirSink::new(dest.clone());
    let summary = walk::export(&view, &sink, &progress)?;
    if !a.quiet {
        print_summary(&summary, started, dest);
    }
    Ok(if summary.errors > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

fn print_summary(s: &Summary, started: Instant, dest: &Path) {
    let secs = started.elapsed().as_secs_f64();
    let mb = s.bytes_read as f64 / 1e6;
    eprintln!(
        "cryptbak: exported {} files, {} dirs, {} symlinks, {} special, {} hard links into {} \
({:.1} MB read, {:.1} MB written, {:.2} s, {:.0} MB/s){}",
        s.files,
        s.dirs,
        s.symlinks,
        s.specials,
        s.hard_links,
        show_path(dest),
        mb,
        s.bytes_written as f64 / 1e6,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        if s.errors > 0 {
            format!("; {} ERRORS, the backup is incomplete", s.errors)
        } else {
            String::new()
        }
    );
}
