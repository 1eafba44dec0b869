//! One error type for the library. Every variant that concerns a file carries its path,
//! so the binary can print one line that tells the user which file and what is wrong.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {}", path.display(), in_words(source))]
    Io { path: PathBuf, source: io::Error },

    #[error("{}: cannot read config: {}", path.display(), in_words(source))]
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

/// What an I/O error means, in words a person reads after a path: the system's
/// message without its `(os error N)` tail. ELOOP gets its meaning here: every open
/// of a user's file refuses to follow a symbolic link (`O_NOFOLLOW`), and "too many
/// levels of symbolic links" would send the user looking for a loop.
pub fn in_words(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    if code == rustix::io::Errno::LOOP.raw_os_error() {
        return "is a symbolic link, which is not followed here".into();
    }
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_in_words() {
        let e = |code| in_words(&io::Error::from_raw_os_error(code));
        assert_eq!(e(2), "no such file or directory");
        assert_eq!(e(13), "permission denied");
        assert_eq!(e(28), "no space left on device");
        assert_eq!(e(40), "is a symbolic link, which is not followed here");
        assert_eq!(in_words(&io::Error::other("short read")), "short read");
        let shown = Error::io("/x/y", io::Error::from_raw_os_error(30)).to_string();
        assert_eq!(shown, "/x/y: read-only file system");
    }
}
