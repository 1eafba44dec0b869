//! The end of a run: what still waits is placed or reported, suspects are judged, hard
//! links made, directories given their metadata, and the counts summed up.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::names::Res;
use super::report::{get, At};
use super::{
    default_dir_meta, depth, show_cpath, split_cpath, CPath, DirState, Engine, Item, State,
};
use crate::backup::names::name_file_of;
use crate::backup::verdict::Layout;
use crate::error::Result;
use crate::restore::writer::Writer;
use crate::restore::Summary;
use crate::view::{Meta, S_IFDIR};

impl<W: Writer> Engine<'_, W> {
    /// After the last entry: resolve what still waits, judge the path-derived values,
    /// make hard links, and give directories their final metadata.
    pub fn finish(&self) -> Result<Summary> {
        let mut st = self.lock();
        let layout = st.verdict.finish();
        self.retry_all(&mut st);
        self.place_implied_dirs(&mut st);
        self.fail_waiting(&mut st);

        if layout == Layout::Reverse && self.rules().has_diriv_files() {
            let mut missing: Vec<CPath> = st
                .dirs
                .iter()
                .filter(|(_, d)| d.plain.is_some() && !d.diriv_seen && !d.diriv_bad)
                .map(|(k, _)| k.clone())
                .collect();
            missing.sort();
            for k in missing {
                self.rep.warn(
                    At::Backup(&k),
                    "gocryptfs.diriv is missing; recomputed from the path (reverse-made backup)",
                );
            }
        }

        // Path-derived values that did not match their path, judged before the hard links
        // are made: a file taken back out must not live on under its other names.
        let links = std::mem::take(&mut st.links);
        let suspects = std::mem::take(&mut st.suspects);
        if layout == Layout::Reverse {
            let mut link_paths: HashMap<&[u8], Vec<&[u8]>> = HashMap::new();
            for (c, target) in &links {
                link_paths.entry(target).or_default().push(c);
            }
            for s in suspects {
                self.judge(&mut st, s, &link_paths);
            }
        }
        self.make_links(&mut st, &links);

        let missing = match &self.opts.filter {
            Some(f) if !st.filter_hit => Some(PathBuf::from(OsStr::from_bytes(&f.join(&b'/')))),
            _ => None,
        };

        // Directory metadata, deepest first: a read-only parent must not stop its children.
        let mut dirs: Vec<(PathBuf, Meta)> = st
            .dirs
            .iter()
            .filter_map(|(k, d)| {
                let (p, m) = (d.plain.as_ref()?, d.meta.as_ref()?);
                if k.is_empty() && (self.opts.filter.is_some() || !self.w.was_empty()) {
                    // DEST itself keeps its own metadata unless the whole tree went into an empty DEST.
                    return None;
                }
                Some((p.clone(), m.clone()))
            })
            .collect();
        drop(st);
        self.w.close()?;
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (p, m) in &dirs {
            if m.mode & 0o170000 != S_IFDIR {
                continue;
            }
            if let Err(e) = self.w.finish_dir(p, m) {
                self.rep.error(At::Plain(p), e.to_string());
            }
        }
        if let Some(p) = missing {
            // Nothing was restored: a DEST this run made goes again (it is empty).
            self.w.abandon();
            return Err(crate::Error::invalid(p, "no such path in the backup"));
        }
        let c = &self.rep.counters;
        let names = if self.keys.names.is_some() {
            get(&c.dirs) + get(&c.files) + get(&c.symlinks) + get(&c.specials) + get(&c.hard_links)
        } else {
            0
        };
        Ok(Summary {
            // The root is a directory of the backup too (export counts it): counted when
            // the whole tree was read.
            dirs: get(&c.dirs) + u64::from(self.opts.filter.is_none()),
            files: get(&c.files),
            symlinks: get(&c.symlinks),
            specials: get(&c.specials),
            hard_links: get(&c.hard_links),
            bytes: get(&c.bytes),
            names,
            warnings: get(&c.warnings),
            errors: get(&c.errors),
            integrity_errors: get(&c.integrity_errors),
            rejoined: get(&c.rejoined),
            setuid_dropped: get(&c.setuid_dropped),
            devices_skipped: get(&c.devices_skipped),
            layout,
            aead: self.keys.content.aead(),
        })
    }

    /// Directories that have contents but no entry of their own.
    fn place_implied_dirs(&self, st: &mut State) {
        let implied = |d: &DirState| !d.seen && !d.dead && !d.waiting.is_empty();
        loop {
            let mut todo: Vec<CPath> = st
                .dirs
                .iter()
                .filter(|(k, d)| !k.is_empty() && implied(d))
                .map(|(k, _)| k.clone())
                .collect();
            // Parents first, then by name: the same messages in the same order every run.
            todo.sort_by(|a, b| depth(a).cmp(&depth(b)).then_with(|| a.cmp(b)));
            let mut progress = false;
            for k in todo {
                // Placing a parent places what waited for it, its own subdirectories
                // included: those are no longer implied.
                if !st.dirs.get(&k).is_some_and(implied) {
                    continue;
                }
                // Only where its name can be worked out: else its own entry may just be
                // waiting for the same missing piece (a forward-mode dir IV, a .name file).
                if !matches!(self.resolve(st, &k), Res::WaitDir | Res::WaitName) {
                    self.rep.warn(
                        At::Backup(&k),
                        "directory entry missing from the backup; created with mode 0700",
                    );
                    let meta = default_dir_meta();
                    st.dirs.get_mut(&k).expect("listed").seen = true;
                    self.try_place(st, k, Item::Dir { meta });
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }

    /// Whatever still waits cannot be restored: say why, once per cause.
    fn fail_waiting(&self, st: &mut State) {
        let mut waiters: Vec<(CPath, Item)> = st.name_waiters.drain().collect();
        waiters.sort_by(|a, b| a.0.cmp(&b.0));
        for (c, item) in waiters {
            let name_file = name_file_of(&c);
            let msg = match st.bad_long_names.get(&c) {
                Some(m) => m.clone(),
                None => format!(
                    "its long-name file {} is missing: the name cannot be restored",
                    show_cpath(&name_file).display()
                ),
            };
            self.in_dir_integrity(st, &c, msg);
            if matches!(item, Item::Dir { .. }) {
                self.kill_dir(st, &c);
            }
            self.discard(item);
        }
        let mut stuck: Vec<CPath> = st
            .dirs
            .iter()
            .filter(|(_, d)| !d.waiting.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        // Parents first: dropping one drops what waits below it, which needs no second report.
        stuck.sort_by(|a, b| depth(a).cmp(&depth(b)).then_with(|| a.cmp(b)));
        for k in stuck {
            let d = st.dirs.get(&k).expect("listed");
            let n = d.waiting.len();
            if n == 0 {
                continue;
            }
            match &d.plain {
                Some(p) if !d.diriv_seen => {
                    let what = if d.diriv_bad { "unusable" } else { "missing" };
                    let p = p.clone();
                    self.rep.integrity(
                        At::Entry { cpath: &k, plain: &p },
                        format!("gocryptfs.diriv of backup directory {} is {what}: the names of its {n} entries cannot be decrypted (forward-mode directory IVs are random)", show_cpath(&k).display()),
                    );
                }
                _ => self.rep.integrity(
                    At::Backup(&k),
                    format!(
                        "the directory could not be restored, so its {n} entries were not either"
                    ),
                ),
            }
            self.kill_dir(st, &k);
        }
    }

    /// An integrity error about entry `c` whose name failed: named by its backup path,
    /// with the plaintext directory it was in, if known.
    fn in_dir_integrity(&self, st: &State, c: &[u8], msg: String) {
        let (parent, _) = split_cpath(c);
        let msg = match st.dirs.get(parent).and_then(|d| d.plain.as_ref()) {
            Some(p) => format!("in {}: {msg}", self.show_dir(p)),
            None => msg,
        };
        self.rep.integrity(At::Backup(c), msg);
    }
}
