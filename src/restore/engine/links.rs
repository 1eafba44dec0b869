//! The end of a run: suspect entries judged once the layout is final, hard links made
//! once every target is in place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::report::{dec, inc, At};
use super::{names::Res, show_cpath, CPath, Engine, Placed, State, Suspect};
use crate::backup::verdict::{judge_foreign_id, FileFacts, ForeignId};
use crate::format::names::DIRIV_NAME;
use crate::restore::writer::{split, Writer};

impl<W: Writer> Engine<'_, W> {
    /// Make the hard links, now that every target is in place. A link only ever points to
    /// what this run restored from the backup: never to a file that was in DEST before
    /// (--force), to a name the backup does not have, or to a directory. When the
    /// target's own name was not restored (taken in DEST, failed, or outside `--path`),
    /// its content (kept in staging) goes to the first of its links instead, so it is not
    /// lost.
    pub(super) fn make_links(&self, st: &mut State, links: &[(CPath, CPath)]) {
        // Targets whose content went to one of their links: later links point there.
        let mut moved: HashMap<&[u8], PathBuf> = HashMap::new();
        for (c, target) in links {
            let pp = match self.resolve(st, c) {
                Res::Ready(pp) => pp,
                Res::Drop => continue,
                Res::Fail(msg) => {
                    self.rep
                        .integrity(At::Backup(c), format!("hard link: {msg}"));
                    continue;
                }
                _ => {
                    self.rep
                        .error(At::Backup(c), "hard link whose name cannot be restored");
                    continue;
                }
            };
            if self.filter_relation(&pp) != Some(true) {
                continue;
            }
            st.filter_hit = true;
            let at = At::Entry {
                cpath: c,
                plain: &pp,
            };
            let tp = match self.resolve(st, target) {
                Res::Ready(tp) => Some(tp),
                // Its name could not be restored; its content may still be in staging.
                _ => None,
            };
            let restored = tp
                .as_ref()
                .filter(|tp| self.filter_relation(tp) == Some(true))
                .filter(|_| st.placed.contains(&self.key(target)));
            let shown_target = match &tp {
                Some(tp) => tp.clone(),
                None => show_cpath(target),
            };
            let (parent, name) = split(&pp);
            let made = if let Some(tp) = restored {
                self.w.hard_link(tp, parent, name)
            } else if let Some(first) = moved.get(target.as_slice()) {
                self.w.hard_link(first, parent, name)
            } else if let Some(id) = st.unplaced.remove(target) {
                let r = self.w.place(id, parent, name);
                if r.is_ok() {
                    moved.insert(target, pp.clone());
                }
                r
            } else {
                let why = match &tp {
                    None => "could not be restored".to_string(),
                    Some(_) if st.dirs.get(target).is_some_and(|d| d.plain.is_some()) => {
                        "is a directory".to_string()
                    }
                    // A tar stream holds the content once, under the first name.
                    Some(tp) if self.filter_relation(tp) != Some(true) => {
                        "is outside --path and holds the content in the stream: restore a path that holds both names".to_string()
                    }
                    Some(_) => {
                        "was not restored from this backup (it is not in it, or it failed)"
                            .to_string()
                    }
                };
                self.rep.error(
                    at,
                    format!("hard link to {}, which {why}", shown_target.display()),
                );
                continue;
            };
            match made {
                Ok(()) => {
                    inc(&self.rep.counters.hard_links, 1);
                    st.placed.insert(self.key(c));
                }
                Err(e) => self.rep.error(
                    at,
                    format!("cannot make hard link to {}: {e}", shown_target.display()),
                ),
            }
        }
    }

    /// In a reverse-made tree, a stored IV that does not match its path means the entry
    /// was moved, swapped or tampered with, with the two exceptions of
    /// [`crate::backup::verdict`] for files. Files and symlinks already placed are taken
    /// back out (or renamed to `.corrupt`).
    pub(super) fn judge(
        &self,
        st: &mut State,
        s: Suspect,
        link_paths: &HashMap<&[u8], Vec<&[u8]>>,
    ) {
        let c = &self.rep.counters;
        let (cpath, msg, counter, kind) = match s {
            Suspect::DirIv(d) => {
                let at = super::join_cpath(&d, DIRIV_NAME.as_bytes());
                let plain = match self.resolve(st, &d) {
                    Res::Ready(p) => Some(p),
                    _ => st.dirs.get(&d).and_then(|x| x.plain.clone()),
                };
                let msg = "gocryptfs.diriv does not match its directory's path (tampered, or the directory was moved); names were decrypted with the IV derived from the path";
                match &plain {
                    Some(p) if !self.rep.style.writes() => self.rep.integrity(
                        At::Entry {
                            cpath: &at,
                            plain: p,
                        },
                        msg,
                    ),
                    _ => self.rep.integrity(At::Backup(&at), msg),
                }
                return;
            }
            Suspect::File {
                cpath,
                file_id,
                fingerprint,
            } => {
                let q = FileFacts {
                    cpath: &cpath,
                    file_id,
                    fingerprint,
                };
                let names = link_paths
                    .get(cpath.as_slice())
                    .cloned()
                    .unwrap_or_default();
                let home = st
                    .homes
                    .get(&file_id)
                    .map(|h| (h.cpath.clone(), h.fingerprint));
                let candidate = home.as_ref().map(|(p, fp)| FileFacts {
                    cpath: p,
                    file_id,
                    fingerprint: *fp,
                });
                match judge_foreign_id(&q, &names, candidate.as_ref()) {
                    ForeignId::HardLink => return,
                    ForeignId::SplitCopy => {
                        let (p, _) = home.expect("a split copy has its owner");
                        self.rejoin(st, &cpath, &p);
                        return;
                    }
                    ForeignId::Moved => {}
                }
                (
                    cpath,
                    "its file ID belongs to another path: the file was moved or swapped with another",
                    &c.files,
                    Placed::File,
                )
            }
            Suspect::Holes(cpath) => (
                cpath,
                "it has all-zero blocks, which a reverse-made backup never contains (tampered)",
                &c.files,
                Placed::File,
            ),
            Suspect::Symlink(cpath) => (
                cpath,
                "its target's nonce belongs to another path: the symlink was moved or swapped",
                &c.symlinks,
                Placed::Symlink,
            ),
        };
        // Neither it nor its content under another name may be used by a hard link.
        st.placed.remove(&self.key(&cpath));
        if let Some(id) = st.unplaced.remove(&cpath) {
            self.w.discard(id);
        }
        let Res::Ready(p) = self.resolve(st, &cpath) else {
            return;
        };
        let at = At::Entry {
            cpath: &cpath,
            plain: &p,
        };
        // Only the suspect entry itself is taken back, once: not another entry the
        // backup holds under the same path (a tar may hold a path twice), and not twice.
        let was_placed = st.placed_suspects.get(&cpath) == Some(&kind);
        if was_placed {
            st.placed_suspects.remove(&cpath);
        }
        if !was_placed {
            // Not restored (filtered out, failed already, or already taken back).
            if self.filter_relation(&p) == Some(true) {
                self.rep.integrity(at, msg);
            }
            return;
        }
        let keep = self.opts.keep_corrupt.then(|| {
            let mut n = p.file_name().unwrap_or_default().to_os_string();
            n.push(".corrupt");
            n
        });
        let outcome = match self.w.retract(&p, keep.as_deref()) {
            Ok(()) if keep.is_some() => "kept with a .corrupt suffix",
            Ok(()) => "removed",
            Err(_) => "could not be removed",
        };
        self.rep.integrity_outcome(at, msg, outcome);
        // Counted as restored before; it is not.
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    /// `q` is a copy of `p` made by a copy tool that split a hard link: it becomes
    /// another name of `p` when both were restored (as the source had it), and stays a
    /// file of its own when `p` was not (outside `--path`).
    fn rejoin(&self, st: &mut State, q: &[u8], p: &[u8]) {
        let c = &self.rep.counters;
        inc(&c.rejoined, 1);
        let Res::Ready(qp) = self.resolve(st, q) else {
            return;
        };
        if st.placed_suspects.remove(q) != Some(Placed::File) {
            return;
        }
        let at = At::Entry {
            cpath: q,
            plain: &qp,
        };
        let pp = match self.resolve(st, p) {
            Res::Ready(pp) if st.placed.contains(&self.key(p)) => pp,
            _ => {
                self.rep.detail(
                    at,
                    format!(
                        "carries the file ID of {}, with identical ciphertext (a hard link split by a copy tool); restored as a file of its own, since that name is not restored",
                        show_cpath(p).display()
                    ),
                );
                return;
            }
        };
        match self.w.relink(&pp, &qp) {
            Ok(()) => {
                dec(&c.files);
                inc(&c.hard_links, 1);
                self.rep.detail(
                    at,
                    format!(
                        "a hard link to {} split by a copy tool (same file ID, identical ciphertext); restored as a hard link again",
                        self.show_dir(&pp)
                    ),
                );
            }
            // It stays what it is: an authenticated copy of the same content.
            Err(e) => self.rep.warn(
                at,
                format!(
                    "could not be made a hard link to {} again ({e}); restored as a file of its own",
                    self.show_dir(&pp)
                ),
            ),
        }
    }
}
