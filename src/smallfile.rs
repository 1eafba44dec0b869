//! Reading a small file named by the user (a config given with `--config`, or the
//! backup's `gocryptfs.conf`) that is not trusted. Files inside a backup directory are
//! read through handles instead (`backup::fs::read_small`).
//!
//! A hostile backup can put anything under that name: a FIFO (a plain `open` would
//! wait forever for a writer), a device node (opening it talks to a driver), or a
//! multi-gigabyte file (reading it all would exhaust memory). So only a regular file is
//! opened, without blocking, and checked again with `fstat` before anything is read,
//! and at most `max + 1` bytes are read: a longer result tells the caller the file is
//! larger than it may be.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};

fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")
}

/// Read at most `max + 1` bytes of the regular file at `path`. With `follow` a symlink is
/// followed (a config may be one); without it, a symlink is an error.
pub fn read(path: &Path, max: usize, follow: bool) -> io::Result<Vec<u8>> {
    // Checked before opening too, so that a device is never opened at all (opening one
    // talks to its driver); the check after opening catches a swap in between.
    let st = if follow {
        rfs::stat(path)?
    } else {
        rfs::lstat(path)?
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(not_regular());
    }
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = rfs::open(path, flags, Mode::empty())?;
    if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(not_regular());
    }
    let mut v = Vec::new();
    File::from(fd).take(max as u64 + 1).read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn caps_and_refuses_non_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read(&p, 4, false).unwrap(), b"01234");
        assert_eq!(read(&p, 10, false).unwrap(), b"0123456789");
        let fifo = d.path().join("fifo");
        rfs::mknodat(rfs::CWD, &fifo, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        // Nobody writes to it: opened without O_NONBLOCK, this would never return.
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
