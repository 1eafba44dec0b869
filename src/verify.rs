//! Verify a backup without writing any plaintext: the `gocryptfs -fsck` that
//! reverse-made trees never had (see `docs/verify.md`).
//!
//! It is a restore into [`Discard`], a writer that writes nothing: the same reader, the
//! same engine, the same verdict as `restore` by construction. Every block of every file,
//! every name, every `.name` file and every symlink target is authenticated; in
//! reverse-made trees every stored IV is checked against its path. What the format does
//! not authenticate (owners, modes, times, file types) cannot be verified; what a restore
//! would leave out for that reason (setuid bits, device nodes) is counted.

use std::io::Read;
use std::path::Path;

use crate::backup::{source_dir, source_remote, source_tar};
use crate::error::Result;
use crate::format::Cryptor;
use crate::progress::Progress;
use crate::restore::discard::Discard;
use crate::restore::engine::report::Style;
use crate::restore::engine_options;

pub use crate::restore::Summary;

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The backup is known to be reverse-made: require path-derived IVs throughout.
    pub expect_reverse: bool,
}

/// Authenticate everything in the ciphertext directory `backup`; nothing is written.
pub fn verify_dir(
    backup: &Path,
    keys: Cryptor,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let root = source_dir::open(backup)?;
    let style = Style::Verify {
        backup: backup.to_path_buf(),
    };
    source_dir::run(
        &root,
        keys,
        &Discard::new(),
        progress,
        style,
        engine_options(opts.expect_reverse, None),
    )
}

/// Authenticate everything at a remote location (`s3://`, `sftp://`); nothing is
/// written.
pub fn verify_remote(
    store: &crate::remote::Store,
    cache: Option<&crate::remote::cache::MetaCache>,
    keys: Cryptor,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let style = Style::Verify {
        backup: source_remote::shown(store),
    };
    source_remote::run(
        store,
        cache,
        keys,
        &Discard::new(),
        progress,
        style,
        engine_options(opts.expect_reverse, None),
    )
}

/// Authenticate everything in a tar stream of a backup (`shown_as` names it in
/// messages); nothing is written. `unlock` as for [`crate::restore::restore_tar`].
pub fn verify_tar(
    reader: impl Read,
    shown_as: &Path,
    unlock: impl FnOnce(Option<&[u8]>) -> Result<Cryptor>,
    config_in_stream: bool,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let style = Style::Verify {
        backup: shown_as.to_path_buf(),
    };
    let mut eo = engine_options(opts.expect_reverse, None);
    eo.record_homes = true;
    source_tar::run(
        reader,
        &Discard::new(),
        unlock,
        config_in_stream,
        style,
        eo,
        progress,
    )
}
