//! The gocryptfs format, pure: no file system, no terminal (FORMAT.md).
//!
//! * [`config`]: `gocryptfs.conf`, its feature flags and the [`config::Format`] they mean;
//! * [`keys`]: the master key, the keys derived from it, the password-based key wrap;
//! * [`pathiv`]: the path-derived IVs of reverse mode;
//! * [`names`]: EME name encryption, base64, long names;
//! * [`content`]: file contents and symlink targets, sealed and opened, and their sizes;
//! * [`siv`]: the multi-lane AES-SIV behind [`content`].
//!
//! [`Cryptor`] is the one bundle of keys of a filesystem, built from the master key and
//! the format: export seals with it, and the backup reader opens with it.

pub mod config;
pub mod content;
pub mod keys;
pub mod names;
pub mod pathiv;
pub mod siv;

use config::Format;
use content::{Aead, ContentCipher};
use keys::MasterKey;
use names::NameCodec;
use pathiv::Purpose;

/// Why a key bundle cannot be built for a format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Reverse mode derives nonces from paths, which is safe only with AES-SIV (gocryptfs
    /// refuses `-reverse` without it too).
    #[error("not a reverse-mode config (no AESSIV flag): create one with `cryptbak init`")]
    NotReverse,
    #[error("XChaCha20-Poly1305 needs the HKDF flag (gocryptfs never writes it without)")]
    XChaChaWithoutHkdf,
}

/// The keys and encoding rules of one filesystem, built once from the master key.
pub struct Cryptor {
    pub format: Format,
    /// `None` with `PlaintextNames`.
    pub names: Option<NameCodec>,
    pub content: ContentCipher,
}

impl Cryptor {
    /// The keys of a reverse view (export, `encrypt-path`, `verify --source`): the format
    /// must use AES-SIV, the only content cipher reverse mode can use.
    pub fn new(master: &MasterKey, format: Format) -> Result<Self, FormatError> {
        if !format.aes_siv || format.xchacha {
            return Err(FormatError::NotReverse);
        }
        Cryptor::for_reading(master, format, Some(Aead::Siv))
    }

    /// The keys for reading a backup: names as the format says, content with `aead`, or,
    /// with `None` (no config was read), AES-SIV or AES-GCM as detected from the first
    /// block that authenticates.
    pub fn for_reading(
        master: &MasterKey,
        format: Format,
        aead: Option<Aead>,
    ) -> Result<Self, FormatError> {
        let names = (!format.plaintext_names).then(|| {
            NameCodec::new(
                &keys::name_key(master, format.hkdf),
                format.raw64,
                format.long_names,
                format.long_name_max,
            )
        });
        let content = match aead {
            Some(a) => ContentCipher::for_aead(master, format.hkdf, a)?,
            None => ContentCipher::detecting(master, format.hkdf),
        };
        Ok(Cryptor {
            format,
            names,
            content,
        })
    }

    /// Whether each directory of the view holds a `gocryptfs.diriv`.
    pub fn has_diriv_files(&self) -> bool {
        self.format.dir_iv && !self.format.plaintext_names
    }

    /// The name-encryption tweak of the directory at `cpath` in a reverse view.
    pub fn reverse_dir_iv(&self, cpath: &[u8]) -> [u8; 16] {
        if self.format.dir_iv {
            pathiv::derive(cpath, Purpose::DirIv)
        } else {
            [0; 16]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(aes_siv: bool, xchacha: bool, hkdf: bool) -> Format {
        Format {
            aes_siv,
            xchacha,
            hkdf,
            ..Format::DEFAULT_REVERSE
        }
    }

    #[test]
    fn reverse_keys_need_aes_siv() {
        let m = MasterKey::from_bytes([1; 32]);
        assert!(Cryptor::new(&m, Format::DEFAULT_REVERSE).is_ok());
        // A forward-mode GCM or XChaCha config never gets an AES-SIV cipher behind its back.
        assert_eq!(
            Cryptor::new(&m, format(false, false, true)).err(),
            Some(FormatError::NotReverse)
        );
        assert_eq!(
            Cryptor::new(&m, format(false, true, true)).err(),
            Some(FormatError::NotReverse)
        );
        let gcm = Cryptor::for_reading(&m, format(false, false, true), Some(Aead::Gcm)).unwrap();
        assert_eq!(gcm.content.aead(), Some(Aead::Gcm));
        assert!(Cryptor::for_reading(&m, format(false, true, false), Some(Aead::XChaCha)).is_err());
        let detect = Cryptor::for_reading(&m, Format::DEFAULT_REVERSE, None).unwrap();
        assert_eq!(detect.content.aead(), None);
    }
}
