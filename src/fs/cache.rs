//! Small files a run keeps for the next one (the metadata cache of a remote location,
//! [`crate::remote::cache`]), in a directory that belongs to the running user and that
//! nobody else can enter: what is in them decides what the next run uploads, so nobody
//! else may write them. `CRYPTBAK_CACHE_DIR` overrides where; otherwise
//! `/var/cache/cryptbak` for root, `$XDG_CACHE_HOME/cryptbak` or `~/.cache/cryptbak` for
//! others. Reached through handles like everything else.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::handle::Dir;
use super::lock::private_dir;

/// Where cache files may go for this user, best first.
fn cache_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os("CRYPTBAK_CACHE_DIR").filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(d)];
    }
    if rustix::process::geteuid().is_root() {
        return vec![PathBuf::from("/var/cache/cryptbak")];
    }
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        dirs.push(Path::new(&d).join("cryptbak"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        dirs.push(Path::new(&home).join(".cache").join("cryptbak"));
    }
    dirs
}

fn open() -> Option<Dir> {
    cache_dirs().iter().find_map(|p| private_dir(p).ok())
}

/// The content of cache file `name` (at most `max` bytes), if there is one.
pub fn read(name: &str, max: usize) -> Option<Vec<u8>> {
    let (bytes, _) = open()?.read_small(name.as_bytes(), max).ok()?;
    (bytes.len() <= max).then_some(bytes)
}

/// Replace cache file `name` with `bytes` (a temporary file renamed into place, mode
/// 0600). Returns where, for messages.
pub fn write(name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let dir = open()
        .ok_or_else(|| io::Error::other("no private cache directory (set CRYPTBAK_CACHE_DIR)"))?;
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    let mut f = dir.create_new(tmp.as_bytes(), 0o600)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| dir.rename_to(tmp.as_bytes(), &dir, name.as_bytes()));
    if written.is_err() {
        let _ = dir.unlink_at(tmp.as_bytes());
    }
    written.map(|()| dir.show(name.as_bytes()))
}
