//! The view as one ordered tar stream, encrypted in parallel with bounded memory.
//!
//! **Order.** Depth-first, a directory before its contents, each directory's entries in
//! the order [`View::list`] gives them (`gocryptfs.diriv`, then entries by plaintext
//! name bytewise, each long-named one preceded by its `.name` file). The root comes
//! first as `./`, so `tar -x -C D` gives `D` the root's mode, owner and mtime, as the
//! directory export does. Member names are `./` followed by the view path (`./d/` for
//! directories).
//!
//! **Pipeline.** One thread (the caller's) walks the view in that order and writes the
//! archive. Ahead of it, a window of upcoming entries is prepared: regular files
//! smaller than [`TarOptions::small_file_max`] are read and encrypted on the rayon
//! pool into memory, and the writer takes their results in order. Larger files are
//! encrypted by the writer itself, straight into the stream, and
//! [`FileEncryptor`] spreads their blocks over the pool. Memory is therefore bounded
//! by the window ([`TarOptions::window_bytes`] of prefetched ciphertext, at most
//! [`TarOptions::window_entries`] entries), one batch buffer for large files, the
//! listings of the directories on the current path, and the hard-link table. The
//! bytes never depend on the thread count or on timing: every entry's bytes are a
//! function of the view, and the writer alone decides the order.
//!
//! **Files that change while being read.** A tar header states the size before the
//! data, and the stated ciphertext size must be honoured exactly.
//! * At most the plaintext size seen when listing is read, so the archived bytes are
//!   always a valid ciphertext of a prefix of the file. If the file grew, an error
//!   is reported (the archived copy is its first N bytes).
//! * A small file is read completely before its header is written, so if it shrank
//!   (or could not be read), the header states the size actually archived, or the
//!   entry is left out; an error is reported.
//! * A large file's header is already out when its data runs short (it shrank, or a
//!   read failed). The rest of the entry is then filled with [`FILLER`] bytes. Those
//!   never authenticate (and are not the all-zero pattern gocryptfs reads as a hole),
//!   so the blocks that could not be read make gocryptfs and `cryptbak restore` fail
//!   loudly with an I/O or integrity error instead of yielding wrong data. The blocks
//!   before that point stay valid. An error naming the file is reported.
//!
//! Per-entry errors are reported through [`Progress`] and counted; the walk goes on.
//! An error writing the archive (a broken pipe, a full disk) ends the export with an
//! error: the archive is incomplete.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;

use crate::content::{
    self, cipher_size, seal_block, ContentCipher, FileEncryptor, FileIvs, BLOCK_SIZE,
    CIPHER_BLOCK_SIZE, HEADER_LEN,
};
use crate::error::{Error, Result};
use crate::progress::{Problem, Progress, Severity};
use crate::sink::tar::{Header, Kind, TarWriter};
use crate::view::{Entry, Payload, View, WatchedWriter};
use crate::walk::Summary;

/// What fills the rest of a large file's entry when its data runs short.
pub const FILLER: u8 = 0xff;

const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;
const S_IFIFO: u32 = 0o010000;

/// Tuning of the tar export. None of it changes the archive's bytes.
#[derive(Clone, Debug)]
pub struct TarOptions {
    /// Regular files with fewer plaintext bytes than this are encrypted ahead of the
    /// writer, in parallel, into memory; larger ones are streamed by the writer.
    pub small_file_max: u64,
    /// At most this many bytes of prefetched ciphertext are held at once (one file may
    /// go over it).
    pub window_bytes: u64,
    /// At most this many entries are prepared ahead of the writer.
    pub window_entries: usize,
}

impl Default for TarOptions {
    fn default() -> Self {
        TarOptions {
            small_file_max: 1 << 20,
            window_bytes: 64 << 20,
            window_entries: 1024,
        }
    }
}

/// Write the whole view of `view` as a tar archive to `out`, and give `out` back.
///
/// Per-entry problems are reported and counted in the summary. Errors writing `out`
/// are fatal and returned with `label` (how the output is named in messages).
pub fn export_tar<W: Write>(
    view: &View,
    out: W,
    label: &Path,
    progress: &dyn Progress,
    opts: &TarOptions,
) -> Result<(Summary, W)> {
    let root = view.root_entry()?;
    let mut ex = TarExport {
        view,
        progress,
        label,
        tar: TarWriter::new(out),
        summary: Summary::default(),
        links: HashMap::new(),
        failed: HashSet::new(),
        enc: FileEncryptor::new(&view.cryptor().content),
        small_file_max: opts.small_file_max,
    };
    let mut order = DepthFirst {
        view,
        root: Some(root),
        stack: Vec::new(),
        problems: Vec::new(),
    };
    rayon::in_place_scope(|s| ex.run(s, &mut order, opts))?;
    ex.tar.finish().map_err(|e| ex.output_error(e))?;
    ex.summary.bytes_written = ex.tar.position();
    Ok((ex.summary, ex.tar.into_inner()))
}

/// The view's entries in archive order, listing each directory when it is reached.
struct DepthFirst<'v> {
    view: &'v View,
    root: Option<Entry>,
    /// The rest of each listing on the path from the root to the current directory.
    stack: Vec<std::vec::IntoIter<Entry>>,
    /// Problems met while listing, for the caller to report.
    problems: Vec<Problem>,
}

impl DepthFirst<'_> {
    fn next(&mut self) -> Option<Entry> {
        if let Some(root) = self.root.take() {
            self.descend(&root);
            return Some(root);
        }
        loop {
            match self.stack.last_mut()?.next() {
                Some(e) => {
                    if e.is_dir() {
                        self.descend(&e);
                    }
                    return Some(e);
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }

    fn descend(&mut self, dir: &Entry) {
        match self.view.list(dir) {
            Ok(listing) => {
                self.problems.extend(listing.problems);
                self.stack.push(listing.entries.into_iter());
            }
            Err(err) => self
                .problems
                .push(Problem::error(&dir.source, err.to_string())),
        }
    }
}

/// A small file, read and encrypted ahead.
struct Sealed {
    bytes: Vec<u8>,
    read: u64,
    /// Set when the file changed while it was read (the entry is still written).
    problem: Option<String>,
}

/// An entry of the window, ready for the writer.
enum Work {
    /// Written from the entry alone: directories, symlinks, special and virtual files.
    Now(Entry),
    /// Another name of the file already archived as `primary` (its member path).
    Link { entry: Entry, primary: Vec<u8> },
    /// A small file being encrypted on the pool.
    Ahead {
        entry: Entry,
        result: mpsc::Receiver<std::result::Result<Sealed, String>>,
        reserved: u64,
    },
    /// A large file, encrypted by the writer into the stream.
    Inline(Entry),
}

struct TarExport<'a, W: Write> {
    view: &'a View,
    progress: &'a dyn Progress,
    label: &'a Path,
    tar: TarWriter<W>,
    summary: Summary,
    /// Hard-linked files seen so far: (dev, ino) → (member path of the first name,
    /// names still to come). An entry is dropped when its last name has been seen.
    links: HashMap<(u64, u64), (Vec<u8>, u64)>,
    /// Member paths of files that could not be archived (their links fail too).
    failed: HashSet<Vec<u8>>,
    enc: FileEncryptor<'a>,
    small_file_max: u64,
}

/// `./` followed by the view path; directories end in `/`; the root is `./`.
fn member_path(cpath: &[u8], dir: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(cpath.len() + 3);
    p.extend_from_slice(b"./");
    p.extend_from_slice(cpath);
    if dir && !cpath.is_empty() {
        p.push(b'/');
    }
    p
}

/// Open a source file for reading without following a symlink or blocking on a FIFO
/// that replaced it, and check it is still a regular file.
fn open_regular(path: &Path) -> io::Result<File> {
    let f = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("is no longer a regular file"));
    }
    Ok(f)
}

fn changed_message(listed: u64, read: u64, what_was_archived: &str) -> String {
    if read > listed {
        format!(
            "file grew while being read (it had {listed} bytes when listed); {what_was_archived}"
        )
    } else {
        format!("file shrank while being read ({listed} bytes when listed, {read} read); {what_was_archived}")
    }
}

/// Read at most `plain_size` bytes of a small file (one more to notice growth) and
/// encrypt them. Runs on the pool, one job per file, so the blocks are sealed here
/// serially into one exact-size buffer: a fresh `FileEncryptor` per job would allocate
/// and clear its 1 MiB batch buffer for every file.
fn seal_small(
    cipher: &ContentCipher,
    source: &Path,
    iv_path: &[u8],
    plain_size: u64,
) -> std::result::Result<Sealed, String> {
    let mut f = open_regular(source).map_err(|e| format!("cannot open: {e}"))?;
    let mut plain = vec![0u8; plain_size as usize + 1];
    let got = content::read_full(&mut f, &mut plain).map_err(|e| format!("cannot read: {e}"))?;
    let problem = match got as u64 {
        n if n > plain_size => Some(changed_message(
            plain_size,
            n,
            &format!("archived its first {plain_size} bytes"),
        )),
        n if n < plain_size => Some(changed_message(
            plain_size,
            n,
            &format!("archived the {n} bytes read"),
        )),
        _ => None,
    };
    plain.truncate(got.min(plain_size as usize));
    let ivs = FileIvs::for_path(iv_path);
    let mut bytes = vec![0u8; cipher_size(plain.len() as u64) as usize];
    if !plain.is_empty() {
        bytes[..HEADER_LEN].copy_from_slice(&content::header(&ivs.file_id));
        let mut siv = cipher.siv();
        for (n, (p, o)) in plain
            .chunks(BLOCK_SIZE)
            .zip(bytes[HEADER_LEN..].chunks_mut(CIPHER_BLOCK_SIZE))
            .enumerate()
        {
            seal_block(&mut siv, &ivs, n as u64, p, o);
        }
    }
    Ok(Sealed {
        bytes,
        read: plain.len() as u64,
        problem,
    })
}

impl<'a, W: Write> TarExport<'a, W> {
    fn run<'s>(
        &mut self,
        scope: &rayon::Scope<'s>,
        order: &mut DepthFirst,
        opts: &TarOptions,
    ) -> Result<()>
    where
        'a: 's,
    {
        let mut window: VecDeque<Work> = VecDeque::new();
        let mut ahead_bytes = 0u64;
        loop {
            crate::cancel::check()?;
            while window.len() < opts.window_entries.max(1) && ahead_bytes < opts.window_bytes {
                let next = order.next();
                for p in order.problems.drain(..) {
                    self.report(p);
                }
                let Some(e) = next else { break };
                let work = self.classify(e, scope);
                if let Work::Ahead { reserved, .. } = &work {
                    ahead_bytes += reserved;
                }
                window.push_back(work);
            }
            let Some(work) = window.pop_front() else {
                return Ok(());
            };
            if let Work::Ahead { reserved, .. } = &work {
                ahead_bytes -= reserved;
            }
            self.write(work)?;
        }
    }

    /// Decide how an entry is written, starting its encryption if it is a small file.
    /// Runs in archive order, so "the first name of a hard-linked file" is well defined.
    fn classify<'s>(&mut self, e: Entry, scope: &rayon::Scope<'s>) -> Work
    where
        'a: 's,
    {
        let Payload::File {
            plain_size,
            iv_path,
        } = &e.payload
        else {
            return Work::Now(e);
        };
        if e.meta.nlink > 1 {
            let key = (e.meta.dev, e.meta.ino);
            if let Some((primary, left)) = self.links.get_mut(&key) {
                let primary = primary.clone();
                *left -= 1;
                if *left == 0 {
                    self.links.remove(&key);
                }
                return Work::Link { entry: e, primary };
            }
            self.links
                .insert(key, (member_path(&e.cpath, false), e.meta.nlink - 1));
        }
        if *plain_size >= self.small_file_max {
            return Work::Inline(e);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let cipher = &self.view.cryptor().content;
        let (source, iv_path, plain_size) = (e.source.clone(), iv_path.clone(), *plain_size);
        scope.spawn(move |_| {
            // The writer may have stopped (broken pipe); then nobody wants the result.
            let _ = tx.send(seal_small(cipher, &source, &iv_path, plain_size));
        });
        Work::Ahead {
            reserved: cipher_size(plain_size),
            entry: e,
            result: rx,
        }
    }

    fn report(&mut self, p: Problem) {
        match p.severity {
            Severity::Warning => self.summary.warnings += 1,
            Severity::Error => self.summary.errors += 1,
        }
        self.progress.problem(&p);
    }

    fn output_error(&self, err: io::Error) -> Error {
        let err = if err.kind() == io::ErrorKind::BrokenPipe {
            io::Error::new(
                err.kind(),
                "broken pipe: the program reading the tar stream exited early (did ssh or the remote command fail?); the archive is incomplete",
            )
        } else {
            io::Error::new(
                err.kind(),
                format!("cannot write the archive: {err}; the archive is incomplete"),
            )
        };
        Error::io(self.label, err)
    }

    fn header(&mut self, e: &Entry, path: &[u8], kind: Kind, size: u64, link: &[u8]) -> Result<()> {
        let (dev_major, dev_minor) = match kind {
            Kind::CharDevice | Kind::BlockDevice => (
                nix::sys::stat::major(e.meta.rdev) as u32,
                nix::sys::stat::minor(e.meta.rdev) as u32,
            ),
            _ => (0, 0),
        };
        let h = Header {
            path,
            kind,
            mode: e.meta.permissions(),
            uid: e.meta.uid,
            gid: e.meta.gid,
            size,
            mtime: e.meta.mtime,
            link,
            dev_major,
            dev_minor,
        };
        self.tar.header(&h).map_err(|err| self.output_error(err))
    }

    /// A whole member whose data is in memory.
    fn member(&mut self, e: &Entry, data: &[u8]) -> Result<()> {
        self.header(
            e,
            &member_path(&e.cpath, false),
            Kind::File,
            data.len() as u64,
            b"",
        )?;
        self.tar
            .write_all(data)
            .and_then(|()| self.tar.pad())
            .map_err(|err| self.output_error(err))
    }

    fn write(&mut self, work: Work) -> Result<()> {
        let (entry, bytes) = match work {
            Work::Now(e) => {
                let b = self.write_now(&e)?;
                (e, b)
            }
            Work::Link { entry, primary } => {
                if self.failed.contains(&primary) {
                    self.report(Problem::error(
                        &entry.source,
                        "not archived: it is a hard link of a file that could not be archived",
                    ));
                    return Ok(());
                }
                let path = member_path(&entry.cpath, false);
                self.header(&entry, &path, Kind::HardLink, 0, &primary)?;
                self.summary.hard_links += 1;
                (entry, 0)
            }
            Work::Ahead { entry, result, .. } => {
                let sealed = result
                    .recv()
                    .expect("an encryption job ended without a result (it panicked)");
                match sealed {
                    Ok(s) => {
                        self.member(&entry, &s.bytes)?;
                        self.summary.files += 1;
                        self.summary.bytes_read += s.read;
                        if let Some(msg) = s.problem {
                            self.report(Problem::error(&entry.source, msg));
                        }
                        let n = s.bytes.len() as u64;
                        (entry, n)
                    }
                    Err(msg) => {
                        self.skip(&entry, msg);
                        return Ok(());
                    }
                }
            }
            Work::Inline(e) => match self.write_large(&e)? {
                Some(n) => (e, n),
                None => return Ok(()),
            },
        };
        self.progress.entry_done(&entry.cpath, bytes);
        Ok(())
    }

    /// Leave an entry out of the archive, and remember it so its hard links are too.
    fn skip(&mut self, e: &Entry, msg: String) {
        self.failed.insert(member_path(&e.cpath, false));
        self.report(Problem::error(&e.source, msg));
    }

    /// Directories, symlinks, special files and virtual files; returns the data size.
    fn write_now(&mut self, e: &Entry) -> Result<u64> {
        match &e.payload {
            Payload::Dir { .. } => {
                self.header(e, &member_path(&e.cpath, true), Kind::Dir, 0, b"")?;
                self.summary.dirs += 1;
                Ok(0)
            }
            Payload::Symlink { target } => {
                self.header(e, &member_path(&e.cpath, false), Kind::Symlink, 0, target)?;
                self.summary.symlinks += 1;
                Ok(0)
            }
            Payload::Special => {
                let kind = match e.meta.file_type() {
                    S_IFCHR => Kind::CharDevice,
                    S_IFBLK => Kind::BlockDevice,
                    S_IFIFO => Kind::Fifo,
                    _ => {
                        self.report(Problem::error(
                            &e.source,
                            "this file type cannot be stored in a tar archive; not archived",
                        ));
                        return Ok(0);
                    }
                };
                self.header(e, &member_path(&e.cpath, false), kind, 0, b"")?;
                self.summary.specials += 1;
                Ok(0)
            }
            Payload::DirIv(_) | Payload::LongName(_) | Payload::Config => {
                let mut data = Vec::with_capacity(e.meta.size.min(1 << 20) as usize);
                if let Err(err) = self.view.write_content(e, &mut self.enc, &mut data) {
                    self.skip(e, err.to_string());
                    return Ok(0);
                }
                self.member(e, &data)?;
                self.summary.virtual_files += 1;
                Ok(data.len() as u64)
            }
            Payload::File { .. } => unreachable!("regular files are classified"),
        }
    }

    /// Stream a large file's ciphertext into the archive. `None` if it was left out.
    fn write_large(&mut self, e: &Entry) -> Result<Option<u64>> {
        let Payload::File {
            plain_size,
            iv_path,
        } = &e.payload
        else {
            unreachable!("only regular files are written inline")
        };
        let mut file = match open_regular(&e.source) {
            Ok(f) => f,
            Err(err) => {
                self.skip(e, format!("cannot open: {err}"));
                return Ok(None);
            }
        };
        let declared = cipher_size(*plain_size);
        self.header(e, &member_path(&e.cpath, false), Kind::File, declared, b"")?;
        let ivs = FileIvs::for_path(iv_path);
        let streamed = stream_file(&mut self.tar, &mut self.enc, &ivs, &mut file, *plain_size)
            .map_err(|err| self.output_error(err))?;
        self.summary.files += 1;
        self.summary.bytes_read += streamed.read;
        if let Some(msg) = streamed.problem {
            self.report(Problem::error(&e.source, msg));
        }
        Ok(Some(declared))
    }
}

/// What [`stream_file`] read.
#[derive(Debug)]
struct Streamed {
    read: u64,
    /// Set when the source did not give exactly `plain_size` bytes.
    problem: Option<String>,
}

/// Write exactly `cipher_size(plain_size)` bytes of member data for `src`, then pad the
/// member: the encryption of at most `plain_size` bytes of `src`, and [`FILLER`] where
/// `src` ran short or failed. Only errors writing `tar` are returned.
fn stream_file<W: Write>(
    tar: &mut TarWriter<W>,
    enc: &mut FileEncryptor,
    ivs: &FileIvs,
    src: &mut impl Read,
    plain_size: u64,
) -> io::Result<Streamed> {
    let declared = cipher_size(plain_size);
    let start = tar.position();
    let mut limited = (&mut *src).take(plain_size);
    // Tells an output error (fatal) from a source error (reported, the export goes on).
    let mut out = WatchedWriter {
        inner: &mut *tar,
        failed: false,
    };
    let result = enc.encrypt(ivs, &mut limited, &mut out);
    if out.failed {
        return Err(result.expect_err("a failed write fails the encryption"));
    }
    let read = plain_size - limited.limit();
    const DAMAGED: &str = "the rest of its tar entry is filler that fails authentication, so a restore reports this file as damaged";
    let problem = match result {
        Err(err) => Some(format!(
            "read error after {read} of {plain_size} bytes: {err}; {DAMAGED}"
        )),
        Ok(_) if read < plain_size => Some(changed_message(plain_size, read, DAMAGED)),
        Ok(_) => {
            let mut probe = [0u8; 1];
            match src.read(&mut probe) {
                Ok(1) => Some(changed_message(
                    plain_size,
                    plain_size + 1,
                    &format!("archived its first {plain_size} bytes"),
                )),
                _ => None,
            }
        }
    };
    let written = tar.position() - start;
    if written < declared {
        tar.fill(FILLER, declared - written)?;
    }
    tar.pad()?;
    Ok(Streamed { read, problem })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{open_block, BLOCK_OVERHEAD};
    use crate::keys::{siv_key, MasterKey};

    #[test]
    fn member_paths() {
        assert_eq!(member_path(b"", true), b"./");
        assert_eq!(member_path(b"a/b", true), b"./a/b/");
        assert_eq!(member_path(b"a/b", false), b"./a/b");
    }

    fn cipher() -> ContentCipher {
        ContentCipher::new(siv_key(&MasterKey::from_bytes([0; 32]), true))
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Gives `data`, then fails with EIO if `fail` is set (else EOF).
    struct Source {
        data: Vec<u8>,
        pos: usize,
        fail: bool,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return if self.fail {
                    Err(io::Error::from_raw_os_error(nix::libc::EIO))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// Stream `src` as a file of `plain_size` bytes; returns the member data
    /// (without the padding) and what `stream_file` reported.
    fn stream(c: &ContentCipher, src: Source, plain_size: u64) -> (Vec<u8>, Streamed) {
        let mut tar = TarWriter::new(Vec::new());
        let mut src = src;
        let ivs = FileIvs::for_path(b"some/file");
        let s = stream_file(
            &mut tar,
            &mut FileEncryptor::new(c),
            &ivs,
            &mut src,
            plain_size,
        )
        .unwrap();
        let mut out = tar.into_inner();
        assert_eq!(out.len() % 512, 0, "member padded to whole blocks");
        let declared = cipher_size(plain_size) as usize;
        assert!(out[declared..].iter().all(|&b| b == 0), "padding is zeros");
        out.truncate(declared);
        (out, s)
    }

    /// Which ciphertext blocks authenticate and decrypt to `plain`'s blocks.
    fn good_blocks(c: &ContentCipher, member: &[u8], plain: &[u8]) -> Vec<bool> {
        let ivs = FileIvs::for_path(b"some/file");
        let mut siv = c.siv();
        let header_ok = member[..HEADER_LEN] == content::header(&ivs.file_id);
        member[HEADER_LEN..]
            .chunks(CIPHER_BLOCK_SIZE)
            .enumerate()
            .map(|(n, block)| {
                let mut out = vec![0u8; block.len() - BLOCK_OVERHEAD];
                header_ok
                    && open_block(&mut siv, &ivs.file_id, n as u64, block, &mut out)
                    && plain.get(n * BLOCK_SIZE..n * BLOCK_SIZE + out.len()) == Some(&out[..])
            })
            .collect()
    }

    const SIZE: usize = 3 * BLOCK_SIZE + 100;

    #[test]
    fn complete_file_is_plain_encryption() {
        let c = cipher();
        let plain = data(SIZE);
        let src = Source {
            data: plain.clone(),
            pos: 0,
            fail: false,
        };
        let (member, s) = stream(&c, src, SIZE as u64);
        assert!(s.problem.is_none());
        assert_eq!(s.read, SIZE as u64);
        assert_eq!(good_blocks(&c, &member, &plain), [true; 4]);
    }

    #[test]
    fn shrunk_file_keeps_declared_size_and_poisons_the_missing_blocks() {
        let c = cipher();
        let plain = data(SIZE);
        // Only one and a half blocks are left when the file is read.
        let src = Source {
            data: plain[..BLOCK_SIZE + 2000].to_vec(),
            pos: 0,
            fail: false,
        };
        let (member, s) = stream(&c, src, SIZE as u64);
        assert_eq!(member.len() as u64, cipher_size(SIZE as u64));
        assert_eq!(
            good_blocks(&c, &member, &plain),
            [true, false, false, false]
        );
        assert!(member[member.len() - 100..].iter().all(|&b| b == FILLER));
        let msg = s.problem.unwrap();
        assert!(
            msg.contains("shrank") && msg.contains("fails authentication"),
            "{msg}"
        );
        assert_eq!(s.read, (BLOCK_SIZE + 2000) as u64);
    }

    #[test]
    fn file_gone_empty_gets_filler_from_the_header_on() {
        let c = cipher();
        let src = Source {
            data: Vec::new(),
            pos: 0,
            fail: false,
        };
        let (member, s) = stream(&c, src, 10);
        assert_eq!(member, vec![FILLER; cipher_size(10) as usize]);
        assert!(content::parse_header(&member[..HEADER_LEN]).is_none());
        assert!(s.problem.unwrap().contains("shrank"));
    }

    #[test]
    fn read_error_keeps_declared_size_and_poisons_the_rest() {
        let c = cipher();
        let plain = data(SIZE);
        let src = Source {
            data: plain[..2 * BLOCK_SIZE + 5].to_vec(),
            pos: 0,
            fail: true,
        };
        let (member, s) = stream(&c, src, SIZE as u64);
        assert_eq!(member.len() as u64, cipher_size(SIZE as u64));
        // Blocks from a batch that was read whole may be kept (how many depends on the
        // encryptor's first read size); everything from the failed read on is filler.
        let good = good_blocks(&c, &member, &plain);
        assert!(!good[2..].iter().any(|&g| g), "{good:?}");
        assert!(
            good.windows(2).all(|w| w[0] || !w[1]),
            "good blocks must be a prefix: {good:?}"
        );
        let msg = s.problem.unwrap();
        assert!(msg.starts_with("read error after"), "{msg}");
    }

    #[test]
    fn grown_file_archives_a_valid_prefix() {
        let c = cipher();
        let plain = data(SIZE + 5000);
        let src = Source {
            data: plain.clone(),
            pos: 0,
            fail: false,
        };
        let (member, s) = stream(&c, src, SIZE as u64);
        assert_eq!(member.len() as u64, cipher_size(SIZE as u64));
        assert_eq!(good_blocks(&c, &member, &plain[..SIZE]), [true; 4]);
        let msg = s.problem.unwrap();
        assert!(
            msg.contains("grew") && msg.contains(&format!("first {SIZE} bytes")),
            "{msg}"
        );
        assert_eq!(s.read, SIZE as u64);
    }

    #[test]
    fn output_errors_are_returned_not_reported() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let c = cipher();
        let mut tar = TarWriter::new(Full);
        let mut src = Source {
            data: data(100),
            pos: 0,
            fail: false,
        };
        let err = stream_file(
            &mut tar,
            &mut FileEncryptor::new(&c),
            &FileIvs::for_path(b"x"),
            &mut src,
            100,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn small_files_are_sealed_like_the_streaming_encryptor() {
        let c = cipher();
        let dir = tempfile::tempdir().unwrap();
        for size in [0usize, 1, 4095, 4096, 4097, 3 * BLOCK_SIZE + 100] {
            let path = dir.path().join(format!("f{size}"));
            let plain = data(size);
            std::fs::write(&path, &plain).unwrap();
            let sealed = seal_small(&c, &path, b"iv/path", size as u64).unwrap();
            let mut want = Vec::new();
            FileEncryptor::new(&c)
                .encrypt(&FileIvs::for_path(b"iv/path"), &mut &plain[..], &mut want)
                .unwrap();
            assert_eq!(sealed.bytes, want, "{size}");
            assert!(sealed.problem.is_none());
            // Listed bigger than it is: the header will state what was read.
            let shrunk = seal_small(&c, &path, b"iv/path", size as u64 + 10).unwrap();
            assert_eq!(shrunk.bytes, want);
            assert!(shrunk.problem.unwrap().contains("shrank"));
            if size > 0 {
                // Listed smaller than it is: a valid encryption of the listed prefix.
                let grown = seal_small(&c, &path, b"iv/path", size as u64 - 1).unwrap();
                assert_eq!(grown.bytes.len() as u64, cipher_size(size as u64 - 1));
                assert!(grown.problem.unwrap().contains("grew"));
            }
        }
        let err = seal_small(&c, &dir.path().join("missing"), b"x", 1)
            .err()
            .unwrap();
        assert!(err.starts_with("cannot open"), "{err}");
        let err = seal_small(&c, dir.path(), b"x", 1).err().unwrap();
        assert!(err.contains("no longer a regular file"), "{err}");
    }
}
