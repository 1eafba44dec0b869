//! Reading the plaintext tree, through directory handles only.
//!
//! A directory below SRC is opened relative to its parent's handle with `O_NOFOLLOW`
//! and must be the directory the parent's listing saw (same device and inode); a child
//! is `lstat`ed and its symlink target read relative to the directory's handle; a file
//! is opened `O_NOFOLLOW | O_NONBLOCK` and must be the listed inode. So a user who owns
//! part of SRC and swaps a directory for a symlink, or a file for a FIFO, mid-run, gets
//! at most their own files into the backup, and never stops the run: the swapped entry
//! is looked at once more and reported as changed during the backup if it still does
//! not match.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;

use crate::exclude;
use crate::fs::{Dir, Identity};
use crate::progress::Problem;
use crate::view::{Entry, Listing, Meta, PlainChild, View};

/// Open the source directory of `dir` below `parent`. A mismatch with the listing is
/// looked at once more (the directory may have been replaced by another one between
/// listing and opening; then the new one is what the backup gets).
pub fn open_dir(parent: &Dir, dir: &Entry) -> Result<Dir, Problem> {
    let name = dir.source_name();
    let fail = |e: io::Error| {
        Problem::error(
            &dir.source,
            format!("cannot open directory: {}", crate::error::in_words(&e)),
        )
    };
    match parent.open_dir_checked(name, dir.meta.identity()) {
        Ok(d) => Ok(d),
        Err(_) => {
            let now = parent.stat_at(name).map_err(fail)?;
            parent
                .open_dir_checked(name, Identity::of(&now))
                .map_err(fail)
        }
    }
}

/// The view directory of the source directory `src` (whose view entry is `dir`).
pub fn listing(view: &View, src: &Dir, dir: &Entry) -> Listing {
    if view.shows_empty(dir) {
        return view.listing(dir, Vec::new(), true);
    }
    let (mut names, err) = match src.names() {
        Ok(x) => x,
        Err(e) => {
            let mut l = view.listing(dir, Vec::new(), false);
            l.problems.push(Problem::error(
                &dir.source,
                format!("cannot list directory: {}", crate::error::in_words(&e)),
            ));
            return l;
        }
    };
    // getdents order differs between filesystems; a fixed order keeps output reproducible.
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    view.select(dir, &mut names, |name| is_tag(view, src, name));
    let children = names
        .into_iter()
        .map(|name| {
            let child = child(src, &name).map_err(|(what, e)| {
                Problem::error(
                    dir.source.join(&name),
                    format!("cannot {what}: {}", crate::error::in_words(&e)),
                )
            });
            (name, child)
        })
        .collect();
    let mut l = view.listing(dir, children, err.is_none());
    if let Some(e) = err {
        l.problems.insert(
            0,
            Problem::error(
                &dir.source,
                format!("cannot list directory: {}", crate::error::in_words(&e)),
            ),
        );
    }
    l
}

fn child(src: &Dir, name: &OsString) -> Result<PlainChild, (&'static str, io::Error)> {
    let n = name.as_bytes();
    let meta = Meta::from_stat(&src.stat_at(n).map_err(|e| ("stat", e))?);
    let link_target = if meta.file_type() == crate::view::S_IFLNK {
        Some(src.read_link_at(n).map_err(|e| ("read symlink", e))?)
    } else {
        None
    };
    Ok(PlainChild {
        name: name.clone(),
        meta,
        link_target,
    })
}

/// Whether `name` in `src` is a tag file that empties its directory: any entry with an
/// `--exclude-if-present` name, or a regular `CACHEDIR.TAG` starting with the signature.
fn is_tag(view: &View, src: &Dir, name: &std::ffi::OsStr) -> bool {
    if !view.tag_needs_signature(name) {
        return true;
    }
    src.read_small(name.as_bytes(), exclude::CACHEDIR_SIGNATURE.len())
        .is_ok_and(|(head, _)| exclude::is_cachedir_signature(&head))
}

/// Open the source of the regular file `e` in `src`, checking it is the listed inode.
pub fn open_file(src: &Dir, e: &Entry) -> io::Result<File> {
    src.open_file(e.source_name(), Some(e.meta.identity()))
        .map(|(f, _)| f)
}

/// Whether the name of the regular file `e` still holds the file the listing saw, with
/// the listed size and mtime. Asked after reading it: an in-place write changes the
/// mtime, a replacement (a new file renamed over it) the inode.
pub fn still_as_listed(src: &Dir, e: &Entry, plain_size: u64) -> bool {
    match src.stat_at(e.source_name()) {
        Ok(st) => {
            let now = Meta::from_stat(&st);
            now.identity() == e.meta.identity()
                && now.size == plain_size
                && now.mtime == e.meta.mtime
        }
        Err(_) => false,
    }
}

/// The entry of the file `e` as it is now (after it changed while being read).
pub fn refresh(view: &View, src: &Dir, e: &Entry) -> Result<Entry, Problem> {
    let st = src.stat_at(e.source_name()).map_err(|err| {
        Problem::error(
            &e.source,
            format!("cannot stat: {}", crate::error::in_words(&err)),
        )
    })?;
    view.refreshed_file(e, Meta::from_stat(&st))
}
