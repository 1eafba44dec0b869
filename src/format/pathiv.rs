//! Path-derived IVs of the reverse view (gocryptfs `internal/pathiv`).
//!
//! Reverse mode cannot store random IVs anywhere, so every IV is a hash of the entry's
//! ciphertext path as the view shows it (long names in their hashed form, `""` for the root).

use sha2::{Digest, Sha256};

/// What an IV is for; the ASCII tag is hashed together with the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    DirIv,
    FileId,
    Block0Iv,
    SymlinkIv,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Purpose::DirIv => b"DIRIV",
            Purpose::FileId => b"FILEID",
            Purpose::Block0Iv => b"BLOCK0IV",
            Purpose::SymlinkIv => b"SYMLINKIV",
        }
    }
}

/// `SHA-256(cpath ‖ 0x00 ‖ purpose)[..16]`.
pub fn derive(cpath: &[u8], purpose: Purpose) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(cpath);
    h.update([0u8]);
    h.update(purpose.tag());
    let digest = h.finalize();
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&digest[..16]);
    iv
}

/// The nonce of content block `n`: the low 64 bits of `block0` (big-endian) plus `n`,
/// wrapping without carry into the high half (gocryptfs `pathiv.BlockIV`).
pub fn block_iv(block0: &[u8; 16], n: u64) -> [u8; 16] {
    let mut iv = *block0;
    let low = u64::from_be_bytes(iv[8..].try_into().expect("8 bytes")).wrapping_add(n);
    iv[8..].copy_from_slice(&low.to_be_bytes());
    iv
}

/// The IV path of a symlink's target: gocryptfs 2.3 (and HEAD) appends the symlink's own
/// ciphertext name to its cpath once more (FORMAT.md §9), so `a/b` becomes `a/b/b`.
pub fn symlink_iv_path(cpath: &[u8]) -> Vec<u8> {
    crate::cpath::join(cpath, crate::cpath::name(cpath))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn root_dir_iv_matches_gocryptfs() {
        // FORMAT.md §22: root gocryptfs.diriv of any reverse mount.
        assert_eq!(
            hex(&derive(b"", Purpose::DirIv)),
            "a8f7bac432ddc1cb3dc74e684d6ae48b"
        );
        assert_ne!(
            hex(&derive(b"x", Purpose::DirIv)),
            "a8f7bac432ddc1cb3dc74e684d6ae48b"
        );
    }

    #[test]
    fn file_ivs_match_gocryptfs() {
        let p = b"DAn9Q3uhi2OuTFfjA4F7Aw";
        assert_eq!(
            hex(&derive(p, Purpose::FileId)),
            "39fc9ba68bad66b5d8007de7964b1ec4"
        );
        assert_eq!(
            hex(&derive(p, Purpose::Block0Iv)),
            "735a7ff0b28eae8641800b0a8509d764"
        );
    }

    #[test]
    fn block_iv_wraps_without_carry() {
        // Upstream vector: ff…ff + 0x28.
        let iv = block_iv(&[0xff; 16], 0x28);
        assert_eq!(hex(&iv), "ffffffffffffffff0000000000000027");
        assert_eq!(block_iv(&[7; 16], 0), [7; 16]);
    }

    #[test]
    fn symlink_path_is_doubled() {
        assert_eq!(symlink_iv_path(b"abc"), b"abc/abc");
        assert_eq!(symlink_iv_path(b"d/e/abc"), b"d/e/abc/abc");
    }
}
