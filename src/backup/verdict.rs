//! The layout and integrity judgement of a backup, in one place (FORMAT.md §4, §10, §20).
//!
//! Reverse-made trees (cryptbak export, `gocryptfs -reverse`) derive every IV from the
//! entry's ciphertext path: the dir IV of each `gocryptfs.diriv`, the file ID of each
//! file header, the nonce of each symlink target. Forward-mode trees store random ones.
//! A stored value that equals the one its path gives cannot happen by chance with random
//! IVs, so the first such value proves the tree reverse-made (or `--reverse` says so, or
//! a content AEAD other than AES-SIV proves it forward). Once reverse-made, every stored
//! value must match its path; one that does not means the entry was moved, swapped or
//! tampered with, which forward-mode gocryptfs cannot detect.
//!
//! Two exceptions, both for files. Hard links share the IVs of one of their names
//! (FORMAT.md §10), so a file whose ID is another of its names' is fine. And copy tools
//! that do not keep hard links (`rsync -a` without `-H`, `cp -r`) turn each name into a
//! separate file that still carries the one ID: see [`is_split_copy`] for the rule that
//! accepts those, and what it gives up.
//!
//! restore, verify and ls all judge through [`LayoutVerdict`] and these rules, so they
//! give one verdict for one backup.

use crate::format::content::Aead;
use crate::format::pathiv::{self, Purpose};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// No evidence yet.
    Unknown,
    /// IVs derived from paths: cryptbak export or gocryptfs -reverse.
    Reverse,
    /// Random IVs stored on disk: a forward-mode gocryptfs directory.
    Forward,
}

impl Layout {
    /// How the summary names it.
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Reverse => "reverse-made (path IVs verified)",
            Layout::Forward | Layout::Unknown => "forward-mode",
        }
    }
}

/// What observing one stored value gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The layout became known with this value: entries that waited for it can go on.
    pub decided: bool,
    /// The value does not match its path and the tree is (or may turn out) reverse-made:
    /// to be judged once the layout is final.
    pub suspect: bool,
}

/// The layout of one backup, decided by the first evidence and then fixed.
#[derive(Clone, Copy, Debug)]
pub struct LayoutVerdict {
    layout: Layout,
}

impl LayoutVerdict {
    /// `expect_reverse`: the user says the tree is reverse-made (`--reverse`).
    pub fn new(expect_reverse: bool, aead: Option<Aead>) -> Self {
        let mut v = LayoutVerdict {
            layout: if expect_reverse {
                Layout::Reverse
            } else {
                Layout::Unknown
            },
        };
        v.content_cipher(aead);
        v
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The content AEAD is (now) known: reverse mode always uses AES-SIV, so any other
    /// makes the tree forward-mode. Returns whether that decided the layout.
    pub fn content_cipher(&mut self, aead: Option<Aead>) -> bool {
        if self.layout == Layout::Unknown && aead.is_some_and(|a| a != Aead::Siv) {
            self.layout = Layout::Forward;
            return true;
        }
        false
    }

    /// A stored path-derived value (dir IV, file ID, symlink nonce) and whether it equals
    /// the one its path gives.
    pub fn observe(&mut self, matched: bool) -> Observed {
        if matched {
            let decided = self.layout == Layout::Unknown;
            if decided {
                self.layout = Layout::Reverse;
            }
            Observed {
                decided,
                suspect: false,
            }
        } else {
            Observed {
                decided: false,
                suspect: self.layout != Layout::Forward,
            }
        }
    }

    /// No more evidence will come: without any, the tree is forward-mode.
    pub fn finish(&mut self) -> Layout {
        if self.layout == Layout::Unknown {
            self.layout = Layout::Forward;
        }
        self.layout
    }
}

/// The dir IV a reverse-made tree has at directory `dir`.
pub fn reverse_dir_iv(dir: &[u8]) -> [u8; 16] {
    pathiv::derive(dir, Purpose::DirIv)
}

/// The file ID a reverse-made tree gives the file at `cpath`.
pub fn reverse_file_id(cpath: &[u8]) -> [u8; 16] {
    pathiv::derive(cpath, Purpose::FileId)
}

/// Whether a symlink's stored target blob carries the nonce its path gives (FORMAT.md §9:
/// derived from the doubled path).
pub fn symlink_nonce_matches(cpath: &[u8], blob: &[u8]) -> bool {
    let derived = pathiv::derive(&pathiv::symlink_iv_path(cpath), Purpose::SymlinkIv);
    blob.get(..16) == Some(&derived[..])
}

/// What the judgement of a reverse-made tree says about a file whose file ID is not the
/// one its own path gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignId {
    /// Another name of the same inode (a hard link the copy kept) owns the ID.
    HardLink,
    /// A copy of another file of the backup, made by splitting a hard link: restore it
    /// as a hard link to that file.
    SplitCopy,
    /// Moved or swapped: an integrity error.
    Moved,
}

/// A regular file as the split rule sees it: its path, the file ID in its header, and
/// its ciphertext fingerprint (`format::content::FileReport::fingerprint`).
#[derive(Clone, Copy, Debug)]
pub struct FileFacts<'a> {
    pub cpath: &'a [u8],
    pub file_id: [u8; 16],
    pub fingerprint: [u8; 32],
}

/// The rule for hard links that copy tools split. `q` authenticated (every block, under
/// the file ID in its header) but that ID is not its path's. `q` is genuine when
///
/// 1. the ID is the one the path of another regular file `p` of the same backup gives
///    (`p` is where the export or the reverse mount took the hard link's IVs from), and
/// 2. `p`'s ciphertext is identical to `q`'s: same length, same header (so the same ID),
///    and the same nonce and tag in every block. For a block of `q` that authenticates,
///    its nonce and tag fix its payload, so this is byte identity for everything `q`
///    gives; if `p`'s payload was tampered with, `p` fails on its own when it is read.
///
/// What it protects against: a file moved to another path (its ID's path is gone or
/// holds something else), files swapped with each other (each one's ID path holds the
/// other's bytes), and a stale copy of an older version (the current file at the ID's
/// path differs). What it cannot tell apart: a genuine split hard link from someone with
/// write access to the storage replacing `q` by a byte copy of `p` (no key needed). The
/// gocryptfs format cannot either: names of one inode carry identical bytes by design.
/// Such a `q` is restored as another name of `p`, and counted ("hard links split by a
/// copy tool") so the user sees it happened. `rsync -aH` and tar keep hard links and
/// never need the rule.
pub fn is_split_copy(q: &FileFacts<'_>, p: &FileFacts<'_>) -> bool {
    p.cpath != q.cpath
        && reverse_file_id(p.cpath) == q.file_id
        && p.file_id == q.file_id
        && p.fingerprint == q.fingerprint
}

/// The judgement of file `q` with a foreign ID: `link_names` are the other names of its
/// inode as the backup holds them (a copy that kept hard links), `candidate` a file
/// whose path gives `q`'s ID, if the backup has one.
///
/// A file that still has other names of its own was copied by a tool that keeps hard
/// links, and such a tool keeps them all: it cannot be a split copy.
pub fn judge_foreign_id(
    q: &FileFacts<'_>,
    link_names: &[&[u8]],
    candidate: Option<&FileFacts<'_>>,
) -> ForeignId {
    if link_names.iter().any(|n| reverse_file_id(n) == q.file_id) {
        ForeignId::HardLink
    } else if link_names.is_empty() && candidate.is_some_and(|p| is_split_copy(q, p)) {
        ForeignId::SplitCopy
    } else {
        ForeignId::Moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_value_decides_reverse() {
        let mut v = LayoutVerdict::new(false, None);
        // A mismatch before any evidence: kept as a suspect, to be judged later.
        assert_eq!(
            v.observe(false),
            Observed {
                decided: false,
                suspect: true
            }
        );
        assert_eq!(
            v.observe(true),
            Observed {
                decided: true,
                suspect: false
            }
        );
        assert_eq!(v.layout(), Layout::Reverse);
        assert!(!v.observe(true).decided);
        assert!(v.observe(false).suspect);
        assert_eq!(v.finish(), Layout::Reverse);
    }

    #[test]
    fn no_evidence_means_forward_and_other_ciphers_decide_it() {
        let mut v = LayoutVerdict::new(false, Some(Aead::Siv));
        assert_eq!(v.layout(), Layout::Unknown);
        assert_eq!(v.finish(), Layout::Forward);
        // Once forward, mismatches are what random IVs look like.
        assert!(!v.observe(false).suspect);
        let mut v = LayoutVerdict::new(false, None);
        assert!(v.content_cipher(Some(Aead::Gcm)));
        assert_eq!(v.layout(), Layout::Forward);
        assert_eq!(
            LayoutVerdict::new(false, Some(Aead::XChaCha)).layout(),
            Layout::Forward
        );
        // --reverse: every value must match from the start.
        let mut v = LayoutVerdict::new(true, None);
        assert!(v.observe(false).suspect);
        assert!(!v.observe(true).decided);
    }

    fn facts<'a>(cpath: &'a [u8], id_of: &[u8], print: u8) -> FileFacts<'a> {
        FileFacts {
            cpath,
            file_id: reverse_file_id(id_of),
            fingerprint: [print; 32],
        }
    }

    #[test]
    fn split_copies_need_the_owner_with_identical_ciphertext() {
        // q carries p's ID and p's bytes: a hard link split by rsync -a.
        let p = facts(b"dir/p", b"dir/p", 7);
        let q = facts(b"q", b"dir/p", 7);
        assert!(is_split_copy(&q, &p));
        assert_eq!(judge_foreign_id(&q, &[], Some(&p)), ForeignId::SplitCopy);
        // Tampered twins: p changed since (a stale copy), p's ID is not p's own (p was
        // itself moved), the candidate is q itself, no candidate at all.
        assert!(!is_split_copy(&q, &facts(b"dir/p", b"dir/p", 8)));
        assert!(!is_split_copy(&q, &facts(b"dir/p", b"elsewhere", 7)));
        let wrong_path = facts(b"dir/x", b"dir/p", 7);
        assert!(!is_split_copy(&q, &wrong_path));
        assert!(!is_split_copy(&q, &q));
        assert_eq!(judge_foreign_id(&q, &[], None), ForeignId::Moved);
        // A hard link the copy kept: one of the inode's names owns the ID.
        assert_eq!(
            judge_foreign_id(&q, &[b"other", b"dir/p"], None),
            ForeignId::HardLink
        );
        // Hard links kept together, all holding another file's bytes: a copy that kept
        // links kept them all, so this is no split copy but a moved file.
        assert_eq!(
            judge_foreign_id(&q, &[b"other"], Some(&p)),
            ForeignId::Moved
        );
    }

    #[test]
    fn symlink_nonces() {
        let derived = pathiv::derive(b"a/b/b", Purpose::SymlinkIv);
        let mut blob = derived.to_vec();
        blob.extend_from_slice(&[0; 20]);
        assert!(symlink_nonce_matches(b"a/b", &blob));
        assert!(!symlink_nonce_matches(b"a/c", &blob));
        assert!(!symlink_nonce_matches(b"a/b", &blob[..10]));
    }
}
