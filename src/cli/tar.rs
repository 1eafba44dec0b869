//! `cryptbak export --tar FILE|-`: where the archive goes, and what the user is told.
//! The archive itself is made by `cryptbak::stream`.

use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cryptbak::export::{export_stream, StreamOptions, Summary};
use cryptbak::fs::Dir;
use cryptbak::progress::Progress;
use cryptbak::sink::tar::TarSink;
use cryptbak::view::View;
use cryptbak::{Error, Result};

use super::exit;
use super::report::show_path;
use super::source::open_dir_arg;

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
        dir: Dir,
        tmp: Vec<u8>,
        name: Vec<u8>,
        target: PathBuf,
    },
}

fn open_output(target: &Path) -> Result<Output> {
    open_output_at(target, 0)
}

/// `open_output`, `depth` symlinks (the user's own) into the target.
fn open_output_at(target: &Path, depth: usize) -> Result<Output> {
    use std::os::unix::fs::FileTypeExt;
    if is_stdout(target) {
        // Write to fd 1 directly: Rust's `Stdout` is line-buffered, wrong for binary data.
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io(STDOUT_LABEL, e))?;
        // A 1 MiB pipe buffer (Linux default: 64 KiB) lets the encryptor hand over whole
        // batches instead of waking the reader sixteen times per MiB. Best effort: not a
        // pipe, or over /proc/sys/fs/pipe-max-size, and the default stays.
        let _ = rustix::pipe::fcntl_setpipe_size(&fd, 1 << 20);
        return Ok(Output::Direct {
            file: File::from(fd),
            label: PathBuf::from(STDOUT_LABEL),
        });
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| Error::invalid(target, "not a file name"))?
        .as_bytes()
        .to_vec();
    let dir = open_dir_arg(parent, "the directory of the --tar FILE")?;
    if let Some(st) = dir.stat_at_opt(&name).map_err(|e| Error::io(target, e))? {
        let m = cryptbak::view::Meta::from_stat(&st);
        if m.file_type() == cryptbak::view::S_IFLNK {
            // A symlink is followed only when it is the user's own: on a shared machine,
            // one planted by someone else could point a root export at any file.
            let me = rustix::process::geteuid().as_raw();
            if m.uid != me {
                return Err(Error::invalid(
                    target,
                    format!(
                        "is a symlink owned by uid {} (not by you); refusing to write through it",
                        m.uid
                    ),
                ));
            }
            // Write where it points (as `> FILE` would), not over the symlink.
            if depth >= 8 {
                return Err(Error::invalid(target, "too many levels of symlinks"));
            }
            let to = dir.read_link_at(&name).map_err(|e| Error::io(target, e))?;
            let to = parent.join(std::ffi::OsStr::from_bytes(&to));
            return open_output_at(&to, depth + 1);
        } else if m.file_type() == cryptbak::view::S_IFDIR {
            return Err(Error::invalid(target, "is a directory"));
        }
        if m.file_type() != cryptbak::view::S_IFREG {
            // A device or FIFO named explicitly (a tape drive, a pipe): written in place.
            // Not through a symlink, unless it was the user's own one (checked above).
            use std::os::unix::fs::OpenOptionsExt;
            let nofollow = if m.file_type() == cryptbak::view::S_IFLNK {
                0
            } else {
                rustix::fs::OFlags::NOFOLLOW.bits() as i32
            };
            let file = File::options()
                .write(true)
                .custom_flags(nofollow)
                .open(target)
                .map_err(|e| Error::io(target, e))?;
            let ft = file
                .metadata()
                .map_err(|e| Error::io(target, e))?
                .file_type();
            if file.is_terminal() {
                return Err(refuse_terminal());
            }
            if !(ft.is_fifo() || ft.is_char_device() || ft.is_block_device()) {
                return Err(Error::invalid(target, "changed while it was being opened"));
            }
            return Ok(Output::Direct {
                file,
                label: target.to_path_buf(),
            });
        }
    }
    let mut tmp = b".".to_vec();
    tmp.extend_from_slice(&name);
    tmp.extend_from_slice(format!(".cryptbak-tmp-{}", std::process::id()).as_bytes());
    // Never through a symlink, never over anything: created new, in the handle's directory.
    let file = dir
        .create_new(&tmp, 0o600)
        .map_err(|e| Error::io(target, e))?;
    Ok(Output::Temp {
        file,
        dir,
        tmp,
        name,
        target: target.to_path_buf(),
    })
}

/// Write the archive.
pub fn export(view: &View, src: Dir, target: &Path, progress: &dyn Progress) -> Result<Summary> {
    let output = open_output(target)?;
    let (file, label) = match &output {
        Output::Direct { file, label } => (file, label.as_path()),
        Output::Temp { file, target, .. } => (file, target.as_path()),
    };
    let mut sink = TarSink::new(BufWriter::with_capacity(1 << 20, file));
    let result = export_stream(
        view,
        src,
        &mut sink,
        label,
        progress,
        &StreamOptions::default(),
    );
    // Whatever happened, what was written goes out (an aborted stream ends mid-way on
    // purpose, so the receiver sees it is incomplete).
    let flushed = sink.into_inner().into_inner().map_err(|e| e.into_error());
    let result = result.and_then(|s| flushed.map(|_| s).map_err(|e| Error::io(label, e)));
    match (result, &output) {
        (Ok(summary), Output::Direct { .. }) => Ok(summary),
        (
            Ok(summary),
            Output::Temp {
                file,
                dir,
                tmp,
                name,
                target,
            },
        ) => {
            let done = file
                .sync_all()
                .and_then(|()| dir.rename_to(tmp, dir, name))
                .map_err(|e| Error::io(target, e));
            if let Err(e) = done {
                let _ = dir.unlink_at(tmp);
                return Err(e);
            }
            // Make the rename itself durable.
            let _ = rustix::fs::fsync(dir.fd());
            Ok(summary)
        }
        (Err(e), Output::Temp { dir, tmp, .. }) => {
            let _ = dir.unlink_at(tmp);
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
        "cryptbak: archived {} to {} ({:.1} MB of tar, {:.2} s, {:.0} MB/s){}",
        super::report::export_kinds(s),
        show_path(label),
        s.bytes_written as f64 / 1e6,
        secs,
        if secs > 0.0 { mb / secs } else { 0.0 },
        super::report::errors_tail(s.errors, "the backup is incomplete")
    );
}
