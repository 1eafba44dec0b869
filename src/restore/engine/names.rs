//! Where an entry goes: its plaintext path, once everything it needs is known (the
//! parent's place, the parent's dir IV or the layout, its `.name` file). The name rules
//! themselves are the reader's ([`crate::backup::names`]).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{split_cpath, Engine, State};
use crate::restore::writer::Writer;

/// What resolving a name gave.
pub(super) enum Res {
    Ready(PathBuf),
    /// The parent is not restored yet, or its dir IV or the layout is not known yet.
    WaitDir,
    /// The `.name` file of this long name has not been seen yet.
    WaitName,
    /// The entry cannot be restored (an integrity error: the name does not check out).
    Fail(String),
    /// The parent was dropped (failed or filtered out).
    Drop,
}

impl<W: Writer> Engine<'_, W> {
    pub(super) fn resolve(&self, st: &State, cpath: &[u8]) -> Res {
        let (parent, comp) = split_cpath(cpath);
        let Some(d) = st.dirs.get(parent) else {
            return Res::WaitDir;
        };
        if d.dead {
            return Res::Drop;
        }
        let Some(parent_plain) = &d.plain else {
            return Res::WaitDir;
        };
        let rules = self.rules();
        let Some(iv) = rules.dir_iv(st.verdict.layout(), parent, d.stored_iv) else {
            return Res::WaitDir;
        };
        let name_file = if rules.needs_name_file(comp) {
            // Only checked content is there (see add_long_name).
            match st.long_names.get(cpath) {
                Some(c) => Some(c.as_slice()),
                None => return Res::WaitName,
            }
        } else {
            None
        };
        match rules.plain_name(&iv, comp, name_file) {
            Ok(name) => Res::Ready(parent_plain.join(OsStr::from_bytes(&name))),
            // The plaintext directory is known: say where the entry would have gone.
            Err(e) => Res::Fail(format!("in {}: {e}", self.show_dir(parent_plain))),
        }
    }

    /// `Some(inside)` if `p` is in or on the way to the `--path` filter; `None` if
    /// unrelated.
    pub(super) fn filter_relation(&self, p: &Path) -> Option<bool> {
        filter_relation(self.opts.filter.as_deref(), p)
    }
}

/// `Some(true)` if `p` is the filter path or below it, `Some(false)` if it is a directory
/// on the way to it, `None` if unrelated. Without a filter, everything is inside.
pub(super) fn filter_relation(filter: Option<&[Vec<u8>]>, p: &Path) -> Option<bool> {
    let Some(f) = filter else {
        return Some(true);
    };
    let comps: Vec<&[u8]> = p.iter().map(|c| c.as_bytes()).collect();
    let n = comps.len().min(f.len());
    if comps[..n]
        .iter()
        .zip(&f[..n])
        .all(|(a, b)| *a == b.as_slice())
    {
        Some(comps.len() >= f.len())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_against_the_filter() {
        let f = vec![b"Documents".to_vec(), b"taxes".to_vec()];
        let rel = |p: &str| filter_relation(Some(&f), Path::new(p));
        assert_eq!(rel("Documents/taxes"), Some(true));
        assert_eq!(rel("Documents/taxes/2023/a.pdf"), Some(true));
        assert_eq!(rel("Documents"), Some(false));
        assert_eq!(rel(""), Some(false));
        assert_eq!(rel("Documents/other"), None);
        assert_eq!(rel("Documents/taxes2"), None);
        assert_eq!(rel("Music"), None);
        assert_eq!(filter_relation(None, Path::new("anything")), Some(true));
    }
}
