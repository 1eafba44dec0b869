//! Whether a destination that already holds something holds a backup made with our key.
//! An incremental run rewrites and deletes whatever differs from the view: pointed at
//! some unrelated directory or prefix, or at a backup under another key, it would
//! destroy it. So an export refuses to write into a destination that is not empty and
//! shows no sign of being ours. The rule is one; each sink only answers questions
//! about what it holds ([`Evidence`]).

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::content::{self as c, FileIvs};
use crate::format::names::{is_temp_name, CONF_NAME, DIRIV_NAME, LONGNAME_PREFIX};
use crate::format::Cryptor;

/// How many entries are looked at, at most, to find a file to authenticate.
pub const SEARCH_LIMIT: usize = 10_000;

/// What [`check_key`] asks a destination.
pub trait Evidence {
    /// The destination as the user named it, for messages.
    fn shown(&self) -> PathBuf;
    /// The names in the root (empty when there is no root yet).
    fn root_names(&self) -> Result<Vec<Vec<u8>>>;
    /// The bytes of the root `gocryptfs.conf`, if it is a regular file of at most
    /// `max` bytes.
    fn root_config(&self, max: usize) -> Option<Vec<u8>>;
    /// Whether the root holds a regular file `name`.
    fn root_has_file(&self, name: &[u8]) -> bool;
    /// Breadth-first from the root, over at most `limit` entries and leaving out names
    /// `skip` accepts: the view path of the first regular file longer than `min` bytes,
    /// and its first `len` bytes.
    fn first_file(
        &self,
        skip: &dyn Fn(&[u8]) -> bool,
        min: u64,
        len: usize,
        limit: usize,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
}

/// Refuse to write into a destination that is not empty and does not hold a backup
/// made with this key.
///
/// Evidence, in order: the root `gocryptfs.conf` equals the config that unlocked the
/// key (`config`: not given for a `--masterkey` key, which that config may not hold);
/// else the first block of some non-empty file authenticates with our key at its path;
/// else a name in the root decrypts. An empty destination is fine.
pub fn check_key(ev: &dyn Evidence, cryptor: &Cryptor, config: Option<&[u8]>) -> Result<()> {
    // Our own temporaries prove nothing either way: a first run killed early leaves a
    // root with nothing else, and that must count as empty or no rerun could finish it.
    let top: Vec<Vec<u8>> = ev
        .root_names()?
        .into_iter()
        .filter(|n| !is_temp_name(n))
        .collect();
    if top.is_empty() {
        return Ok(());
    }
    let refuse = |why: &str| {
        Err(Error::invalid(
            ev.shown(),
            format!("{why}; refusing to write into it (use an empty directory, or the destination of an earlier export with the same key)"),
        ))
    };
    if let Some(cfg) = config {
        if ev
            .root_config(crate::format::config::MAX_CONFIG_LEN)
            .as_deref()
            == Some(cfg)
        {
            return Ok(());
        }
    }
    let is_ours = |name: &[u8]| {
        name == CONF_NAME.as_bytes()
            || name == DIRIV_NAME.as_bytes()
            || is_temp_name(name)
            || (cryptor.names.is_some()
                && name.starts_with(LONGNAME_PREFIX.as_bytes())
                && name.ends_with(b".name"))
    };
    let first = ev.first_file(
        &is_ours,
        c::HEADER_LEN as u64,
        c::HEADER_LEN + c::CIPHER_BLOCK_SIZE,
        SEARCH_LIMIT,
    )?;
    if let Some((cpath, head)) = first {
        return if first_block_opens(cryptor, &cpath, &head) {
            Ok(())
        } else {
            refuse("it holds files not encrypted with this key at these paths")
        };
    }
    // No file to check: fall back to a name in the root.
    if let Some(codec) = &cryptor.names {
        let root_iv = cryptor.reverse_dir_iv(b"");
        for name in &top {
            if is_ours(name) || name.starts_with(LONGNAME_PREFIX.as_bytes()) {
                continue;
            }
            return if codec.decrypt(&root_iv, name).is_ok() {
                Ok(())
            } else {
                refuse("it holds names not encrypted with this key")
            };
        }
    }
    if ev.root_has_file(DIRIV_NAME.as_bytes()) || ev.root_has_file(CONF_NAME.as_bytes()) {
        return Ok(());
    }
    refuse("it is not empty and does not look like a gocryptfs -reverse copy")
}

/// Whether `head` (a file's header and first block, or less) is the start of a file
/// encrypted with our key at view path `cpath`.
fn first_block_opens(cryptor: &Cryptor, cpath: &[u8], head: &[u8]) -> bool {
    if head.len() <= c::HEADER_LEN {
        return false;
    }
    let ivs = FileIvs::for_path(cpath);
    let block = &head[c::HEADER_LEN..];
    let mut plain = vec![0u8; block.len().saturating_sub(c::BLOCK_OVERHEAD)];
    c::parse_header(&head[..c::HEADER_LEN]) == Some(ivs.file_id)
        && c::open_block(
            &mut cryptor.content.siv(),
            &ivs.file_id,
            0,
            block,
            &mut plain,
        )
}
