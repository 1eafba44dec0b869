//! Incremental export: how an existing destination entry differs from what the view
//! wants there, decided without reading plaintext (rsync's quick check: type, size and
//! mtime), and how such a change is shown (rsync `--itemize-changes` style).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::view::{Entry, Payload, S_IFDIR, S_IFLNK, S_IFREG};

/// What happens to one destination entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    /// Content rewritten (temp file + rename).
    Rewrite,
    /// Only mode, owner or times fixed in place.
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

/// Compare an existing destination entry with the entry the view wants. `target` is
/// the existing symlink's target, when it is one. Owners count only when we can set them.
pub fn leaf_delta(
    existing: &fs::Metadata,
    existing_target: Option<&[u8]>,
    wanted: &Entry,
    owners: bool,
) -> Delta {
    let w = &wanted.meta;
    let mut d = Delta {
        kind: existing.mode() & 0o170000 != w.file_type(),
        perms: existing.mode() & 0o7777 != w.permissions(),
        owner: owners && existing.uid() != w.uid,
        group: owners && existing.gid() != w.gid,
        ..Delta::default()
    };
    if d.kind {
        return d;
    }
    d.time = existing.mtime() != w.mtime.sec || existing.mtime_nsec() as u32 != w.mtime.nsec;
    match &wanted.payload {
        Payload::Symlink { target } => {
            // A symlink's target is cheap to read and is its whole content.
            d.content = existing_target != Some(&target[..]);
            d.size = d.content;
            // Symlink times are set on creation only; a differing time alone is no reason to rewrite.
            d.time = d.time && d.content;
            if w.file_type() == S_IFLNK {
                d.perms = false; // Linux ignores symlink permissions.
            }
        }
        Payload::Special => {
            d.content = existing.rdev() != w.rdev;
        }
        Payload::Dir { .. } => {}
        _ => d.size = existing.size() != w.size,
    }
    d
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
}

impl Change {
    pub fn for_entry(action: Action, e: &Entry, delta: Delta) -> Change {
        Change {
            action,
            kind: kind_char(e.meta.mode),
            delta,
            cpath: crate::walk::cpath_display(&e.cpath).to_path_buf(),
        }
    }

    pub fn itemize(&self) -> String {
        let path = self.cpath.display();
        let path = if path.to_string().is_empty() {
            "./".to_string()
        } else {
            path.to_string()
        };
        match self.action {
            Action::Delete => format!("*deleting   {path}"),
            Action::Create => {
                let y = if self.kind == 'f' { '>' } else { 'c' };
                format!("{y}{}+++++++++ {path}", self.kind)
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
                    "{y}{}{}{}{}{}{}{}... {path}",
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
}

pub fn kind_char(mode: u32) -> char {
    match mode & 0o170000 {
        S_IFREG => 'f',
        S_IFDIR => 'd',
        S_IFLNK => 'L',
        _ => 'D',
    }
}

/// Make sure an existing destination holds a backup made with this view's key, so an
/// incremental run never rewrites (and deletes from) some unrelated directory, or a
/// backup under another key (which it would silently replace entirely).
///
/// Evidence, in order: the root `gocryptfs.conf` equals the source's config (only when
/// `key_from_config`: a `--masterkey` key may not be the one that config holds); else
/// the first block of some non-empty file authenticates with our key at its path; else
/// a name in the root decrypts. An empty or missing destination is fine.
pub fn check_dest_key(
    dest: &std::path::Path,
    view: &crate::view::View,
    key_from_config: bool,
) -> crate::Result<()> {
    use crate::content::{self as c, FileIvs};
    use crate::error::{Error, IoContext};
    use crate::names::{CONF_NAME, DIRIV_NAME, LONGNAME_PREFIX, REVERSE_CONF_NAME};

    let mut top = match fs::read_dir(dest) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dest, e)),
    };
    if top.next().is_none() {
        return Ok(());
    }
    let refuse = |why: &str| {
        Err(Error::invalid(
            dest,
            format!("{why}; refusing to write into it (use an empty directory, or the destination of an earlier export with the same key)"),
        ))
    };
    let source_conf = view.root().join(REVERSE_CONF_NAME);
    if let (true, Ok(a), Ok(b)) = (
        key_from_config,
        fs::read(dest.join(CONF_NAME)),
        fs::read(&source_conf),
    ) {
        if a == b {
            return Ok(());
        }
    }
    let cryptor = view.cryptor();
    let is_ours = |name: &[u8]| {
        name == CONF_NAME.as_bytes()
            || name == DIRIV_NAME.as_bytes()
            || name.starts_with(crate::sink::dir::TEMP_PREFIX.as_bytes())
            || (cryptor.names.is_some()
                && name.starts_with(LONGNAME_PREFIX.as_bytes())
                && name.ends_with(b".name"))
    };
    // Breadth-first over a bounded number of entries, looking for a file to authenticate.
    let mut queue = std::collections::VecDeque::from([Vec::<u8>::new()]);
    let mut seen = 0usize;
    while let Some(cdir) = queue.pop_front() {
        let dir = if cdir.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(std::ffi::OsStr::from_bytes(&cdir))
        };
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for item in rd.flatten() {
            seen += 1;
            if seen > 10_000 {
                break;
            }
            let name = item.file_name();
            let name = name.as_bytes();
            if is_ours(name) {
                continue;
            }
            let cpath = if cdir.is_empty() {
                name.to_vec()
            } else {
                [&cdir[..], b"/", name].concat()
            };
            let Ok(m) = item.metadata() else { continue };
            if m.is_dir() {
                queue.push_back(cpath);
            } else if m.is_file() && m.len() > c::HEADER_LEN as u64 {
                let path = item.path();
                let mut head = vec![0u8; c::HEADER_LEN + c::CIPHER_BLOCK_SIZE];
                let got =
                    c::read_full(&mut fs::File::open(&path).at(&path)?, &mut head).at(&path)?;
                head.truncate(got);
                let ivs = FileIvs::for_path(&cpath);
                let block = &head[c::HEADER_LEN..];
                let mut plain = vec![0u8; block.len().saturating_sub(c::BLOCK_OVERHEAD)];
                let ok = c::parse_header(&head[..c::HEADER_LEN]) == Some(ivs.file_id)
                    && c::open_block(
                        &mut cryptor.content.siv(),
                        &ivs.file_id,
                        0,
                        block,
                        &mut plain,
                    );
                return if ok {
                    Ok(())
                } else {
                    refuse("it holds files not encrypted with this key at these paths")
                };
            }
        }
    }
    // No file to check: fall back to a name in the root.
    if let Some(codec) = &cryptor.names {
        let root_iv = cryptor.reverse_dir_iv(b"");
        for item in fs::read_dir(dest).at(dest)?.flatten() {
            let name = item.file_name();
            if is_ours(name.as_bytes()) || name.as_bytes().starts_with(LONGNAME_PREFIX.as_bytes()) {
                continue;
            }
            return if codec.decrypt(&root_iv, name.as_bytes()).is_ok() {
                Ok(())
            } else {
                refuse("it holds names not encrypted with this key")
            };
        }
    }
    if dest.join(DIRIV_NAME).is_file() || dest.join(CONF_NAME).is_file() {
        return Ok(());
    }
    refuse("it is not empty and does not look like a gocryptfs -reverse copy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itemized_lines_look_like_rsync() {
        let c = |action, kind, delta| Change {
            action,
            kind,
            delta,
            cpath: PathBuf::from("a/b"),
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
    }
}
