//! Destinations of the view. A sink decides only *where* entries go; what they are
//! comes from `View`.

pub mod dir;
pub mod tar;

use crate::content::FileEncryptor;
use crate::error::Result;
use crate::sync::{Action, Delta};
use crate::view::{Entry, View};

/// What a sink did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub action: Action,
    /// Bytes written to the destination.
    pub bytes: u64,
    /// Plaintext bytes read, when the source was read (regular files being written).
    pub read: Option<u64>,
    /// What differed from the existing destination entry.
    pub delta: Delta,
}

impl Written {
    pub fn nothing(action: Action) -> Written {
        Written {
            action,
            bytes: 0,
            read: None,
            delta: Delta::default(),
        }
    }
}

pub trait Sink: Sync {
    /// Make a directory exist so its contents can be written (called before them).
    fn create_dir(&self, e: &Entry) -> Result<Action>;
    /// Write a file, symlink, special file or virtual file.
    fn write_leaf(&self, e: &Entry, view: &View, enc: &mut FileEncryptor) -> Result<Written>;
    /// Write `e` as another name of the already written `primary` (hard link).
    fn link(&self, e: &Entry, primary: &Entry) -> Result<Action>;
    /// Apply a directory's final mode, owner and times, after everything inside it exists.
    fn finish_dir(&self, e: &Entry) -> Result<()>;
    /// Note what the destination directory `dir` holds beyond `keep` (its complete view
    /// listing), for deletion by `delete_stale`. Only incremental sinks have anything to do.
    fn prune(&self, _dir: &Entry, _keep: &[&[u8]]) -> Result<()> {
        Ok(())
    }
    /// Delete what `prune` found; returns the paths deleted (or that would be).
    fn delete_stale(&self) -> Result<Vec<std::path::PathBuf>> {
        Ok(Vec::new())
    }
}
