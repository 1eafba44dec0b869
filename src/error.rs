//! One error type for the library. Every variant that concerns a file carries its path,
//! so the binary can print one line that tells the user which file and what is wrong.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    #[error("{}: cannot read config: {source}", path.display())]
    ConfigUnreadable { path: PathBuf, source: io::Error },

    #[error("{}: invalid config: {msg}", path.display())]
    ConfigInvalid { path: PathBuf, msg: String },

    #[error("{}: unsupported config: {msg}", path.display())]
    ConfigUnsupported { path: PathBuf, msg: String },

    #[error("{}: already exists, refusing to overwrite it", path.display())]
    ConfigExists { path: PathBuf },

    #[error("wrong password for {}", path.display())]
    WrongPassword { path: PathBuf },

    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },

    #[error("{}: integrity check failed: {what}", path.display())]
    Integrity { path: PathBuf, what: String },

    #[error("{0}")]
    Usage(String),

    /// A remote store (S3, SFTP) failed: the object's URL and the service's message.
    #[error("{0}")]
    Remote(#[from] crate::remote::Error),

    #[error("interrupted by a signal: only complete files were left under their final names; run again to finish")]
    Interrupted,
    #[error("interrupted by a signal: DEST holds only complete, authenticated files (directories may lack their final modes and times); restore again into an empty directory to finish")]
    RestoreInterrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    pub fn invalid(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
}

/// Attach a path to an `io::Result`, so call sites stay one line long.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
