//! Key material: the master key, the keys derived from it, and the password-based key
//! wrap of `gocryptfs.conf` (gocryptfs `internal/configfile` and `internal/cryptocore`).
//!
//! Key types zeroize on drop and implement neither `Clone` nor `Debug`, so a key cannot
//! be copied around by accident or end up in a log line (the unit tests check both).
//! Every buffer that holds key bytes here is a `Zeroizing` one, filled in place.
//!
//! What is not wiped, because the crates give no way to: the HMAC states inside `Hkdf`
//! (hkdf/hmac 0.12), SHA-512's state in the legacy key derivation (sha2 0.10), and
//! scrypt's working memory (scrypt 0.11). They live only while a key is derived.

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use hkdf::Hkdf;
use sha2::{Digest, Sha256, Sha512};
use std::fmt::Write as _;
use zeroize::Zeroizing;

pub const MASTER_KEY_LEN: usize = 32;

const INFO_EME: &[u8] = b"EME filename encryption";
const INFO_SIV: &[u8] = b"AES-SIV file content encryption";
const INFO_GCM: &[u8] = b"AES-GCM file content encryption";
const INFO_XCHACHA: &[u8] = b"XChaCha20-Poly1305 file content encryption";

/// The 32-byte master key from which all other keys are derived.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        getrandom::getrandom(&mut k[..]).expect("the OS random generator failed");
        MasterKey(k)
    }

    /// Parse 64 hex digits; `-` separators are allowed, as gocryptfs prints them.
    pub fn from_hex(s: &str) -> Option<Self> {
        // Allocated once at full size: a growing Vec would leave copies in freed memory.
        let mut digits = Zeroizing::new(Vec::with_capacity(s.len()));
        digits.extend(s.trim().bytes().filter(|&c| c != b'-'));
        if digits.len() != 2 * MASTER_KEY_LEN {
            return None;
        }
        let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        for (i, pair) in digits.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            k[i] = (hi * 16 + lo) as u8;
        }
        Some(MasterKey(k))
    }

    /// Hex with gocryptfs's grouping (8 groups of 8 digits), for `init` to show once.
    pub fn to_grouped_hex(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(72));
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                s.push('-');
            }
            // Straight into `s`: `format!` would leave each pair in a freed String.
            write!(s, "{b:02x}").expect("writing to a String cannot fail");
        }
        s
    }

    pub fn as_bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }
}

fn hkdf_sha256(ikm: &[u8], info: &[u8], out: &mut [u8]) {
    Hkdf::<Sha256>::new(None, ikm)
        .expand(info, out)
        .expect("HKDF output length is within bounds");
}

/// Key of the EME name cipher (AES-256).
pub fn name_key(master: &MasterKey, hkdf: bool) -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    if hkdf {
        hkdf_sha256(master.as_bytes(), INFO_EME, &mut k[..]);
    } else {
        k.copy_from_slice(master.as_bytes());
    }
    k
}

/// The 64-byte AES-SIV-512 content key (CMAC key ‖ CTR key).
pub fn siv_key(master: &MasterKey, hkdf: bool) -> Zeroizing<[u8; 64]> {
    let mut k = Zeroizing::new([0u8; 64]);
    if hkdf {
        hkdf_sha256(master.as_bytes(), INFO_SIV, &mut k[..]);
    } else {
        // Legacy (pre-HKDF) filesystems stretch the master key with SHA-512.
        Sha512::new_with_prefix(master.as_bytes())
            .finalize_into(GenericArray::from_mut_slice(&mut k[..]));
    }
    k
}

/// The 32-byte AES-256-GCM content key of forward-mode filesystems.
pub fn gcm_key(master: &MasterKey, hkdf: bool) -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    if hkdf {
        hkdf_sha256(master.as_bytes(), INFO_GCM, &mut k[..]);
    } else {
        k.copy_from_slice(master.as_bytes());
    }
    k
}

/// The 32-byte XChaCha20-Poly1305 content key of forward-mode `-xchacha` filesystems
/// (gocryptfs `cryptocore.New`: always HKDF; such configs cannot be legacy).
pub fn xchacha_key(master: &MasterKey) -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    hkdf_sha256(master.as_bytes(), INFO_XCHACHA, &mut k[..]);
    k
}

/// The scrypt cost parameters stored in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScryptParams {
    pub salt: Vec<u8>,
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl ScryptParams {
    pub fn n(&self) -> u64 {
        1u64 << self.log_n
    }

    /// Memory scrypt needs, in bytes (128·r·N), used to refuse absurd configs up front.
    pub fn memory_bytes(&self) -> u128 {
        128u128 * u128::from(self.r) * u128::from(self.n())
    }
}

/// The key-encryption key: scrypt of the password, then HKDF when the config says so.
pub fn kek(password: &[u8], params: &ScryptParams, hkdf: bool) -> Zeroizing<[u8; 32]> {
    let p = scrypt::Params::new(params.log_n, params.r, params.p, 32)
        .expect("scrypt parameters were validated when the config was parsed");
    let mut s = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, &params.salt, &p, &mut s[..]).expect("scrypt output length is valid");
    if !hkdf {
        return s;
    }
    let mut k = Zeroizing::new([0u8; 32]);
    hkdf_sha256(&s[..], INFO_GCM, &mut k[..]);
    k
}

/// GCM associated data of the key wrap: the content-block AD of block 0 without a
/// file ID, i.e. eight zero bytes.
const WRAP_AD: [u8; 8] = [0; 8];

/// Encrypt the master key under `kek`: `nonce ‖ ciphertext ‖ tag`, with a 16-byte nonce
/// for HKDF configs (GCMIV128) and 12 bytes for legacy ones.
pub fn wrap_master_key(kek: &[u8; 32], master: &MasterKey, hkdf: bool) -> Vec<u8> {
    let nonce_len = if hkdf { 16 } else { 12 };
    let mut nonce = vec![0u8; nonce_len];
    getrandom::getrandom(&mut nonce).expect("the OS random generator failed");
    let payload = Payload {
        msg: &master.as_bytes()[..],
        aad: &WRAP_AD,
    };
    let ct = if hkdf {
        AesGcm::<Aes256, U16>::new(GenericArray::from_slice(kek))
            .encrypt(GenericArray::from_slice(&nonce), payload)
    } else {
        AesGcm::<Aes256, U12>::new(GenericArray::from_slice(kek))
            .encrypt(GenericArray::from_slice(&nonce), payload)
    }
    .expect("GCM encryption of 32 bytes cannot fail");
    nonce.extend_from_slice(&ct);
    nonce
}

/// Decrypt a wrapped master key; `None` means the password (or the config) is wrong.
pub fn unwrap_master_key(kek: &[u8; 32], wrapped: &[u8], hkdf: bool) -> Option<MasterKey> {
    let nonce_len = if hkdf { 16 } else { 12 };
    if wrapped.len() != nonce_len + MASTER_KEY_LEN + 16 {
        return None;
    }
    let (nonce, ct) = wrapped.split_at(nonce_len);
    let payload = Payload {
        msg: ct,
        aad: &WRAP_AD,
    };
    let pt = Zeroizing::new(if hkdf {
        AesGcm::<Aes256, U16>::new(GenericArray::from_slice(kek))
            .decrypt(GenericArray::from_slice(nonce), payload)
            .ok()?
    } else {
        AesGcm::<Aes256, U12>::new(GenericArray::from_slice(kek))
            .decrypt(GenericArray::from_slice(nonce), payload)
            .ok()?
    });
    let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    k.copy_from_slice(&pt);
    Some(MasterKey(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn zero_key_subkeys_match_gocryptfs() {
        // FORMAT.md §22 (checked against `gocryptfs -zerokey -reverse`).
        let m = MasterKey::from_bytes([0; 32]);
        assert_eq!(
            hex(&name_key(&m, true)[..]),
            "9ba3cddd48c6339c6e56ebe85f0281d6e9051be4104176e65cb0f8a6f77ae6b4"
        );
        assert_eq!(
            hex(&siv_key(&m, true)[..]),
            "aab6744f44e669aad9501e0416d8415e050afdbee2f6b096a920cca429f04162\
             77b01ac99fa0f1a4179f93d2b9baf48f252e0c451a8e9a649859016070750426"
        );
        // The four content and name keys of one master key all differ.
        assert_ne!(xchacha_key(&m)[..], gcm_key(&m, true)[..]);
        assert_ne!(xchacha_key(&m)[..], siv_key(&m, true)[..32]);
        let m1 = MasterKey::from_bytes([1; 32]);
        assert_ne!(hex(&siv_key(&m1, true)[..]), hex(&siv_key(&m, true)[..]));
    }

    #[test]
    fn hkdf_upstream_vector() {
        // gocryptfs cryptocore/hkdf_test.go: HKDF(0x01*32, SIV info, 32 bytes).
        let mut out = [0u8; 32];
        hkdf_sha256(&[1; 32], INFO_SIV, &mut out);
        assert!(hex(&out).starts_with("0bfa5da7"), "{}", hex(&out));
        assert!(hex(&out).ends_with("c08cc26c"), "{}", hex(&out));
    }

    #[test]
    fn legacy_keys_are_master_and_sha512() {
        let m = MasterKey::from_bytes([3; 32]);
        assert_eq!(*name_key(&m, false), [3; 32]);
        assert_eq!(siv_key(&m, false)[..], Sha512::digest([3u8; 32])[..]);
    }

    #[test]
    fn wrap_roundtrip_and_tamper() {
        let params = ScryptParams {
            salt: vec![9; 32],
            log_n: 10,
            r: 8,
            p: 1,
        };
        for hkdf in [true, false] {
            let k = kek(b"pw", &params, hkdf);
            let m = MasterKey::from_bytes([5; 32]);
            let mut w = wrap_master_key(&k, &m, hkdf);
            assert_eq!(w.len(), if hkdf { 64 } else { 60 });
            let back = unwrap_master_key(&k, &w, hkdf).unwrap();
            assert_eq!(back.as_bytes(), m.as_bytes());
            let wrong = kek(b"pW", &params, hkdf);
            assert!(unwrap_master_key(&wrong, &w, hkdf).is_none());
            let last = w.len() - 1;
            w[last] ^= 1;
            assert!(unwrap_master_key(&k, &w, hkdf).is_none());
        }
    }

    use crate::implements;

    /// Fails if any type that holds key material gains `Debug`, `Display` or `Clone`
    /// (a derive added for convenience would put keys into log lines or copies).
    macro_rules! assert_no_leaky_traits {
        ($($t:ty),+ $(,)?) => {$(
            assert!(!implements!($t: std::fmt::Debug), "{} implements Debug", stringify!($t));
            assert!(!implements!($t: std::fmt::Display), "{} implements Display", stringify!($t));
            assert!(!implements!($t: Clone), "{} implements Clone", stringify!($t));
        )+};
    }

    #[test]
    fn key_holders_have_no_debug_display_or_clone() {
        // The probe itself works: these do implement the traits.
        assert!(implements!(ScryptParams: std::fmt::Debug));
        assert!(implements!(Zeroizing<[u8; 32]>: Clone));
        assert!(implements!(String: std::fmt::Display));
        assert_no_leaky_traits!(
            MasterKey,
            crate::format::Cryptor,
            crate::format::content::ContentCipher,
            crate::format::content::Opener<'static>,
            crate::format::siv::SivLanes,
            crate::format::names::NameCodec,
            crate::format::names::eme::Eme,
            crate::view::View,
        );
    }

    #[test]
    fn hex_parsing() {
        let s = "00000000-11111111-22222222-33333333-44444444-55555555-66666666-7777777f";
        let m = MasterKey::from_hex(s).unwrap();
        assert_eq!(m.as_bytes()[31], 0x7f);
        assert_eq!(m.to_grouped_hex().as_str(), s);
        assert!(MasterKey::from_hex("0011").is_none());
        assert!(MasterKey::from_hex(&"g".repeat(64)).is_none());
    }
}
