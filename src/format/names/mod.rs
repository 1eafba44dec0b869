//! File-name encryption (gocryptfs `internal/nametransform`): PKCS#7 padding, EME with the
//! parent's dir IV as tweak, base64url, and the hashed form of names that are too long.

pub mod eme;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

use eme::Eme;

pub const LONGNAME_PREFIX: &str = "gocryptfs.longname.";
pub const LONGNAME_SUFFIX: &str = ".name";
pub const DIRIV_NAME: &str = "gocryptfs.diriv";
pub const CONF_NAME: &str = "gocryptfs.conf";
pub const REVERSE_CONF_NAME: &str = ".gocryptfs.reverse.conf";
pub const NAME_MAX: usize = 255;

/// Prefix of cryptbak's temporary files and staging directory in a destination (local
/// or SFTP). A view never holds such a name (encrypted names are base64url, which has
/// no `.`), so an interrupted run's leftovers are recognised for cleanup, and readers
/// skip them.
pub const TEMP_PREFIX: &str = ".cryptbak-tmp-";

/// Whether a destination name is one of cryptbak's temporaries.
pub fn is_temp_name(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX.as_bytes())
}

/// Why a ciphertext name could not be turned back into a plaintext name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("not valid base64")]
    Base64,
    #[error("decoded length is not a whole number of 16-byte blocks")]
    Length,
    #[error("bad padding (wrong key, wrong directory IV, or tampered name)")]
    Padding,
    #[error("decrypts to a forbidden name (empty, '.', '..', or containing '/' or NUL)")]
    Forbidden,
    #[error("plaintext name is longer than 255 bytes")]
    TooLong,
}

/// Names as gocryptfs encodes them for one filesystem's flags.
pub struct NameCodec {
    eme: Eme,
    raw64: bool,
    long_names: bool,
    long_name_max: usize,
}

impl NameCodec {
    pub fn new(key: &[u8; 32], raw64: bool, long_names: bool, long_name_max: Option<u8>) -> Self {
        NameCodec {
            eme: Eme::new(key),
            raw64,
            long_names,
            long_name_max: long_name_max.map_or(NAME_MAX, usize::from),
        }
    }

    pub fn b64_encode(&self, data: &[u8]) -> String {
        if self.raw64 {
            URL_SAFE_NO_PAD.encode(data)
        } else {
            URL_SAFE.encode(data)
        }
    }

    pub fn b64_decode(&self, s: &[u8]) -> Option<Vec<u8>> {
        if self.raw64 {
            URL_SAFE_NO_PAD.decode(s).ok()
        } else {
            URL_SAFE.decode(s).ok()
        }
    }

    /// The full encrypted name (before any long-name hashing).
    pub fn encrypt(&self, dir_iv: &[u8; 16], name: &[u8]) -> String {
        debug_assert!(is_valid_plain_name(name));
        let pad = 16 - name.len() % 16;
        let mut padded = Vec::with_capacity(name.len() + pad);
        padded.extend_from_slice(name);
        padded.resize(name.len() + pad, pad as u8);
        self.b64_encode(&self.eme.encrypt(dir_iv, &padded))
    }

    pub fn decrypt(&self, dir_iv: &[u8; 16], cname: &[u8]) -> Result<Vec<u8>, NameError> {
        let ct = self.b64_decode(cname).ok_or(NameError::Base64)?;
        if ct.is_empty() || ct.len() % 16 != 0 || ct.len() / 16 > eme::MAX_BLOCKS {
            return Err(NameError::Length);
        }
        let mut p = self.eme.decrypt(dir_iv, &ct);
        let pad = *p.last().expect("non-empty") as usize;
        if pad == 0
            || pad > 16
            || pad > p.len()
            || !p[p.len() - pad..].iter().all(|&b| b as usize == pad)
        {
            return Err(NameError::Padding);
        }
        p.truncate(p.len() - pad);
        if p.len() > NAME_MAX {
            return Err(NameError::TooLong);
        }
        if !is_valid_plain_name(&p) {
            return Err(NameError::Forbidden);
        }
        Ok(p)
    }

    /// Whether gocryptfs shows this encrypted name in hashed long-name form.
    pub fn is_long(&self, cname: &str) -> bool {
        self.long_names && (cname.len() > NAME_MAX || cname.len() > self.long_name_max)
    }

    /// `gocryptfs.longname.<base64(sha256(cname))>`.
    pub fn long_name(&self, cname: &str) -> String {
        format!(
            "{LONGNAME_PREFIX}{}",
            self.b64_encode(&Sha256::digest(cname.as_bytes()))
        )
    }
}

/// A name getdents could return and gocryptfs accepts: non-empty, at most 255 bytes,
/// not `.` or `..`, no `/` or NUL.
pub fn is_valid_plain_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name != b"."
        && name != b".."
        && !name.iter().any(|&c| c == b'/' || c == 0)
}

/// The hash part of `gocryptfs.longname.<hash>` or `gocryptfs.longname.<hash>.name`.
pub fn parse_long_name(name: &[u8]) -> Option<(&[u8], bool)> {
    let rest = name.strip_prefix(LONGNAME_PREFIX.as_bytes())?;
    match rest.strip_suffix(LONGNAME_SUFFIX.as_bytes()) {
        Some(hash) => Some((hash, true)),
        None => Some((rest, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::keys::{name_key, MasterKey};
    use crate::format::pathiv::{derive, Purpose};

    fn zero_codec() -> NameCodec {
        NameCodec::new(
            &name_key(&MasterKey::from_bytes([0; 32]), true),
            true,
            true,
            None,
        )
    }

    #[test]
    fn names_match_gocryptfs_zerokey_mount() {
        // FORMAT.md §22.
        let c = zero_codec();
        let root = derive(b"", Purpose::DirIv);
        assert_eq!(c.encrypt(&root, b"file"), "DAn9Q3uhi2OuTFfjA4F7Aw");
        assert_eq!(c.encrypt(&root, b"dir"), "jeOhcHZCa3ih9FpMobH2dw");
        let dir_iv = derive(b"jeOhcHZCa3ih9FpMobH2dw", Purpose::DirIv);
        assert_eq!(
            dir_iv,
            [
                0x92, 0xbd, 0x5c, 0xf0, 0x3c, 0x8a, 0xb5, 0xc9, 0x4d, 0x6f, 0xa7, 0xe1, 0x62, 0x5b,
                0x83, 0x77
            ]
        );
        assert_eq!(c.encrypt(&dir_iv, b"a"), "wpjoSpjlG_qiNLmKVrXckg");
        let long = c.encrypt(&root, &[b'L'; 200]);
        assert_eq!(long.len(), 278);
        assert!(c.is_long(&long));
        assert_eq!(
            c.long_name(&long),
            "gocryptfs.longname.yqxwZuDHawsq-tEPIs1mtvUNHo7WfE07-0HOixuy0_g"
        );
    }

    #[test]
    fn decrypt_roundtrip_and_tampered_twin() {
        let c = zero_codec();
        let root = derive(b"", Purpose::DirIv);
        assert_eq!(
            c.decrypt(&root, b"DAn9Q3uhi2OuTFfjA4F7Aw").unwrap(),
            b"file"
        );
        assert!(c.decrypt(&root, b"DAn9Q3uhi2OuTFfjA4F7Ax").is_err());
        assert_eq!(c.decrypt(&root, b"not!base64"), Err(NameError::Base64));
        // Right name, wrong directory: the padding check catches it.
        assert!(c.decrypt(&[1; 16], b"DAn9Q3uhi2OuTFfjA4F7Aw").is_err());
        // '.' and '..' encrypt fine but must never come back as names.
        let dot = c.encrypt(&root, b"x");
        assert!(c.decrypt(&root, dot.as_bytes()).is_ok());
        for n in 1..=255usize {
            let name: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let e = c.encrypt(&root, &name);
            assert_eq!(c.decrypt(&root, e.as_bytes()).unwrap(), name);
            assert_eq!(c.is_long(&e), n >= 176, "threshold at {n}");
        }
    }

    #[test]
    fn forbidden_names_are_rejected_on_decrypt() {
        let c = zero_codec();
        let iv = [0u8; 16];
        // Build ciphertexts of forbidden names by encrypting the padded bytes directly.
        for bad in [&b"."[..], b"..", b"a/b", b"a\0b"] {
            let pad = 16 - bad.len() % 16;
            let mut p = bad.to_vec();
            p.resize(bad.len() + pad, pad as u8);
            let ct = c.b64_encode(&c.eme.encrypt(&iv, &p));
            assert_eq!(
                c.decrypt(&iv, ct.as_bytes()),
                Err(NameError::Forbidden),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn longnamemax_and_padded_base64() {
        let k = name_key(&MasterKey::from_bytes([0; 32]), true);
        let c = NameCodec::new(&k, true, true, Some(100));
        let e63 = c.encrypt(&[0; 16], &[b'x'; 63]);
        let e64 = c.encrypt(&[0; 16], &[b'x'; 64]);
        assert!(!c.is_long(&e63) && c.is_long(&e64));
        let padded = NameCodec::new(&k, false, true, None);
        let e = padded.encrypt(&[0; 16], b"file");
        assert!(e.ends_with("=="));
        assert_eq!(
            padded.long_name(&"a".repeat(300)).len(),
            LONGNAME_PREFIX.len() + 44
        );
        assert_eq!(padded.decrypt(&[0; 16], e.as_bytes()).unwrap(), b"file");
    }

    #[test]
    fn long_name_parsing() {
        assert_eq!(
            parse_long_name(b"gocryptfs.longname.abc.name"),
            Some((&b"abc"[..], true))
        );
        assert_eq!(
            parse_long_name(b"gocryptfs.longname.abc"),
            Some((&b"abc"[..], false))
        );
        assert_eq!(parse_long_name(b"gocryptfs.diriv"), None);
    }
}
