//! Export into a stream (a tar archive): every entry in the canonical order, encrypted
//! in parallel with bounded memory.
//!
//! **Pipeline.** The walk (on the caller's thread) hands entries to the sink in order.
//! Ahead of it, a window of upcoming entries is prepared: regular files smaller than
//! [`StreamOptions::small_file_max`] are read and encrypted on the pool into memory,
//! and the writer takes their results in order. Larger files are encrypted by the
//! writer itself, straight into the stream, and [`FileEncryptor`] spreads their blocks
//! over the pool. Memory is therefore bounded by the window ([`StreamOptions::window_bytes`]
//! of prefetched ciphertext, at most [`StreamOptions::window_entries`] entries), one
//! batch buffer for large files, the listings of the directories on the current path
//! and the ones listed ahead, and the hard-link table. The bytes never depend on the
//! thread count or on timing.
//!
//! **Files that change while being read.** A stream states each member's size before
//! its data, and the stated size must be honoured exactly.
//! * At most the listed plaintext size is read, so the archived bytes are always a valid
//!   ciphertext of a prefix of the file. If the file grew, an error is reported (the
//!   archived copy is its first N bytes).
//! * A small file is read completely before its header is written, so it can be read
//!   once more when it changed; if it changed again, the header states the size
//!   actually archived and an error is reported.
//! * A large file's header is out when its data runs short (it shrank, or a read
//!   failed). The rest of the member is then filled with [`FILLER`] bytes. Those never
//!   authenticate (and are not the all-zero pattern gocryptfs reads as a hole), so the
//!   blocks that could not be read make gocryptfs and `cryptbak restore` fail loudly
//!   instead of yielding wrong data. An error naming the file is reported.
//!
//! An error writing the stream (a broken pipe, a full disk) or a stop request ends the
//! export at once, without the end-of-archive marker ([`StreamSink::abort`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use super::encrypt;
use super::source;
use super::walk::{Ahead, Prefetch};
use super::{add, Summary, Tally};
use crate::error::{Error, Result};
use crate::format::content::{
    self, cipher_size, seal_block, ContentCipher, FileEncryptor, FileIvs,
};
use crate::format::content::{BLOCK_SIZE, CIPHER_BLOCK_SIZE, HEADER_LEN};
use crate::fs::Dir;
use crate::progress::Progress;
use crate::sink::{Body, StreamSink};
use crate::view::{Entry, Listing, Meta, Payload, View};

/// What fills the rest of a large file's member when its data runs short.
pub const FILLER: u8 = 0xff;

/// Tuning of the stream export. None of it changes the stream's bytes.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Regular files with fewer plaintext bytes than this are encrypted ahead of the
    /// writer, in parallel, into memory; larger ones are streamed by the writer.
    pub small_file_max: u64,
    /// At most this many bytes of prefetched ciphertext are held at once (one file may
    /// go over it).
    pub window_bytes: u64,
    /// At most this many entries are prepared ahead of the writer.
    pub window_entries: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            small_file_max: 1 << 20,
            window_bytes: 64 << 20,
            window_entries: 1024,
        }
    }
}

/// A small file, read and encrypted ahead.
struct Sealed {
    entry: Entry,
    bytes: Vec<u8>,
    read: u64,
    /// Set when the file changed while it was read (the member is still written).
    problem: Option<String>,
}

/// An entry of the window, ready for the writer.
enum Work {
    /// Written from the entry alone: directories, symlinks, special and virtual files.
    Now(Entry),
    /// Another name of the file already archived at view path `primary`.
    Link { entry: Entry, primary: Vec<u8> },
    /// A small file being encrypted on the pool.
    Ahead {
        entry: Entry,
        result: mpsc::Receiver<std::result::Result<Sealed, String>>,
        reserved: u64,
    },
    /// A large file, encrypted by the writer into the stream.
    Inline(Entry, Arc<Dir>),
}

/// A source directory's handle (when it could be opened) and its view listing.
type Listed = (Option<Arc<Dir>>, Listing);

/// A directory being walked: the rest of its listing, and its child directories'
/// listings being made ahead.
struct Frame<'s> {
    src: Option<Arc<Dir>>,
    entries: std::vec::IntoIter<Entry>,
    children: VecDeque<Arc<Ahead<'s, Listed>>>,
}

struct Export<'a, S: StreamSink> {
    view: &'a View,
    tally: Tally<'a>,
    sink: &'a mut S,
    label: &'a Path,
    /// Hard-linked files seen so far: (dev, ino) → (view path of the first name,
    /// names still to come). An entry is dropped when its last name has been seen.
    links: HashMap<(u64, u64), (Vec<u8>, u64)>,
    /// View paths of files that could not be archived (their links fail too).
    failed: HashSet<Vec<u8>>,
    enc: FileEncryptor<'a>,
    prefetch: Prefetch,
    opts: StreamOptions,
}

/// Write the whole view of the tree `src` into `sink`, then end the stream.
///
/// Per-entry problems are reported and counted in the summary. Errors writing the
/// stream and stop requests end the export (the stream is then left recognisably
/// incomplete); `label` names the stream in messages.
pub fn export_stream<S: StreamSink>(
    view: &View,
    src: Dir,
    sink: &mut S,
    label: &Path,
    progress: &dyn Progress,
    opts: &StreamOptions,
) -> Result<Summary> {
    let root_meta = Meta::from_stat(&src.stat().map_err(|e| Error::io(view.root(), e))?);
    let root = view.root_entry(root_meta);
    let mut ex = Export {
        view,
        tally: Tally::new(view, progress),
        sink,
        label,
        links: HashMap::new(),
        failed: HashSet::new(),
        enc: FileEncryptor::new(&view.cryptor().content),
        prefetch: Prefetch::default(),
        opts: opts.clone(),
    };
    let src = Arc::new(src);
    let result = rayon::in_place_scope(|s| ex.run(s, root, src));
    let result = result.and_then(|()| ex.sink.finish().map_err(|e| ex.output_error(e)));
    if let Err(e) = result {
        let _ = ex.sink.abort();
        return Err(if crate::cancel::requested() {
            Error::Interrupted
        } else {
            e
        });
    }
    let mut summary = ex.tally.counters.summary();
    summary.bytes_written = ex.sink.position();
    Ok(summary)
}

/// Read at most `plain_size` bytes of a small file (one more to notice growth) and
/// encrypt them; once more if it changed while being read. Runs on the pool, one job
/// per file, so the blocks are sealed here serially into one exact-size buffer: a
/// fresh `FileEncryptor` per job would allocate and clear its 1 MiB batch buffer for
/// every file.
fn seal_small(
    view: &View,
    cipher: &ContentCipher,
    src: &Dir,
    entry: Entry,
) -> std::result::Result<Sealed, String> {
    let mut e = entry;
    for attempt in 0..2 {
        let last = attempt == 1;
        let mut f = match source::open_file(src, &e) {
            Ok(f) => f,
            Err(_) if !last => {
                e = source::refresh(view, src, &e).map_err(|p| p.msg)?;
                continue;
            }
            Err(err) => return Err(format!("cannot open: {}", crate::error::in_words(&err))),
        };
        let Payload::File {
            plain_size,
            iv_path,
        } = &e.payload
        else {
            unreachable!("only regular files are sealed")
        };
        let plain_size = *plain_size;
        let (plain, o) = read_small(src, &e, &mut f, plain_size);
        if !o.is_clean(plain_size) && o.error.is_none() && !last {
            e = source::refresh(view, src, &e).map_err(|p| p.msg)?;
            continue;
        }
        if let Some(err) = &o.error {
            return Err(format!("cannot read: {}", crate::error::in_words(err)));
        }
        let problem = (!o.is_clean(plain_size)).then(|| {
            let kept = if o.grew {
                format!("archived its first {plain_size} bytes")
            } else {
                format!("archived the {} bytes read", plain.len())
            };
            o.problem(plain_size, &kept)
        });
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
        let read = plain.len() as u64;
        return Ok(Sealed {
            entry: e,
            bytes,
            read,
            problem,
        });
    }
    unreachable!("the second attempt always returns")
}

/// Read a small file whole (at most its listed size, one byte more to notice growth).
fn read_small(src: &Dir, e: &Entry, f: &mut File, plain_size: u64) -> (Vec<u8>, encrypt::Outcome) {
    let mut plain = vec![0u8; plain_size as usize + 1];
    let mut o = encrypt::Outcome::default();
    match content::read_full(f, &mut plain) {
        Ok(got) => {
            o.grew = got as u64 > plain_size;
            plain.truncate(got.min(plain_size as usize));
            o.read = plain.len() as u64;
            o.changed = !source::still_as_listed(src, e, plain_size);
        }
        Err(err) => {
            plain.clear();
            o.error = Some(err);
        }
    }
    (plain, o)
}

impl<'a, S: StreamSink> Export<'a, S> {
    fn run<'s>(&mut self, scope: &rayon::Scope<'s>, root: Entry, src: Arc<Dir>) -> Result<()>
    where
        'a: 's,
    {
        let view = self.view;
        let mut stack: Vec<Frame<'s>> = Vec::new();
        let mut window: VecDeque<Work> = VecDeque::new();
        let mut ahead_bytes = 0u64;
        // The root first; its listing is made now.
        let listing = source::listing(view, &src, &root);
        self.enter(scope, &mut stack, Some(src), listing);
        window.push_back(Work::Now(root));
        loop {
            crate::cancel::check()?;
            while window.len() < self.opts.window_entries.max(1)
                && ahead_bytes < self.opts.window_bytes
            {
                let Some(work) = self.next(scope, &mut stack) else {
                    break;
                };
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

    /// Start on a directory's contents: report its listing's problems, list its child
    /// directories ahead.
    fn enter<'s>(
        &mut self,
        scope: &rayon::Scope<'s>,
        stack: &mut Vec<Frame<'s>>,
        src: Option<Arc<Dir>>,
        mut listing: Listing,
    ) where
        'a: 's,
    {
        for p in listing.problems.drain(..) {
            self.tally.problem(p);
        }
        let view: &'s View = self.view;
        let mut children = VecDeque::new();
        for e in listing.entries.iter().filter(|e| e.is_dir()) {
            let (psrc, e) = (src.clone(), e.clone());
            children.push_back(self.prefetch.queue(scope, move || {
                let Some(parent) = psrc else {
                    return (None, Listing::default());
                };
                match source::open_dir(&parent, &e) {
                    Ok(d) => {
                        let l = source::listing(view, &d, &e);
                        (Some(Arc::new(d)), l)
                    }
                    Err(p) => (
                        None,
                        Listing {
                            problems: vec![p],
                            ..Listing::default()
                        },
                    ),
                }
            }));
        }
        stack.push(Frame {
            src,
            entries: listing.entries.into_iter(),
            children,
        });
    }

    /// The next entry in archive order, classified.
    fn next<'s>(&mut self, scope: &rayon::Scope<'s>, stack: &mut Vec<Frame<'s>>) -> Option<Work>
    where
        'a: 's,
    {
        loop {
            let frame = stack.last_mut()?;
            let Some(e) = frame.entries.next() else {
                stack.pop();
                continue;
            };
            if e.is_dir() {
                let ahead = frame.children.pop_front().expect("one per child directory");
                let (src, listing) = ahead.take(&self.prefetch);
                self.enter(scope, stack, src, listing);
                return Some(Work::Now(e));
            }
            let src = frame.src.clone();
            return Some(self.classify(scope, e, src));
        }
    }

    /// Decide how an entry is written, starting its encryption if it is a small file.
    /// Runs in archive order, so "the first name of a hard-linked file" is well defined.
    fn classify<'s>(&mut self, scope: &rayon::Scope<'s>, e: Entry, src: Option<Arc<Dir>>) -> Work
    where
        'a: 's,
    {
        let Payload::File { plain_size, .. } = &e.payload else {
            return Work::Now(e);
        };
        let plain_size = *plain_size;
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
            self.links.insert(key, (e.cpath.clone(), e.meta.nlink - 1));
        }
        let Some(src) = src else {
            return Work::Now(e);
        };
        if plain_size >= self.opts.small_file_max {
            return Work::Inline(e, src);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let view: &'s View = self.view;
        let cipher = &view.cryptor().content;
        let entry = e.clone();
        scope.spawn(move |_| {
            // The writer may have stopped (broken pipe); then nobody wants the result.
            let _ = tx.send(seal_small(view, cipher, &src, entry));
        });
        Work::Ahead {
            reserved: cipher_size(plain_size),
            entry: e,
            result: rx,
        }
    }

    fn output_error(&self, err: io::Error) -> Error {
        if err.kind() == io::ErrorKind::Interrupted && crate::cancel::requested() {
            return Error::Interrupted;
        }
        let err = if err.kind() == io::ErrorKind::BrokenPipe {
            io::Error::new(
                err.kind(),
                "broken pipe: the program reading the tar stream exited early (did ssh or the remote command fail?); the archive is incomplete",
            )
        } else {
            io::Error::new(
                err.kind(),
                format!(
                    "cannot write the archive: {}; the archive is incomplete",
                    crate::error::in_words(&err)
                ),
            )
        };
        Error::io(self.label, err)
    }

    fn put(&mut self, e: &Entry, body: Body) -> Result<()> {
        match self.sink.entry(e, body) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Unsupported => {
                self.skip(e, format!("{}; not archived", crate::error::in_words(&err)));
                Ok(())
            }
            Err(err) => Err(self.output_error(err)),
        }
    }

    fn write(&mut self, work: Work) -> Result<()> {
        let (entry, bytes) = match work {
            Work::Now(e) => {
                if let Payload::File { .. } = e.payload {
                    self.skip(&e, "not archived: its directory could not be read".into());
                    return Ok(());
                }
                let data = e.payload.virtual_bytes().map(<[u8]>::to_vec);
                match &data {
                    Some(d) => self.put(&e, Body::Bytes(d))?,
                    None => self.put(&e, Body::None)?,
                }
                if self.failed.contains(&e.cpath) {
                    return Ok(());
                }
                self.tally.kind(&e);
                let n = data.map_or(0, |d| d.len() as u64);
                (e, n)
            }
            Work::Link { entry, primary } => {
                if self.failed.contains(&primary) {
                    self.skip(
                        &entry,
                        "not archived: it is a hard link of a file that could not be archived"
                            .into(),
                    );
                    return Ok(());
                }
                self.put(&entry, Body::Link(&primary))?;
                add(&self.tally.counters.hard_links, 1);
                (entry, 0)
            }
            Work::Ahead { entry, result, .. } => {
                let sealed = result
                    .recv()
                    .expect("an encryption job ended without a result (it panicked)");
                match sealed {
                    Ok(s) => {
                        self.put(&s.entry, Body::Bytes(&s.bytes))?;
                        self.tally.kind(&s.entry);
                        add(&self.tally.counters.bytes_read, s.read);
                        if let Some(msg) = s.problem {
                            self.tally.error(&s.entry, msg);
                        }
                        let n = s.bytes.len() as u64;
                        (s.entry, n)
                    }
                    Err(msg) => {
                        self.skip(&entry, msg);
                        return Ok(());
                    }
                }
            }
            Work::Inline(e, src) => match self.write_large(e, &src)? {
                Some(x) => x,
                None => return Ok(()),
            },
        };
        self.tally.done(&entry, bytes);
        Ok(())
    }

    /// Leave an entry out of the archive, and remember it so its hard links are too.
    fn skip(&mut self, e: &Entry, msg: String) {
        self.failed.insert(e.cpath.clone());
        self.tally.error(e, msg);
    }

    /// Stream a large file's ciphertext into the archive. `None` if it was left out.
    fn write_large(&mut self, e: Entry, src: &Dir) -> Result<Option<(Entry, u64)>> {
        // A file that is not the listed one is looked at once more before its header
        // goes out; after that, its size is fixed.
        let (e, mut file) = match source::open_file(src, &e) {
            Ok(f) => (e, f),
            Err(_) => match source::refresh(self.view, src, &e)
                .map_err(|p| p.msg)
                .and_then(|fresh| {
                    source::open_file(src, &fresh)
                        .map(|f| (fresh, f))
                        .map_err(|err| format!("cannot open: {}", crate::error::in_words(&err)))
                }) {
                Ok(x) => x,
                Err(msg) => {
                    self.skip(&e, msg);
                    return Ok(None);
                }
            },
        };
        let Payload::File { plain_size, .. } = e.payload else {
            unreachable!("only regular files are written inline")
        };
        let declared = cipher_size(plain_size);
        let mut outcome = None;
        let enc = &mut self.enc;
        let result = self.sink.entry(
            &e,
            Body::Stream {
                size: declared,
                fill: &mut |w| {
                    let o = stream_file(enc, src, &e, &mut file, w, declared)?;
                    outcome = Some(o);
                    Ok(())
                },
            },
        );
        result.map_err(|err| self.output_error(err))?;
        let o = outcome.expect("filled");
        self.tally.kind(&e);
        add(&self.tally.counters.bytes_read, o.read);
        if !o.is_clean(plain_size) {
            let msg = if o.grew {
                o.problem(
                    plain_size,
                    &format!("archived its first {plain_size} bytes"),
                )
            } else {
                o.problem(plain_size, DAMAGED)
            };
            self.tally.error(&e, msg);
        }
        Ok(Some((e, declared)))
    }
}

const DAMAGED: &str = "the rest of its tar entry is filler that fails authentication, so a restore reports this file as damaged";

/// Write exactly `declared` bytes of member data for the regular file `e`: the
/// encryption of at most its listed size, and [`FILLER`] where the source ran short or
/// failed. Only errors writing `out` (and a stop request) are returned.
fn stream_file(
    enc: &mut FileEncryptor,
    src: &Dir,
    e: &Entry,
    file: &mut File,
    out: &mut dyn Write,
    declared: u64,
) -> io::Result<encrypt::Outcome> {
    let mut counted = Counted { inner: out, n: 0 };
    let o = encrypt::encrypt(enc, src, e, file, &mut counted).map_err(|err| match err {
        Error::Io { source, .. } => source,
        Error::Interrupted => io::Error::new(io::ErrorKind::Interrupted, "interrupted by a signal"),
        other => io::Error::other(other.to_string()),
    })?;
    let written = counted.n;
    if written < declared {
        let chunk = [FILLER; 8192];
        let mut left = declared - written;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            counted.inner.write_all(&chunk[..k])?;
            left -= k as u64;
        }
    }
    Ok(o)
}

struct Counted<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::content::{open_block, BLOCK_OVERHEAD};
    use crate::format::keys::{siv_key, MasterKey};
    use crate::view::{Time, S_IFREG};

    fn cipher() -> ContentCipher {
        ContentCipher::new(siv_key(&MasterKey::from_bytes([0; 32]), true))
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn entry(path: &Path, plain_size: u64) -> Entry {
        let m = std::fs::metadata(path).unwrap();
        let mut meta = Meta::from_fs(&m);
        meta.mode = S_IFREG | 0o644;
        meta.size = cipher_size(plain_size);
        Entry {
            cpath: b"some/file".to_vec(),
            source: path.to_path_buf(),
            meta,
            payload: Payload::File {
                plain_size,
                iv_path: b"some/file".to_vec(),
            },
        }
    }

    /// Stream the file at `path`, listed with `plain_size` bytes; returns the member
    /// data and what was read.
    fn stream(c: &ContentCipher, path: &Path, plain_size: u64) -> (Vec<u8>, encrypt::Outcome) {
        let e = entry(path, plain_size);
        let dir = Dir::open_root(path.parent().unwrap()).unwrap();
        let mut f = File::open(path).unwrap();
        let mut out = Vec::new();
        let declared = cipher_size(plain_size);
        let o = stream_file(
            &mut FileEncryptor::new(c),
            &dir,
            &e,
            &mut f,
            &mut out,
            declared,
        )
        .unwrap();
        assert_eq!(out.len() as u64, declared, "exactly the declared size");
        (out, o)
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
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let plain = data(SIZE);
        std::fs::write(&p, &plain).unwrap();
        let (member, o) = stream(&c, &p, SIZE as u64);
        assert!(o.is_clean(SIZE as u64), "{o:?}");
        assert_eq!(good_blocks(&c, &member, &plain), [true; 4]);
    }

    #[test]
    fn shrunk_file_keeps_declared_size_and_poisons_the_missing_blocks() {
        let c = cipher();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let plain = data(SIZE);
        // Only one and a half blocks are left when the file is read.
        std::fs::write(&p, &plain[..BLOCK_SIZE + 2000]).unwrap();
        let (member, o) = stream(&c, &p, SIZE as u64);
        assert_eq!(
            good_blocks(&c, &member, &plain),
            [true, false, false, false]
        );
        assert!(member[member.len() - 100..].iter().all(|&b| b == FILLER));
        assert_eq!(o.read, (BLOCK_SIZE + 2000) as u64);
        assert!(o.problem(SIZE as u64, DAMAGED).contains("shrank"));
    }

    #[test]
    fn file_gone_empty_gets_filler_from_the_header_on() {
        let c = cipher();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"").unwrap();
        let (member, o) = stream(&c, &p, 10);
        assert_eq!(member, vec![FILLER; cipher_size(10) as usize]);
        assert!(content::parse_header(&member[..HEADER_LEN]).is_none());
        assert!(!o.is_clean(10));
    }

    #[test]
    fn grown_file_archives_a_valid_prefix() {
        let c = cipher();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let plain = data(SIZE + 5000);
        std::fs::write(&p, &plain).unwrap();
        let (member, o) = stream(&c, &p, SIZE as u64);
        assert_eq!(good_blocks(&c, &member, &plain[..SIZE]), [true; 4]);
        assert!(o.grew);
        assert_eq!(o.read, SIZE as u64);
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
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, data(100)).unwrap();
        let e = entry(&p, 100);
        let dir = Dir::open_root(d.path()).unwrap();
        let mut f = File::open(&p).unwrap();
        let err = stream_file(
            &mut FileEncryptor::new(&c),
            &dir,
            &e,
            &mut f,
            &mut Full,
            cipher_size(100),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn small_files_are_sealed_like_the_streaming_encryptor() {
        let c = cipher();
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open_root(d.path()).unwrap();
        let view = test_view(d.path());
        for size in [0usize, 1, 4095, 4096, 4097, 3 * BLOCK_SIZE + 100] {
            let path = d.path().join(format!("f{size}"));
            let plain = data(size);
            std::fs::write(&path, &plain).unwrap();
            let mut e = entry(&path, size as u64);
            let sealed = seal_small(&view, &c, &dir, e.clone()).unwrap();
            let mut want = Vec::new();
            FileEncryptor::new(&c)
                .encrypt(&FileIvs::for_path(b"some/file"), &mut &plain[..], &mut want)
                .unwrap();
            assert_eq!(sealed.bytes, want, "{size}");
            assert!(sealed.problem.is_none());
            // Listed with another mtime than it has: read again, and then clean.
            e.meta.mtime = Time { sec: 1, nsec: 0 };
            let again = seal_small(&view, &c, &dir, e).unwrap();
            assert_eq!(again.bytes, want);
            assert!(again.problem.is_none(), "{:?}", again.problem);
        }
        let missing = entry(&d.path().join("f0"), 0);
        std::fs::remove_file(d.path().join("f0")).unwrap();
        let err = seal_small(&view, &c, &dir, missing).err().unwrap();
        assert!(err.contains("cannot stat"), "{err}");
    }

    fn test_view(root: &Path) -> View {
        let m = Meta::from_fs(&std::fs::metadata(root).unwrap());
        let cryptor = crate::format::Cryptor::new(
            &MasterKey::from_bytes([0; 32]),
            crate::format::config::Format::DEFAULT_REVERSE,
        )
        .expect("an AES-SIV format");
        View::new(
            root.to_path_buf(),
            &m,
            cryptor,
            crate::view::ViewOptions {
                config: None,
                version: crate::view::ViewVersion::V2_3,
                selection: Default::default(),
            },
        )
    }
}
