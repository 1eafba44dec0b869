//! How much a restore of a whole backup will write, for the progress line's total and
//! ETA: the regular files of the plaintext tree (what the engine reports done) and
//! their plaintext bytes, worked out from names, types and ciphertext sizes alone.
//! Nothing is read or decrypted, so a damaged backup only makes the total approximate.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::FileType;

use super::names::{Kind, NameRules};
use crate::format::content::Aead;
use crate::format::Cryptor;
use crate::fs::handle as fs;
use crate::progress::Size;
use crate::remote::tree::Tree;
use crate::view::S_IFREG;

/// Adds up the entries of a ciphertext tree that a restore writes as files.
pub struct Tally<'a> {
    rules: NameRules<'a>,
    aead: Aead,
    size: Size,
}

impl<'a> Tally<'a> {
    pub fn new(keys: &'a Cryptor) -> Self {
        Tally {
            rules: NameRules::new(keys),
            // Not known yet when the cipher is detected from the first file; AES-SIV and
            // AES-GCM have the same overhead, XChaCha a little more: close enough here.
            aead: keys.content.aead().unwrap_or(Aead::Siv),
            size: Size::default(),
        }
    }

    /// One name of a ciphertext directory (`in_root`: of the backup's root): counted
    /// when it is a regular file of the plaintext tree, not a `gocryptfs.diriv`, a
    /// `.name` file, the config or a leftover temporary.
    pub fn add(&mut self, in_root: bool, name: &[u8], file_type: u32, cipher_size: u64) {
        if file_type == S_IFREG && matches!(self.rules.classify(in_root, name), Kind::Entry) {
            self.size.entries += 1;
            self.size.bytes += self.aead.plain_size(cipher_size).unwrap_or(0);
        }
    }

    pub fn size(&self) -> Size {
        self.size
    }
}

/// Count the backup directory `root` (one listing and `lstat` per entry, through
/// handles like the restore itself). A file with several names is counted once, as a
/// restore writes it once. Gives up, with `None`, as soon as `stop` is set.
pub fn directory(root: &std::os::fd::OwnedFd, keys: &Cryptor, stop: &AtomicBool) -> Option<Size> {
    let mut tally = Tally::new(keys);
    let mut seen = HashSet::new();
    let mut stack = vec![(root.try_clone().ok()?, true)];
    while let Some((dir, in_root)) = stack.pop() {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let Ok(names) = fs::list(&dir) else { continue };
        for name in names {
            let Ok(st) = fs::stat(&dir, name.as_os_str()) else {
                continue;
            };
            match fs::file_type(&st) {
                FileType::Directory => {
                    if let Ok(d) = fs::open_dir(&dir, name.as_os_str()) {
                        stack.push((d, false));
                    }
                }
                FileType::RegularFile => {
                    if st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino)) {
                        continue;
                    }
                    use std::os::unix::ffi::OsStrExt;
                    tally.add(in_root, name.as_bytes(), S_IFREG, st.st_size as u64);
                }
                _ => {}
            }
        }
    }
    Some(tally.size())
}

/// Count a remote location from the listing the restore already holds.
pub fn remote(tree: &Tree, keys: &Cryptor) -> Size {
    let mut tally = Tally::new(keys);
    for (dir, node) in tree.files() {
        tally.add(
            dir.is_empty(),
            &node.name,
            node.meta.file_type(),
            node.object_size,
        );
    }
    tally.size()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::config::Format;
    use crate::format::keys::MasterKey;

    #[test]
    fn counts_plaintext_files_and_bytes_only() {
        let keys = Cryptor::new(&MasterKey::from_bytes([7; 32]), Format::DEFAULT_REVERSE).unwrap();
        let mut t = Tally::new(&keys);
        t.add(true, b"gocryptfs.conf", S_IFREG, 400);
        t.add(true, b"gocryptfs.diriv", S_IFREG, 16);
        t.add(false, b"gocryptfs.longname.abc.name", S_IFREG, 300);
        t.add(false, b".cryptbak-tmp-1-0", S_IFREG, 9000);
        t.add(false, b"some-dir", crate::view::S_IFDIR, 4096);
        // A 4096-byte block is 4128 bytes of ciphertext after the 18-byte header.
        t.add(false, b"file", S_IFREG, 18 + 4128 + 32 + 1);
        t.add(false, b"gocryptfs.longname.abc", S_IFREG, 0);
        assert_eq!(
            t.size(),
            Size {
                entries: 2,
                bytes: 4097
            }
        );
    }
}
