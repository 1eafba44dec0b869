//! The S3 backend, on Apache OpenDAL's S3 service (async; [`super::Store`] drives it
//! from its runtime). Keys are `PREFIX/<key>`; a directory is a zero-length `<key>/`
//! marker object.

use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::raw::oio::Write as _;
use opendal::raw::{Access, OpWrite};
use opendal::{EntryMode, Operator};

use super::env::S3Settings;
use super::error::{Error, ErrorKind, Result};
use super::{Kind, Location, Meta, Options, RemoteEntry};
use crate::view::Time;

pub(super) struct S3 {
    op: Operator,
    /// `""` or `"some/prefix/"`.
    prefix: String,
    loc: Location,
    /// The endpoint (or AWS and the region), the bucket and the prefix: what names
    /// this location wherever it is reached from (see [`super::Store::cache_id`]).
    pub(super) id: String,
}

impl S3 {
    pub(super) async fn open(
        loc: &Location,
        bucket: &str,
        prefix: &str,
        s: &S3Settings,
        opts: &Options,
    ) -> Result<S3> {
        let mut b = opendal::services::S3::default()
            .bucket(bucket)
            .root("/")
            .region(&s.region)
            .access_key_id(&s.access_key_id)
            .secret_access_key(&s.secret_access_key)
            // Everything is read from our Env (see env.rs), nothing behind our back: no
            // second look at the process environment or the files, and no probing of
            // the EC2 instance metadata address.
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(t) = &s.session_token {
            b = b.session_token(t);
        }
        match &s.endpoint {
            // An explicit endpoint (MinIO, Ceph, Garage, R2, a local server): path-style
            // addressing, which every S3-compatible service understands and which needs
            // no wildcard DNS. OpenDAL's default.
            Some(e) => b = b.endpoint(e),
            // AWS itself: virtual-hosted style, the one AWS keeps for new buckets.
            None => b = b.enable_virtual_host_style(),
        }
        let op = Operator::new(b)
            .map_err(|e| map_err(loc, "", e))?
            .layer(
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_io_timeout(Duration::from_secs(60)),
            )
            // Throttling (429, SlowDown) and 5xx are marked temporary by OpenDAL's S3
            // error parser; this layer retries exactly those, with jittered backoff.
            .layer(
                RetryLayer::new()
                    .with_max_times(opts.retries)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(10))
                    .with_jitter(),
            )
            .finish();
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let id = format!(
            "s3 {} {bucket} {prefix}",
            s.endpoint
                .clone()
                .unwrap_or_else(|| format!("aws:{}", s.region))
        );
        let s3 = S3 {
            op,
            prefix,
            loc: loc.clone(),
            id,
        };
        s3.probe().await?;
        Ok(s3)
    }

    /// One cheap request, so that a missing bucket or bad credentials fail at open with
    /// their own message instead of on the first object.
    async fn probe(&self) -> Result<()> {
        let dir = self.dir_path();
        let mut l = self
            .op
            .lister_with(&dir)
            .limit(1)
            .await
            .map_err(|e| map_err(&self.loc, "", e))?;
        l.try_next().await.map_err(|e| map_err(&self.loc, "", e))?;
        Ok(())
    }

    fn dir_path(&self) -> String {
        if self.prefix.is_empty() {
            "/".into()
        } else {
            self.prefix.clone()
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn err(&self, key: &str, e: opendal::Error) -> Error {
        map_err(&self.loc, key, e)
    }

    pub(super) async fn list(&self) -> Result<Vec<RemoteEntry>> {
        let mut lister = self
            .op
            .lister_with(&self.dir_path())
            .recursive(true)
            .await
            .map_err(|e| self.err("", e))?;
        let mut out = Vec::new();
        let t0 = std::time::Instant::now();
        while let Some(entry) = lister.try_next().await.map_err(|e| self.err("", e))? {
            if std::env::var_os("CRYPTBAK_TIMING").is_some() && out.len() % 500 == 0 {
                eprintln!("{} {:?}", out.len(), t0.elapsed());
            }
            let Some(key) = entry.path().strip_prefix(&self.prefix) else {
                continue;
            };
            let m = entry.metadata();
            // The prefix's own marker, if listed, is the root directory: key "".
            if key.is_empty() || key == "/" {
                if !self.prefix.is_empty() && entry.path() == self.prefix {
                    out.push(RemoteEntry {
                        key: String::new(),
                        kind: Kind::Dir,
                        size: 0,
                        meta: Meta::default(),
                        meta_known: false,
                        etag: None,
                        modified: None,
                    });
                }
                continue;
            }
            out.push(RemoteEntry {
                key: key.to_string(),
                kind: if m.mode() == EntryMode::DIR || key.ends_with('/') {
                    Kind::Dir
                } else {
                    Kind::File
                },
                size: m.content_length(),
                meta: Meta::default(),
                meta_known: false,
                etag: m.etag().map(str::to_string),
                modified: m.last_modified().map(|t| system_time(t.into())),
            });
        }
        Ok(out)
    }

    /// HEAD: the object's size and its metadata (user metadata is not in listings).
    pub(super) async fn stat(&self, key: &str) -> Result<Option<RemoteEntry>> {
        match self.op.stat(&self.full(key)).await {
            Ok(m) => Ok(Some(RemoteEntry {
                key: key.to_string(),
                kind: if key.ends_with('/') {
                    Kind::Dir
                } else {
                    Kind::File
                },
                size: m.content_length(),
                meta: m
                    .user_metadata()
                    .map(|um| {
                        Meta::from_user_metadata(um.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    })
                    .unwrap_or_default(),
                meta_known: true,
                etag: m.etag().map(str::to_string),
                modified: m.last_modified().map(|t| system_time(t.into())),
            })),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// A streaming writer: parts of `opts.part_size` bytes, up to `opts.part_concurrency`
    /// of them in flight, one PUT for objects that fit in one part. `close` completes the
    /// multipart upload, `abort` aborts it.
    ///
    /// S3 allows at most 10 000 parts: an object longer than `len / 9000` parts of
    /// `part_size` gets larger parts (memory then grows with the file, past about
    /// 70 GiB at the default 8 MiB).
    pub(super) async fn writer(
        &self,
        key: &str,
        len: u64,
        meta: &Meta,
        opts: &Options,
    ) -> Result<opendal::Writer> {
        self.op
            .writer_with(&self.full(key))
            .chunk(part_size(len, opts.part_size))
            .concurrent(opts.part_concurrency)
            .user_metadata(meta.to_user_metadata())
            .await
            .map_err(|e| self.err(key, e))
    }

    /// A small object in one request; with `if_absent`, `If-None-Match: *` (the call
    /// fails with [`ErrorKind::Exists`] when the key is taken).
    pub(super) async fn put_small(
        &self,
        key: &str,
        data: Vec<u8>,
        meta: &Meta,
        if_absent: bool,
    ) -> Result<()> {
        self.op
            .write_with(&self.full(key), data)
            .user_metadata(meta.to_user_metadata())
            .if_not_exists(if_absent)
            .await
            .map(|_| ())
            .map_err(|e| self.err(key, e))
    }

    /// The zero-length `<key>/` marker of a directory, with its metadata. OpenDAL's
    /// `Operator` refuses to write a path ending in `/` (and its `create_dir` takes no
    /// metadata), so this goes one level down, through the same layered accessor.
    ///
    /// The root (`key` empty) is the prefix's own marker `PREFIX/`; a location that is
    /// a whole bucket has none (there is nothing to name it by).
    pub(super) async fn mkdir(&self, key: &str, meta: &Meta) -> Result<()> {
        let key = key.trim_end_matches('/');
        let (k, full) = if key.is_empty() {
            if self.prefix.is_empty() {
                return Ok(());
            }
            (String::new(), self.prefix.clone())
        } else {
            let k = format!("{key}/");
            let full = self.full(&k);
            (k, full)
        };
        let acc = self.op.clone().into_inner();
        let args = OpWrite::default().with_user_metadata(meta.to_user_metadata());
        let (_, mut w) = acc.write(&full, args).await.map_err(|e| self.err(&k, e))?;
        w.close().await.map_err(|e| self.err(&k, e))?;
        Ok(())
    }

    /// Server-side copy (CopyObject): the object's bytes and metadata, nothing through
    /// this machine. S3 copies objects of up to 5 GiB this way.
    pub(super) async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.op
            .copy(&self.full(from), &self.full(to))
            .await
            .map_err(|e| self.err(to, e))
    }

    pub(super) async fn get_range(&self, key: &str, r: Range<u64>) -> Result<Vec<u8>> {
        if r.is_empty() {
            return Ok(Vec::new());
        }
        match self.op.read_with(&self.full(key)).range(r.clone()).await {
            Ok(b) => Ok(b.to_vec()),
            // A range that runs past the end: OpenDAL insists on the whole range (or S3
            // answers 416 when it starts past the end). Ask for the size once and read
            // what is there, so that a short object reads short instead of failing.
            Err(e)
                if e.kind() == opendal::ErrorKind::RangeNotSatisfied
                    || message_of(&e).contains("too little data") =>
            {
                let size = match self.stat(key).await? {
                    Some(st) => st.size,
                    None => return Err(self.err(key, e)),
                };
                let end = r.end.min(size);
                if r.start >= end {
                    return Ok(Vec::new());
                }
                self.op
                    .read_with(&self.full(key))
                    .range(r.start..end)
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| self.err(key, e))
            }
            Err(e) => Err(self.err(key, e)),
        }
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.op
            .read(&self.full(key))
            .await
            .map(|b| b.to_vec())
            .map_err(|e| self.err(key, e))
    }

    /// Batch delete (DeleteObjects, up to 1000 keys a request). Missing keys are fine.
    /// Files go first, then directory markers, deepest first, one batch per depth:
    /// OpenDAL does not keep the order within a batch, and a service that maps markers
    /// to real directories (s3s-fs, MinIO) removes one only once it is empty.
    pub(super) async fn delete(&self, keys: &[String]) -> Result<()> {
        let depth = |k: &str| k.trim_end_matches('/').matches('/').count();
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        let files: Vec<String> = keys.iter().filter(|k| !k.ends_with('/')).cloned().collect();
        groups.push((usize::MAX, files));
        let mut dirs: Vec<&String> = keys.iter().filter(|k| k.ends_with('/')).collect();
        dirs.sort_by_key(|k| std::cmp::Reverse(depth(k)));
        for d in dirs {
            match groups.last_mut() {
                Some((dep, g)) if *dep == depth(d) => g.push(d.clone()),
                _ => groups.push((depth(d), vec![d.clone()])),
            }
        }
        for (_, g) in groups {
            if g.is_empty() {
                continue;
            }
            let full: Vec<String> = g.iter().map(|k| self.full(k)).collect();
            self.op
                .delete_iter(full)
                .await
                .map_err(|e| self.err(&g[0], e))?;
        }
        Ok(())
    }

    pub(super) fn err_for(&self, key: &str, e: opendal::Error) -> Error {
        self.err(key, e)
    }
}

/// The part size for an object of `len` bytes: `want`, or more when `want` would need
/// more than 9000 parts (S3's limit is 10 000), rounded up to a whole MiB.
pub(super) fn part_size(len: u64, want: usize) -> usize {
    const MAX_PARTS: u64 = 9000;
    let need = len.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    want.max(usize::try_from(need).unwrap_or(usize::MAX))
}

fn system_time(t: SystemTime) -> Time {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Time {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                Time { sec: -s, nsec: 0 }
            } else {
                Time {
                    sec: -s - 1,
                    nsec: 1_000_000_000 - n,
                }
            }
        }
    }
}

/// OpenDAL's error → ours. The message is the service's code and text (parsed out of
/// OpenDAL's rendering of the S3 error document), never OpenDAL's full `Display`, whose
/// context lists request details.
pub(super) fn map_err(loc: &Location, key: &str, e: opendal::Error) -> Error {
    let what = loc.display_key(key);
    let raw = message_of(&e);
    let fields = s3_error_fields(&raw);
    let code = fields.get("code").cloned().unwrap_or_default();
    let text = match (fields.get("code"), fields.get("message")) {
        (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {m}"),
        (Some(c), _) => c.clone(),
        _ => one_line(&raw),
    };
    use opendal::ErrorKind as K;
    let kind = match (e.kind(), code.as_str()) {
        (_, "NoSuchBucket") => ErrorKind::BucketMissing,
        (
            _,
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "ExpiredToken"
            | "InvalidToken"
            | "AuthorizationHeaderMalformed",
        ) => ErrorKind::Auth,
        (K::PermissionDenied, _) => ErrorKind::Auth,
        (K::NotFound, _) => ErrorKind::NotFound,
        (K::ConditionNotMatch | K::AlreadyExists, _) => ErrorKind::Exists,
        _ if is_connect(&e) => ErrorKind::Connect,
        _ => ErrorKind::Other,
    };
    let msg = match kind {
        ErrorKind::BucketMissing => format!("the bucket does not exist ({text})"),
        ErrorKind::Auth => format!("authentication failed or access denied ({text})"),
        ErrorKind::Connect => format!("cannot reach the S3 endpoint ({text})"),
        _ => text,
    };
    Error::new(kind, what, msg)
}

/// A transport failure before any S3 answer (refused, DNS, TLS): OpenDAL reports those
/// as `Unexpected` with the HTTP client's error as source.
fn is_connect(e: &opendal::Error) -> bool {
    let m = message_of(e).to_ascii_lowercase();
    e.kind() == opendal::ErrorKind::Unexpected
        && (m.contains("send http request") || m.contains("connect") || m.contains("dns"))
}

/// The message part of an OpenDAL error and its source chain: its `Display` is
/// `kind (status) at op, context: { … } => message, source: …`; the context (request
/// details) is left out.
fn message_of(e: &opendal::Error) -> String {
    let full = e.to_string();
    let msg = full.split_once(" => ").map(|(_, m)| m).unwrap_or("");
    let msg = msg.split(", source: ").next().unwrap_or("");
    let mut out = msg.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// OpenDAL renders an S3 error document as `S3Error { code: "…", message: "…", … }`
/// (its `Debug`); pick the quoted fields back out.
fn s3_error_fields(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for field in ["code", "message"] {
        let pat = format!("{field}: \"");
        if let Some(i) = s.find(&pat) {
            let rest = &s[i + pat.len()..];
            let mut v = String::new();
            let mut esc = false;
            for c in rest.chars() {
                match (esc, c) {
                    (true, c) => {
                        v.push(c);
                        esc = false
                    }
                    (false, '\\') => esc = true,
                    (false, '"') => break,
                    (false, c) => v.push(c),
                }
            }
            out.insert(field.to_string(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_fields() {
        let f = s3_error_fields(
            r#"S3Error { code: "NoSuchBucket", message: "The \"b\" bucket", resource: "", request_id: "" }"#,
        );
        assert_eq!(f["code"], "NoSuchBucket");
        assert_eq!(f["message"], "The \"b\" bucket");
        assert!(s3_error_fields("plain text").is_empty());
    }

    #[test]
    fn part_size_keeps_under_the_part_limit() {
        let mib = 1usize << 20;
        assert_eq!(part_size(0, 8 * mib), 8 * mib);
        assert_eq!(part_size(9000 * 8 * mib as u64, 8 * mib), 8 * mib);
        let big = 9000 * 8 * mib as u64 + 1;
        assert_eq!(part_size(big, 8 * mib), 9 * mib);
        let huge = 5u64 << 40; // 5 TiB, S3's largest object
        let p = part_size(huge, 8 * mib) as u64;
        assert!(huge.div_ceil(p) <= 9000, "{p}");
    }

    #[test]
    fn times_before_1970() {
        let t = UNIX_EPOCH - Duration::new(1, 500_000_000);
        assert_eq!(
            system_time(t),
            Time {
                sec: -2,
                nsec: 500_000_000
            }
        );
        assert_eq!(
            system_time(UNIX_EPOCH - Duration::from_secs(3)),
            Time { sec: -3, nsec: 0 }
        );
        assert_eq!(
            system_time(UNIX_EPOCH + Duration::new(5, 7)),
            Time { sec: 5, nsec: 7 }
        );
    }
}
