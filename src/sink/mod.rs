//! Destinations of the view. A sink decides only *where* entries go; what they are
//! comes from `View`.

pub mod dir;
pub mod tar;

use crate::content::FileEncryptor;
use crate::error::Result;
use crate::view::{Entry, View};

/// What a sink did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes written to the destination.
    pub bytes: u64,
    /// Plaintext bytes read (regular files only).
    pub read: u64,
}

pub trait Sink: Sync {
    /// Make a directory exist so its contents can be written (called before them).
    fn create_dir(&self, e: &Entry) -> Result<()>;
    /// Write a file, symlink, special file or virtual file.
    fn write_leaf(&self, e: &Entry, view: &View, enc: &mut FileEncryptor) -> Result<Written>;
    /// Write `e` as another name of the already written `primary` (hard link).
    fn link(&self, e: &Entry, primary: &Entry) -> Result<()>;
    /// Apply a directory's final mode, owner and times, after everything inside it exists.
    fn finish_dir(&self, e: &Entry) -> Result<()>;
}
