//! The plan of an incremental export: how each entry of the view relates to what the
//! destination already holds, decided without reading plaintext (rsync's quick check:
//! type, size and mtime), and how a change is shown (rsync `--itemize-changes` style).
//! Pure: the destination's state comes in as [`Existing`] records.

use std::path::PathBuf;

use crate::fs::Identity;
use crate::view::{Entry, Meta, Payload, S_IFDIR, S_IFLNK, S_IFREG};

pub use crate::format::names::TEMP_PREFIX;

/// What the destination holds under one name (its `lstat`, and its target when it is a
/// symlink).
#[derive(Clone, Debug)]
pub struct Existing {
    pub name: Vec<u8>,
    pub meta: Meta,
    pub target: Option<Vec<u8>>,
}

impl Existing {
    pub fn is_dir(&self) -> bool {
        self.meta.file_type() == S_IFDIR
    }
    pub fn identity(&self) -> Identity {
        self.meta.identity()
    }
}

/// What happens to one destination entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    /// Content rewritten (temp file + rename).
    Rewrite,
    /// Only mode or owner fixed in place.
    Metadata,
    Unchanged,
    Delete,
}

/// Which attributes differ between the destination and the view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub kind: bool,
    pub content: bool,
    pub size: bool,
    pub time: bool,
    pub perms: bool,
    pub owner: bool,
    pub group: bool,
}

impl Delta {
    pub fn needs_rewrite(&self) -> bool {
        self.kind || self.content || self.size || self.time
    }
    pub fn needs_metadata(&self) -> bool {
        self.perms || self.owner || self.group
    }
}

/// What a destination keeps of an entry's metadata, which the comparison must respect.
/// A directory keeps everything; a remote store less (see [`crate::sink::remote`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fidelity {
    /// The finest mtime difference it keeps, in nanoseconds (1: all of it; 10⁹: whole
    /// seconds, as SFTP). Times are compared truncated to this, so an mtime the
    /// destination cannot hold is not a change on every run.
    pub mtime_ns: u32,
    /// Mode and owner can be changed without writing the content again (an S3 object's
    /// metadata cannot: such a change is a rewrite).
    pub fix_in_place: bool,
}

impl Fidelity {
    /// Everything, to the nanosecond: a local directory.
    pub const EXACT: Fidelity = Fidelity {
        mtime_ns: 1,
        fix_in_place: true,
    };

    /// Whether two times are the same as far as the destination can tell.
    pub fn same_time(&self, a: crate::view::Time, b: crate::view::Time) -> bool {
        let res = self.mtime_ns.clamp(1, 1_000_000_000);
        a.sec == b.sec && a.nsec / res == b.nsec / res
    }
}

/// How the plan compares, for one run into one destination.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Owners count: they can be set (root into a directory) or are stored (S3).
    pub owners: bool,
    /// `--checksum`: a quick-check match is confirmed by comparing the bytes.
    pub checksum: bool,
    pub fidelity: Fidelity,
}

/// What to do with a leaf (anything but a directory) of the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write it (temp + rename): `Create` or `Rewrite`.
    Write(Action, Delta),
    /// Fix mode and owner in place.
    Metadata(Delta),
    /// The quick check matches; `--checksum` re-encrypts and compares before deciding.
    Compare(Delta),
    Unchanged,
}

/// Compare an existing destination entry with the entry the view wants. Owners count
/// only when `rules` says so; times as finely as the destination keeps them.
pub fn leaf_delta(existing: &Existing, wanted: &Entry, rules: &Rules) -> Delta {
    let (m, w) = (&existing.meta, &wanted.meta);
    let mut d = Delta {
        kind: m.file_type() != w.file_type(),
        perms: m.permissions() != w.permissions(),
        owner: rules.owners && m.uid != w.uid,
        group: rules.owners && m.gid != w.gid,
        ..Delta::default()
    };
    if d.kind {
        return d;
    }
    d.time = !rules.fidelity.same_time(m.mtime, w.mtime);
    match &wanted.payload {
        Payload::Symlink { target } => {
            // A symlink's target is cheap to read and is its whole content.
            d.content = existing.target.as_deref() != Some(&target[..]);
            d.size = d.content;
            // Symlink times are set on creation only; a differing time alone is no reason to rewrite.
            d.time = d.time && d.content;
            d.perms = false; // Linux ignores symlink permissions.
        }
        Payload::Special => d.content = m.rdev != w.rdev,
        Payload::Dir { .. } => {}
        _ => d.size = m.size != w.size,
    }
    d
}

/// The decision for a leaf given what the destination holds under its name.
///
/// A metadata fix changes an existing inode in place, so it is made only on an inode
/// that is ours alone: a regular file with one link, changed through a handle whose
/// identity is checked. Anything else (a file with other links, which someone may have
/// linked to a file outside the backup; a symlink, FIFO or device, which can only be
/// changed by name) is replaced instead, and so is everything on a destination that
/// cannot change metadata in place.
pub fn decide(existing: Option<&Existing>, wanted: &Entry, rules: &Rules) -> Decision {
    let Some(ex) = existing else {
        return Decision::Write(Action::Create, Delta::default());
    };
    let mut d = leaf_delta(ex, wanted, rules);
    let ours_alone = ex.meta.file_type() == S_IFREG && ex.meta.nlink == 1;
    if !d.needs_rewrite() && d.needs_metadata() && !(ours_alone && rules.fidelity.fix_in_place) {
        d.content = true;
    }
    if d.needs_rewrite() {
        Decision::Write(Action::Rewrite, d)
    } else if d.needs_metadata() {
        Decision::Metadata(d)
    } else if rules.checksum && ex.meta.file_type() == S_IFREG && wanted.meta.size > 0 {
        Decision::Compare(d)
    } else {
        Decision::Unchanged
    }
}

/// One line of an itemized change list, rsync style: `YXcstpoguax path`.
#[derive(Clone, Debug)]
pub struct Change {
    pub action: Action,
    /// `f` file, `d` directory, `L` symlink, `D` device/FIFO.
    pub kind: char,
    pub delta: Delta,
    /// Path inside the destination (a view path).
    pub cpath: PathBuf,
    /// The plaintext path relative to SRC, when known: what a person knows the entry by.
    pub path: Option<PathBuf>,
    /// For a file that exists only in the view: which (`gocryptfs.diriv`, ...); `path`
    /// then names the plaintext it belongs to.
    pub view_file: Option<&'static str>,
}

/// What the view's own files are called in change lists.
pub fn view_file(p: &Payload) -> Option<&'static str> {
    match p {
        Payload::DirIv(_) => Some("gocryptfs.diriv"),
        Payload::LongName(_) => Some("long name"),
        Payload::Config(_) => Some("gocryptfs.conf"),
        _ => None,
    }
}

impl Change {
    pub fn new(action: Action, e: &Entry, delta: Delta, path: Option<PathBuf>) -> Change {
        Change {
            action,
            kind: kind_char(e.meta.mode),
            delta,
            cpath: crate::cpath::as_path(&e.cpath).to_path_buf(),
            path,
            view_file: view_file(&e.payload),
        }
    }

    /// The entry as a person reads it: its plaintext path (with the view file it is,
    /// for those), else its path in the view.
    pub fn shown(&self) -> String {
        let show = |p: &std::path::Path| {
            let s = p.display().to_string();
            if s.is_empty() {
                ".".to_string()
            } else {
                s
            }
        };
        match (&self.path, self.view_file) {
            (Some(p), Some(v)) => format!("{} [{v}]", show(p)),
            (Some(p), None) => show(p),
            (None, _) => show(&self.cpath),
        }
    }

    /// The rsync-style flags, e.g. `>f.st......` or `*deleting  `.
    pub fn flags(&self) -> String {
        match self.action {
            Action::Delete => "*deleting  ".to_string(),
            Action::Create => {
                let y = if self.kind == 'f' { '>' } else { 'c' };
                format!("{y}{}+++++++++", self.kind)
            }
            _ => {
                let d = &self.delta;
                let y = if self.action == Action::Rewrite && self.kind == 'f' {
                    '>'
                } else if self.action == Action::Rewrite {
                    'c'
                } else {
                    '.'
                };
                let flag = |on: bool, c: char| if on { c } else { '.' };
                format!(
                    "{y}{}{}{}{}{}{}{}...",
                    self.kind,
                    flag(d.content, 'c'),
                    flag(d.size, 's'),
                    flag(d.time, 't'),
                    flag(d.perms, 'p'),
                    flag(d.owner, 'o'),
                    flag(d.group, 'g'),
                )
            }
        }
    }

    /// `flags path`: rsync's itemized line, naming the plaintext.
    pub fn itemize(&self) -> String {
        format!("{} {}", self.flags(), self.shown())
    }
}

pub fn kind_char(mode: u32) -> char {
    match mode & 0o170000 {
        S_IFREG => 'f',
        S_IFDIR => 'd',
        S_IFLNK => 'L',
        _ => 'D',
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::Time;

    fn meta(mode: u32, size: u64, mtime: i64) -> Meta {
        Meta {
            mode,
            uid: 1,
            gid: 1,
            size,
            atime: Time { sec: 0, nsec: 0 },
            mtime: Time {
                sec: mtime,
                nsec: 0,
            },
            dev: 1,
            ino: 1,
            nlink: 1,
            rdev: 0,
        }
    }

    fn file(size: u64, mtime: i64) -> Entry {
        Entry {
            cpath: b"a/b".to_vec(),
            source: "src/a/b".into(),
            meta: meta(S_IFREG | 0o644, size, mtime),
            payload: Payload::File {
                plain_size: 1,
                iv_path: b"a/b".to_vec(),
            },
        }
    }

    fn rules(owners: bool, checksum: bool) -> Rules {
        Rules {
            owners,
            checksum,
            fidelity: Fidelity::EXACT,
        }
    }

    fn existing(m: Meta) -> Existing {
        Existing {
            name: b"b".to_vec(),
            meta: m,
            target: None,
        }
    }

    #[test]
    fn quick_check_decides() {
        let want = file(100, 5);
        assert_eq!(
            decide(None, &want, &rules(true, false)),
            Decision::Write(Action::Create, Delta::default())
        );
        let same = existing(meta(S_IFREG | 0o644, 100, 5));
        assert_eq!(
            decide(Some(&same), &want, &rules(true, false)),
            Decision::Unchanged
        );
        assert!(matches!(
            decide(Some(&same), &want, &rules(true, true)),
            Decision::Compare(_)
        ));
        let newer = existing(meta(S_IFREG | 0o644, 100, 6));
        assert!(matches!(
            decide(Some(&newer), &want, &rules(true, false)),
            Decision::Write(Action::Rewrite, d) if d.time && !d.size
        ));
        let chmod = existing(meta(S_IFREG | 0o600, 100, 5));
        assert!(matches!(
            decide(Some(&chmod), &want, &rules(true, false)),
            Decision::Metadata(d) if d.perms
        ));
        let dir = existing(meta(S_IFDIR | 0o755, 100, 5));
        assert!(matches!(
            decide(Some(&dir), &want, &rules(true, false)),
            Decision::Write(Action::Rewrite, d) if d.kind
        ));
    }

    #[test]
    fn metadata_is_fixed_in_place_only_on_an_inode_of_ours_alone() {
        let want = file(100, 5);
        let mut linked = meta(S_IFREG | 0o600, 100, 5);
        linked.nlink = 2;
        assert!(matches!(
            decide(Some(&existing(linked)), &want, &rules(true, false)),
            Decision::Write(Action::Rewrite, _)
        ));
        // Owners are compared only when they can be set.
        let mut other_owner = meta(S_IFREG | 0o644, 100, 5);
        other_owner.uid = 7;
        assert_eq!(
            decide(
                Some(&existing(other_owner.clone())),
                &want,
                &rules(false, false)
            ),
            Decision::Unchanged
        );
        assert!(matches!(
            decide(Some(&existing(other_owner)), &want, &rules(true, false)),
            Decision::Metadata(d) if d.owner
        ));
    }

    #[test]
    fn times_are_compared_as_finely_as_the_destination_keeps_them() {
        let mut want = file(100, 5);
        want.meta.mtime.nsec = 123_456_789;
        // Whole seconds (SFTP): the nanoseconds it cannot hold are no change...
        let seconds = Rules {
            fidelity: Fidelity {
                mtime_ns: 1_000_000_000,
                fix_in_place: true,
            },
            ..rules(false, false)
        };
        let held = existing(meta(S_IFREG | 0o644, 100, 5));
        assert_eq!(decide(Some(&held), &want, &seconds), Decision::Unchanged);
        // ...but a second is, and to the nanosecond everything is.
        let later = existing(meta(S_IFREG | 0o644, 100, 6));
        assert!(matches!(
            decide(Some(&later), &want, &seconds),
            Decision::Write(Action::Rewrite, d) if d.time
        ));
        assert!(matches!(
            decide(Some(&held), &want, &rules(false, false)),
            Decision::Write(Action::Rewrite, d) if d.time
        ));
        let f = Fidelity {
            mtime_ns: 1000,
            fix_in_place: true,
        };
        let t = |sec, nsec| crate::view::Time { sec, nsec };
        assert!(f.same_time(t(1, 1_999), t(1, 1_000)));
        assert!(!f.same_time(t(1, 2_000), t(1, 1_999)));
        assert!(!f.same_time(t(2, 0), t(1, 0)));
    }

    #[test]
    fn metadata_is_rewritten_where_it_cannot_be_fixed_in_place() {
        let want = file(100, 5);
        let chmod = existing(meta(S_IFREG | 0o600, 100, 5));
        let s3 = Rules {
            fidelity: Fidelity {
                mtime_ns: 1,
                fix_in_place: false,
            },
            ..rules(true, false)
        };
        assert!(matches!(
            decide(Some(&chmod), &want, &s3),
            Decision::Write(Action::Rewrite, d) if d.perms && d.content
        ));
        let mut chown = meta(S_IFREG | 0o644, 100, 5);
        chown.uid = 9;
        assert!(matches!(
            decide(Some(&existing(chown)), &want, &s3),
            Decision::Write(Action::Rewrite, d) if d.owner
        ));
    }

    #[test]
    fn itemized_lines_look_like_rsync() {
        let c = |action, kind, delta| Change {
            action,
            kind,
            delta,
            cpath: PathBuf::from("a/b"),
            path: None,
            view_file: None,
        };
        assert_eq!(
            c(Action::Create, 'f', Delta::default()).itemize(),
            ">f+++++++++ a/b"
        );
        assert_eq!(
            c(Action::Create, 'd', Delta::default()).itemize(),
            "cd+++++++++ a/b"
        );
        assert_eq!(
            c(Action::Delete, 'f', Delta::default()).itemize(),
            "*deleting   a/b"
        );
        let d = Delta {
            size: true,
            time: true,
            ..Delta::default()
        };
        assert_eq!(c(Action::Rewrite, 'f', d).itemize(), ">f.st...... a/b");
        let p = Delta {
            perms: true,
            ..Delta::default()
        };
        assert_eq!(c(Action::Metadata, 'f', p).itemize(), ".f...p..... a/b");
        let mut plain = c(Action::Create, 'f', Delta::default());
        plain.path = Some(PathBuf::from("Documents/notes.txt"));
        assert_eq!(plain.itemize(), ">f+++++++++ Documents/notes.txt");
        plain.view_file = Some("gocryptfs.diriv");
        plain.path = Some(PathBuf::from(""));
        assert_eq!(plain.itemize(), ">f+++++++++ . [gocryptfs.diriv]");
    }
}
