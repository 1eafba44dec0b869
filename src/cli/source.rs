//! Opening the plaintext source for `export` and `verify --source`: its directory
//! handle (the only way the library reaches the source), the key, and the view.

use std::io;
use std::path::Path;
use std::sync::Arc;

use cryptbak::format::Cryptor;
use cryptbak::fs::Dir;
use cryptbak::view::{ConfigFile, Meta, View, ViewOptions, ViewVersion};
use cryptbak::{Error, Result};

use super::args::{Compat, KeyArgs, SelectArgs};
use super::commands::{selection, unlock_at, ConfigAt, Unlocked};

/// The source, ready to be walked.
pub(crate) struct Source {
    pub(crate) dir: Dir,
    pub(crate) view: View,
    /// The config bytes that unlocked the key: a destination holding the same bytes was
    /// made with this key. `None` with `--masterkey`, whose key that config may not hold.
    pub(crate) key_config: Option<Arc<Vec<u8>>>,
    /// The key and format, for reading a backup made from this source.
    pub(crate) unlocked: Unlocked,
}

impl Source {
    /// A second set of the view's keys, for reading a backup made from this source
    /// (`verify --source`). The view's own keys were made from the same key and format,
    /// so this cannot fail where `open_source` succeeded.
    pub(crate) fn backup_keys(&self) -> Result<Cryptor> {
        Cryptor::new(&self.unlocked.master, self.unlocked.format)
            .map_err(|e| Error::Usage(e.to_string()))
    }
}

/// Open a directory the user named, saying in words what is wrong with it.
pub(crate) fn open_dir_arg(path: &Path, what: &str) -> Result<Dir> {
    Dir::open_root(path).map_err(|e| {
        let msg = match e.kind() {
            io::ErrorKind::NotFound => format!("{what} does not exist"),
            io::ErrorKind::NotADirectory => format!("{what} is a file, not a directory"),
            io::ErrorKind::PermissionDenied => {
                format!("{what} cannot be opened: permission denied")
            }
            _ => format!("{what} cannot be opened: {}", cryptbak::error::in_words(&e)),
        };
        Error::invalid(path, msg)
    })
}

/// Whether the file at `path` starts like a tar archive (the ustar magic of its first
/// header, which GNU tar, bsdtar and cryptbak all write).
pub(crate) fn looks_like_tar(path: &Path) -> bool {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = Vec::with_capacity(512);
    if f.take(512).read_to_end(&mut head).is_err() || head.len() < 512 {
        return false;
    }
    &head[257..262] == b"ustar"
}

/// The error for a BACKUP that is not a directory, saying what it is instead.
pub(crate) fn not_a_backup_dir(path: &Path) -> Error {
    let msg = match std::fs::metadata(path) {
        Err(_) => "does not exist",
        Ok(m) if m.is_dir() => "cannot be read as a backup directory",
        Ok(_) if looks_like_tar(path) => "looks like a tar archive: add --tar",
        Ok(_) => "is a file, not a directory (for a tar archive, add --tar)",
    };
    Error::invalid(path, msg)
}

pub(crate) fn view_version(c: Compat) -> ViewVersion {
    match c {
        Compat::V2_3 => ViewVersion::V2_3,
        Compat::V2_5 => ViewVersion::V2_5,
    }
}

/// Open SRC, unlock its key and make its view.
pub(crate) fn open_source(
    src: &Path,
    key: &KeyArgs,
    compat: Compat,
    select: &SelectArgs,
    missing_hint: &str,
) -> Result<Source> {
    let dir = open_dir_arg(src, "SRC")?;
    let selection = selection(select)?;
    let shown = src.join(cryptbak::format::names::REVERSE_CONF_NAME);
    let (unlocked, loaded) = unlock_at(key, ConfigAt::Source(&dir, shown.clone()), missing_hint)?;
    // Reverse mode needs AES-SIV: the library refuses other formats.
    let cryptor =
        Cryptor::new(&unlocked.master, unlocked.format).map_err(|e| Error::ConfigUnsupported {
            path: key.config.clone().unwrap_or(shown),
            msg: e.to_string(),
        })?;
    let bytes = loaded.as_ref().map(|l| Arc::new(l.bytes.clone()));
    let key_config = bytes.clone().filter(|_| key.masterkey.is_none());
    // Shown as the root gocryptfs.conf only when it is the source's own config: with
    // --config there is none in the view (as in gocryptfs).
    let config = match (key.config.is_none(), bytes, loaded.and_then(|l| l.meta)) {
        (true, Some(bytes), Some(meta)) => Some(ConfigFile { bytes, meta }),
        _ => None,
    };
    let root_meta = Meta::from_stat(&dir.stat().map_err(|e| Error::io(src, e))?);
    let view = View::new(
        src.to_path_buf(),
        &root_meta,
        cryptor,
        ViewOptions {
            config,
            version: view_version(compat),
            selection,
        },
    );
    Ok(Source {
        dir,
        view,
        key_config,
        unlocked,
    })
}
