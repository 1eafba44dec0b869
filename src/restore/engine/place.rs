//! Putting entries into the writer, or letting them wait for what they need. Also the
//! metadata policy: the format authenticates contents and names, not owners, modes or
//! file types, so setuid/setgid bits of files and device nodes are not restored unless
//! the user asks (`--keep-setuid`, `--devices`); each one left out is counted, and named
//! with `-v`.

use std::path::PathBuf;

use rustix::fs::FileType;

use super::report::{inc, At};
use super::{names::Res, split_cpath, CPath, Engine, Item, Placed, State};
use crate::restore::writer::{split, Writer};

impl<W: Writer> Engine<'_, W> {
    pub(super) fn discard(&self, item: Item) {
        if let Item::File { staged, .. } = item {
            self.w.discard(staged.id);
        }
    }

    /// Drop a directory and everything waiting below it (a work list, not recursion: a
    /// stream may nest thousands of directories).
    pub(super) fn kill_dir(&self, st: &mut State, cpath: &[u8]) {
        let mut todo = vec![cpath.to_vec()];
        while let Some(c) = todo.pop() {
            let d = st.dirs.entry(c).or_default();
            d.dead = true;
            for (c, item) in std::mem::take(&mut d.waiting) {
                if matches!(item, Item::Dir { .. }) {
                    todo.push(c);
                }
                self.discard(item);
            }
        }
    }

    /// An entry that is not restored: a directory takes what is below it along; the
    /// authenticated content of a file with other names stays in staging, for a name of
    /// it that is restored (`--path` may leave out the name met first).
    fn leave_out(&self, st: &mut State, cpath: CPath, item: Item) {
        match item {
            Item::File { meta, staged } if meta.nlink > 1 && staged.report.is_ok() => {
                if let Some(old) = st.unplaced.insert(cpath, staged.id) {
                    self.w.discard(old);
                }
            }
            item => {
                if matches!(item, Item::Dir { .. }) {
                    self.kill_dir(st, &cpath);
                }
                self.discard(item);
            }
        }
    }

    pub(super) fn try_place(&self, st: &mut State, cpath: CPath, item: Item) {
        match self.resolve(st, &cpath) {
            Res::Ready(p) => match self.filter_relation(&p) {
                None => self.leave_out(st, cpath, item),
                Some(inside) => {
                    if inside {
                        st.filter_hit = true;
                    }
                    // On the way to the filter, only directories are restored.
                    if inside || matches!(item, Item::Dir { .. }) {
                        self.place(st, cpath, p, item);
                    } else {
                        self.leave_out(st, cpath, item);
                    }
                }
            },
            Res::WaitDir => {
                let (parent, _) = split_cpath(&cpath);
                st.dirs
                    .entry(parent.to_vec())
                    .or_default()
                    .waiting
                    .push((cpath, item));
            }
            Res::WaitName => {
                st.name_waiters.insert(cpath, item);
            }
            Res::Fail(msg) => {
                self.rep.integrity(At::Backup(&cpath), msg);
                match item {
                    // Its name is lost, its content is not: a hard link may still name it.
                    Item::File { staged, .. } if staged.report.is_ok() => {
                        st.unplaced.insert(cpath, staged.id);
                    }
                    item => {
                        if matches!(item, Item::Dir { .. }) {
                            self.kill_dir(st, &cpath);
                        }
                        self.discard(item);
                    }
                }
            }
            Res::Drop => {
                if matches!(item, Item::Dir { .. }) {
                    self.kill_dir(st, &cpath);
                }
                self.discard(item);
            }
        }
    }

    fn place(&self, st: &mut State, cpath: CPath, path: PathBuf, item: Item) {
        let (parent, name) = split(&path);
        let at = At::Entry {
            cpath: &cpath,
            plain: &path,
        };
        let c = &self.rep.counters;
        match item {
            Item::Dir { meta } => {
                let created = match self.w.mkdir(parent, name) {
                    Ok(c) => c,
                    Err(e) => {
                        self.rep.error(At::Plain(&path), e.to_string());
                        self.kill_dir(st, &cpath);
                        return;
                    }
                };
                inc(&c.dirs, 1);
                let d = st.dirs.entry(cpath.clone()).or_default();
                d.plain = Some(path);
                // A directory that was in DEST before the run (--force) keeps its own mode,
                // owner and times: nothing existing is changed. One this run made (the
                // stream may name it twice) takes the latest metadata.
                if created || d.meta.is_some() {
                    d.meta = Some(meta);
                }
                d.seen = true;
                self.retry_dir(st, &cpath);
            }
            Item::File { meta: _, staged } => {
                if !staged.report.is_ok() {
                    let outcome = if self.opts.keep_corrupt {
                        "kept with a .corrupt suffix, bad blocks zeroed"
                    } else {
                        "not restored"
                    };
                    self.rep
                        .integrity_outcome(at, staged.report.describe(), outcome);
                    if self.opts.keep_corrupt {
                        let mut n = name.to_os_string();
                        n.push(".corrupt");
                        if let Err(e) = self.w.place(staged.id, parent, &n) {
                            self.rep.error(At::Plain(&parent.join(&n)), e.to_string());
                        }
                    } else {
                        self.w.discard(staged.id);
                    }
                    return;
                }
                match self.w.place_or_keep(staged.id, parent, name) {
                    Ok(()) => {
                        inc(&c.files, 1);
                        inc(&c.bytes, staged.report.plain_len);
                        if staged.setuid_dropped {
                            inc(&c.setuid_dropped, 1);
                            self.rep.detail(
                                at,
                                "setuid/setgid bit not restored (the format does not authenticate modes; --keep-setuid keeps it)",
                            );
                        }
                        self.rep.progress.entry_done(&path, staged.report.plain_len);
                        st.placed.insert(self.key(&cpath));
                        if staged.suspect {
                            st.placed_suspects.insert(cpath, Placed::File);
                        }
                    }
                    Err(e) => {
                        self.rep.error(At::Plain(&path), e.to_string());
                        st.unplaced.insert(cpath, staged.id);
                    }
                }
            }
            Item::Symlink {
                meta,
                target,
                suspect,
            } => {
                match self
                    .w
                    .stage_symlink(&target, &meta)
                    .and_then(|id| self.w.place(id, parent, name))
                {
                    Ok(()) => {
                        inc(&c.symlinks, 1);
                        st.placed.insert(self.key(&cpath));
                        if suspect {
                            st.placed_suspects.insert(cpath, Placed::Symlink);
                        }
                    }
                    Err(e) => self.rep.error(At::Plain(&path), e.to_string()),
                }
            }
            Item::Special { mut meta } => {
                let ft = FileType::from_raw_mode(meta.mode);
                let device = matches!(ft, FileType::CharacterDevice | FileType::BlockDevice);
                if device && !self.opts.devices {
                    inc(&c.devices_skipped, 1);
                    self.rep.detail(
                        at,
                        "device node not created (the format does not authenticate file types; --devices creates it)",
                    );
                    return;
                }
                if !self.opts.keep_setuid {
                    meta.mode &= !0o6000;
                }
                match self
                    .w
                    .stage_special(&meta)
                    .and_then(|id| self.w.place(id, parent, name))
                {
                    Ok(()) => {
                        inc(&c.specials, 1);
                        st.placed.insert(self.key(&cpath));
                    }
                    Err(e) => self.rep.error(At::Plain(&path), e.to_string()),
                }
            }
            Item::Link { .. } => unreachable!("hard links are made at the end"),
        }
    }

    /// Place what waited for directory `dir`. Placing a directory makes what waits for it
    /// ready in turn; that goes on a work list instead of recursing, since a stream may
    /// hold thousands of nested directories deepest first (a stack overflow otherwise).
    pub(super) fn retry_dir(&self, st: &mut State, dir: &[u8]) {
        st.ready.push(dir.to_vec());
        if st.draining {
            return;
        }
        st.draining = true;
        while let Some(d) = st.ready.pop() {
            let Some(ds) = st.dirs.get_mut(&d) else {
                continue;
            };
            for (c, item) in std::mem::take(&mut ds.waiting) {
                self.try_place(st, c, item);
            }
        }
        st.draining = false;
    }

    pub(super) fn retry_all(&self, st: &mut State) {
        let mut keys: Vec<CPath> = st
            .dirs
            .iter()
            .filter(|(_, d)| !d.waiting.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        // In a fixed order: when two entries of a stream decrypt to one name, which one
        // is placed must not depend on a hash map.
        keys.sort();
        for k in keys {
            self.retry_dir(st, &k);
        }
    }
}
