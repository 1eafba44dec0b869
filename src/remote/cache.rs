//! What this machine last learnt of a location's objects, so that a run whose objects
//! did not change needs no HEAD per object.
//!
//! An S3 listing carries each object's size, Last-Modified and (on most services)
//! ETag, but not the metadata the plan compares (mtime, mode, owner): that takes a HEAD
//! per object, which over a WAN is most of a no-change run (rclone pays it too). This
//! cache keeps, per key, the metadata read or written last time together with the
//! listing's size, Last-Modified and ETag then. An entry is used only while the listing
//! still shows the same size, the same Last-Modified and (when both have one) the same
//! ETag: any write to the object, by anyone, changes its Last-Modified, so a stale
//! entry is never used. The cache lives on the machine that runs the export (never in
//! the bucket, where `rclone copy` and gocryptfs would see it), holds nothing secret
//! (keys are ciphertext names, the rest is what the object's own metadata says), and
//! losing it costs only the HEADs. Pure: the caller reads and writes the bytes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Meta, RemoteEntry};
use crate::view::Time;

/// The format version; a cache of another version is ignored.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Record {
    size: u64,
    modified: (i64, u32),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtime: Option<(i64, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rdev: Option<u64>,
    /// A symlink object's content (its target), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    /// The location it describes (the caller's id: endpoint, bucket, prefix).
    location: String,
    objects: HashMap<String, Record>,
}

/// See the module docs.
#[derive(Default, Debug)]
pub struct MetaCache {
    location: String,
    objects: HashMap<String, Record>,
}

impl MetaCache {
    pub fn new(location: &str) -> MetaCache {
        MetaCache {
            location: location.to_string(),
            objects: HashMap::new(),
        }
    }

    /// The cache stored in `bytes`, if it is one of this version for `location`;
    /// otherwise an empty one (a cache is only ever a shortcut).
    pub fn from_bytes(location: &str, bytes: &[u8]) -> MetaCache {
        match serde_json::from_slice::<File>(bytes) {
            Ok(f) if f.version == VERSION && f.location == location => MetaCache {
                location: f.location,
                objects: f.objects,
            },
            _ => MetaCache::new(location),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let f = File {
            version: VERSION,
            location: self.location.clone(),
            objects: self.objects.clone(),
        };
        serde_json::to_vec(&f).expect("plain data serializes")
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Remembers `e` (as listed) with its metadata `meta` and, for a symlink object,
    /// its content. An entry the listing gave no Last-Modified cannot be checked later
    /// and is not kept.
    pub fn insert(&mut self, e: &RemoteEntry, meta: &Meta, target: Option<&[u8]>) {
        let Some(m) = e.modified else { return };
        let t = |t: Time| (t.sec, t.nsec);
        self.objects.insert(
            e.key.clone(),
            Record {
                size: e.size,
                modified: t(m),
                etag: e.etag.clone(),
                mtime: meta.mtime.map(t),
                mode: meta.mode,
                uid: meta.uid,
                gid: meta.gid,
                rdev: meta.rdev,
                target: target.map(hex),
            },
        );
    }

    /// The remembered metadata (and symlink content) of `e`, if the listing still
    /// shows the object as it was then.
    pub fn lookup(&self, e: &RemoteEntry) -> Option<(Meta, Option<Vec<u8>>)> {
        let r = self.objects.get(&e.key)?;
        let same = r.size == e.size
            && e.modified.map(|m| (m.sec, m.nsec)) == Some(r.modified)
            && match (&r.etag, &e.etag) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
        if !same {
            return None;
        }
        let t = |(sec, nsec): (i64, u32)| Time { sec, nsec };
        let meta = Meta {
            mtime: r.mtime.map(t),
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            rdev: r.rdev,
        };
        let target = match &r.target {
            Some(h) => Some(unhex(h)?),
            None => None,
        };
        Some((meta, target))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::Kind;

    fn listed(key: &str, size: u64, modified: i64, etag: Option<&str>) -> RemoteEntry {
        RemoteEntry {
            key: key.into(),
            kind: Kind::File,
            size,
            meta: Meta::default(),
            meta_known: false,
            etag: etag.map(String::from),
            modified: Some(Time {
                sec: modified,
                nsec: 5,
            }),
        }
    }

    fn meta() -> Meta {
        Meta {
            mtime: Some(Time { sec: 17, nsec: 3 }),
            mode: Some(0o100640),
            uid: Some(1000),
            gid: Some(100),
            rdev: None,
        }
    }

    #[test]
    fn an_entry_is_used_only_while_the_object_is_unchanged() {
        let mut c = MetaCache::new("s3 http://e bkt p");
        c.insert(&listed("a", 10, 100, Some("\"x\"")), &meta(), None);
        c.insert(
            &listed("l.rclonelink", 4, 100, None),
            &meta(),
            Some(b"\x00t\xff"),
        );
        let c = MetaCache::from_bytes("s3 http://e bkt p", &c.to_bytes());
        assert_eq!(c.len(), 2);
        assert_eq!(
            c.lookup(&listed("a", 10, 100, Some("\"x\""))),
            Some((meta(), None))
        );
        // A listing without ETags (s3s-fs) still checks size and Last-Modified.
        assert!(c.lookup(&listed("a", 10, 100, None)).is_some());
        // Rewritten: another time, size or ETag.
        assert_eq!(c.lookup(&listed("a", 10, 101, Some("\"x\""))), None);
        assert_eq!(c.lookup(&listed("a", 11, 100, Some("\"x\""))), None);
        assert_eq!(c.lookup(&listed("a", 10, 100, Some("\"y\""))), None);
        assert_eq!(c.lookup(&listed("b", 10, 100, None)), None);
        assert_eq!(
            c.lookup(&listed("l.rclonelink", 4, 100, None)).unwrap().1,
            Some(b"\x00t\xff".to_vec())
        );
    }

    #[test]
    fn another_location_or_version_or_garbage_is_an_empty_cache() {
        let mut c = MetaCache::new("one");
        c.insert(&listed("a", 10, 100, None), &meta(), None);
        let bytes = c.to_bytes();
        assert!(MetaCache::from_bytes("two", &bytes).is_empty());
        assert!(MetaCache::from_bytes("one", b"{not json").is_empty());
        let other = String::from_utf8(bytes)
            .unwrap()
            .replace("\"version\":1", "\"version\":99");
        assert!(MetaCache::from_bytes("one", other.as_bytes()).is_empty());
        // Without a Last-Modified nothing could be checked: not kept.
        let mut e = listed("z", 1, 1, None);
        e.modified = None;
        c.insert(&e, &meta(), None);
        assert!(c.lookup(&e).is_none());
    }
}
