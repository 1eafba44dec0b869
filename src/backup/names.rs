//! The name rules of a backup, in one place: what a name in a ciphertext directory is,
//! which dir IV decrypts it, and how an entry's plaintext name is worked out and checked
//! (gocryptfs `internal/nametransform`; FORMAT.md §5–7, §15, §16, §20). Pure: the callers
//! read the `gocryptfs.diriv` and `.name` files and hand their bytes in.
//!
//! restore, verify, ls and decrypt-path all resolve names with [`NameRules`], so they
//! cannot disagree about a name (they used to have five copies of this, and
//! decrypt-path's trusted a `.name` file that another entry's had been swapped in for).

use crate::format::config::Format;
use crate::format::names::{
    is_valid_plain_name, parse_long_name, NameCodec, NameError, CONF_NAME, DIRIV_NAME,
    LONGNAME_PREFIX, LONGNAME_SUFFIX, NAME_MAX,
};
use crate::format::pathiv::{self, Purpose};
use crate::format::Cryptor;

/// The longest `.name` file accepted. A 255-byte name pads to 256 bytes, 344 characters
/// of padded base64 (gocryptfs refuses more); the margin costs nothing, since content
/// that long cannot decrypt to a valid name anyway. It bounds what is read.
pub const MAX_NAME_FILE: usize = 1024;

/// What a name in a ciphertext directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// The root `gocryptfs.conf`.
    Config,
    /// The directory's `gocryptfs.diriv`.
    DirIv,
    /// The `.name` file of the long-named entry with this name.
    NameFile(&'a [u8]),
    /// A leftover temporary file of an interrupted export.
    Temp,
    /// An entry of the plaintext tree.
    Entry,
}

/// Why an entry's plaintext name cannot be worked out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("forbidden name (empty, '.', '..', or containing '/' or NUL)")]
    Forbidden,
    #[error("cannot decrypt name: {0}")]
    Decrypt(NameError),
    #[error("its .name file is larger than any encrypted name (over {MAX_NAME_FILE} bytes)")]
    NameFileTooLong,
    #[error("its .name file does not match the hashed name (tampered or swapped .name file)")]
    NameFileMismatch,
}

/// The name rules of one filesystem: the codec and the flags that matter for names.
#[derive(Clone, Copy)]
pub struct NameRules<'a> {
    codec: Option<&'a NameCodec>,
    format: &'a Format,
}

impl<'a> NameRules<'a> {
    pub fn new(cryptor: &'a Cryptor) -> Self {
        NameRules {
            codec: cryptor.names.as_ref(),
            format: &cryptor.format,
        }
    }

    /// Whether names are encrypted (not `PlaintextNames`).
    pub fn encrypted(&self) -> bool {
        self.codec.is_some()
    }

    /// Whether directories carry a `gocryptfs.diriv` (and names need it).
    pub fn has_diriv_files(&self) -> bool {
        self.codec.is_some() && self.format.dir_iv
    }

    /// Classify a name of a ciphertext directory, as gocryptfs forward mode does.
    pub fn classify<'n>(&self, is_root: bool, name: &'n [u8]) -> Kind<'n> {
        if is_root && name == CONF_NAME.as_bytes() {
            return Kind::Config;
        }
        if self.codec.is_none() {
            // -plaintextnames: `gocryptfs.diriv` and `gocryptfs.longname.*` are ordinary
            // names (FORMAT.md §15).
            return Kind::Entry;
        }
        if self.format.dir_iv && name == DIRIV_NAME.as_bytes() {
            return Kind::DirIv;
        }
        if self.format.long_names && matches!(parse_long_name(name), Some((_, true))) {
            return Kind::NameFile(&name[..name.len() - LONGNAME_SUFFIX.len()]);
        }
        if crate::format::names::is_temp_name(name) {
            return Kind::Temp;
        }
        Kind::Entry
    }

    /// Whether entry `comp` is a hashed long name whose full name is in its `.name` file.
    pub fn needs_name_file(&self, comp: &[u8]) -> bool {
        self.codec.is_some()
            && self.format.long_names
            && comp.starts_with(LONGNAME_PREFIX.as_bytes())
    }

    /// Check the content of the `.name` file of long-named entry `comp`: it must hash to
    /// the entry's name. Content of a file that does not is never used, so a `.name`
    /// file swapped in from another entry cannot rename this one.
    pub fn check_name_file(&self, comp: &[u8], content: &[u8]) -> Result<(), NameProblem> {
        if content.len() > MAX_NAME_FILE {
            return Err(NameProblem::NameFileTooLong);
        }
        match self.codec {
            Some(codec) if long_name_matches(codec, comp, content) => Ok(()),
            _ => Err(NameProblem::NameFileMismatch),
        }
    }

    /// The plaintext name of entry `comp` of a directory whose names are encrypted with
    /// `dir_iv`; `name_file` is the content of its `.name` file when
    /// [`needs_name_file`](Self::needs_name_file) (checked here again).
    pub fn plain_name(
        &self,
        dir_iv: &[u8; 16],
        comp: &[u8],
        name_file: Option<&[u8]>,
    ) -> Result<Vec<u8>, NameProblem> {
        let Some(codec) = self.codec else {
            return if is_valid_plain_name(comp) {
                Ok(comp.to_vec())
            } else {
                Err(NameProblem::Forbidden)
            };
        };
        let cname = if self.needs_name_file(comp) {
            let content = name_file.ok_or(NameProblem::NameFileMismatch)?;
            self.check_name_file(comp, content)?;
            content
        } else {
            comp
        };
        codec.decrypt(dir_iv, cname).map_err(NameProblem::Decrypt)
    }

    /// The dir IV that decrypts the names of directory `dir`, as far as it can be known:
    /// 16 zero bytes without `DirIV`; the one its path gives in a reverse-made tree; the
    /// stored one in a forward-mode tree; `None` while the layout is undecided (a stored
    /// IV might be a tampered one in a reverse-made tree).
    pub fn dir_iv(
        &self,
        layout: super::verdict::Layout,
        dir: &[u8],
        stored: Option<[u8; 16]>,
    ) -> Option<[u8; 16]> {
        use super::verdict::Layout;
        if !self.format.dir_iv {
            return Some([0; 16]);
        }
        match layout {
            Layout::Reverse => Some(pathiv::derive(dir, Purpose::DirIv)),
            Layout::Forward => stored,
            Layout::Unknown => None,
        }
    }

    /// The dir IV for a lookup that reads one directory, without the whole tree's
    /// verdict (`ls`, `decrypt-path`): a stored IV is used (it is the only one that works
    /// in a forward-mode tree, and equals the derived one in an intact reverse-made tree);
    /// a missing one is derived from the path (reverse-made trees may lack it).
    pub fn lookup_dir_iv(&self, dir: &[u8], stored: Option<[u8; 16]>) -> [u8; 16] {
        if !self.format.dir_iv {
            return [0; 16];
        }
        stored.unwrap_or_else(|| pathiv::derive(dir, Purpose::DirIv))
    }

    /// The reverse view's name of plaintext name `name` in the directory at `cpath`
    /// (`encrypt-path`): encrypted, and hashed when too long, as the view shows it.
    pub fn encrypt_component(&self, cpath: &[u8], name: &[u8]) -> Result<Vec<u8>, NameProblem> {
        if !is_valid_plain_name(name) || name.len() > NAME_MAX {
            return Err(NameProblem::Forbidden);
        }
        Ok(match self.codec {
            None => name.to_vec(),
            Some(codec) => {
                let iv = if self.format.dir_iv {
                    pathiv::derive(cpath, Purpose::DirIv)
                } else {
                    [0; 16]
                };
                let cname = codec.encrypt(&iv, name);
                if codec.is_long(&cname) {
                    codec.long_name(&cname).into_bytes()
                } else {
                    cname.into_bytes()
                }
            }
        })
    }
}

/// Whether `gocryptfs.longname.<hash>` is the hashed form of the full encrypted name.
fn long_name_matches(codec: &NameCodec, comp: &[u8], cname: &[u8]) -> bool {
    let Some((hash, false)) = parse_long_name(comp) else {
        return false;
    };
    let Ok(cname) = std::str::from_utf8(cname) else {
        return false;
    };
    codec
        .long_name(cname)
        .as_bytes()
        .get(LONGNAME_PREFIX.len()..)
        == Some(hash)
}

/// `entry.name`: the `.name` file of a long-named entry.
pub fn name_file_of(entry: &[u8]) -> Vec<u8> {
    let mut nf = entry.to_vec();
    nf.extend_from_slice(LONGNAME_SUFFIX.as_bytes());
    nf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::verdict::Layout;
    use crate::format::keys::MasterKey;

    fn cryptor(format: Format) -> Cryptor {
        Cryptor::new(&MasterKey::from_bytes([0; 32]), format).unwrap()
    }

    fn ptn() -> Format {
        Format {
            plaintext_names: true,
            dir_iv: false,
            long_names: false,
            raw64: false,
            ..Format::DEFAULT_REVERSE
        }
    }

    #[test]
    fn classification() {
        let c = cryptor(Format::DEFAULT_REVERSE);
        let r = NameRules::new(&c);
        assert_eq!(r.classify(true, b"gocryptfs.conf"), Kind::Config);
        assert_eq!(r.classify(false, b"gocryptfs.conf"), Kind::Entry);
        assert_eq!(r.classify(false, b"gocryptfs.diriv"), Kind::DirIv);
        assert_eq!(
            r.classify(false, b"gocryptfs.longname.abc.name"),
            Kind::NameFile(b"gocryptfs.longname.abc")
        );
        assert_eq!(r.classify(false, b"gocryptfs.longname.abc"), Kind::Entry);
        assert_eq!(r.classify(false, b".cryptbak-tmp-1-2"), Kind::Temp);
        // Plaintext names: only the root config is special.
        let p = cryptor(ptn());
        let r = NameRules::new(&p);
        assert_eq!(r.classify(true, b"gocryptfs.conf"), Kind::Config);
        assert_eq!(r.classify(false, b"gocryptfs.diriv"), Kind::Entry);
        assert_eq!(r.classify(false, b"gocryptfs.longname.a.name"), Kind::Entry);
        assert!(!r.needs_name_file(b"gocryptfs.longname.a"));
        // Deterministic names: no diriv files.
        let d = cryptor(Format {
            dir_iv: false,
            ..Format::DEFAULT_REVERSE
        });
        assert_eq!(
            NameRules::new(&d).classify(false, b"gocryptfs.diriv"),
            Kind::Entry
        );
    }

    #[test]
    fn names_round_trip_and_long_names_need_their_own_name_file() {
        let c = cryptor(Format::DEFAULT_REVERSE);
        let r = NameRules::new(&c);
        let iv = pathiv::derive(b"", Purpose::DirIv);
        let short = r.encrypt_component(b"", b"file").unwrap();
        assert_eq!(short, b"DAn9Q3uhi2OuTFfjA4F7Aw");
        assert_eq!(r.plain_name(&iv, &short, None).unwrap(), b"file");
        // Two long names and their full encrypted names.
        let codec = c.names.as_ref().unwrap();
        let (a, b) = (vec![b'a'; 200], vec![b'b'; 200]);
        let (ca, cb) = (codec.encrypt(&iv, &a), codec.encrypt(&iv, &b));
        let (la, lb) = (codec.long_name(&ca), codec.long_name(&cb));
        assert_eq!(r.encrypt_component(b"", &a).unwrap(), la.as_bytes());
        assert!(r.needs_name_file(la.as_bytes()));
        assert_eq!(
            r.plain_name(&iv, la.as_bytes(), Some(ca.as_bytes()))
                .unwrap(),
            a
        );
        // The tampered twin: b's .name file swapped in for a's decrypts fine on its own
        // (same directory), but does not hash to a's name.
        assert_eq!(
            r.plain_name(&iv, la.as_bytes(), Some(cb.as_bytes())),
            Err(NameProblem::NameFileMismatch)
        );
        assert_eq!(
            r.plain_name(&iv, lb.as_bytes(), None),
            Err(NameProblem::NameFileMismatch)
        );
        assert_eq!(
            r.check_name_file(la.as_bytes(), &vec![b'A'; MAX_NAME_FILE + 1]),
            Err(NameProblem::NameFileTooLong)
        );
        // A flipped character of a short name.
        let mut bad = short.clone();
        bad[3] ^= 1;
        assert!(r.plain_name(&iv, &bad, None).is_err());
    }

    #[test]
    fn forbidden_plaintext_names() {
        let p = cryptor(ptn());
        let r = NameRules::new(&p);
        for bad in [&b".."[..], b".", b""] {
            assert_eq!(
                r.plain_name(&[0; 16], bad, None),
                Err(NameProblem::Forbidden)
            );
        }
        assert_eq!(r.plain_name(&[0; 16], b"ok", None).unwrap(), b"ok");
        assert!(r.encrypt_component(b"", b"..").is_err());
        assert!(r.encrypt_component(b"", &[b'x'; 256]).is_err());
    }

    #[test]
    fn dir_ivs_by_layout() {
        let c = cryptor(Format::DEFAULT_REVERSE);
        let r = NameRules::new(&c);
        let derived = pathiv::derive(b"d", Purpose::DirIv);
        assert_eq!(
            r.dir_iv(Layout::Reverse, b"d", Some([9; 16])),
            Some(derived)
        );
        assert_eq!(
            r.dir_iv(Layout::Forward, b"d", Some([9; 16])),
            Some([9; 16])
        );
        assert_eq!(r.dir_iv(Layout::Forward, b"d", None), None);
        assert_eq!(r.dir_iv(Layout::Unknown, b"d", Some([9; 16])), None);
        assert_eq!(r.lookup_dir_iv(b"d", Some([9; 16])), [9; 16]);
        assert_eq!(r.lookup_dir_iv(b"d", None), derived);
        let det = cryptor(Format {
            dir_iv: false,
            ..Format::DEFAULT_REVERSE
        });
        let r = NameRules::new(&det);
        assert_eq!(r.dir_iv(Layout::Unknown, b"d", None), Some([0; 16]));
        assert_eq!(r.lookup_dir_iv(b"d", None), [0; 16]);
    }
}
