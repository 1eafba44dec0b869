//! The view as a tar stream: each entry the driver hands over becomes one member, in
//! the order handed over. Member names are `./` followed by the view path (`./d/` for
//! directories; the root is `./`), so `tar -x -C D` gives `D` the root's mode, owner and
//! mtime, as the directory export does. The header bytes are made by [`tar_format`].
//!
//! [`tar_format`]: super::tar_format

use std::io::{self, Write};

use super::tar_format::{Header, Kind, TarWriter};
use super::{Body, StreamSink};
use crate::view::{Entry, Payload, S_IFDIR, S_IFLNK, S_IFREG};

const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;

/// The name of the member that marks an archive cut short (see [`TarSink::abort`]).
pub const INTERRUPTED_MEMBER: &[u8] = b"./CRYPTBAK-INTERRUPTED-THIS-ARCHIVE-IS-INCOMPLETE";

pub struct TarSink<W: Write> {
    tar: TarWriter<W>,
    /// Set while a member's data is being written.
    in_member: bool,
}

/// `./` followed by the view path; directories end in `/`; the root is `./`.
pub fn member_path(cpath: &[u8], dir: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(cpath.len() + 3);
    p.extend_from_slice(b"./");
    p.extend_from_slice(cpath);
    if dir && !cpath.is_empty() {
        p.push(b'/');
    }
    p
}

fn kind_of(e: &Entry) -> io::Result<Kind> {
    Ok(match e.meta.file_type() {
        S_IFDIR => Kind::Dir,
        S_IFREG => Kind::File,
        S_IFLNK => Kind::Symlink,
        S_IFCHR => Kind::CharDevice,
        S_IFBLK => Kind::BlockDevice,
        S_IFIFO => Kind::Fifo,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this file type cannot be stored in a tar archive",
            ))
        }
    })
}

impl<W: Write> TarSink<W> {
    pub fn new(out: W) -> Self {
        TarSink {
            tar: TarWriter::new(out),
            in_member: false,
        }
    }

    pub fn into_inner(self) -> W {
        self.tar.into_inner()
    }

    fn header(&mut self, e: &Entry, kind: Kind, size: u64, link: &[u8]) -> io::Result<()> {
        let (dev_major, dev_minor) = match kind {
            Kind::CharDevice | Kind::BlockDevice => (
                rustix::fs::major(e.meta.rdev),
                rustix::fs::minor(e.meta.rdev),
            ),
            _ => (0, 0),
        };
        let path = member_path(&e.cpath, kind == Kind::Dir);
        self.tar.header(&Header {
            path: &path,
            kind,
            mode: e.meta.permissions(),
            uid: e.meta.uid,
            gid: e.meta.gid,
            size,
            mtime: e.meta.mtime,
            link,
            dev_major,
            dev_minor,
        })
    }
}

impl<W: Write> StreamSink for TarSink<W> {
    /// Leave the stream recognisably incomplete: stop where it is if a member's data
    /// is cut short (every tar reader reports a truncated member), else add the header
    /// of a member whose data never comes, so that the receiving `tar` fails instead of
    /// taking a stream that happens to end between members for a whole archive.
    fn abort(&mut self) -> io::Result<()> {
        if !self.in_member {
            self.tar.header(&Header {
                path: INTERRUPTED_MEMBER,
                kind: Kind::File,
                mode: 0o400,
                uid: 0,
                gid: 0,
                size: 1 << 20,
                mtime: crate::view::Time { sec: 0, nsec: 0 },
                link: b"",
                dev_major: 0,
                dev_minor: 0,
            })?;
        }
        self.tar.flush()
    }

    fn entry(&mut self, e: &Entry, body: Body) -> io::Result<()> {
        let kind = kind_of(e)?;
        match body {
            Body::None => {
                let link = match &e.payload {
                    Payload::Symlink { target } => &target[..],
                    _ => b"",
                };
                self.header(e, kind, 0, link)
            }
            Body::Link(primary) => self.header(e, Kind::HardLink, 0, &member_path(primary, false)),
            Body::Bytes(data) => {
                self.header(e, kind, data.len() as u64, b"")?;
                self.tar.write_all(data)?;
                self.tar.pad()
            }
            Body::Stream { size, fill } => {
                self.header(e, kind, size, b"")?;
                let start = self.tar.position();
                self.in_member = true;
                fill(&mut self.tar)?;
                let wrote = self.tar.position() - start;
                if wrote != size {
                    return Err(io::Error::other(format!(
                        "internal error: {wrote} bytes of data for a member of {size}"
                    )));
                }
                self.in_member = false;
                self.tar.pad()
            }
        }
    }

    fn position(&self) -> u64 {
        self.tar.position()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.tar.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(member_path(b"", true), b"./");
        assert_eq!(member_path(b"a/b", true), b"./a/b/");
        assert_eq!(member_path(b"a/b", false), b"./a/b");
    }
}
