//! Entries from a tar stream of a ciphertext tree, read in one pass (see [`super::tar`]).
//!
//! Every header is hostile: absolute paths and `..` are refused, names are taken as raw
//! bytes, sizes are only trusted as far as the bytes actually arrive, and small virtual
//! files (`gocryptfs.diriv`, `.name`, `gocryptfs.conf`) are read with a cap. Memory stays
//! bounded: file contents go straight through decryption into the writer's staging area;
//! what comes before the stream's `gocryptfs.conf` is kept, still encrypted, in one
//! anonymous scratch file until the keys are known.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::names::{Kind as NameKind, MAX_NAME_FILE};
use super::tar::{Fatal, Kind, Member, TarReader};
use crate::error::{Error, Result};
use crate::format::config::MAX_CONFIG_LEN;
use crate::format::content::{self, Aead};
use crate::format::Cryptor;
use crate::progress::Progress;
use crate::restore::engine::report::Style;
use crate::restore::engine::{
    join_cpath, split_cpath, CPath, Engine, EngineOptions, Item, Severity,
};
use crate::restore::writer::Writer;
use crate::restore::{Layout, Summary};
use crate::view::{Meta, S_IFDIR, S_IFLNK, S_IFREG};

enum What {
    Dir,
    File,
    Symlink(Vec<u8>),
    Link(CPath),
    Special,
    /// Nothing to restore; the message is a warning.
    Ignored(&'static str),
}

struct Header {
    cpath: CPath,
    meta: Meta,
    what: What,
    /// The member's size as its header says (pax `size` included).
    size: u64,
}

/// Counts what passes through: a stream that ends inside a member gives a short read
/// that looks like the member's end, and a file cut at a block boundary authenticates.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// A tar path as a ciphertext path: no leading `/`, no `..`, `.` and empty parts dropped.
pub fn normalize(path: &[u8]) -> std::result::Result<CPath, &'static str> {
    if path.first() == Some(&b'/') {
        return Err("absolute path in the tar stream; refused");
    }
    let mut out: CPath = Vec::with_capacity(path.len());
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("'..' in a tar path; refused"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

fn header_of(m: &Member) -> std::result::Result<Header, String> {
    if let Some(p) = &m.problem {
        return Err(p.clone());
    }
    let cpath = normalize(&m.path).map_err(String::from)?;
    let (ftype, what) = match &m.kind {
        Kind::Dir => (S_IFDIR, What::Dir),
        Kind::File => (S_IFREG, What::File),
        Kind::Symlink(t) => (S_IFLNK, What::Symlink(t.clone())),
        Kind::HardLink(t) => {
            let target = normalize(t).map_err(|m| format!("hard link target: {m}"))?;
            (S_IFREG, What::Link(target))
        }
        Kind::CharDevice => (0o020000, What::Special),
        Kind::BlockDevice => (0o060000, What::Special),
        Kind::Fifo => (0o010000, What::Special),
        // Archive-wide pax records (a comment, say): nothing to restore.
        Kind::Global => (0, What::Ignored("pax global header ignored")),
        // Its holes are zeros that are not in the stream: a few bytes of header could make
        // us decrypt and write terabytes. A ciphertext written by export has no holes.
        Kind::Sparse => return Err(
            "GNU sparse member refused (its holes could expand to any size); extract the archive with tar and restore the directory".into(),
        ),
        Kind::Other(b) => {
            return Err(format!(
                "unsupported tar entry type {:?} ({b}); skipped",
                char::from(*b)
            ))
        }
    };
    let meta = Meta {
        mode: ftype | m.mode,
        uid: m.uid.unwrap_or(u32::MAX),
        gid: m.gid.unwrap_or(u32::MAX),
        size: 0,
        atime: m.atime.unwrap_or(m.mtime),
        mtime: m.mtime,
        dev: 0,
        ino: 0,
        nlink: 1,
        rdev: rustix::fs::makedev(m.dev_major, m.dev_minor),
    };
    Ok(Header {
        cpath,
        meta,
        what,
        size: m.size,
    })
}

/// Read at most `max + 1` bytes of an entry (the rest is skipped, never held).
fn read_prefix(r: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(max as u64 + 1).read_to_end(&mut v)?;
    Ok(v)
}

/// An entry met before the config, kept until the keys are known.
struct Spooled {
    header: Header,
    /// Where the ciphertext of a regular file is in the spool file.
    content: Option<(u64, u64)>,
}

/// A range of the spool file.
struct Range<'f> {
    f: &'f File,
    at: u64,
    end: u64,
}

impl Read for Range<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.end - self.at).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = self.f.read_at(&mut buf[..n], self.at)?;
        self.at += got as u64;
        Ok(got)
    }
}

fn stream_error(e: Fatal) -> Error {
    Error::invalid("tar stream", e.0)
}

/// Restore (or verify, with a writer that discards) a tar stream.
pub(crate) fn run<R: Read, W: Writer>(
    reader: R,
    w: &W,
    unlock: impl FnOnce(Option<&[u8]>) -> Result<Cryptor>,
    config_in_stream: bool,
    style: Style,
    opts: EngineOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let mut tar = TarReader::new(reader);
    let mut spool: Vec<Spooled> = Vec::new();
    let mut spool_file: Option<File> = None;
    let mut early_problems: Vec<(PathBuf, String)> = Vec::new();
    let fail = |e: Error| {
        w.abandon();
        Err(e)
    };
    let keys = if config_in_stream {
        let mut found = None;
        while let Some(m) = tar.next_member() {
            if crate::cancel::requested() {
                return fail(Error::RestoreInterrupted);
            }
            let m = match m {
                Ok(m) => m,
                Err(e) => return fail(stream_error(e)),
            };
            let header = match header_of(&m) {
                Ok(h) => h,
                Err(msg) => {
                    early_problems.push((lossy(&m.path), msg));
                    continue;
                }
            };
            if header.cpath == b"gocryptfs.conf" && matches!(header.what, What::File) {
                let bytes = match read_prefix(&mut tar.data(), MAX_CONFIG_LEN) {
                    Ok(b) if b.len() > MAX_CONFIG_LEN => {
                        return fail(Error::ConfigInvalid {
                            path: "gocryptfs.conf (in the tar stream)".into(),
                            msg: "larger than any gocryptfs config".into(),
                        })
                    }
                    Ok(b) => b,
                    Err(e) => return fail(Error::io("tar stream", e)),
                };
                found = Some(bytes);
                break;
            }
            let content = if matches!(header.what, What::File) {
                let f = match &mut spool_file {
                    Some(f) => f,
                    None => match w.spool() {
                        Ok(f) => spool_file.insert(f),
                        Err(e) => return fail(e),
                    },
                };
                let at = match f.stream_position() {
                    Ok(at) => at,
                    Err(e) => return fail(Error::io("spool file", e)),
                };
                match io::copy(&mut tar.data(), f).and_then(|n| f.flush().map(|()| n)) {
                    Ok(n) => Some((at, at + n)),
                    Err(e) => return fail(Error::io("tar stream", e)),
                }
            } else {
                None
            };
            spool.push(Spooled { header, content });
        }
        let Some(bytes) = found else {
            return fail(Error::ConfigUnreadable {
                path: "gocryptfs.conf".into(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "not in the tar stream's root; pass --config FILE or --masterkey",
                ),
            });
        };
        unlock(Some(&bytes))
    } else {
        unlock(None)
    };
    let keys = match keys {
        Ok(k) => k,
        Err(err) => return fail(err),
    };
    let engine = Engine::new(keys, w, progress, style, opts);
    for (p, msg) in early_problems {
        engine.source_error(&p, msg);
    }
    for s in spool {
        match (s.content, &spool_file) {
            (Some((at, end)), Some(f)) => feed_entry(&engine, s.header, &mut Range { f, at, end }),
            _ => feed_entry(&engine, s.header, &mut io::empty()),
        }
    }
    drop(spool_file);
    while let Some(m) = tar.next_member() {
        if crate::cancel::requested() {
            break;
        }
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                // A broken stream: what came before is restored, the rest is missing.
                engine.source_error(
                    Path::new("tar stream"),
                    format!("unreadable, stopping here: {e}"),
                );
                break;
            }
        };
        match header_of(&m) {
            Ok(h) => feed_entry(&engine, h, &mut tar.data()),
            Err(msg) => match normalize(&m.path) {
                Ok(c) if !c.is_empty() => engine.entry_problem(&c, Severity::Error, msg),
                _ => engine.source_error(&lossy(&m.path), msg),
            },
        }
    }
    if crate::cancel::requested() {
        return Err(engine.abort());
    }
    engine.finish()
}

fn lossy(p: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(p).into_owned())
}

fn feed_entry<W: Writer>(engine: &Engine<'_, W>, h: Header, content: &mut impl Read) {
    let Header {
        cpath,
        meta,
        what,
        size,
    } = h;
    let (parent, name) = split_cpath(&cpath);
    if cpath.is_empty() {
        match what {
            What::Dir => engine.set_root_meta(meta),
            _ => engine.source_error(
                Path::new("tar stream"),
                "the root of the stream is not a directory",
            ),
        }
        return;
    }
    let special = engine.rules().classify(parent.is_empty(), name);
    match (what, special) {
        (What::Ignored(msg), _) => engine.entry_problem(&cpath, Severity::Warning, msg),
        (What::File, NameKind::Config) => {}
        // At most one byte more than allowed is read: the engine tells "too long" apart.
        (What::File, NameKind::DirIv) => match read_prefix(content, 16) {
            Ok(b) => engine.add_diriv(parent.to_vec(), &b),
            Err(err) => engine.entry_problem(&cpath, Severity::Error, err.to_string()),
        },
        (What::File, NameKind::NameFile(entry)) => match read_prefix(content, MAX_NAME_FILE) {
            Ok(b) => engine.add_long_name(join_cpath(parent, entry), &b),
            Err(err) => engine.entry_problem(&cpath, Severity::Error, err.to_string()),
        },
        // The format's own files must be regular files; anything else under their names
        // (a directory, a symlink, a link) is not an entry either, nor is what is below it.
        (what, s @ (NameKind::DirIv | NameKind::NameFile(_) | NameKind::Config)) => {
            if matches!(s, NameKind::DirIv) {
                engine.bad_diriv(parent.to_vec(), "not a regular file");
            } else {
                engine.entry_problem(&cpath, Severity::Integrity, "not a regular file; ignored");
            }
            if matches!(what, What::Dir) {
                engine.skip_dir(cpath);
            }
        }
        (_, NameKind::Temp) => engine.entry_problem(
            &cpath,
            Severity::Warning,
            "leftover temporary file of an interrupted export; ignored",
        ),
        (What::Dir, _) => engine.add(cpath, Item::Dir { meta }),
        (What::File, _) => {
            if engine.wanted(&cpath) == Some(false) {
                // Not restored, but it may own the ID of a split hard link that is: a
                // stream cannot be looked at again, so its fingerprint is taken now
                // (from the framing alone, no decryption).
                if engine.layout() != Layout::Forward {
                    if let Ok(Some((id, fp))) = content::fingerprint(content, Aead::Siv) {
                        engine.add_home(cpath, id, fp);
                    }
                }
                return;
            }
            let mut counted = Counted {
                inner: content,
                n: 0,
            };
            let Some(staged) = engine.stage_file(&cpath, &meta, &mut counted) else {
                return;
            };
            if counted.n < size {
                engine.drop_staged(staged);
                engine.entry_not_restored(
                    &cpath,
                    format!(
                        "the tar stream ends inside this file ({} of {size} bytes)",
                        counted.n
                    ),
                );
            } else {
                engine.add(cpath, Item::File { meta, staged });
            }
        }
        (What::Symlink(t), _) => engine.add_symlink(cpath, meta, &t),
        (What::Link(target), _) => engine.add(cpath, Item::Link { target }),
        (What::Special, _) => engine.add(cpath, Item::Special { meta }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        assert_eq!(normalize(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert!(normalize(b"/etc/passwd").is_err());
        assert!(normalize(b"a/../../evil").is_err());
        assert!(normalize(b"..").is_err());
    }
}
