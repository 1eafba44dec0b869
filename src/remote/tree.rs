//! What a location holds, as the tree of a gocryptfs view: the layout rules of a view
//! in a store, in one place for the export (the remote sink's plan) and the Reader (the
//! remote source) alike.
//!
//! * S3: an object per file; a zero-length `dir/` marker per directory (services that
//!   keep markers as real directories, such as s3s-fs, do not list them, and other
//!   tools write none: a directory is also implied by the keys below it); a symlink is
//!   rclone's `<name>.rclonelink` object holding the target; an object whose stored
//!   mode says FIFO or device is one.
//! * SFTP: what the server lists (directories, files, symlinks).
//!
//! [`Tree::load`] reads it with one listing, then (S3) the metadata a listing lacks
//! (one HEAD per object) and the symlink targets, all in parallel. Memory: one small
//! record per object.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::cache::MetaCache;
use super::{Error, Kind, RemoteEntry, Store};
use crate::view::{Meta, Time, S_IFDIR, S_IFLNK, S_IFREG};

/// The suffix rclone gives a symlink stored as an object (`rclone --links`): the object
/// holds the target. `rclone copy --links` turns it back into a symlink.
pub const RCLONE_LINK_SUFFIX: &str = ".rclonelink";

const S_IFMT: u32 = 0o170000;

/// The `dev` of every listed entry's [`Meta`] (its `ino` is [`fingerprint`]).
pub const LISTED_DEV: u64 = u64::MAX - 1;

/// Symlink objects larger than this are not read (no target is that long).
const MAX_LINK_OBJECT: u64 = 64 * 1024;

/// One name of a directory of the location.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: Vec<u8>,
    /// Its type (from the listing, and for an S3 object its stored mode), and what the
    /// store keeps of mode, owner, size and mtime; unknown values are ones no view
    /// entry has ([`unknown_time`], `u32::MAX`, no permission bits).
    pub meta: Meta,
    /// The stored metadata as read (absent fields: not stored).
    pub stored: super::Meta,
    /// The service's own time of the last write (S3's Last-Modified), and the listing's
    /// size and ETag of the object (what [`MetaCache`] checks).
    pub modified: Option<Time>,
    pub object_size: u64,
    pub etag: Option<String>,
    /// A symlink's target, when it could be read.
    pub target: Option<Vec<u8>>,
    /// S3: a symlink stored as `<name>.rclonelink`.
    pub link_object: bool,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.meta.file_type() == S_IFDIR
    }

    /// Whether the store said anything about this directory itself (a listed marker or
    /// directory), rather than only implying it.
    pub fn is_listed(&self) -> bool {
        self.meta.mtime != unknown_time()
    }
}

/// The location's content, by directory key (`""` for the root, else `a/b/`).
#[derive(Default)]
pub struct Tree {
    dirs: HashMap<String, HashMap<Vec<u8>, Node>>,
    /// The root directory's own metadata (S3: its marker's; SFTP: the directory's).
    pub root: Option<Meta>,
    /// Objects whose metadata had to be read (not known from the listing or a cache).
    pub heads: usize,
}

impl Tree {
    /// Everything the location holds: one listing, then (S3) the metadata of every
    /// object that `cache` does not vouch for, `2 × transfers` requests at a time, and
    /// the symlink targets. Returns the tree and the objects whose metadata or target
    /// could not be read (a failure that dooms every request is returned as the error
    /// instead).
    pub fn load(store: &Store, cache: Option<&MetaCache>) -> Result<(Tree, Vec<Error>), Error> {
        let s3 = store.is_s3();
        let mut entries = store.list()?;
        let mut cached_targets: HashMap<usize, Vec<u8>> = HashMap::new();
        if let Some(c) = cache {
            for (i, e) in entries.iter_mut().enumerate() {
                if let Some((meta, target)) = c.lookup(e) {
                    e.meta = meta;
                    e.meta_known = true;
                    if let Some(t) = target {
                        cached_targets.insert(i, t);
                    }
                }
            }
        }
        let heads = entries.iter().filter(|e| !e.meta_known).count();
        let mut problems = store.fill_meta(&mut entries, |_| true);
        if let Some(e) = problems.iter().find(|e| e.is_fatal()) {
            return Err(e.clone());
        }
        let mut root = None;
        if !s3 {
            // The listing holds what is below the directory; the directory itself:
            match store.stat("") {
                Ok(Some(st)) => root = Some(meta_from(&st, S_IFDIR)),
                Ok(None) => {}
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => problems.push(e),
            }
        }
        // Symlink targets: the body of an rclone link object (S3), readlink (SFTP).
        let links: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                let e = &entries[i];
                if cached_targets.contains_key(&i) {
                    false
                } else if s3 {
                    e.kind == Kind::File
                        && e.key.ends_with(RCLONE_LINK_SUFFIX)
                        && e.size <= MAX_LINK_OBJECT
                } else {
                    e.kind == Kind::Symlink
                }
            })
            .collect();
        let width = store.options().transfers.max(1) * 2;
        let targets = par_map(&links, width, |&i| {
            let key = &entries[i].key;
            if s3 {
                store.get(key)
            } else {
                store.read_link(key).map(String::into_bytes)
            }
        });
        let mut target_of = cached_targets;
        for (&i, t) in links.iter().zip(targets) {
            match t {
                Ok(t) => {
                    target_of.insert(i, t);
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => problems.push(e),
            }
        }
        let mut tree = Tree {
            root,
            heads,
            ..Tree::default()
        };
        for (i, e) in entries.into_iter().enumerate() {
            tree.add(e, s3, target_of.remove(&i));
        }
        Ok((tree, problems))
    }

    /// The names of directory `dir` (unordered).
    pub fn dir(&self, dir: &str) -> impl Iterator<Item = &Node> {
        self.dirs.get(dir).into_iter().flat_map(|m| m.values())
    }

    pub fn find(&self, dir: &str, name: &[u8]) -> Option<&Node> {
        self.dirs.get(dir)?.get(name)
    }

    /// The key of `node` in the directory `dir`.
    pub fn key(dir: &str, node: &Node) -> String {
        let name = String::from_utf8_lossy(&node.name);
        if node.is_dir() {
            format!("{dir}{name}/")
        } else if node.link_object {
            format!("{dir}{name}{RCLONE_LINK_SUFFIX}")
        } else {
            format!("{dir}{name}")
        }
    }

    /// Every key below the directory `dir` (not its own marker): files first, then
    /// directories, deepest first, so that a store that only removes empty
    /// directories (SFTP, s3s-fs) can follow the order.
    pub fn keys_below(&self, dir: &str) -> Vec<String> {
        let mut files = Vec::new();
        let mut dirs: Vec<String> = Vec::new();
        let mut stack = vec![dir.to_string()];
        while let Some(d) = stack.pop() {
            for n in self.dir(&d) {
                let k = Tree::key(&d, n);
                if n.is_dir() {
                    dirs.push(k.clone());
                    stack.push(k);
                } else {
                    files.push(k);
                }
            }
        }
        files.sort();
        dirs.sort();
        dirs.sort_by_key(|k| std::cmp::Reverse(k.matches('/').count()));
        files.extend(dirs);
        files
    }

    /// How many names there are below the directory `dir`.
    pub fn count_below(&self, dir: &str) -> u64 {
        let mut n = 0;
        let mut stack = vec![dir.to_string()];
        while let Some(d) = stack.pop() {
            for node in self.dir(&d) {
                n += 1;
                if node.is_dir() {
                    stack.push(Tree::key(&d, node));
                }
            }
        }
        n
    }

    /// The node an object's key stands for (a marker `a/` for the directory `a`, an
    /// rclone link object for its symlink).
    pub fn node_by_key(&self, key: &str) -> Option<&Node> {
        let path = key.trim_end_matches('/');
        let (dir, name) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let n = self
            .find(dir, name.as_bytes())
            .or_else(|| self.find(dir, name.strip_suffix(RCLONE_LINK_SUFFIX)?.as_bytes()))?;
        (Tree::key(dir, n) == key).then_some(n)
    }

    /// What the tree knows, as a cache (see [`MetaCache`]): every object whose
    /// metadata was read.
    pub fn to_cache(&self, location: &str) -> MetaCache {
        let mut c = MetaCache::new(location);
        for (d, m) in &self.dirs {
            for n in m.values() {
                if n.modified.is_none() {
                    continue; // implied, not listed
                }
                let e = RemoteEntry {
                    key: Tree::key(d, n),
                    kind: Kind::File,
                    size: n.object_size,
                    meta: n.stored,
                    meta_known: true,
                    etag: n.etag.clone(),
                    modified: n.modified,
                };
                let target = if n.link_object {
                    n.target.as_deref()
                } else {
                    None
                };
                c.insert(&e, &n.stored, target);
            }
        }
        c
    }

    /// Every regular file, as (directory key, node).
    pub fn files(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.dirs.iter().flat_map(|(d, m)| {
            m.values()
                .filter(|n| n.meta.file_type() == S_IFREG)
                .map(move |n| (d.as_str(), n))
        })
    }

    fn add(&mut self, e: RemoteEntry, s3: bool, target: Option<Vec<u8>>) {
        if e.key.is_empty() {
            self.root = Some(meta_from(&e, S_IFDIR));
            return;
        }
        let path = e.key.trim_end_matches('/');
        let (dir, name) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        if name.is_empty() || dir.contains("//") {
            return; // not a key any export writes
        }
        self.imply(dir);
        let (name, kind, link_object) = match e.kind {
            Kind::Dir => (name, S_IFDIR, false),
            Kind::Symlink => (name, S_IFLNK, false),
            Kind::File if s3 && name.len() > RCLONE_LINK_SUFFIX.len() => {
                match name.strip_suffix(RCLONE_LINK_SUFFIX) {
                    Some(n) => (n, S_IFLNK, true),
                    None => (name, S_IFREG, false),
                }
            }
            Kind::File => (name, S_IFREG, false),
            Kind::Other => (name, 0, false),
        };
        let mut meta = meta_from(&e, kind);
        if kind == S_IFLNK {
            meta.size = target.as_ref().map_or(0, |t| t.len() as u64);
        }
        let node = Node {
            name: name.as_bytes().to_vec(),
            meta,
            stored: e.meta,
            modified: e.modified,
            object_size: e.size,
            etag: e.etag,
            target,
            link_object,
        };
        let list = self.dirs.entry(dir.to_string()).or_default();
        match list.get_mut(name.as_bytes()) {
            // A directory implied by the keys below it, now listed itself (its marker);
            // otherwise a directory wins over an object of the same name, which only
            // another tool can have made.
            Some(n) if n.is_dir() && kind != S_IFDIR => {}
            Some(n) => *n = node,
            None => {
                list.insert(name.as_bytes().to_vec(), node);
            }
        }
    }

    /// Make sure the directory `dir` (`a/b/`) and its parents are names of their
    /// parents, whether or not the store listed them.
    fn imply(&mut self, dir: &str) {
        let mut d = dir.trim_end_matches('/');
        while !d.is_empty() {
            let (parent, name) = match d.rfind('/') {
                Some(i) => (&d[..=i], &d[i + 1..]),
                None => ("", d),
            };
            let list = self.dirs.entry(parent.to_string()).or_default();
            if list.get(name.as_bytes()).is_some_and(Node::is_dir) {
                return;
            }
            list.insert(
                name.as_bytes().to_vec(),
                Node {
                    name: name.as_bytes().to_vec(),
                    meta: implied_dir_meta(),
                    stored: super::Meta::default(),
                    modified: None,
                    object_size: 0,
                    etag: None,
                    target: None,
                    link_object: false,
                },
            );
            d = parent.trim_end_matches('/');
        }
    }
}

/// A time no view entry has: whatever is compared with it differs.
pub fn unknown_time() -> Time {
    Time {
        sec: i64::MIN,
        nsec: 0,
    }
}

fn implied_dir_meta() -> Meta {
    Meta {
        mode: S_IFDIR,
        uid: u32::MAX,
        gid: u32::MAX,
        size: 0,
        atime: unknown_time(),
        mtime: unknown_time(),
        dev: LISTED_DEV,
        ino: 0,
        nlink: 1,
        rdev: 0,
    }
}

/// A listed entry as a view entry's metadata. `kind` is the type the listing shows
/// (S_IFREG for an S3 object); the stored mode decides only the permission bits, and
/// for an S3 object also whether it stands for a FIFO or device node.
fn meta_from(e: &RemoteEntry, kind: u32) -> Meta {
    let stored = e.meta.mode;
    let file_type = match (kind, stored.map(|m| m & S_IFMT)) {
        (S_IFREG, Some(t)) if is_special(t) => t,
        _ => kind,
    };
    let perms = stored.map_or(0, |m| m & 0o7777);
    let mtime = e.meta.mtime.unwrap_or_else(unknown_time);
    let mut m = Meta {
        mode: file_type | perms,
        uid: e.meta.uid.unwrap_or(u32::MAX),
        gid: e.meta.gid.unwrap_or(u32::MAX),
        size: e.size,
        atime: mtime,
        mtime,
        dev: LISTED_DEV,
        ino: 0,
        nlink: 1,
        rdev: e.meta.rdev.unwrap_or(0),
    };
    m.ino = fingerprint(&m);
    m
}

/// FIFO, character or block device.
pub fn is_special(file_type: u32) -> bool {
    matches!(file_type, 0o010000 | 0o020000 | 0o060000)
}

/// What a quick check sees of an entry, as a number: two objects with the same type,
/// size, mtime, mode and owner have the same. A store has no inodes; this stands in
/// for one where the export driver compares identities (see `sink::remote`).
pub fn fingerprint(m: &Meta) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (m.mode, m.uid, m.gid, m.size, m.mtime.sec, m.mtime.nsec).hash(&mut h);
    h.finish()
}

/// `f` over `items`, `width` at a time, on threads of their own (the calls block on
/// the network, not on the CPU). Results in the order of `items`.
pub fn par_map<T: Sync, R: Send>(items: &[T], width: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    let next = AtomicUsize::new(0);
    let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..width.clamp(1, items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *out[i].lock().expect("no panics while held") = Some(r);
            });
        }
    });
    out.into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no panics while held")
                .expect("every item was done")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, size: u64, mode: Option<u32>) -> RemoteEntry {
        RemoteEntry {
            key: key.into(),
            kind: if key.ends_with('/') {
                Kind::Dir
            } else {
                Kind::File
            },
            size,
            meta: super::super::Meta {
                mtime: Some(Time { sec: 7, nsec: 9 }),
                mode,
                uid: Some(1),
                gid: Some(2),
                rdev: None,
            },
            meta_known: true,
            etag: None,
            modified: None,
        }
    }

    fn names(t: &Tree, dir: &str) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = t
            .dir(dir)
            .map(|n| (String::from_utf8(n.name.clone()).unwrap(), n.meta.mode))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn grouped_by_directory_with_unlisted_ones_implied() {
        let mut t = Tree::default();
        // s3s-fs lists no markers: a/ and a/b/ are implied by a/b/c.
        t.add(file("a/b/c", 10, Some(0o100640)), true, None);
        t.add(file("top", 3, Some(0o100600)), true, None);
        t.add(
            file("l.rclonelink", 5, Some(0o120777)),
            true,
            Some(b"dGFy".to_vec()),
        );
        t.add(file("fifo", 0, Some(0o010644)), true, None);
        assert_eq!(
            names(&t, ""),
            vec![
                ("a".into(), S_IFDIR),
                ("fifo".into(), 0o010644),
                ("l".into(), 0o120777),
                ("top".into(), 0o100600),
            ]
        );
        assert_eq!(names(&t, "a/"), vec![("b".into(), S_IFDIR)]);
        assert_eq!(names(&t, "a/b/"), vec![("c".into(), 0o100640)]);
        let l = t.find("", b"l").unwrap();
        assert!(l.link_object);
        assert_eq!(l.target.as_deref(), Some(&b"dGFy"[..]));
        assert_eq!(Tree::key("", l), "l.rclonelink");
        assert!(!t.find("", b"a").unwrap().is_listed());
        // A listed marker replaces the implied directory and brings its metadata.
        t.add(file("a/", 0, Some(0o40750)), true, None);
        let a = t.find("", b"a").unwrap();
        assert!(a.is_listed());
        assert_eq!(a.meta.mode, 0o40750);
        assert_eq!(a.meta.mtime, Time { sec: 7, nsec: 9 });
        // A later implication does not undo it.
        t.add(file("a/z", 1, None), true, None);
        assert_eq!(t.find("", b"a").unwrap().meta.mode, 0o40750);
        assert_eq!(t.count_below(""), 7);
        assert_eq!(
            t.keys_below("a/"),
            vec!["a/b/c".to_string(), "a/z".to_string(), "a/b/".to_string()]
        );
        let mut files: Vec<String> = t.files().map(|(d, n)| Tree::key(d, n)).collect();
        files.sort();
        assert_eq!(files, ["a/b/c", "a/z", "top"]);
    }

    #[test]
    fn on_sftp_a_name_ending_in_rclonelink_is_a_file() {
        let mut t = Tree::default();
        t.add(file("x.rclonelink", 5, Some(0o100644)), false, None);
        let x = t.find("", b"x.rclonelink").unwrap();
        assert!(!x.link_object);
        assert_eq!(x.meta.file_type(), S_IFREG);
    }

    #[test]
    fn copies_share_a_fingerprint_and_changes_break_it() {
        let a = meta_from(&file("a", 10, Some(0o100644)), S_IFREG);
        let b = meta_from(&file("b", 10, Some(0o100644)), S_IFREG);
        assert_eq!(a.identity(), b.identity());
        let c = meta_from(&file("c", 11, Some(0o100644)), S_IFREG);
        assert_ne!(a.identity(), c.identity());
        let mut unknown = file("d", 10, None);
        unknown.meta = super::super::Meta::default();
        let d = meta_from(&unknown, S_IFREG);
        assert_eq!(d.mtime, unknown_time());
        assert_eq!(d.mode, S_IFREG);
    }

    #[test]
    fn par_map_keeps_order() {
        let items: Vec<u32> = (0..100).collect();
        assert_eq!(
            par_map(&items, 7, |x| x * 2),
            (0..100).map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(par_map(&[] as &[u32], 3, |x| *x).is_empty());
    }
}
