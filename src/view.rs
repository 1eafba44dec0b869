//! The heart of cryptbak: for a plaintext tree, what would `gocryptfs -reverse` show?
//!
//! `View::list` turns one plaintext directory into the ciphertext entries of its view
//! directory, virtual files included (FORMAT.md §1, §5, §7, §12). It decides names,
//! metadata and sizes; `View::write_content` produces the bytes. Where the entries go
//! is the sinks' business.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::content::{self, FileEncryptor, FileIvs};
use crate::cpath;
use crate::cryptor::Cryptor;
use crate::error::{Error, IoContext, Result};
use crate::exclude::{self, Selection};
use crate::names::{CONF_NAME, DIRIV_NAME, LONGNAME_SUFFIX, REVERSE_CONF_NAME};
use crate::pathiv::{self, Purpose};
use crate::progress::Problem;

/// The longest symlink target Linux can store (PATH_MAX less the NUL). gocryptfs lists
/// a 4096-character target but cannot read it back (EIO), and nothing can copy it.
pub const MAX_SHOWN_SYMLINK_TARGET: usize = 4095;

const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFSOCK: u32 = 0o140000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewVersion {
    /// gocryptfs 2.3–2.4: virtual files carry their source's timestamps unchanged.
    V2_3,
    /// gocryptfs ≥ 2.5: virtual files' mtime (and ctime) are 10 s later than the source's.
    V2_5,
}

impl ViewVersion {
    /// What `export` writes without `--compat`: the view of current gocryptfs (Debian 13
    /// and unstable, Arch and Fedora ship 2.5 or later).
    pub const DEFAULT: ViewVersion = ViewVersion::V2_5;

    /// The name `--compat` gives it: the first release that shows it.
    pub fn name(self) -> &'static str {
        match self {
            ViewVersion::V2_3 => "2.3",
            ViewVersion::V2_5 => "2.5",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ViewOptions {
    /// Show the root `.gocryptfs.reverse.conf` as `gocryptfs.conf` (off with `--config`).
    pub config_in_root: bool,
    pub version: ViewVersion,
    /// What is left out: excludes, `--one-file-system`, tag files (docs/exclude.md).
    /// `Selection::default()` shows everything.
    pub selection: Selection,
}

/// A timestamp with nanoseconds, as `lstat` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

/// The attributes the view shows for an entry (FORMAT.md §12).
#[derive(Clone, Debug)]
pub struct Meta {
    /// Full `st_mode`: file type and permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size in the view: ciphertext size for files, encoded target length for symlinks.
    pub size: u64,
    pub atime: Time,
    pub mtime: Time,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
}

impl Meta {
    pub fn from_fs(m: &fs::Metadata) -> Meta {
        Meta {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            atime: Time {
                sec: m.atime(),
                nsec: m.atime_nsec() as u32,
            },
            mtime: Time {
                sec: m.mtime(),
                nsec: m.mtime_nsec() as u32,
            },
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
            rdev: m.rdev(),
        }
    }

    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }

    /// The metadata of a virtual file derived from `self` (its directory or long-named entry).
    fn virtual_file(&self, size: u64, version: ViewVersion) -> Meta {
        let mut m = self.clone();
        m.mode = S_IFREG | 0o444;
        m.nlink = 1;
        m.size = size;
        m.rdev = 0;
        if version == ViewVersion::V2_5 {
            m.mtime.sec += 10;
        }
        m
    }
}

/// What an entry of the view is, and what its bytes come from.
#[derive(Clone, Debug)]
pub enum Payload {
    Dir {
        dir_iv: [u8; 16],
    },
    /// A regular file; its IVs come from `iv_path` (its own cpath, except for hard links).
    File {
        plain_size: u64,
        iv_path: Vec<u8>,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// FIFO or device node: metadata only.
    Special,
    DirIv([u8; 16]),
    /// A `gocryptfs.longname.*.name` file holding the full encrypted name.
    LongName(Vec<u8>),
    /// The root `gocryptfs.conf`: the bytes of `.gocryptfs.reverse.conf`.
    Config,
}

#[derive(Clone, Debug)]
pub struct Entry {
    /// Path in the view, `/`-separated, empty for the root.
    pub cpath: Vec<u8>,
    /// The plaintext path this entry is derived from.
    pub source: PathBuf,
    pub meta: Meta,
    pub payload: Payload,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        matches!(self.payload, Payload::Dir { .. })
    }

    /// Number of path components (0 for the root).
    pub fn depth(&self) -> usize {
        if self.cpath.is_empty() {
            0
        } else {
            1 + self.cpath.iter().filter(|&&c| c == b'/').count()
        }
    }
}

/// One view directory's entries, in a fixed order: `gocryptfs.diriv` first, then the
/// entries by plaintext name (bytewise), each long-named one preceded by its `.name` file.
pub struct Listing {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
    /// Names in this view directory whose source failed (unreadable, vanished): an
    /// incremental export must keep what an earlier run wrote for them.
    pub protected: Vec<Vec<u8>>,
    /// False when reading the directory itself failed part-way: the listing may miss
    /// entries, so nothing may be deleted on its account.
    pub complete: bool,
}

pub struct View {
    root: PathBuf,
    cryptor: Cryptor,
    opts: ViewOptions,
    /// `st_dev` of the root, for `--one-file-system`; set by the first `root_entry`.
    root_dev: OnceLock<u64>,
}

impl View {
    pub fn new(root: PathBuf, cryptor: Cryptor, opts: ViewOptions) -> View {
        View {
            root,
            cryptor,
            opts,
            root_dev: OnceLock::new(),
        }
    }

    pub fn cryptor(&self) -> &Cryptor {
        &self.cryptor
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn root_entry(&self) -> Result<Entry> {
        // The root is given by the user, so a symlink to a directory is followed.
        let m = fs::metadata(&self.root).at(&self.root)?;
        if !m.is_dir() {
            return Err(Error::invalid(&self.root, "not a directory"));
        }
        let _ = self.root_dev.set(m.dev());
        Ok(Entry {
            cpath: Vec::new(),
            source: self.root.clone(),
            meta: Meta::from_fs(&m),
            payload: Payload::Dir {
                dir_iv: self.cryptor.reverse_dir_iv(b""),
            },
        })
    }

    /// Read one plaintext directory and return its view directory's entries.
    pub fn list(&self, dir: &Entry) -> Result<Listing> {
        let Payload::Dir { dir_iv } = dir.payload else {
            return Err(Error::invalid(&dir.source, "not a directory"));
        };
        let mut problems = Vec::new();
        let mut protected = Vec::new();
        let mut complete = true;
        let version = self.opts.version;
        let mut entries = Vec::new();
        if self.cryptor.has_diriv_files() {
            entries.push(Entry {
                cpath: cpath::join(&dir.cpath, DIRIV_NAME.as_bytes()),
                source: dir.source.clone(),
                meta: dir.meta.virtual_file(16, version),
                payload: Payload::DirIv(dir_iv),
            });
        }
        if self.opts.selection.one_file_system && dir.meta.dev != self.root_dev()? {
            // A directory on another filesystem is shown empty, with its own attributes
            // and its gocryptfs.diriv (FORMAT.md §18, gocryptfs `Readdir`).
            return Ok(Listing {
                entries,
                problems,
                protected,
                complete,
            });
        }
        let mut names: Vec<OsString> = Vec::new();
        for item in fs::read_dir(&dir.source).at(&dir.source)? {
            match item {
                Ok(e) => names.push(e.file_name()),
                Err(e) => {
                    complete = false;
                    problems.push(Problem::error(
                        &dir.source,
                        format!("cannot list directory: {e}"),
                    ));
                }
            }
        }
        // getdents order differs between filesystems; a fixed order keeps output reproducible.
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

        let is_root = dir.cpath.is_empty();
        entries.reserve(names.len());
        let config_here = is_root && self.opts.config_in_root;
        let reverse_conf_present = config_here && names.iter().any(|n| n == REVERSE_CONF_NAME);
        if !self.opts.selection.is_everything() {
            self.select(dir, &mut names, config_here);
        }
        for name in names {
            let source = dir.source.join(&name);
            if config_here && name == REVERSE_CONF_NAME {
                // Shown with the attributes of the file it points to (stat, not lstat).
                match fs::metadata(&source) {
                    Ok(m) => entries.push(Entry {
                        cpath: CONF_NAME.as_bytes().to_vec(),
                        source,
                        meta: Meta::from_fs(&m),
                        payload: Payload::Config,
                    }),
                    Err(e) => {
                        problems.push(Problem::error(&source, format!("cannot read config: {e}")))
                    }
                }
                continue;
            }
            if self.cryptor.names.is_none() && reverse_conf_present && name == CONF_NAME {
                problems.push(Problem::error(
                    &source,
                    "with plaintext names this file clashes with the view's gocryptfs.conf; gocryptfs hides it too, so it is not backed up (rename it)",
                ));
                continue;
            }
            let (shown_name, full_cname) = self.shown_name(&dir_iv, &name);
            match self.child_entries(dir, &shown_name, full_cname.as_deref(), source) {
                Ok(mut es) => entries.append(&mut es),
                Err(p) => {
                    if p.severity == crate::progress::Severity::Error {
                        if full_cname.is_some() {
                            let mut n = shown_name.clone();
                            n.extend_from_slice(LONGNAME_SUFFIX.as_bytes());
                            protected.push(n);
                        }
                        protected.push(shown_name);
                    }
                    problems.push(p);
                }
            }
        }
        Ok(Listing {
            entries,
            problems,
            protected,
            complete,
        })
    }

    /// The name a plaintext child has in the view, and its full encrypted name when the
    /// shown one is the hashed long-name form.
    fn shown_name(&self, dir_iv: &[u8; 16], name: &OsStr) -> (Vec<u8>, Option<String>) {
        match &self.cryptor.names {
            None => (name.as_bytes().to_vec(), None),
            Some(codec) => {
                let cname = codec.encrypt(dir_iv, name.as_bytes());
                if codec.is_long(&cname) {
                    (codec.long_name(&cname).into_bytes(), Some(cname))
                } else {
                    (cname.into_bytes(), None)
                }
            }
        }
    }

    /// The entry again, from a fresh `lstat` of its source (a file that changed while
    /// it was being read is written again with what it is now).
    pub fn refresh(&self, e: &Entry) -> Result<Entry> {
        let m = fs::symlink_metadata(&e.source).at(&e.source)?;
        let Payload::File { iv_path, .. } = &e.payload else {
            return Ok(e.clone());
        };
        if !m.is_file() {
            return Err(Error::invalid(
                &e.source,
                "was replaced by something that is not a regular file",
            ));
        }
        let mut meta = Meta::from_fs(&m);
        let plain_size = meta.size;
        meta.size = content::cipher_size(plain_size);
        Ok(Entry {
            cpath: e.cpath.clone(),
            source: e.source.clone(),
            meta,
            payload: Payload::File {
                plain_size,
                iv_path: iv_path.clone(),
            },
        })
    }

    fn root_dev(&self) -> Result<u64> {
        if let Some(&d) = self.root_dev.get() {
            return Ok(d);
        }
        let d = fs::metadata(&self.root).at(&self.root)?.dev();
        Ok(*self.root_dev.get_or_init(|| d))
    }

    /// Drop the names of `dir` the selection leaves out (docs/exclude.md). Excluded
    /// entries never reach `child_entries`, so an excluded directory is never listed or
    /// descended into, and an excluded long name never gets a `.name` file. The config
    /// mapped to `gocryptfs.conf` is always kept: without it the backup cannot be opened
    /// (gocryptfs 2.3 hides it when a pattern matches it, gocryptfs#686).
    fn select(&self, dir: &Entry, names: &mut Vec<OsString>, config_here: bool) {
        let sel = &self.opts.selection;
        let is_config = |n: &OsString| config_here && n == REVERSE_CONF_NAME;
        if sel.has_tags() {
            let tags: Vec<OsString> = names
                .iter()
                .filter(|n| self.is_tag(dir, n))
                .cloned()
                .collect();
            if !tags.is_empty() {
                // Like tar --exclude-caches / --exclude-tag: the directory and the tag
                // files stay, everything else inside goes.
                names.retain(|n| tags.contains(n) || is_config(n));
            }
        }
        if !sel.excludes.is_empty() {
            // Matching runs on the plaintext path relative to the root (FORMAT.md §14).
            let mut rel: Vec<u8> = dir
                .source
                .strip_prefix(&self.root)
                .unwrap_or(Path::new(""))
                .as_os_str()
                .as_bytes()
                .to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            let prefix = rel.len();
            names.retain(|n| {
                rel.truncate(prefix);
                rel.extend_from_slice(n.as_bytes());
                is_config(n) || !sel.excludes.is_excluded(&rel)
            });
        }
    }

    /// Whether `name` in `dir` is a tag file that empties its directory: any entry with
    /// an `--exclude-if-present` name, or a regular `CACHEDIR.TAG` (not followed if it is
    /// a symlink) starting with the signature.
    fn is_tag(&self, dir: &Entry, name: &OsStr) -> bool {
        let sel = &self.opts.selection;
        if sel.exclude_if_present.iter().any(|t| t == name) {
            return true;
        }
        if !sel.exclude_caches || name != exclude::CACHEDIR_TAG_NAME {
            return false;
        }
        let path = dir.source.join(name);
        let Ok(f) = File::options()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
        else {
            return false;
        };
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            return false;
        }
        let mut head = Vec::with_capacity(exclude::CACHEDIR_SIGNATURE.len());
        let _ = (&f)
            .take(exclude::CACHEDIR_SIGNATURE.len() as u64)
            .read_to_end(&mut head);
        exclude::is_cachedir_signature(&head)
    }

    /// The entry for one plaintext child (preceded by its `.name` file when long-named).
    fn child_entries(
        &self,
        dir: &Entry,
        shown_name: &[u8],
        full_cname: Option<&str>,
        source: PathBuf,
    ) -> std::result::Result<Vec<Entry>, Problem> {
        let lmeta = fs::symlink_metadata(&source)
            .map_err(|e| Problem::error(&source, format!("cannot stat: {e}")))?;
        let mut meta = Meta::from_fs(&lmeta);
        let ftype = meta.file_type();
        if ftype == S_IFSOCK {
            return Err(Problem::warning(
                &source,
                "socket skipped (sockets cannot be backed up)",
            ));
        }

        let cpath = cpath::join(&dir.cpath, shown_name);

        let payload = match ftype {
            S_IFDIR => Payload::Dir {
                dir_iv: self.cryptor.reverse_dir_iv(&cpath),
            },
            S_IFREG => {
                let plain_size = meta.size;
                meta.size = content::cipher_size(plain_size);
                Payload::File {
                    plain_size,
                    iv_path: cpath.clone(),
                }
            }
            S_IFLNK => {
                let target = fs::read_link(&source)
                    .map_err(|e| Problem::error(&source, format!("cannot read symlink: {e}")))?;
                let shown = self.encrypt_symlink_target(&cpath, target.as_os_str().as_bytes());
                if self.cryptor.names.is_some() && shown.len() > MAX_SHOWN_SYMLINK_TARGET {
                    return Err(Problem::error(
                        &source,
                        format!(
                            "symlink target too long: encrypted it would be {} bytes, over the limit of {MAX_SHOWN_SYMLINK_TARGET} that gocryptfs and Linux can show (plaintext targets of at most 3039 bytes fit); not backed up",
                            shown.len()
                        ),
                    ));
                }
                meta.size = shown.len() as u64;
                Payload::Symlink { target: shown }
            }
            _ => Payload::Special,
        };

        let mut out = Vec::with_capacity(2);
        if let Some(cname) = full_cname {
            let mut name_file = cpath.clone();
            name_file.extend_from_slice(LONGNAME_SUFFIX.as_bytes());
            out.push(Entry {
                cpath: name_file,
                source: source.clone(),
                meta: meta.virtual_file(cname.len() as u64, self.opts.version),
                payload: Payload::LongName(cname.as_bytes().to_vec()),
            });
        }
        out.push(Entry {
            cpath,
            source,
            meta,
            payload,
        });
        Ok(out)
    }

    /// The symlink target as the view shows it (FORMAT.md §9): unencrypted with plaintext
    /// names, else base64 of the AES-SIV blob whose nonce comes from the doubled path.
    fn encrypt_symlink_target(&self, cpath: &[u8], target: &[u8]) -> Vec<u8> {
        let Some(codec) = &self.cryptor.names else {
            return target.to_vec();
        };
        let nonce = pathiv::derive(&pathiv::symlink_iv_path(cpath), Purpose::SymlinkIv);
        let blob = content::seal_symlink(&self.cryptor.content, &nonce, target);
        codec.b64_encode(&blob).into_bytes()
    }

    /// Write the bytes of a file-like entry; returns the number of plaintext bytes read
    /// (for regular files, to detect files that changed while being read).
    pub fn write_content(
        &self,
        e: &Entry,
        enc: &mut FileEncryptor,
        out: &mut dyn Write,
    ) -> Result<u64> {
        match &e.payload {
            Payload::File { iv_path, .. } => {
                let mut src = File::options()
                    .read(true)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&e.source)
                    .at(&e.source)?;
                let ivs = FileIvs::for_path(iv_path);
                let mut dst = WatchedWriter {
                    inner: out,
                    failed: false,
                };
                enc.encrypt(&ivs, &mut src, &mut dst).map_err(|err| {
                    if dst.failed {
                        Error::io(Path::new(OsStr::from_bytes(&e.cpath)), err)
                    } else {
                        Error::io(&e.source, err)
                    }
                })
            }
            Payload::DirIv(iv) => write_all(out, iv, e),
            Payload::LongName(cname) => write_all(out, cname, e),
            Payload::Config => {
                let bytes = fs::read(&e.source).at(&e.source)?;
                write_all(out, &bytes, e)
            }
            Payload::Dir { .. } | Payload::Symlink { .. } | Payload::Special => Ok(0),
        }
    }
}

fn write_all(out: &mut dyn Write, bytes: &[u8], e: &Entry) -> Result<u64> {
    out.write_all(bytes)
        .map_err(|err| Error::io(Path::new(OsStr::from_bytes(&e.cpath)), err))?;
    Ok(bytes.len() as u64)
}

/// Remembers whether an I/O error came from the destination, so the message can blame
/// the right file (an unreadable source versus a full disk). The tar stream uses it to
/// tell a fatal output error from a source error.
pub(crate) struct WatchedWriter<'a> {
    pub(crate) inner: &'a mut dyn Write,
    pub(crate) failed: bool,
}

impl Write for WatchedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::cancel::io_check()?;
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        crate::meter::add(n);
        Ok(n)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        crate::cancel::io_check()?;
        self.inner
            .write_all(buf)
            .inspect_err(|_| self.failed = true)?;
        crate::meter::add(buf.len());
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}
