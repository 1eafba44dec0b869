//! Destinations of the view. A sink only writes what the export driver hands it: the
//! driver walks the source, decides every change once (the plan), and produces the
//! ciphertext; a sink places it.
//!
//! Two shapes of destination exist:
//! * a [`TreeSink`] holds a tree that can be looked at and changed in any order (a
//!   directory, an object store): the driver diffs the view against what it holds and
//!   applies the difference in parallel;
//! * a [`StreamSink`] is written once, front to back (a tar stream): the driver hands
//!   it every entry in the one canonical order.
//!
//! Tree sinks: [`dir::DirSink`] (a directory, through handles) and
//! [`remote::RemoteSink`] (S3 or SFTP, through [`crate::remote::Store`]); [`key`] is
//! the rule both apply before writing into a destination that already holds something.
//! A sink says what it keeps of the metadata ([`TreeSink::fidelity`]); the plan
//! compares only that.

pub mod dir;
pub mod key;
pub mod remote;
pub mod tar;
pub mod tar_format;

use std::io::{self, Write};

use crate::error::Result;
use crate::export::plan::{Delta, Existing, Fidelity};
use crate::fs::Identity;
use crate::view::Entry;

/// Produces the ciphertext of a regular file into the writer it is given. Returns
/// `Ok(true)` to keep what was written, `Ok(false)` to throw it away (the source changed
/// while it was read and will be written again).
pub type Fill<'a> = dyn FnMut(&mut dyn Write) -> Result<bool> + 'a;

/// A destination that holds a tree: the plan is made against what it holds.
pub trait TreeSink: Sync {
    /// A directory of the destination (a handle, a key prefix).
    type Dir: Send + Sync;

    /// The destination root, created if it does not exist (unless this is a dry run).
    fn open_root(&self) -> Result<Option<Self::Dir>>;
    /// What `dir` holds, one record per name (temporary leftovers included).
    fn list(&self, dir: &Self::Dir) -> Result<Vec<Existing>>;
    /// Open the existing directory `seen` found by `list` in `parent`.
    fn open_dir(&self, parent: &Self::Dir, seen: &Existing) -> Result<Self::Dir>;
    /// Create directory `name` (the name is free) for `e`, to be filled.
    fn make_dir(&self, parent: &Self::Dir, name: &[u8], e: &Entry) -> Result<Self::Dir>;
    /// Make an existing directory ready to be filled (writable for this run).
    fn prepare_dir(&self, dir: &Self::Dir, e: &Entry) -> Result<()>;
    /// Give a directory its final mode, owner and times, once everything in it is written.
    fn finish_dir(&self, dir: &Self::Dir, e: &Entry) -> Result<()>;
    /// Write a regular file under `name` (replacing a non-directory there) with the bytes
    /// `fill` produces. Returns the identity of what was placed, or `None` when `fill`
    /// threw the bytes away.
    fn write_file(
        &self,
        parent: &Self::Dir,
        name: &[u8],
        e: &Entry,
        fill: &mut Fill,
    ) -> Result<Option<Identity>>;
    /// Write a symlink, FIFO or device node, or a virtual file with `bytes`.
    fn write_other(&self, parent: &Self::Dir, name: &[u8], e: &Entry, bytes: &[u8]) -> Result<()>;
    /// Make `name` (the entry `e`) another name of the file placed at view path
    /// `primary` (whose identity, when known, is `expect`). A store without hard links
    /// makes it a copy of `primary`.
    fn link(
        &self,
        parent: &Self::Dir,
        name: &[u8],
        e: &Entry,
        primary: &[u8],
        expect: Option<Identity>,
    ) -> Result<()>;
    /// Fix mode and owner of `seen` in place (content and times already match).
    fn fix_metadata(&self, parent: &Self::Dir, seen: &Existing, e: &Entry, d: &Delta)
        -> Result<()>;
    /// Whether `seen` holds exactly the bytes `fill` produces (`--checksum`).
    fn same_bytes(&self, parent: &Self::Dir, seen: &Existing, fill: &mut Fill) -> Result<bool>;
    /// Remove `seen` from `parent`, a whole tree if it is a directory.
    fn remove(&self, parent: &Self::Dir, seen: &Existing) -> Result<()>;
    /// How many entries removing `seen` takes (1, or the size of its tree).
    fn count(&self, parent: &Self::Dir, seen: &Existing) -> Result<u64>;
    /// The content of the small file `name` in `dir` (a long name's `.name` file), to
    /// say which plaintext a stale entry was; `None` if it cannot be read.
    fn read_name_file(&self, dir: &Self::Dir, name: &[u8]) -> Option<Vec<u8>>;
    /// Find the directory at view path `cpath` again (for work done after the walk).
    fn resolve(&self, cpath: &[u8]) -> Result<Self::Dir>;
    /// Make everything written so far durable.
    fn sync(&self) -> Result<()>;
    /// What this destination keeps of the metadata (the plan compares only that).
    fn fidelity(&self) -> Fidelity {
        Fidelity::EXACT
    }
}

/// What a stream entry carries after its header.
pub enum Body<'a> {
    /// Directories, symlinks, FIFOs and devices.
    None,
    /// The whole content (virtual files, small files encrypted ahead).
    Bytes(&'a [u8]),
    /// Another name of the member at view path `primary` (a hard link).
    Link(&'a [u8]),
    /// Exactly `size` bytes, written by the closure straight into the stream.
    Stream {
        size: u64,
        fill: &'a mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    },
}

/// A destination written once, front to back, in the view's canonical order.
pub trait StreamSink {
    fn entry(&mut self, e: &Entry, body: Body) -> io::Result<()>;
    /// Bytes written so far.
    fn position(&self) -> u64;
    /// End the stream properly.
    fn finish(&mut self) -> io::Result<()>;
    /// The run is cut short (a signal, a fatal error): leave what was written so that
    /// whoever receives it can tell it is incomplete.
    fn abort(&mut self) -> io::Result<()>;
}
