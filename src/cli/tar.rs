//! `cryptbak export --tar FILE|-`: where the archive goes, and what the user is told.
//! The archive itself is made by `cryptbak::stream`.

use std::fs::{self, File};
use std::io::{BufWriter, IsTerminal};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cryptbak::progress::Progress;
use cryptbak::stream::{self, TarOptions};
use cryptbak::view::View;
use cryptbak::walk::Summary;
use cryptbak::{Error, Result};

use super::exit;
use super::report::show_path;

/// Name of the output in messages when it is standard output.
const STDOUT_LABEL: &str = "<stdout>";

fn is_stdout(target: &Path) -> bool {
    target.as_os_str() == "-"
}

fn refuse_terminal() -> Error {
    Error::Usage(
        "refusing to write a tar archive to a terminal: redirect standard output (`> FILE`, `| ssh …`) or use --tar FILE".into(),
    )
}

/// Checks that need no password: run before asking for it.
pub fn check_output(target: &Path, src: &Path) -> Result<()> {
    if is_stdout(target) {
        if std::io::stdout().is_terminal() {
            return Err(refuse_terminal());
        }
        return Ok(());
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (Ok(parent), Ok(src)) = (parent.canonicalize(), src.canonicalize()) else {
        // A missing parent directory is reported when the file is created.
        return Ok(());
    };
    if parent.starts_with(&src) {
        return Err(Error::Usage(
            "the --tar FILE must not be inside SRC: it would back up the archive while writing it"
                .into(),
        ));
    }
    Ok(())
}

/// Where the archive is being written.
enum Output {
    /// Standard output, a FIFO or a device: written in place.
    Direct { file: File, label: PathBuf },
    /// A regular file: written beside it under a temporary name, renamed when complete.
    Temp {
        file: File,
        tmp: PathBuf,
        target: PathBuf,
    },
}

fn open_output(target: &Path) -> Result<Output> {
    if is_stdout(target) {
        // Write to fd 1 directly: Rust's `Stdout` is line-buffered, wrong for binary data.
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io(STDOUT_LABEL, e))?;
        // A 1 MiB pipe buffer (Linux default: 64 KiB) lets the encryptor hand over whole
        // batches instead of waking the reader sixteen times per MiB. Best effort: not a
        // pipe, or over /proc/sys/fs/pipe-max-size, and the default stays.
        use std::os::fd::AsRawFd;
        let _ = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        return Ok(Output::Direct {
            file: File::from(fd),
            label: PathBuf::from(STDOUT_LABEL),
        });
    }
    match fs::metadata(target) {
        Ok(m) if !m.is_file() => {
            if m.is_dir() {
                return Err(Error::invalid(target, "is a directory"));
            }
            let file = File::options()
                .write(true)
                .open(target)
                .map_err(|e| Error::io(target, e))?;
            if file.is_terminal() {
                return Err(refuse_terminal());
            }
            return Ok(Output::Direct {
                file,
                label: target.to_path_buf(),
            });
        }
        _ => {}
    }
    // Replace the file a symlink points to, not the symlink.
    let target = fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    let name = target
        .file_name()
        .ok_or_else(|| Error::invalid(&target, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".cryptbak-tmp-{}", std::process::id()));
    let tmp = target.with_file_name(tmp_name);
    // Name the file the user gave in messages (a missing directory, no permission).
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(&target, e))?;
    Ok(Output::Temp { file, tmp, target })
}

/// Write the archive.
pub fn export(view: &View, target: &Path, progress: &dyn Progress) -> Result<Summary> {
    let output = open_output(target)?;
    let (file, label) = match &output {
        Output::Direct { file, label } => (file, label.as_path()),
        Output::Temp { file, target, .. } => (file, target.as_path()),
    };
    let out = BufWriter::with_capacity(1 << 20, file);
    // The archive was flushed by `export_tar`; the buffer is not needed any more.
    let result = stream::export_tar(view, out, label, progress, &TarOptions::default())
        .map(|(summary, _)| summary);
    match (result, &output) {
        (Ok(summary), Output::Direct { .. }) => Ok(summary),
        (Ok(summary), Output::Temp { file, tmp, target }) => {
            let done = file
                .sync_all()
                .and_then(|()| fs::rename(tmp, target))
                .map_err(|e| Error::io(target, e));
            if let Err(e) = done {
                let _ = fs::remove_file(tmp);
                return Err(e);
            }
            if let Some(dir) = target.parent() {
                // Make the rename itself durable.
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(summary)
        }
        (Err(e), Output::Temp { tmp, .. }) => {
            let _ = fs::remove_file(tmp);
            Err(e)
        }
        (Err(e), Output::Direct { .. }) => Err(e),
    }
}

/// Print the summary (unless quiet) and return the exit code.
pub fn report(s: &Summary, target: &Path, quiet: bool, started: Instant) -> i32 {
    if !quiet {
        let label = if is_stdout(target) {
            Path::new(STDOUT_LABEL)
        } else {
            target
        };
        print_summary(s, started, label);
    }
    if s.errors > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

fn print_summary(s: &Summary, started: Instant, label: &Path) {
    let secs = started.elapsed().as_secs_f64();
    let mb = s.bytes_read as f64 / 1e6;
    eprintln!(
        "cryptbak: archived {} files, {} dirs, {} symlinks, {} special, {} hard links to {} \
({:.1} MB read, {:.1} MB of tar, {:.2} s, {:.0} MB/s){}",
        s.files,
        s.dirs,
        s.symlinks,
        s.specials,
        s.hard_links,
        show_path(label),
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
