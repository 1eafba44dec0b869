//! Entries from a ciphertext directory: a cryptbak export, a `cp -a`/`rsync -a` copy of a
//! `gocryptfs -reverse` mount, or a forward-mode gocryptfs directory.
//!
//! Each directory's `gocryptfs.diriv` and `.name` files are handed to the engine before
//! its entries, so names resolve at once; files are decrypted on all cores. Nothing in
//! the backup is followed: symlinks are read as symlinks, files are opened `O_NOFOLLOW`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::export::plan::TEMP_PREFIX;
use crate::names::{parse_long_name, CONF_NAME, DIRIV_NAME, LONGNAME_SUFFIX};
use crate::view::Meta;

use super::engine::{join_cpath, show_cpath, CPath, Engine, Item};
use super::MAX_NAME_FILE;

/// The metadata of the backup's root directory (a symlink given by the user is followed).
pub fn root_meta(backup: &Path) -> Result<Meta> {
    let m = fs::metadata(backup).at(backup)?;
    if !m.is_dir() {
        return Err(Error::invalid(backup, "not a directory"));
    }
    Ok(Meta::from_fs(&m))
}

/// Read at most `max + 1` bytes of a small regular file, not following a symlink (more
/// than `max` means it is not what it claims to be). FIFOs and devices are refused.
pub(crate) fn read_small(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    crate::smallfile::read(path, max, false)
}

/// What a name in a ciphertext directory is.
pub(crate) enum Special<'a> {
    Config,
    DirIv,
    /// The `.name` file of the long-named entry with this name.
    NameFile(&'a [u8]),
    Temp,
    Entry,
}

/// Classify a name of a ciphertext directory, as gocryptfs forward mode does.
pub(crate) fn classify<'a>(
    engine_has_names: bool,
    dir_iv_files: bool,
    long_names: bool,
    is_root: bool,
    name: &'a [u8],
) -> Special<'a> {
    if is_root && name == CONF_NAME.as_bytes() {
        return Special::Config;
    }
    if !engine_has_names {
        return Special::Entry;
    }
    if dir_iv_files && name == DIRIV_NAME.as_bytes() {
        return Special::DirIv;
    }
    if long_names && matches!(parse_long_name(name), Some((_, true))) {
        return Special::NameFile(&name[..name.len() - LONGNAME_SUFFIX.len()]);
    }
    if name.starts_with(TEMP_PREFIX.as_bytes()) {
        return Special::Temp;
    }
    Special::Entry
}

struct Walk<'e, 'a> {
    engine: &'e Engine<'a>,
    /// First name seen of each multiply linked file: later names become hard links.
    links: Mutex<HashMap<(u64, u64), CPath>>,
}

/// Feed the whole tree below `root` to the engine. Problems are reported per entry.
pub fn feed(engine: &Engine, root: &Path) {
    let w = Walk {
        engine,
        links: Mutex::new(HashMap::new()),
    };
    w.visit_dir(root, b"");
}

impl Walk<'_, '_> {
    fn visit_dir(&self, dir: &Path, cpath: &[u8]) {
        if crate::cancel::requested() {
            return;
        }
        let e = self.engine;
        let mut names: Vec<OsString> = Vec::new();
        match fs::read_dir(dir) {
            Ok(rd) => {
                for item in rd {
                    match item {
                        Ok(i) => names.push(i.file_name()),
                        Err(err) => e.error(dir, format!("cannot list directory: {err}")),
                    }
                }
            }
            Err(err) => {
                e.error(dir, format!("cannot list directory: {err}"));
                return;
            }
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let has_names = e.codec.is_some();
        let dir_iv_files = has_names && e.format.dir_iv;
        let mut entries = Vec::with_capacity(names.len());
        for name in &names {
            let b = name.as_bytes();
            let path = dir.join(name);
            match classify(
                has_names,
                dir_iv_files,
                e.format.long_names,
                cpath.is_empty(),
                b,
            ) {
                Special::Config => {}
                Special::DirIv => match read_small(&path, 16) {
                    Ok(bytes) => e.add_diriv(cpath.to_vec(), &bytes),
                    Err(err) => e.bad_diriv(cpath.to_vec(), format!("cannot read: {err}")),
                },
                Special::NameFile(entry) => match read_small(&path, MAX_NAME_FILE) {
                    Ok(bytes) => e.add_long_name(join_cpath(cpath, entry), &bytes),
                    Err(err) => e.integrity(
                        show_cpath(&join_cpath(cpath, b)),
                        format!("cannot read: {err}"),
                    ),
                },
                Special::Temp => e.warn(
                    &path,
                    "leftover temporary file of an interrupted export; ignored",
                ),
                Special::Entry => entries.push(name),
            }
        }
        entries
            .par_iter()
            .for_each(|name| self.visit(&dir.join(name), join_cpath(cpath, name.as_bytes())));
    }

    fn visit(&self, path: &Path, cpath: CPath) {
        if crate::cancel::requested() {
            return;
        }
        let e = self.engine;
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(err) => return e.error(path, format!("cannot stat: {err}")),
        };
        let meta = Meta::from_fs(&md);
        let ft = md.file_type();
        if ft.is_dir() {
            e.add(cpath.clone(), Item::Dir { meta });
            if e.wanted(&cpath) != Some(false) {
                self.visit_dir(path, &cpath);
            }
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let mut links = self.links.lock().expect("no panics while held");
                if let Some(first) = links.get(&(md.dev(), md.ino())) {
                    let target = first.clone();
                    drop(links);
                    return e.add(cpath, Item::Link { target });
                }
                links.insert((md.dev(), md.ino()), cpath.clone());
            } else if e.wanted(&cpath) == Some(false) {
                return;
            }
            let staged = File::options()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path)
                .at(path)
                .and_then(|mut f| e.stage_file(&cpath, &meta, &mut f));
            match staged {
                Ok(staged) => e.add(cpath, Item::File { meta, staged }),
                Err(err) => e.error_from(path, &err),
            }
        } else if ft.is_symlink() {
            match fs::read_link(path) {
                Ok(t) => e.add_symlink(cpath, meta, t.as_os_str().as_bytes()),
                Err(err) => e.error(path, format!("cannot read symlink: {err}")),
            }
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            e.add(cpath, Item::Special { meta });
        } else {
            e.warn(
                show_cpath(&cpath),
                "socket skipped (sockets cannot be restored)",
            );
        }
    }
}
