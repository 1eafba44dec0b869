//! The heart of cryptbak: for a plaintext tree, what would `gocryptfs -reverse` show?
//!
//! [`View::listing`] turns one plaintext directory (its children's names and `lstat`
//! data, gathered by the export driver through directory handles) into the ciphertext
//! entries of its view directory, virtual files included (FORMAT.md §1, §5, §7, §12).
//! It decides names, metadata, sizes and IVs, and reads nothing: producing bytes and
//! placing them is the driver's and the sinks' business.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cpath;
use crate::exclude::Selection;
use crate::format::content;
use crate::format::names::{CONF_NAME, DIRIV_NAME, LONGNAME_SUFFIX, REVERSE_CONF_NAME};
use crate::format::pathiv::{self, Purpose};
use crate::format::Cryptor;
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

/// The config file shown as the root `gocryptfs.conf`: the bytes unlock read, and the
/// attributes of the handle they were read from (`stat`, following a symlink, as gocryptfs
/// does). Read once, so what is shown is what unlocked the key, whatever the name
/// points to later.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub bytes: Arc<Vec<u8>>,
    pub meta: Meta,
}

#[derive(Clone, Debug)]
pub struct ViewOptions {
    /// Shown as the root `gocryptfs.conf` in place of `.gocryptfs.reverse.conf` (`None`
    /// with `--config`, or when the key came from `--masterkey` and there is no config).
    pub config: Option<ConfigFile>,
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
    pub fn from_fs(m: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::MetadataExt;
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

    /// From a `stat` result (an `lstat` of a listed name, or an `fstat` of a handle).
    #[allow(clippy::unnecessary_cast)] // field types differ between architectures
    pub fn from_stat(st: &rustix::fs::Stat) -> Meta {
        Meta {
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            size: st.st_size as u64,
            atime: Time {
                sec: st.st_atime as i64,
                nsec: st.st_atime_nsec as u32,
            },
            mtime: Time {
                sec: st.st_mtime as i64,
                nsec: st.st_mtime_nsec as u32,
            },
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            rdev: st.st_rdev as u64,
        }
    }

    /// Which inode this is, to check that a handle opened later is the listed entry.
    pub fn identity(&self) -> crate::fs::Identity {
        crate::fs::Identity {
            file_type: self.file_type(),
            dev: self.dev,
            ino: self.ino,
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
    /// The root `gocryptfs.conf`: the bytes of `.gocryptfs.reverse.conf` unlock read.
    Config(Arc<Vec<u8>>),
}

#[derive(Clone, Debug)]
pub struct Entry {
    /// Path in the view, `/`-separated, empty for the root.
    pub cpath: Vec<u8>,
    /// The plaintext path this entry is derived from, for messages (nothing opens it:
    /// the driver reaches the source through directory handles).
    pub source: PathBuf,
    pub meta: Meta,
    pub payload: Payload,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        matches!(self.payload, Payload::Dir { .. })
    }

    /// The name of the plaintext entry in its directory (the root's own name for the root).
    pub fn source_name(&self) -> &[u8] {
        self.source
            .file_name()
            .map(OsStrExt::as_bytes)
            .unwrap_or(b"")
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

/// One plaintext child of a directory as the driver found it through the directory's
/// handle: its `lstat`, and its target when it is a symlink.
#[derive(Clone, Debug)]
pub struct PlainChild {
    pub name: OsString,
    pub meta: Meta,
    pub link_target: Option<Vec<u8>>,
}

/// One view directory's entries, in a fixed order: `gocryptfs.diriv` first, then the
/// entries by plaintext name (bytewise), each long-named one preceded by its `.name` file.
#[derive(Debug, Default)]
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
    /// `st_dev` of the root, for `--one-file-system`.
    root_dev: u64,
}

impl View {
    /// The view of the tree whose root directory has the attributes `root_meta` (from
    /// the root handle). `root` names it in messages.
    pub fn new(root: PathBuf, root_meta: &Meta, cryptor: Cryptor, opts: ViewOptions) -> View {
        View {
            root,
            cryptor,
            opts,
            root_dev: root_meta.dev,
        }
    }

    pub fn cryptor(&self) -> &Cryptor {
        &self.cryptor
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn selection(&self) -> &Selection {
        &self.opts.selection
    }

    /// The plaintext path of an entry relative to the root (for what a person reads).
    pub fn relative<'a>(&self, e: &'a Entry) -> &'a Path {
        e.source.strip_prefix(&self.root).unwrap_or(Path::new(""))
    }

    pub fn root_entry(&self, meta: Meta) -> Entry {
        Entry {
            cpath: Vec::new(),
            source: self.root.clone(),
            meta,
            payload: Payload::Dir {
                dir_iv: self.cryptor.reverse_dir_iv(b""),
            },
        }
    }

    /// Whether `dir` is shown empty because it lies on another filesystem than the root
    /// (`--one-file-system`; FORMAT.md §18): it keeps its attributes and its diriv.
    pub fn shows_empty(&self, dir: &Entry) -> bool {
        self.opts.selection.one_file_system && dir.meta.dev != self.root_dev
    }

    /// Drop the names of `dir` the selection leaves out (docs/exclude.md), so that an
    /// excluded directory is never listed or descended into and an excluded long name
    /// never gets a `.name` file. `is_tag(name)` tells whether a name is a tag file that
    /// empties its directory (`--exclude-caches`, `--exclude-if-present`); it is only
    /// asked about candidate names. The config mapped to `gocryptfs.conf` is always
    /// kept: without it the backup cannot be opened (gocryptfs 2.3 hides it when a
    /// pattern matches it, gocryptfs#686).
    pub fn select(&self, dir: &Entry, names: &mut Vec<OsString>, is_tag: impl Fn(&OsStr) -> bool) {
        let sel = &self.opts.selection;
        if sel.is_everything() {
            return;
        }
        let config_here = dir.cpath.is_empty() && self.opts.config.is_some();
        let is_config = |n: &OsString| config_here && n == REVERSE_CONF_NAME;
        if sel.has_tags() {
            let tags: Vec<OsString> = names
                .iter()
                .filter(|n| self.may_be_tag(n) && is_tag(n))
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
            let mut rel: Vec<u8> = self.relative(dir).as_os_str().as_bytes().to_vec();
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

    /// Whether `name` could be a tag file; the caller then looks at the file.
    fn may_be_tag(&self, name: &OsStr) -> bool {
        let sel = &self.opts.selection;
        sel.exclude_if_present.iter().any(|t| t == name)
            || (sel.exclude_caches && name == crate::exclude::CACHEDIR_TAG_NAME)
    }

    /// Whether a tag file named `name` needs its content checked (a `CACHEDIR.TAG` must
    /// start with the signature; an `--exclude-if-present` name counts as it is).
    pub fn tag_needs_signature(&self, name: &OsStr) -> bool {
        !self
            .opts
            .selection
            .exclude_if_present
            .iter()
            .any(|t| t == name)
    }

    /// The view directory of the plaintext directory `dir`, from its selected children
    /// (each with what the driver found, or the problem it met). `complete` is false when
    /// the directory could not be listed in full.
    pub fn listing(
        &self,
        dir: &Entry,
        children: Vec<(OsString, std::result::Result<PlainChild, Problem>)>,
        complete: bool,
    ) -> Listing {
        let Payload::Dir { dir_iv } = dir.payload else {
            return Listing {
                problems: vec![Problem::error(&dir.source, "not a directory")],
                ..Listing::default()
            };
        };
        let mut out = Listing {
            complete,
            ..Listing::default()
        };
        let version = self.opts.version;
        if self.cryptor.has_diriv_files() {
            out.entries.push(Entry {
                cpath: cpath::join(&dir.cpath, DIRIV_NAME.as_bytes()),
                source: dir.source.clone(),
                meta: dir.meta.virtual_file(16, version),
                payload: Payload::DirIv(dir_iv),
            });
        }
        let is_root = dir.cpath.is_empty();
        let config = self.opts.config.as_ref().filter(|_| is_root);
        let reverse_conf_present =
            config.is_some() && children.iter().any(|(n, _)| n == REVERSE_CONF_NAME);
        out.entries.reserve(children.len());
        for (name, child) in children {
            let source = dir.source.join(&name);
            if let Some(conf) = config.filter(|_| name == REVERSE_CONF_NAME) {
                // Shown with the attributes of the file unlock read (stat, not lstat).
                out.entries.push(Entry {
                    cpath: CONF_NAME.as_bytes().to_vec(),
                    source,
                    meta: conf.meta.clone(),
                    payload: Payload::Config(Arc::clone(&conf.bytes)),
                });
                continue;
            }
            if self.cryptor.names.is_none() && reverse_conf_present && name == CONF_NAME {
                out.problems.push(Problem::error(
                    &source,
                    "with plaintext names this file clashes with the view's gocryptfs.conf; gocryptfs hides it too, so it is not backed up (rename it)",
                ));
                continue;
            }
            let (shown_name, full_cname) = self.shown_name(&dir_iv, &name);
            match child.and_then(|c| {
                self.child_entries(dir, &shown_name, full_cname.as_deref(), source, c)
            }) {
                Ok(mut es) => out.entries.append(&mut es),
                Err(p) => {
                    if p.severity == crate::progress::Severity::Error {
                        if full_cname.is_some() {
                            let mut n = shown_name.clone();
                            n.extend_from_slice(LONGNAME_SUFFIX.as_bytes());
                            out.protected.push(n);
                        }
                        out.protected.push(shown_name);
                    }
                    out.problems.push(p);
                }
            }
        }
        out
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

    /// The entry of a regular file again, from a fresh `lstat` (a file that changed while
    /// it was read is written again with what it is now).
    pub fn refreshed_file(&self, e: &Entry, meta: Meta) -> std::result::Result<Entry, Problem> {
        if meta.file_type() != S_IFREG {
            return Err(Problem::error(
                &e.source,
                "was replaced by something that is not a regular file while the backup ran",
            ));
        }
        let mut meta = meta;
        let plain_size = meta.size;
        meta.size = content::cipher_size(plain_size);
        let iv_path = match &e.payload {
            Payload::File { iv_path, .. } => iv_path.clone(),
            _ => e.cpath.clone(),
        };
        Ok(Entry {
            cpath: e.cpath.clone(),
            source: e.source.clone(),
            meta,
            payload: Payload::File {
                plain_size,
                iv_path,
            },
        })
    }

    /// The entry for one plaintext child (preceded by its `.name` file when long-named).
    fn child_entries(
        &self,
        dir: &Entry,
        shown_name: &[u8],
        full_cname: Option<&str>,
        source: PathBuf,
        child: PlainChild,
    ) -> std::result::Result<Vec<Entry>, Problem> {
        let mut meta = child.meta;
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
                let Some(target) = child.link_target else {
                    return Err(Problem::error(&source, "cannot read symlink"));
                };
                let shown = self.encrypt_symlink_target(&cpath, &target);
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
}

impl Payload {
    /// The bytes of a virtual file (diriv, `.name`, config); `None` for entries whose
    /// content is read from the source or that have none.
    pub fn virtual_bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::DirIv(iv) => Some(iv),
            Payload::LongName(cname) => Some(cname),
            Payload::Config(bytes) => Some(bytes),
            _ => None,
        }
    }
}
