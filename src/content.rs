//! File content and symlink target encryption of the reverse view
//! (gocryptfs `internal/contentenc`, AES-SIV-512 mode; FORMAT.md §8, §9).
//!
//! A non-empty file is an 18-byte header (`0x0002 ‖ fileID`) followed by blocks of
//! `nonce(16) ‖ SIV tag(16) ‖ ciphertext(≤ 4096)`. Every block is independent, which is
//! what lets us encrypt blocks of one large file on several threads.

use std::io::{self, Read, Write};

use aes_siv::aead::generic_array::GenericArray;
use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::pathiv::{self, Purpose};
use crate::siv::{SivLanes, LANES};

pub const BLOCK_SIZE: usize = 4096;
pub const HEADER_LEN: usize = 18;
pub const BLOCK_OVERHEAD: usize = 32;
pub const CIPHER_BLOCK_SIZE: usize = BLOCK_SIZE + BLOCK_OVERHEAD;
pub const HEADER_VERSION: u16 = 2;

/// Plaintext blocks read and encrypted per batch: large sequential I/O, bounded memory.
const BATCH_BLOCKS: usize = 256;
/// Below this many blocks a batch is encrypted on the calling thread.
const PARALLEL_MIN_BLOCKS: usize = 16;
/// The first read of a file: small files fill all lanes in one go, yet never allocate
/// a full batch.
const FIRST_READ_BLOCKS: usize = LANES;

/// Ciphertext size of a plaintext of `plain` bytes.
pub fn cipher_size(plain: u64) -> u64 {
    if plain == 0 {
        return 0;
    }
    let blocks = plain.div_ceil(BLOCK_SIZE as u64);
    HEADER_LEN as u64 + plain + BLOCK_OVERHEAD as u64 * blocks
}

/// Plaintext size of a ciphertext of `cipher` bytes, or `None` if no plaintext has that
/// ciphertext size (a truncated header or a block with no payload).
pub fn plain_size(cipher: u64) -> Option<u64> {
    if cipher == 0 {
        return Some(0);
    }
    let body = cipher.checked_sub(HEADER_LEN as u64)?;
    if body == 0 {
        return None;
    }
    let blocks = body.div_ceil(CIPHER_BLOCK_SIZE as u64);
    let last = body - (blocks - 1) * CIPHER_BLOCK_SIZE as u64;
    if last <= BLOCK_OVERHEAD as u64 {
        return None;
    }
    Some(body - blocks * BLOCK_OVERHEAD as u64)
}

/// The AES-SIV-512 content key. Shared by all threads; each makes its own cipher state.
pub struct ContentCipher {
    key: Zeroizing<[u8; 64]>,
    lanes: SivLanes,
}

impl ContentCipher {
    pub fn new(key: Zeroizing<[u8; 64]>) -> Self {
        let lanes = SivLanes::new(&key);
        ContentCipher { key, lanes }
    }

    pub fn siv(&self) -> Aes256Siv {
        Aes256Siv::new(GenericArray::from_slice(&self.key[..]))
    }

    /// The fast path for runs of blocks (several blocks' AES-SIV at once, same bytes as
    /// [`seal_block`] / [`open_block`]); shareable between threads. Restore decrypts
    /// with [`SivLanes::open_blocks`].
    pub fn lanes(&self) -> &SivLanes {
        &self.lanes
    }
}

/// The per-file IVs of a reverse view file, derived from the path the IVs belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIvs {
    pub file_id: [u8; 16],
    pub block0: [u8; 16],
}

impl FileIvs {
    pub fn for_path(iv_path: &[u8]) -> Self {
        FileIvs {
            file_id: pathiv::derive(iv_path, Purpose::FileId),
            block0: pathiv::derive(iv_path, Purpose::Block0Iv),
        }
    }
}

pub fn header(file_id: &[u8; 16]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..2].copy_from_slice(&HEADER_VERSION.to_be_bytes());
    h[2..].copy_from_slice(file_id);
    h
}

/// Parse a file header; `None` for a wrong version or an all-zero file ID.
pub fn parse_header(h: &[u8]) -> Option<[u8; 16]> {
    if h.len() != HEADER_LEN || h[..2] != HEADER_VERSION.to_be_bytes() {
        return None;
    }
    let id: [u8; 16] = h[2..].try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

/// The first S2V component of every block: `uint64_be(block number) ‖ fileID`.
fn block_ad(n: u64, file_id: &[u8; 16]) -> [u8; 24] {
    let mut ad = [0u8; 24];
    ad[..8].copy_from_slice(&n.to_be_bytes());
    ad[8..].copy_from_slice(file_id);
    ad
}

/// Encrypt plaintext block `n` into `out` (`plain.len() + 32` bytes).
pub fn seal_block(siv: &mut Aes256Siv, ivs: &FileIvs, n: u64, plain: &[u8], out: &mut [u8]) {
    debug_assert!(!plain.is_empty() && plain.len() <= BLOCK_SIZE);
    debug_assert_eq!(out.len(), plain.len() + BLOCK_OVERHEAD);
    let nonce = pathiv::block_iv(&ivs.block0, n);
    out[..16].copy_from_slice(&nonce);
    out[BLOCK_OVERHEAD..].copy_from_slice(plain);
    let ad = block_ad(n, &ivs.file_id);
    let tag = siv
        .encrypt_in_place_detached([&ad[..], &nonce[..]], &mut out[BLOCK_OVERHEAD..])
        .expect("AES-SIV accepts any block length");
    out[16..BLOCK_OVERHEAD].copy_from_slice(&tag);
}

/// Authenticate and decrypt ciphertext block `n` (`nonce ‖ tag ‖ ciphertext`) into `out`.
/// Returns `false` if the block does not authenticate; `out` is then garbage.
pub fn open_block(
    siv: &mut Aes256Siv,
    file_id: &[u8; 16],
    n: u64,
    block: &[u8],
    out: &mut [u8],
) -> bool {
    if block.len() <= BLOCK_OVERHEAD || block.len() > CIPHER_BLOCK_SIZE {
        return false;
    }
    debug_assert_eq!(out.len(), block.len() - BLOCK_OVERHEAD);
    let (nonce, rest) = block.split_at(16);
    let (tag, ct) = rest.split_at(16);
    out.copy_from_slice(ct);
    let ad = block_ad(n, file_id);
    siv.decrypt_in_place_detached([&ad[..], nonce], out, GenericArray::from_slice(tag))
        .is_ok()
}

/// Read until `buf` is full or EOF; returns the bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Encrypts whole files, reusing its buffers from one file to the next.
pub struct FileEncryptor<'a> {
    cipher: &'a ContentCipher,
    plain: Vec<u8>,
    sealed: Vec<u8>,
}

impl<'a> FileEncryptor<'a> {
    pub fn new(cipher: &'a ContentCipher) -> Self {
        FileEncryptor {
            cipher,
            plain: Vec::new(),
            sealed: Vec::new(),
        }
    }

    /// Encrypt everything `src` yields into `dst`; returns the plaintext length.
    /// Large batches are spread over the rayon pool, so one big file uses every core.
    pub fn encrypt(
        &mut self,
        ivs: &FileIvs,
        src: &mut impl Read,
        dst: &mut impl Write,
    ) -> io::Result<u64> {
        let mut total = 0u64;
        let mut block_no = 0u64;
        let mut first_cap = FIRST_READ_BLOCKS * BLOCK_SIZE;
        loop {
            // Start small so the many small files never allocate a full batch.
            let cap = if total == 0 {
                first_cap
            } else {
                BATCH_BLOCKS * BLOCK_SIZE
            };
            // Buffers only grow: re-zeroing 1 MiB for every file that outgrows the
            // first read (as `resize` after a shrink did) costs more than encrypting
            // a small file.
            if self.plain.len() < cap {
                self.plain.resize(cap, 0);
            }
            let got = read_full(src, &mut self.plain[..cap])?;
            if got == 0 {
                break;
            }
            if total == 0 {
                dst.write_all(&header(&ivs.file_id))?;
            }
            let blocks = got.div_ceil(BLOCK_SIZE);
            let sealed_len = got + blocks * BLOCK_OVERHEAD;
            if self.sealed.len() < sealed_len {
                self.sealed.resize(sealed_len, 0);
            }
            let sealed = &mut self.sealed[..sealed_len];
            let plain = &self.plain[..got];
            // Same bytes as `seal_block` per block, but LANES blocks at a time (see
            // `siv`): big batches go to the rayon pool in runs of LANES blocks.
            let lanes = self.cipher.lanes();
            if blocks >= PARALLEL_MIN_BLOCKS {
                plain
                    .par_chunks(LANES * BLOCK_SIZE)
                    .zip(sealed.par_chunks_mut(LANES * CIPHER_BLOCK_SIZE))
                    .enumerate()
                    .for_each(|(i, (p, o))| {
                        let n = block_no + (i * LANES) as u64;
                        lanes.seal_blocks(&ivs.file_id, n, &ivs.block0, p, o)
                    });
            } else {
                lanes.seal_blocks(&ivs.file_id, block_no, &ivs.block0, plain, sealed);
            }
            dst.write_all(sealed)?;
            total += got as u64;
            block_no += blocks as u64;
            if got < cap {
                break;
            }
            first_cap = cap;
        }
        Ok(total)
    }
}

/// The AD of a symlink target: block 0 without a file ID.
const SYMLINK_AD: [u8; 8] = [0; 8];

/// `nonce ‖ tag ‖ ciphertext` of a symlink target (before base64).
pub fn seal_symlink(cipher: &ContentCipher, nonce: &[u8; 16], target: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; target.len() + BLOCK_OVERHEAD];
    out[..16].copy_from_slice(nonce);
    out[BLOCK_OVERHEAD..].copy_from_slice(target);
    let tag = cipher
        .siv()
        .encrypt_in_place_detached([&SYMLINK_AD[..], &nonce[..]], &mut out[BLOCK_OVERHEAD..])
        .expect("AES-SIV accepts any length");
    out[16..BLOCK_OVERHEAD].copy_from_slice(&tag);
    out
}

/// Authenticate and decrypt a symlink blob; `None` if it does not authenticate.
pub fn open_symlink(cipher: &ContentCipher, blob: &[u8]) -> Option<Vec<u8>> {
    if blob.len() < BLOCK_OVERHEAD {
        return None;
    }
    let (nonce, rest) = blob.split_at(16);
    let (tag, ct) = rest.split_at(16);
    let mut out = ct.to_vec();
    cipher
        .siv()
        .decrypt_in_place_detached(
            [&SYMLINK_AD[..], nonce],
            &mut out,
            GenericArray::from_slice(tag),
        )
        .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{siv_key, MasterKey};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn zero_cipher() -> ContentCipher {
        ContentCipher::new(siv_key(&MasterKey::from_bytes([0; 32]), true))
    }

    fn encrypt_all(c: &ContentCipher, ivs: &FileIvs, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = FileEncryptor::new(c)
            .encrypt(ivs, &mut &data[..], &mut out)
            .unwrap();
        assert_eq!(n, data.len() as u64);
        out
    }

    #[test]
    fn hello_matches_gocryptfs_zerokey_mount() {
        // FORMAT.md §22: "file" containing "hello\n" in the root.
        let c = zero_cipher();
        let ivs = FileIvs::for_path(b"DAn9Q3uhi2OuTFfjA4F7Aw");
        let out = encrypt_all(&c, &ivs, b"hello\n");
        assert_eq!(
            hex(&out),
            "000239fc9ba68bad66b5d8007de7964b1ec4735a7ff0b28eae8641800b0a8509d764\
             aaec14abb0ffa1b8e1b42692ecab0f8a86881b0b3d61"
        );
        // Tampered twin: every flipped bit of the block must fail authentication.
        let block = &out[HEADER_LEN..];
        let mut plain = vec![0u8; 6];
        assert!(open_block(&mut c.siv(), &ivs.file_id, 0, block, &mut plain));
        assert_eq!(plain, b"hello\n");
        for bit in 0..block.len() * 8 {
            let mut t = block.to_vec();
            t[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !open_block(&mut c.siv(), &ivs.file_id, 0, &t, &mut plain),
                "bit {bit}"
            );
        }
        // Wrong block number or file ID (a swapped block or file) fails too.
        assert!(!open_block(
            &mut c.siv(),
            &ivs.file_id,
            1,
            block,
            &mut plain
        ));
        assert!(!open_block(&mut c.siv(), &[1; 16], 0, block, &mut plain));
    }

    #[test]
    fn sizes() {
        for (p, c) in [
            (0, 0),
            (1, 51),
            (4095, 4145),
            (4096, 4146),
            (4097, 4179),
            (5000, 5082),
            (10000, 10114),
        ] {
            assert_eq!(cipher_size(p), c);
            assert_eq!(plain_size(c), Some(p));
        }
        for bad in [1, 17, 18, 50, 4146 + 1, 4146 + 32] {
            assert_eq!(plain_size(bad), None, "{bad}");
        }
        for p in 0..20_000u64 {
            assert_eq!(plain_size(cipher_size(p)), Some(p));
        }
    }

    #[test]
    fn layout_and_parallel_batches_agree_with_serial_blocks() {
        let c = zero_cipher();
        let ivs = FileIvs::for_path(b"some/path");
        for len in [
            1usize,
            4095,
            4096,
            4097,
            70_000,
            BATCH_BLOCKS * BLOCK_SIZE + 5,
            3 * BATCH_BLOCKS * BLOCK_SIZE,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let out = encrypt_all(&c, &ivs, &data);
            assert_eq!(out.len() as u64, cipher_size(len as u64));
            assert_eq!(parse_header(&out[..HEADER_LEN]), Some(ivs.file_id));
            let mut siv = c.siv();
            for (n, (cb, pb)) in out[HEADER_LEN..]
                .chunks(CIPHER_BLOCK_SIZE)
                .zip(data.chunks(BLOCK_SIZE))
                .enumerate()
            {
                assert_eq!(&cb[..16], &pathiv::block_iv(&ivs.block0, n as u64));
                let mut plain = vec![0u8; pb.len()];
                assert!(open_block(&mut siv, &ivs.file_id, n as u64, cb, &mut plain));
                assert_eq!(plain, pb);
            }
        }
        assert!(encrypt_all(&c, &ivs, b"").is_empty());
    }

    #[test]
    fn symlink_matches_gocryptfs_zerokey_mount() {
        // FORMAT.md §22: symlink "lnk" -> "target" in the root, cname fnG21uT11C61tR60bEwXag.
        let c = zero_cipher();
        let nonce = pathiv::derive(
            &pathiv::symlink_iv_path(b"fnG21uT11C61tR60bEwXag"),
            Purpose::SymlinkIv,
        );
        let blob = seal_symlink(&c, &nonce, b"target");
        use base64::Engine;
        let shown = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&blob);
        assert_eq!(shown, "qaRucFVQdfIRoMkWufWkBalT77RE44O4TzBabdPrqSb2MFN9vCs");
        assert_eq!(open_symlink(&c, &blob).unwrap(), b"target");
        let mut t = blob.clone();
        t[20] ^= 4;
        assert!(open_symlink(&c, &t).is_none());
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse_header(&header(&[4; 16])), Some([4; 16]));
        assert_eq!(parse_header(&header(&[0; 16])), None);
        let mut h = header(&[4; 16]);
        h[1] = 3;
        assert_eq!(parse_header(&h), None);
    }
}
