//! The keys and encoding rules of one filesystem, bundled: what every module that
//! encrypts or decrypts names and contents needs, built once from the master key.

use crate::config::Format;
use crate::content::ContentCipher;
use crate::keys::{self, MasterKey};
use crate::names::NameCodec;
use crate::pathiv::{self, Purpose};

pub struct Cryptor {
    pub format: Format,
    /// `None` with `PlaintextNames`.
    pub names: Option<NameCodec>,
    pub content: ContentCipher,
}

impl Cryptor {
    pub fn new(master: &MasterKey, format: Format) -> Self {
        let names = (!format.plaintext_names).then(|| {
            NameCodec::new(
                &keys::name_key(master, format.hkdf),
                format.raw64,
                format.long_names,
                format.long_name_max,
            )
        });
        Cryptor {
            format,
            names,
            content: ContentCipher::new(keys::siv_key(master, format.hkdf)),
        }
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
