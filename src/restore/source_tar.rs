//! Entries from a tar stream of a ciphertext tree, read in one pass.
//!
//! Every header is hostile: absolute paths and `..` are refused, names are taken as raw
//! bytes, sizes are only trusted as far as the bytes actually arrive, and small virtual
//! files (`gocryptfs.diriv`, `.name`, `gocryptfs.conf`) are read with a cap. Memory stays
//! bounded: file contents go straight through decryption into DEST's staging directory.

use std::io::{self, Read};
use std::path::PathBuf;

use crate::config::MAX_CONFIG_LEN;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::view::{Meta, Time, S_IFDIR, S_IFLNK, S_IFREG};

use super::engine::{join_cpath, show_cpath, split_cpath, CPath, Engine, EngineOptions, Item};
use super::source_dir::{classify, Special};
use super::writer::{Dest, StageId};
use super::{Summary, MAX_NAME_FILE};
use crate::format::Cryptor;

enum Kind {
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
    kind: Kind,
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

/// A pax time such as `1700000000.123456789`.
fn pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    // A negative pax time with a fraction counts the fraction towards zero. (Checked:
    // a hostile `-9223372036854775808.5` has no representation; it is ignored.)
    Some(if sec < 0 && nsec > 0 {
        Time {
            sec: sec.checked_sub(1)?,
            nsec: 1_000_000_000 - nsec,
        }
    } else {
        Time { sec, nsec }
    })
}

fn header_of<R: Read>(e: &mut tar::Entry<'_, R>) -> std::result::Result<Header, String> {
    let cpath = normalize(&e.path_bytes()).map_err(String::from)?;
    let h = e.header();
    let et = h.entry_type();
    let perm = h.mode().map_err(|err| format!("bad mode field: {err}"))? & 0o7777;
    let id = |v: io::Result<u64>| {
        v.ok()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(u32::MAX)
    };
    let (uid, gid) = (id(h.uid()), id(h.gid()));
    let mut mtime = Time {
        sec: h
            .mtime()
            .map(|t| t.min(i64::MAX as u64) as i64)
            .unwrap_or(0),
        nsec: 0,
    };
    let dev = |v: io::Result<Option<u32>>| v.ok().flatten().unwrap_or(0);
    let (major, minor) = (dev(h.device_major()), dev(h.device_minor()));
    let link = e.link_name_bytes().map(|l| l.into_owned());
    let mut atime = None;
    if let Ok(Some(pax)) = e.pax_extensions() {
        for ext in pax.flatten() {
            match ext.key_bytes() {
                b"mtime" => mtime = pax_time(ext.value_bytes()).unwrap_or(mtime),
                b"atime" => atime = pax_time(ext.value_bytes()),
                _ => {}
            }
        }
    }
    use tar::EntryType as T;
    let (ftype, kind) = match et {
        T::Directory => (S_IFDIR, Kind::Dir),
        T::Regular | T::Continuous => (S_IFREG, Kind::File),
        // Its holes are zeros that are not in the stream: a few bytes of header could make
        // us decrypt and write terabytes. A ciphertext written by export has no holes.
        T::GNUSparse => return Err(
            "GNU sparse member refused (its holes could expand to any size); extract the archive with tar and restore the directory".into(),
        ),
        // Archive-wide pax records (a comment, say): nothing to restore.
        T::XGlobalHeader => (0, Kind::Ignored("pax global header ignored")),
        T::Symlink => (
            S_IFLNK,
            Kind::Symlink(link.ok_or("symlink without a target")?),
        ),
        T::Link => {
            let target = normalize(&link.ok_or("hard link without a target")?)
                .map_err(|m| format!("hard link target: {m}"))?;
            (S_IFREG, Kind::Link(target))
        }
        T::Char => (0o020000, Kind::Special),
        T::Block => (0o060000, Kind::Special),
        T::Fifo => (0o010000, Kind::Special),
        other => {
            let b = other.as_byte();
            return Err(format!(
                "unsupported tar entry type {:?} ({b}); skipped",
                char::from(b)
            ));
        }
    };
    let meta = Meta {
        mode: ftype | perm,
        uid,
        gid,
        size: 0,
        atime: atime.unwrap_or(mtime),
        mtime,
        dev: 0,
        ino: 0,
        nlink: 1,
        rdev: nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
    };
    Ok(Header {
        cpath,
        meta,
        kind,
        size: e.size(),
    })
}

/// Read at most `max + 1` bytes of an entry (the rest is skipped, never held).
fn read_prefix(r: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(max as u64 + 1).read_to_end(&mut v)?;
    Ok(v)
}

/// Read at most `max` bytes of an entry; `None` if it is longer.
fn read_capped(r: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let v = read_prefix(r, max)?;
    Ok((v.len() <= max).then_some(v))
}

/// The most a member's header records may take: its ustar header(s), GNU long name and
/// long link, pax records, sparse map and padding. Real ones take a few KiB.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// The tar crate reads a member's GNU long name, long link and pax records into memory
/// whole, whatever size their header claims: a few bytes of stream could make it
/// allocate gigabytes. While it looks for the next member (member data is drained
/// before, see [`drain`]), reads come out of this budget.
#[derive(Clone, Default)]
struct Budget(std::rc::Rc<std::cell::Cell<Option<u64>>>);

impl Budget {
    fn next<'a, R: Read>(
        &self,
        entries: &mut tar::Entries<'a, R>,
    ) -> Option<io::Result<tar::Entry<'a, R>>> {
        self.0.set(Some(MAX_HEADER_BYTES));
        let e = entries.next();
        self.0.set(None);
        e
    }
}

/// The stream, read through a [`Budget`].
struct Limited<R> {
    inner: R,
    budget: Budget,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.budget.0.get() else {
            return self.inner.read(buf);
        };
        if left == 0 {
            return Err(io::Error::other(format!(
                "a member's header records (GNU long name, pax) take more than {MAX_HEADER_BYTES} bytes; refused"
            )));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..n])?;
        self.budget.0.set(Some(left - got as u64));
        Ok(got)
    }
}

/// Read the rest of a member's data, so that finding the next member reads only headers.
fn drain(entry: &mut impl Read) {
    // An error here is the stream's; the next header read reports it.
    let _ = io::copy(entry, &mut io::sink());
}

/// An entry met before the config, kept until the keys are known.
struct Spooled {
    header: Header,
    /// The ciphertext of a regular file, in the staging directory.
    content: Option<StageId>,
}

pub(super) fn restore<R: Read>(
    reader: R,
    dest: Dest,
    unlock: impl FnOnce(Option<&[u8]>) -> Result<Cryptor>,
    config_in_stream: bool,
    opts: EngineOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let budget = Budget::default();
    let mut archive = tar::Archive::new(Limited {
        inner: reader,
        budget: budget.clone(),
    });
    let mut entries = match archive.entries() {
        Ok(e) => e,
        Err(err) => {
            dest.abandon();
            return Err(Error::io("tar stream", err));
        }
    };
    let mut spool: Vec<Spooled> = Vec::new();
    let mut early_problems: Vec<(PathBuf, String)> = Vec::new();
    let keys = if config_in_stream {
        let mut found = None;
        while let Some(entry) = budget.next(&mut entries) {
            if crate::cancel::requested() {
                discard_spool(&dest, &spool);
                dest.abandon();
                return Err(Error::RestoreInterrupted);
            }
            let mut entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    discard_spool(&dest, &spool);
                    dest.abandon();
                    return Err(Error::io("tar stream", err));
                }
            };
            let header = match header_of(&mut entry) {
                Ok(h) => h,
                Err(msg) => {
                    early_problems.push((
                        PathBuf::from(String::from_utf8_lossy(&entry.path_bytes()).into_owned()),
                        msg,
                    ));
                    drain(&mut entry);
                    continue;
                }
            };
            if header.cpath == b"gocryptfs.conf" && matches!(header.kind, Kind::File) {
                let bytes = match read_capped(&mut entry, MAX_CONFIG_LEN) {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        discard_spool(&dest, &spool);
                        dest.abandon();
                        return Err(Error::ConfigInvalid {
                            path: "gocryptfs.conf (in the tar stream)".into(),
                            msg: "larger than any gocryptfs config".into(),
                        });
                    }
                    Err(err) => {
                        discard_spool(&dest, &spool);
                        dest.abandon();
                        return Err(Error::io("tar stream", err));
                    }
                };
                found = Some(bytes);
                break;
            }
            let content = if matches!(header.kind, Kind::File) {
                let r = dest.stage_file().and_then(|(id, mut f)| {
                    io::copy(&mut entry, &mut f)
                        .map(|_| id)
                        .map_err(|err| Error::io("tar stream", err))
                });
                match r {
                    Ok(id) => Some(id),
                    Err(err) => {
                        discard_spool(&dest, &spool);
                        dest.abandon();
                        return Err(err);
                    }
                }
            } else {
                drain(&mut entry);
                None
            };
            spool.push(Spooled { header, content });
        }
        let Some(bytes) = found else {
            discard_spool(&dest, &spool);
            dest.abandon();
            return Err(Error::ConfigUnreadable {
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
        Err(err) => {
            discard_spool(&dest, &spool);
            dest.abandon();
            return Err(err);
        }
    };
    let engine = Engine::new(keys, &dest, progress, opts);
    for (p, msg) in early_problems {
        engine.error(p, msg);
    }
    for s in spool {
        match s.content {
            Some(id) => match dest.open_staged(id) {
                Ok(mut f) => {
                    feed_entry(&engine, s.header, &mut f);
                    dest.discard(id);
                }
                Err(err) => engine.error(show_cpath(&s.header.cpath), err.to_string()),
            },
            None => feed_entry(&engine, s.header, &mut io::empty()),
        }
    }
    while let Some(entry) = budget.next(&mut entries) {
        if crate::cancel::requested() {
            break;
        }
        let mut entry = match entry {
            Ok(e) => e,
            Err(err) => {
                // A broken stream: what came before is restored, the rest is missing.
                engine.error("tar stream", format!("unreadable, stopping here: {err}"));
                break;
            }
        };
        match header_of(&mut entry) {
            Ok(h) => feed_entry(&engine, h, &mut entry),
            Err(msg) => {
                let raw = entry.path_bytes();
                let shown = match normalize(&raw) {
                    Ok(c) if !c.is_empty() => engine.shown(&c),
                    _ => PathBuf::from(String::from_utf8_lossy(&raw).into_owned()),
                };
                engine.error(shown, msg)
            }
        }
        drain(&mut entry);
    }
    if crate::cancel::requested() {
        return Err(engine.abort());
    }
    engine.finish()
}

fn discard_spool(dest: &Dest, spool: &[Spooled]) {
    for s in spool {
        if let Some(id) = s.content {
            dest.discard(id);
        }
    }
}

fn feed_entry(engine: &Engine, h: Header, content: &mut impl Read) {
    let Header {
        cpath,
        meta,
        kind,
        size,
    } = h;
    let (parent, name) = split_cpath(&cpath);
    if cpath.is_empty() {
        match kind {
            Kind::Dir => engine.set_root_meta(meta),
            _ => engine.error("tar stream", "the root of the stream is not a directory"),
        }
        return;
    }
    let has_names = engine.codec.is_some();
    let dir_iv_files = has_names && engine.format.dir_iv;
    let special = classify(
        has_names,
        dir_iv_files,
        engine.format.long_names,
        parent.is_empty(),
        name,
    );
    match (kind, special) {
        (Kind::Ignored(msg), _) => engine.warn(show_cpath(&cpath), msg),
        (Kind::File, Special::Config) => {}
        // At most one byte more than allowed is read: the engine tells "too long" apart.
        (Kind::File, Special::DirIv) => match read_prefix(content, 16) {
            Ok(b) => engine.add_diriv(parent.to_vec(), &b),
            Err(err) => engine.error(show_cpath(&cpath), err.to_string()),
        },
        (Kind::File, Special::NameFile(entry)) => match read_prefix(content, MAX_NAME_FILE) {
            Ok(b) => engine.add_long_name(join_cpath(parent, entry), &b),
            Err(err) => engine.error(show_cpath(&cpath), err.to_string()),
        },
        // The format's own files must be regular files; anything else under their names
        // (a directory, a symlink, a link) is not an entry either, nor is what is below it.
        (kind, s @ (Special::DirIv | Special::NameFile(_) | Special::Config)) => {
            if matches!(s, Special::DirIv) {
                engine.bad_diriv(parent.to_vec(), "not a regular file");
            } else {
                engine.integrity(show_cpath(&cpath), "not a regular file; ignored");
            }
            if matches!(kind, Kind::Dir) {
                engine.skip_dir(cpath);
            }
        }
        (_, Special::Temp) => engine.warn(
            show_cpath(&cpath),
            "leftover temporary file of an interrupted export; ignored",
        ),
        (Kind::Dir, _) => engine.add(cpath, Item::Dir { meta }),
        (Kind::File, _) => {
            if engine.wanted(&cpath) == Some(false) {
                return;
            }
            let mut counted = Counted {
                inner: content,
                n: 0,
            };
            match engine.stage_file(&cpath, &meta, &mut counted) {
                Ok(staged) if counted.n < size => {
                    engine.drop_staged(staged);
                    engine.error(
                        engine.shown(&cpath),
                        format!(
                            "the tar stream ends inside this file ({} of {size} bytes); not restored",
                            counted.n
                        ),
                    );
                }
                Ok(staged) => engine.add(cpath, Item::File { meta, staged }),
                Err(err) => engine.error_from(&show_cpath(&cpath), &err),
            }
        }
        (Kind::Symlink(t), _) => engine.add_symlink(cpath, meta, &t),
        (Kind::Link(target), _) => engine.add(cpath, Item::Link { target }),
        (Kind::Special, _) => engine.add(cpath, Item::Special { meta }),
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

    #[test]
    fn pax_times() {
        assert_eq!(
            pax_time(b"1700000000.5"),
            Some(Time {
                sec: 1_700_000_000,
                nsec: 500_000_000
            })
        );
        assert_eq!(pax_time(b"12"), Some(Time { sec: 12, nsec: 0 }));
        assert_eq!(pax_time(b"x"), None);
        assert_eq!(
            pax_time(b"-1.25"),
            Some(Time {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(pax_time(b"-9223372036854775808.5"), None);
    }
}
