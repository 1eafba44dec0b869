//! Reading the small metadata files of a tree that is not trusted (`gocryptfs.conf`,
//! `gocryptfs.diriv`, `gocryptfs.longname.*.name`).
//!
//! A hostile backup can put anything under those names: a FIFO (a plain `open` would
//! wait forever for a writer), a device node (opening it talks to a driver), or a
//! multi-gigabyte file (reading it all would exhaust memory). So only regular files are
//! opened, never blocking, and at most `max + 1` bytes are read: a longer result tells
//! the caller the file is larger than it may be.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
}

/// Read at most `max + 1` bytes of the regular file at `path`. With `follow` a symlink is
/// followed (a config may be one); without it, a symlink is an error.
pub fn read(path: &Path, max: usize, follow: bool) -> io::Result<Vec<u8>> {
    // Checked before opening so that a device is never opened at all...
    let md = if follow {
        fs::metadata(path)?
    } else {
        fs::symlink_metadata(path)?
    };
    if !md.is_file() {
        return Err(not_regular());
    }
    let mut flags = nix::libc::O_NONBLOCK;
    if !follow {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let f = File::options().read(true).custom_flags(flags).open(path)?;
    // ...and again on what was opened, in case it was swapped in between.
    if !f.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut v = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_refuses_non_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read(&p, 4, false).unwrap(), b"01234");
        assert_eq!(read(&p, 10, false).unwrap(), b"0123456789");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            read(&fifo, 16, true).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(read(d.path(), 16, true).is_err());
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read(&link, 16, false).is_err());
        assert_eq!(read(&link, 16, true).unwrap(), b"0123456789");
    }
}
