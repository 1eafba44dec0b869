//! The SFTP backend: `openssh-sftp-client` (the protocol crate OpenDAL's sftp service
//! uses) over a `ssh -s HOST sftp` child, so the user's ssh configuration, keys, agent
//! and known_hosts decide how to connect, as they do for `sftp` and `rsync`.
//!
//! The tree is the directory export's: real directories, files written to a temporary
//! name in their directory and renamed into place once complete (OpenSSH's
//! `posix-rename` replaces atomically), mode and mtime set on the handle before the
//! rename. SFTP v3 carries times as whole seconds from 1970 to 2106: nanoseconds are
//! lost and a time outside that range is left as the server sets it. Owners are not
//! set: the remote account owns what it writes, and a local uid means nothing there.

use std::io;
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use futures_util::StreamExt;
use openssh_sftp_client::error::{Error as SftpError, SftpErrorKind};
use openssh_sftp_client::file::File;
use openssh_sftp_client::fs::Fs;
use openssh_sftp_client::metadata::{MetaData, MetaDataBuilder, Permissions};
use openssh_sftp_client::{Sftp, SftpOptions, UnixTimeStamp};
use tokio::io::{AsyncReadExt, AsyncSeek};
use tokio::process::{Child, Command};

use super::env::Env;
use super::error::{Error, ErrorKind, Result};
use super::{Kind, Location, Meta, RemoteEntry};
use crate::view::Time;

pub(super) struct SftpStore {
    sftp: Sftp,
    /// The directory: absolute, or relative to the login directory (`.` for it).
    base: String,
    loc: Location,
    /// Kept so that the ssh process lives as long as the store (killed on drop).
    _child: Mutex<Child>,
}

/// File-type bits of `st_mode` (the view's modes carry them; SFTP reports the type apart).
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

pub use crate::format::names::TEMP_PREFIX;

impl SftpStore {
    pub(super) async fn connect(
        loc: &Location,
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        path: &str,
        env: &Env,
    ) -> Result<SftpStore> {
        let what = loc.to_string();
        let words = env.ssh_command();
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..]);
        // No X11 or agent forwarding, no tty, no port forwardings from the config: this
        // connection only carries the sftp subsystem.
        cmd.args(["-x", "-a", "-T", "-o", "ClearAllForwardings=yes"]);
        if let Some(p) = port {
            cmd.arg("-p").arg(p.to_string());
        }
        if let Some(u) = user {
            cmd.arg("-l").arg(u);
        }
        // `--`: the host can never be read as an option (Location refuses a leading `-`
        // too; this is the second lock on that door).
        cmd.args(["-s", "--", host, "sftp"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                &what,
                format!("cannot start {:?}: {e}", words[0]),
            )
        })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        // ssh's own messages ("Permission denied (publickey)", "Connection refused"):
        // kept (bounded) to explain a failure, never printed.
        let said = Arc::new(Mutex::new(Vec::new()));
        let said2 = Arc::clone(&said);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut s = said2.lock().expect("no panics while held");
                if s.len() < 64 * 1024 {
                    s.extend_from_slice(&buf[..n]);
                }
            }
        });
        let sftp = match Sftp::new(stdin, stdout, SftpOptions::default()).await {
            Ok(s) => s,
            Err(e) => {
                // Let ssh finish saying why before reading what it said.
                let _ = child.wait().await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let text = String::from_utf8_lossy(&said.lock().expect("no panics")).into_owned();
                let last = text
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
                    .unwrap_or("")
                    .to_string();
                let auth = last.contains("Permission denied")
                    || last.contains("Host key verification failed")
                    || last.contains("Too many authentication failures");
                let msg = if last.is_empty() {
                    format!("ssh connection failed: {e}")
                } else {
                    format!("ssh: {last}")
                };
                let kind = if auth {
                    ErrorKind::Auth
                } else {
                    ErrorKind::Connect
                };
                return Err(Error::new(kind, &what, msg));
            }
        };
        Ok(SftpStore {
            sftp,
            base: path.to_string(),
            loc: loc.clone(),
            _child: Mutex::new(child),
        })
    }

    fn fs(&self) -> Fs {
        self.sftp.fs()
    }

    /// The server-side path of `key` (relative, `/`-separated, maybe ending in `/`).
    fn path(&self, key: &str) -> String {
        let key = key.trim_end_matches('/');
        match (self.base.as_str(), key) {
            (b, "") => b.to_string(),
            (".", k) => k.to_string(),
            ("/", k) => format!("/{k}"),
            (b, k) => format!("{b}/{k}"),
        }
    }

    fn err(&self, key: &str, e: SftpError) -> Error {
        map_err(&self.loc, key, e)
    }

    /// Every entry below the directory, from a walk of parallel `readdir`s. A missing
    /// directory is an empty listing (nothing exported yet).
    pub(super) async fn list(&self) -> Result<Vec<RemoteEntry>> {
        let mut out = Vec::new();
        let mut pending: Vec<String> = vec![String::new()];
        let mut running = tokio::task::JoinSet::new();
        // Up to this many directories read at once on the one connection (requests are
        // pipelined; sftp-server answers them in order).
        const WIDTH: usize = 16;
        loop {
            while running.len() < WIDTH {
                let Some(dir) = pending.pop() else { break };
                let mut fs = self.fs();
                let path = self.path(&dir);
                running.spawn(async move {
                    let r = read_dir(&mut fs, &path).await;
                    (dir, r)
                });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let (dir, r) = done.map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    self.loc.to_string(),
                    format!("listing task failed: {e}"),
                )
            })?;
            let items = match r {
                Ok(items) => items,
                Err(e) if dir.is_empty() && is_not_found(&e) => return Ok(Vec::new()),
                Err(e) => return Err(self.err(&dir, e)),
            };
            for (name, md) in items {
                let key = format!("{dir}{name}");
                let e = entry(key, &md);
                if e.kind == Kind::Dir {
                    pending.push(e.key.clone());
                }
                out.push(e);
            }
        }
        Ok(out)
    }

    pub(super) async fn stat(&self, key: &str) -> Result<Option<RemoteEntry>> {
        match self.fs().symlink_metadata(self.path(key)).await {
            Ok(md) => {
                let mut e = entry(key.trim_end_matches('/').to_string(), &md);
                if key.is_empty() {
                    e.key.clear();
                }
                Ok(Some(e))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// `mkdir -p`, then the mode and mtime of the last directory.
    pub(super) async fn mkdir(&self, key: &str, meta: &Meta) -> Result<()> {
        let mut fs = self.fs();
        let full = self.path(key);
        if let Err(e) = fs.create_dir(&full).await {
            // Missing parents: create them one by one, from the top (an existing one is
            // fine, anything else at that name is reported by the final mkdir).
            if is_not_found(&e) {
                let mut cur = String::new();
                for part in full.split('/') {
                    if part.is_empty() {
                        cur.push('/');
                        continue;
                    }
                    if !cur.is_empty() && !cur.ends_with('/') {
                        cur.push('/');
                    }
                    cur.push_str(part);
                    let _ = fs.create_dir(&cur).await;
                }
            }
            match fs.metadata(&full).await {
                Ok(md) if md.file_type().is_some_and(|t| t.is_dir()) => {}
                _ => {
                    fs.create_dir(&full).await.map_err(|e| self.err(key, e))?;
                }
            }
        }
        self.set_meta(key, meta).await
    }

    /// setstat: permission bits and mtime (atime set to the same, as rclone does).
    pub(super) async fn set_meta(&self, key: &str, meta: &Meta) -> Result<()> {
        let Some(md) = attrs(meta) else { return Ok(()) };
        self.fs()
            .set_metadata(self.path(key), md)
            .await
            .map_err(|e| self.err(key, e))
    }

    /// A fresh temporary name in the directory of `key`.
    fn temp_path(&self, key: &str) -> Result<String> {
        let final_path = self.path(key);
        let dir = match final_path.rfind('/') {
            Some(i) => &final_path[..=i],
            None => "",
        };
        let mut rnd = [0u8; 8];
        getrandom::getrandom(&mut rnd).map_err(|e| {
            Error::new(
                ErrorKind::Other,
                self.loc.display_key(key),
                format!("no randomness: {e}"),
            )
        })?;
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("{dir}{TEMP_PREFIX}{hex}"))
    }

    /// A symlink `key` -> `target`, made under a temporary name and renamed over
    /// whatever was at `key`. Its own mode and times are not set: SFTP v3's setstat
    /// follows links.
    pub(super) async fn symlink(&self, key: &str, target: &str) -> Result<()> {
        let tmp = self.temp_path(key)?;
        let mut fs = self.fs();
        // OpenSSH's sftp-server takes SSH_FXP_SYMLINK's two paths in the reverse of the
        // draft's order (target first); openssh-sftp-client's `symlink(src, dst)` sends
        // them as given, so `src` is the target. Checked by the round-trip test.
        fs.symlink(target, &tmp)
            .await
            .map_err(|e| self.err(key, e))?;
        if !self.sftp.support_posix_rename() {
            let _ = fs.remove_file(self.path(key)).await;
        }
        if let Err(e) = fs.rename(&tmp, self.path(key)).await {
            let _ = fs.remove_file(&tmp).await;
            return Err(self.err(key, e));
        }
        Ok(())
    }

    /// `to` becomes another name of the file `from` (OpenSSH's `hardlink@openssh.com`),
    /// made under a temporary name and renamed over whatever was at `to`. `Ok(false)`
    /// when the server lacks the extension.
    pub(super) async fn hard_link(&self, from: &str, to: &str) -> Result<bool> {
        if !self.sftp.support_hardlink() {
            return Ok(false);
        }
        let tmp = self.temp_path(to)?;
        let mut fs = self.fs();
        fs.hard_link(self.path(from), &tmp)
            .await
            .map_err(|e| self.err(to, e))?;
        if !self.sftp.support_posix_rename() {
            let _ = fs.remove_file(self.path(to)).await;
        }
        if let Err(e) = fs.rename(&tmp, self.path(to)).await {
            let _ = fs.remove_file(&tmp).await;
            return Err(self.err(to, e));
        }
        Ok(true)
    }

    pub(super) async fn read_link(&self, key: &str) -> Result<String> {
        self.fs()
            .read_link(self.path(key))
            .await
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| self.err(key, e))
    }

    pub(super) async fn create_temp(&self, key: &str) -> Result<(File, String)> {
        let tmp = self.temp_path(key)?;
        let f = self
            .sftp
            .options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| self.err(key, e))?;
        Ok((f, tmp))
    }

    pub(super) async fn write(&self, key: &str, f: &mut File, data: &[u8]) -> Result<()> {
        f.write_all(data).await.map_err(|e| self.err(key, e))
    }

    /// Metadata on the open handle, close, rename over the final name. On failure the
    /// temporary file is removed.
    pub(super) async fn commit(&self, key: &str, f: File, tmp: &str, meta: &Meta) -> Result<()> {
        let r = self.commit_inner(key, f, tmp, meta).await;
        if r.is_err() {
            let _ = self.fs().remove_file(tmp).await;
        }
        r
    }

    async fn commit_inner(&self, key: &str, mut f: File, tmp: &str, meta: &Meta) -> Result<()> {
        if let Some(md) = attrs(meta) {
            f.set_metadata(md).await.map_err(|e| self.err(key, e))?;
        }
        f.close().await.map_err(|e| self.err(key, e))?;
        let final_path = self.path(key);
        let mut fs = self.fs();
        if !self.sftp.support_posix_rename() {
            // Plain SFTP rename fails when the target exists: remove it first (not
            // atomic; OpenSSH servers always offer posix-rename).
            let _ = fs.remove_file(&final_path).await;
        }
        fs.rename(tmp, &final_path)
            .await
            .map_err(|e| self.err(key, e))
    }

    pub(super) async fn discard(&self, f: File, tmp: &str) {
        let _ = f.close().await;
        let _ = self.fs().remove_file(tmp).await;
    }

    /// Creates `key` with `data` only if nothing is there (`O_CREAT|O_EXCL` on the
    /// server: exact, for the lock).
    pub(super) async fn put_new(&self, key: &str, data: &[u8]) -> Result<()> {
        let mut f = match self
            .sftp
            .options()
            .write(true)
            .create_new(true)
            .open(self.path(key))
            .await
        {
            Ok(f) => f,
            Err(e) => {
                // OpenSSH's sftp-server answers EEXIST with a plain FAILURE: look.
                if matches!(self.stat(key).await, Ok(Some(_))) {
                    return Err(Error::new(
                        ErrorKind::Exists,
                        self.loc.display_key(key),
                        "already exists",
                    ));
                }
                return Err(self.err(key, e));
            }
        };
        f.write_all(data).await.map_err(|e| self.err(key, e))?;
        f.close().await.map_err(|e| self.err(key, e))
    }

    pub(super) async fn get_range(&self, key: &str, r: Range<u64>) -> Result<Vec<u8>> {
        let mut f = self
            .sftp
            .open(self.path(key))
            .await
            .map_err(|e| self.err(key, e))?;
        let want = (r.end.saturating_sub(r.start)) as usize;
        let mut out = Vec::with_capacity(want.min(64 << 20));
        let mut pos = r.start;
        while out.len() < want {
            // `File::read` moves its offset by the amount asked, not the amount read:
            // set it each time.
            Pin::new(&mut f)
                .start_seek(io::SeekFrom::Start(pos))
                .map_err(|e| {
                    Error::new(ErrorKind::Other, self.loc.display_key(key), e.to_string())
                })?;
            let n = (want - out.len()).min(u32::MAX as usize) as u32;
            match f
                .read(n, BytesMut::new())
                .await
                .map_err(|e| self.err(key, e))?
            {
                Some(b) if !b.is_empty() => {
                    pos += b.len() as u64;
                    out.extend_from_slice(&b);
                }
                _ => break,
            }
        }
        let _ = f.close().await;
        Ok(out)
    }

    pub(super) async fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.fs()
            .read(self.path(key))
            .await
            .map(|b| b.to_vec())
            .map_err(|e| self.err(key, e))
    }

    /// Files with remove, directories (keys ending in `/`) with rmdir, in the order
    /// given (the caller lists a directory after what it held). Missing ones are fine.
    pub(super) async fn delete(&self, keys: &[String]) -> Result<()> {
        let mut fs = self.fs();
        for k in keys {
            let p = self.path(k);
            let r = if k.ends_with('/') {
                fs.remove_dir(&p).await
            } else {
                fs.remove_file(&p).await
            };
            match r {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(self.err(k, e)),
            }
        }
        Ok(())
    }
}

async fn read_dir(fs: &mut Fs, path: &str) -> Result<Vec<(String, MetaData)>, SftpError> {
    let dir = fs.open_dir(path).await?;
    let mut rd = std::pin::pin!(dir.read_dir());
    let mut out = Vec::new();
    while let Some(e) = rd.next().await {
        let e = e?;
        let name = e.filename().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        out.push((name, e.metadata()));
    }
    Ok(out)
}

fn entry(key: String, md: &MetaData) -> RemoteEntry {
    let ft = md.file_type();
    let (kind, tbits) = match ft {
        Some(t) if t.is_dir() => (Kind::Dir, S_IFDIR),
        Some(t) if t.is_symlink() => (Kind::Symlink, S_IFLNK),
        Some(t) if t.is_file() => (Kind::File, S_IFREG),
        _ => (Kind::Other, 0),
    };
    let perm = md.permissions().map(|p| p.as_raw().bits() & 0o7777);
    let key = if kind == Kind::Dir && !key.is_empty() {
        format!("{key}/")
    } else {
        key
    };
    RemoteEntry {
        key,
        kind,
        size: md.len().unwrap_or(0),
        meta: Meta {
            mtime: md.modified().map(|t| Time {
                sec: i64::from(t.into_raw()),
                nsec: 0,
            }),
            mode: perm.map(|p| p | tbits),
            uid: md.uid(),
            gid: md.gid(),
            rdev: None,
        },
        meta_known: true,
        etag: None,
        modified: None,
    }
}

/// The SFTP attributes for `meta`: permission bits, and both times from mtime when it
/// fits in SFTP v3's unsigned 32-bit seconds.
fn attrs(meta: &Meta) -> Option<MetaData> {
    let mut b = MetaDataBuilder::new();
    let mut any = false;
    if let Some(m) = meta.mode {
        b.permissions(Permissions::from((m & 0o7777) as u16));
        any = true;
    }
    if let Some(t) = meta.mtime {
        if let Some(ts) = u32::try_from(t.sec).ok().and_then(UnixTimeStamp::from_raw) {
            b.time(ts, ts);
            any = true;
        }
    }
    any.then(|| b.create())
}

fn is_not_found(e: &SftpError) -> bool {
    matches!(e, SftpError::SftpError(SftpErrorKind::NoSuchFile, _))
}

fn map_err(loc: &Location, key: &str, e: SftpError) -> Error {
    let what = loc.display_key(key);
    match &e {
        SftpError::SftpError(code, msg) => {
            let kind = match code {
                SftpErrorKind::NoSuchFile => ErrorKind::NotFound,
                SftpErrorKind::PermDenied => ErrorKind::Other,
                _ => ErrorKind::Other,
            };
            let (text, _) = msg.get();
            let text = if text.is_empty() {
                format!("{code:?}")
            } else {
                text.to_string()
            };
            Error::new(kind, what, format!("sftp server: {text}"))
        }
        SftpError::IOError(_)
        | SftpError::SftpServerFailure(_)
        | SftpError::BackgroundTaskFailure(_) => Error::new(
            ErrorKind::Connect,
            what,
            format!("ssh connection lost: {e}"),
        ),
        _ => Error::new(ErrorKind::Other, what, e.to_string()),
    }
}

/// Whether a file name is one of our upload temporaries (left by an interrupted run).
pub fn is_temp_name(name: &str) -> bool {
    Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| crate::format::names::is_temp_name(n.as_bytes()))
}
