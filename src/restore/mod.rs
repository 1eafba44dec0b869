//! Restore: a ciphertext tree (cryptbak export, a copy of a `gocryptfs -reverse` mount,
//! a forward-mode gocryptfs directory) or a tar stream of one, back to plaintext.
//!
//! Nothing read is trusted (DESIGN.md, habit 3): every name is checked after decryption,
//! every block is authenticated before its plaintext can appear under its real name, and
//! nothing is written outside DEST. See `docs/restore.md` for the user's view.
//!
//! * [`decrypt`]: pure content decryption (AES-SIV and AES-GCM, block by block);
//! * [`writer`]: the destination, written only through no-follow, no-replace operations;
//! * [`engine`]: the order-independent core that turns entries into plaintext;
//! * [`source_dir`], [`source_tar`]: where the entries come from;
//! * [`ls`]: a read-only listing of decrypted names.

pub mod engine;
pub mod ls;
pub mod source_dir;
pub mod source_tar;
pub mod writer;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::Cryptor;
use crate::progress::Progress;

pub use crate::format::content::Aead;
pub use engine::Layout;

use engine::{Engine, EngineOptions};
use writer::Dest;

/// The longest `.name` file accepted: a 255-byte name pads to 256 bytes, which is 344
/// characters of padded base64. Anything much longer is hostile.
pub const MAX_NAME_FILE: usize = 1024;

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
}

/// Counts of one restore run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub specials: u64,
    pub hard_links: u64,
    /// Plaintext bytes of the restored files.
    pub bytes: u64,
    pub warnings: u64,
    /// Entries that could not be restored for other reasons (I/O, already existing, ...).
    pub errors: u64,
    /// Entries that failed authentication or the path checks of reverse-made trees.
    pub integrity_errors: u64,
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

fn engine_opts(o: &RestoreOptions) -> EngineOptions {
    EngineOptions {
        keep_corrupt: o.keep_corrupt,
        filter: o.filter.clone(),
        expect_reverse: o.expect_reverse,
    }
}

/// Restore the ciphertext directory `backup` into `dest`.
pub fn restore_dir(
    backup: &Path,
    dest: &Path,
    keys: Cryptor,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let root_meta = source_dir::root_meta(backup)?;
    let d = Dest::open(dest, opts.force, opts.chown)?;
    let engine = Engine::new(keys, &d, progress, engine_opts(opts));
    engine.set_root_meta(root_meta);
    source_dir::feed(&engine, backup);
    if crate::cancel::requested() {
        return Err(engine.abort());
    }
    engine.finish()
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
    let d = Dest::open(dest, opts.force, opts.chown)?;
    source_tar::restore(
        reader,
        d,
        unlock,
        config_in_stream,
        engine_opts(opts),
        progress,
    )
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
