//! Restore: a backup (cryptbak export, a copy of a `gocryptfs -reverse` mount, a
//! forward-mode gocryptfs directory, or a tar stream of one) back to plaintext.
//!
//! Nothing read is trusted (DESIGN.md, habit 3): every name is checked after decryption,
//! every block is authenticated before its plaintext can appear under its real name, and
//! nothing is written outside DEST. See `docs/restore.md` for the user's view.
//!
//! * [`engine`]: the order-independent core that turns entries into plaintext (placing,
//!   links, report); the format rules it applies are the reader's ([`crate::backup`]),
//!   which also holds the sources (a directory, a tar stream);
//! * [`writer`]: the destination, written only through no-follow, no-replace operations;
//! * [`discard`]: a destination that writes nothing, for `verify` and `ls --tar`.

pub mod discard;
pub mod engine;
pub mod writer;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::backup::{source_dir, source_remote, source_tar};
use crate::error::{Error, Result};
use crate::format::Cryptor;
use crate::progress::Progress;

pub use crate::backup::names::MAX_NAME_FILE;
pub use crate::backup::verdict::Layout;
pub use crate::format::content::Aead;

use engine::report::Style;
use engine::EngineOptions;
use writer::Dest;

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore into a non-empty DEST (existing entries are still never overwritten).
    pub force: bool,
    /// Keep files that fail authentication as `NAME.corrupt` (bad blocks zeroed).
    pub keep_corrupt: bool,
    /// Restore only this plaintext path (see [`parse_path`]).
    pub filter: Option<Vec<Vec<u8>>>,
    /// The backup is known to be reverse-made: require path-derived IVs throughout.
    pub expect_reverse: bool,
    /// Restore owners (root only).
    pub chown: bool,
    /// Keep setuid/setgid bits of files (the format does not authenticate modes).
    pub keep_setuid: bool,
    /// Create device nodes (the format does not authenticate file types).
    pub devices: bool,
}

impl RestoreOptions {
    fn engine(&self) -> EngineOptions {
        EngineOptions {
            keep_corrupt: self.keep_corrupt,
            filter: self.filter.clone(),
            expect_reverse: self.expect_reverse,
            keep_setuid: self.keep_setuid,
            devices: self.devices,
            record_homes: false,
        }
    }
}

/// Counts of one restore (or verify) run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub specials: u64,
    pub hard_links: u64,
    /// Plaintext bytes of the restored files.
    pub bytes: u64,
    /// Encrypted names decrypted and checked (0 with plaintext names).
    pub names: u64,
    pub warnings: u64,
    /// Entries that could not be restored for other reasons (I/O, already existing, ...).
    pub errors: u64,
    /// Entries that failed authentication or the path checks of reverse-made trees.
    pub integrity_errors: u64,
    /// Files that were hard links split by a copy tool (`rsync -a` without `-H`),
    /// accepted by the rule of [`crate::backup::verdict::is_split_copy`].
    pub rejoined: u64,
    /// Files whose setuid/setgid bits were not restored.
    pub setuid_dropped: u64,
    /// Device nodes not created.
    pub devices_skipped: u64,
    pub layout: Layout,
    pub aead: Option<Aead>,
}

/// A plaintext path given by the user (`Documents/taxes`) as components; `None` for the
/// whole tree. `..` is refused: it could only point outside the backup.
pub fn parse_path(p: &OsStr) -> Result<Option<Vec<Vec<u8>>>> {
    let mut comps = Vec::new();
    for c in p.as_bytes().split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(Error::Usage("--path must not contain '..'".into())),
            c => comps.push(c.to_vec()),
        }
    }
    Ok((!comps.is_empty()).then_some(comps))
}

/// DEST opened for writing, and how messages name what lands there.
fn open_dest(dest: &Path, opts: &RestoreOptions) -> Result<(Dest, Style)> {
    let d = Dest::open(dest, opts.force, opts.chown)?;
    Ok((
        d,
        Style::Restore {
            dest: dest.to_path_buf(),
        },
    ))
}

/// Restore the ciphertext directory `backup` into `dest`.
pub fn restore_dir(
    backup: &Path,
    dest: &Path,
    keys: Cryptor,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let root = source_dir::open(backup)?;
    let (d, style) = open_dest(dest, opts)?;
    source_dir::run(&root, keys, &d, progress, style, opts.engine())
}

/// Restore the ciphertext tree at a remote location (`s3://`, `sftp://`) into `dest`.
pub fn restore_remote(
    store: &crate::remote::Store,
    cache: Option<&crate::remote::cache::MetaCache>,
    dest: &Path,
    keys: Cryptor,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let (d, style) = open_dest(dest, opts)?;
    source_remote::run(store, cache, keys, &d, progress, style, opts.engine())
}

/// Restore a tar stream of a ciphertext tree into `dest`, in one pass.
///
/// `unlock` is called once, with the bytes of the stream's root `gocryptfs.conf` when
/// `config_in_stream` is set (entries before it are kept, still encrypted, in DEST's
/// staging directory until it arrives), or with `None` at the start otherwise. If it
/// fails, everything written so far is removed.
pub fn restore_tar(
    reader: impl std::io::Read,
    dest: &Path,
    unlock: impl FnOnce(Option<&[u8]>) -> Result<Cryptor>,
    config_in_stream: bool,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let (d, style) = open_dest(dest, opts)?;
    let mut eo = opts.engine();
    eo.record_homes = true;
    source_tar::run(reader, &d, unlock, config_in_stream, style, eo, progress)
}

/// Engine options for a run that writes nothing (verify, ls).
pub(crate) fn engine_options(expect_reverse: bool, filter: Option<Vec<Vec<u8>>>) -> EngineOptions {
    EngineOptions {
        expect_reverse,
        filter,
        ..EngineOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_paths() {
        assert_eq!(parse_path(OsStr::new("")).unwrap(), None);
        assert_eq!(parse_path(OsStr::new("/./")).unwrap(), None);
        assert_eq!(
            parse_path(OsStr::new("./Documents//taxes/")).unwrap(),
            Some(vec![b"Documents".to_vec(), b"taxes".to_vec()])
        );
        assert!(parse_path(OsStr::new("a/../../etc")).is_err());
    }
}
