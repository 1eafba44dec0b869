//! Content decryption for restore: pure functions over bytes, no file system.
//!
//! gocryptfs has two content AEADs that matter here (`internal/contentenc`,
//! `internal/cryptocore`): AES-SIV-512 (reverse mode, and forward mode with `-aessiv`)
//! and AES-256-GCM with 128-bit nonces (forward mode's default). Both use the same layout:
//! an 18-byte header `0x0002 ‖ fileID`, then blocks of at most 4096 plaintext bytes, each
//! stored as `nonce(16) ‖ …(16-byte tag and ciphertext)`. They differ in where the tag
//! sits: SIV writes `V ‖ C`, GCM writes `C ‖ tag`. The associated data of block `n` is
//! `uint64_be(n) ‖ fileID` (for SIV the nonce is a second S2V component).
//!
//! Every block is authenticated before its plaintext is handed out; a block that fails is
//! replaced by zeros in the output and counted, so the caller can decide to discard the
//! file or keep it for salvage.

use std::io::{self, Read, Write};
use std::sync::OnceLock;

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use aes_siv::siv::Aes256Siv;
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::content::{
    parse_header, read_full, BLOCK_OVERHEAD, BLOCK_SIZE, CIPHER_BLOCK_SIZE, HEADER_LEN,
};
use crate::keys::{self, MasterKey};
use crate::siv::{SivLanes, LANES};

/// The content AEAD of a filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aead {
    /// AES-SIV-512: reverse mode, and forward mode created with `-aessiv`.
    Siv,
    /// AES-256-GCM with a 128-bit nonce: forward mode's default.
    Gcm,
}

impl Aead {
    pub fn name(self) -> &'static str {
        match self {
            Aead::Siv => "AES-SIV",
            Aead::Gcm => "AES-GCM",
        }
    }
}

/// Cipher blocks read and decrypted per batch: large sequential reads, bounded memory.
const BATCH_BLOCKS: usize = 256;
/// Cipher blocks in the first batch of a file.
const FIRST_BATCH_BLOCKS: usize = 16;
/// Below this many blocks a batch is decrypted on the calling thread.
const PARALLEL_MIN_BLOCKS: usize = 16;
/// At most this many bad block numbers are remembered per file (for the message).
const MAX_BAD_LISTED: usize = 8;

type Gcm128 = AesGcm<Aes256, U16>;

/// One thread's cipher state.
pub enum Opener {
    Siv(Box<Aes256Siv>),
    Gcm(Box<Gcm128>),
}

fn block_ad(n: u64, file_id: &[u8; 16]) -> [u8; 24] {
    let mut ad = [0u8; 24];
    ad[..8].copy_from_slice(&n.to_be_bytes());
    ad[8..].copy_from_slice(file_id);
    ad
}

/// The AD of symlink targets (and of the config's key wrap): block 0, no file ID.
const ZERO_AD: [u8; 8] = [0; 8];

impl Opener {
    /// Authenticate and decrypt `nonce ‖ sealed` with the given AD into `out`
    /// (`blob.len() - 32` bytes). `false` if it does not authenticate.
    fn open(&mut self, ad: &[u8], blob: &[u8], out: &mut [u8]) -> bool {
        if blob.len() < BLOCK_OVERHEAD || out.len() != blob.len() - BLOCK_OVERHEAD {
            return false;
        }
        let (nonce, sealed) = blob.split_at(16);
        // gocryptfs refuses all-zero nonces (a tmpfs bug once produced them).
        if nonce.iter().all(|&b| b == 0) {
            return false;
        }
        match self {
            Opener::Siv(siv) => {
                let (tag, ct) = sealed.split_at(16);
                out.copy_from_slice(ct);
                siv.decrypt_in_place_detached([ad, nonce], out, GenericArray::from_slice(tag))
                    .is_ok()
            }
            Opener::Gcm(gcm) => {
                let (ct, tag) = sealed.split_at(sealed.len() - 16);
                out.copy_from_slice(ct);
                gcm.decrypt_in_place_detached(
                    GenericArray::from_slice(nonce),
                    ad,
                    out,
                    GenericArray::from_slice(tag),
                )
                .is_ok()
            }
        }
    }

    /// Authenticate and decrypt content block `n` (`nonce ‖ tag/ciphertext`) into `out`.
    pub fn open_block(&mut self, file_id: &[u8; 16], n: u64, block: &[u8], out: &mut [u8]) -> bool {
        block.len() > BLOCK_OVERHEAD
            && block.len() <= CIPHER_BLOCK_SIZE
            && self.open(&block_ad(n, file_id), block, out)
    }

    /// Authenticate and decrypt a symlink target blob (already base64-decoded).
    pub fn open_symlink(&mut self, blob: &[u8]) -> Option<Vec<u8>> {
        if blob.len() < BLOCK_OVERHEAD {
            return None;
        }
        let mut out = vec![0u8; blob.len() - BLOCK_OVERHEAD];
        self.open(&ZERO_AD, blob, &mut out).then_some(out)
    }
}

/// The content keys of one filesystem and the AEAD in use, possibly still to be detected.
pub struct Decryptor {
    siv_key: Zeroizing<[u8; 64]>,
    /// The interleaved AES-SIV for runs of blocks (see `crate::siv`).
    lanes: SivLanes,
    gcm_key: Zeroizing<[u8; 32]>,
    aead: OnceLock<Aead>,
}

/// What became of one file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    /// The file ID from the header (`None` for an empty file or an unreadable header).
    pub file_id: Option<[u8; 16]>,
    /// Plaintext bytes written (bad blocks count as zeros of their length).
    pub plain_len: u64,
    /// The header is missing, truncated or invalid: nothing was decrypted.
    pub bad_header: Option<String>,
    /// Number of blocks that did not authenticate (or were cut short).
    pub bad_blocks: u64,
    /// The first few bad block numbers.
    pub bad_listed: Vec<u64>,
    /// Full all-zero blocks (file holes of forward mode), decrypted to zeros.
    pub holes: u64,
    /// Total number of blocks.
    pub blocks: u64,
}

impl FileReport {
    pub fn is_ok(&self) -> bool {
        self.bad_header.is_none() && self.bad_blocks == 0
    }

    /// One line for the user: which blocks failed and what that means.
    pub fn describe(&self) -> String {
        if let Some(h) = &self.bad_header {
            return h.clone();
        }
        let list = self
            .bad_listed
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let more = if self.bad_blocks > self.bad_listed.len() as u64 {
            format!(
                " and {} more",
                self.bad_blocks - self.bad_listed.len() as u64
            )
        } else {
            String::new()
        };
        let all = if self.bad_blocks == self.blocks && self.blocks > 1 {
            " (every block: tampered header, or a file from another place)"
        } else {
            ""
        };
        format!(
            "block {list}{more} of {} does not authenticate{all} (blocks are {BLOCK_SIZE} plaintext bytes; block {} starts at byte {})",
            self.blocks,
            self.bad_listed.first().copied().unwrap_or(0),
            self.bad_listed.first().copied().unwrap_or(0) * BLOCK_SIZE as u64
        )
    }
}

impl Decryptor {
    /// `aead = None` means "detect": the first block or symlink that authenticates under
    /// AES-SIV or AES-GCM decides for the whole run.
    pub fn new(master: &MasterKey, hkdf: bool, aead: Option<Aead>) -> Self {
        let siv_key = keys::siv_key(master, hkdf);
        let d = Decryptor {
            lanes: SivLanes::new(&siv_key),
            siv_key,
            gcm_key: keys::gcm_key(master, hkdf),
            aead: OnceLock::new(),
        };
        if let Some(a) = aead {
            let _ = d.aead.set(a);
        }
        d
    }

    /// The AEAD in use, if known yet.
    pub fn aead(&self) -> Option<Aead> {
        self.aead.get().copied()
    }

    pub fn opener_for(&self, aead: Aead) -> Opener {
        match aead {
            Aead::Siv => Opener::Siv(Box::new(Aes256Siv::new(GenericArray::from_slice(
                &self.siv_key[..],
            )))),
            Aead::Gcm => Opener::Gcm(Box::new(Gcm128::new(GenericArray::from_slice(
                &self.gcm_key[..],
            )))),
        }
    }

    /// The opener of the AEAD in use (AES-SIV while still undetected).
    pub fn opener(&self) -> Opener {
        self.opener_for(self.aead().unwrap_or(Aead::Siv))
    }

    /// Run `f` with the AEAD in use; while it is unknown, try each and keep the first
    /// that succeeds. An authenticated success cannot happen under the wrong AEAD.
    fn detect<T>(&self, mut f: impl FnMut(&mut Opener) -> Option<T>) -> Option<T> {
        if let Some(a) = self.aead() {
            return f(&mut self.opener_for(a));
        }
        for a in [Aead::Siv, Aead::Gcm] {
            if let Some(v) = f(&mut self.opener_for(a)) {
                let _ = self.aead.set(a);
                return Some(v);
            }
        }
        None
    }

    /// Decrypt a symlink target blob (base64-decoded).
    pub fn open_symlink(&self, blob: &[u8]) -> Option<Vec<u8>> {
        self.detect(|o| o.open_symlink(blob))
    }

    /// Decrypt a whole file from `src` into `dst`. `allow_holes` maps full all-zero
    /// cipher blocks to zeros as forward-mode gocryptfs does for sparse files (a reverse
    /// view never has them, so there they count as bad blocks).
    ///
    /// I/O errors are returned; authentication failures are reported in the result.
    pub fn decrypt_file(
        &self,
        src: &mut impl Read,
        dst: &mut impl Write,
        allow_holes: bool,
    ) -> io::Result<FileReport> {
        let mut rep = FileReport::default();
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(src, &mut header)?;
        if got == 0 {
            return Ok(rep);
        }
        if got < HEADER_LEN {
            rep.bad_header = Some(format!(
                "truncated: {got} bytes, shorter than the {HEADER_LEN}-byte file header"
            ));
            return Ok(rep);
        }
        let Some(file_id) = parse_header(&header) else {
            rep.bad_header = Some(format!(
                "invalid file header {} (version must be 2, file ID not zero)",
                header
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ));
            return Ok(rep);
        };
        rep.file_id = Some(file_id);

        // Start with a small batch so the many small files never allocate a full one.
        let mut cbuf = vec![0u8; FIRST_BATCH_BLOCKS * CIPHER_BLOCK_SIZE];
        let mut pbuf = vec![0u8; FIRST_BATCH_BLOCKS * BLOCK_SIZE];
        let mut block_no = 0u64;
        let mut opener = None;
        loop {
            // A large file must not hold up a requested stop (see `cancel`).
            crate::cancel::io_check()?;
            if block_no > 0 && cbuf.len() < BATCH_BLOCKS * CIPHER_BLOCK_SIZE {
                cbuf.resize(BATCH_BLOCKS * CIPHER_BLOCK_SIZE, 0);
                pbuf.resize(BATCH_BLOCKS * BLOCK_SIZE, 0);
            }
            let got = read_full(src, &mut cbuf)?;
            if got == 0 {
                break;
            }
            let cipher = &cbuf[..got];
            let nblocks = got.div_ceil(CIPHER_BLOCK_SIZE);
            let plain_len: usize = cipher
                .chunks(CIPHER_BLOCK_SIZE)
                .map(|c| c.len().saturating_sub(BLOCK_OVERHEAD))
                .sum();
            let plain = &mut pbuf[..nblocks * BLOCK_SIZE];
            if self.aead().is_none() {
                // Let block 0 pick the AEAD; if it fails both, AES-SIV is assumed.
                let first = &cipher[..cipher.len().min(CIPHER_BLOCK_SIZE)];
                let out_len = first.len().saturating_sub(BLOCK_OVERHEAD);
                self.detect(|o| {
                    o.open_block(&file_id, block_no, first, &mut plain[..out_len])
                        .then_some(())
                });
            }
            let opener = opener.get_or_insert_with(|| self.opener());
            let results: Vec<BlockResult> = if self.aead() == Some(Aead::Siv) {
                // AES-SIV: runs of LANES blocks through the interleaved cipher; a run
                // that fails (or holds a hole or a zero nonce) is redone block by block
                // to tell exactly which blocks are bad.
                let run = |g: usize, c: &[u8], p: &mut [u8], o: &mut Option<Opener>| {
                    let first = block_no + (g * LANES) as u64;
                    let n = c.len().div_ceil(CIPHER_BLOCK_SIZE);
                    let plain_len = c.len().saturating_sub(n * BLOCK_OVERHEAD);
                    let plausible = c
                        .chunks(CIPHER_BLOCK_SIZE)
                        .all(|b| b.len() > BLOCK_OVERHEAD && b[..16].iter().any(|&x| x != 0));
                    if plausible
                        && self
                            .lanes
                            .open_blocks(&file_id, first, c, &mut p[..plain_len])
                            .is_ok()
                    {
                        return vec![BlockResult::Ok; n];
                    }
                    let o = o.get_or_insert_with(|| self.opener());
                    c.chunks(CIPHER_BLOCK_SIZE)
                        .zip(p.chunks_mut(BLOCK_SIZE))
                        .enumerate()
                        .map(|(i, (cb, pb))| {
                            open_one(o, &file_id, first + i as u64, cb, pb, allow_holes)
                        })
                        .collect::<Vec<_>>()
                };
                if nblocks >= PARALLEL_MIN_BLOCKS {
                    cipher
                        .par_chunks(LANES * CIPHER_BLOCK_SIZE)
                        .zip(plain.par_chunks_mut(LANES * BLOCK_SIZE))
                        .enumerate()
                        .map_init(|| None, |o, (g, (c, p))| run(g, c, p, o))
                        .flatten()
                        .collect()
                } else {
                    let mut o = None;
                    cipher
                        .chunks(LANES * CIPHER_BLOCK_SIZE)
                        .zip(plain.chunks_mut(LANES * BLOCK_SIZE))
                        .enumerate()
                        .flat_map(|(g, (c, p))| run(g, c, p, &mut o))
                        .collect()
                }
            } else if nblocks >= PARALLEL_MIN_BLOCKS {
                cipher
                    .par_chunks(CIPHER_BLOCK_SIZE)
                    .zip(plain.par_chunks_mut(BLOCK_SIZE))
                    .enumerate()
                    .map_init(
                        || self.opener(),
                        |o, (i, (c, p))| {
                            open_one(o, &file_id, block_no + i as u64, c, p, allow_holes)
                        },
                    )
                    .collect()
            } else {
                cipher
                    .chunks(CIPHER_BLOCK_SIZE)
                    .zip(plain.chunks_mut(BLOCK_SIZE))
                    .enumerate()
                    .map(|(i, (c, p))| {
                        open_one(opener, &file_id, block_no + i as u64, c, p, allow_holes)
                    })
                    .collect()
            };
            for (i, r) in results.iter().enumerate() {
                match r {
                    BlockResult::Ok => {}
                    BlockResult::Hole => rep.holes += 1,
                    BlockResult::Bad => {
                        rep.bad_blocks += 1;
                        if rep.bad_listed.len() < MAX_BAD_LISTED {
                            rep.bad_listed.push(block_no + i as u64);
                        }
                    }
                }
            }
            // Blocks are written in order; each is at most BLOCK_SIZE and only the last
            // of the file can be short, so the plaintext is contiguous.
            dst.write_all(&plain[..plain_len])?;
            crate::meter::add(plain_len);
            rep.plain_len += plain_len as u64;
            block_no += nblocks as u64;
            if got < cbuf.len() {
                break;
            }
        }
        rep.blocks = block_no;
        Ok(rep)
    }
}

#[derive(Clone, Copy)]
enum BlockResult {
    Ok,
    Hole,
    Bad,
}

fn open_one(
    o: &mut Opener,
    file_id: &[u8; 16],
    n: u64,
    c: &[u8],
    p: &mut [u8],
    allow_holes: bool,
) -> BlockResult {
    let out_len = c.len().saturating_sub(BLOCK_OVERHEAD);
    let out = &mut p[..out_len];
    if allow_holes && c.len() == CIPHER_BLOCK_SIZE && c.iter().all(|&b| b == 0) {
        out.fill(0);
        return BlockResult::Hole;
    }
    if o.open_block(file_id, n, c, out) {
        BlockResult::Ok
    } else {
        out.fill(0);
        BlockResult::Bad
    }
}

/// Plaintext size of a ciphertext file of `cipher` bytes, as gocryptfs computes it
/// (a header-only file is empty), or `None` if no plaintext has that size.
pub fn plain_size(cipher: u64) -> Option<u64> {
    if cipher == HEADER_LEN as u64 {
        return Some(0);
    }
    crate::content::plain_size(cipher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{ContentCipher, FileEncryptor, FileIvs};

    fn master() -> MasterKey {
        MasterKey::from_bytes([0; 32])
    }

    fn siv_encrypt(data: &[u8], path: &[u8]) -> Vec<u8> {
        let c = ContentCipher::new(keys::siv_key(&master(), true));
        let mut out = Vec::new();
        FileEncryptor::new(&c)
            .encrypt(&FileIvs::for_path(path), &mut &data[..], &mut out)
            .unwrap();
        out
    }

    /// Forward-mode GCM encryption as gocryptfs does it, for tests only.
    pub(crate) fn gcm_encrypt(key: &[u8; 32], file_id: [u8; 16], data: &[u8]) -> Vec<u8> {
        let gcm = Gcm128::new(GenericArray::from_slice(key));
        let mut out = crate::content::header(&file_id).to_vec();
        for (n, chunk) in data.chunks(BLOCK_SIZE).enumerate() {
            let mut nonce = [0u8; 16];
            nonce[..8].copy_from_slice(&(n as u64 + 1).to_le_bytes());
            nonce[8] = 0x5a;
            let mut buf = chunk.to_vec();
            let tag = gcm
                .encrypt_in_place_detached(
                    GenericArray::from_slice(&nonce),
                    &block_ad(n as u64, &file_id),
                    &mut buf,
                )
                .unwrap();
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&buf);
            out.extend_from_slice(&tag);
        }
        out
    }

    fn decrypt(d: &Decryptor, ct: &[u8], holes: bool) -> (Vec<u8>, FileReport) {
        let mut out = Vec::new();
        let rep = d.decrypt_file(&mut &ct[..], &mut out, holes).unwrap();
        (out, rep)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn siv_roundtrip_all_sizes_and_zerokey_vector() {
        let d = Decryptor::new(&master(), true, Some(Aead::Siv));
        // FORMAT.md §22: "hello\n" at DAn9Q3uhi2OuTFfjA4F7Aw under the zero key.
        let ct = siv_encrypt(b"hello\n", b"DAn9Q3uhi2OuTFfjA4F7Aw");
        let (out, rep) = decrypt(&d, &ct, false);
        assert_eq!(out, b"hello\n");
        assert!(rep.is_ok());
        for len in [
            0,
            1,
            4095,
            4096,
            4097,
            70_000,
            FIRST_BATCH_BLOCKS * BLOCK_SIZE,
            FIRST_BATCH_BLOCKS * BLOCK_SIZE + 1,
            BATCH_BLOCKS * BLOCK_SIZE + 3,
            (FIRST_BATCH_BLOCKS + 2 * BATCH_BLOCKS) * BLOCK_SIZE,
        ] {
            let p = data(len);
            let ct = siv_encrypt(&p, b"x/y");
            let (out, rep) = decrypt(&d, &ct, false);
            assert!(rep.is_ok(), "{len}: {rep:?}");
            assert_eq!(out, p, "{len}");
            assert_eq!(plain_size(ct.len() as u64), Some(len as u64));
        }
    }

    #[test]
    fn tampered_twins_fail_with_block_numbers() {
        let d = Decryptor::new(&master(), true, Some(Aead::Siv));
        let p = data(5 * BLOCK_SIZE + 100);
        let ct = siv_encrypt(&p, b"f");
        // A flipped bit in block 2.
        let mut t = ct.clone();
        t[HEADER_LEN + 2 * CIPHER_BLOCK_SIZE + 40] ^= 1;
        let (out, rep) = decrypt(&d, &t, false);
        assert_eq!(rep.bad_blocks, 1);
        assert_eq!(rep.bad_listed, [2]);
        assert_eq!(out.len(), p.len());
        assert_eq!(&out[..2 * BLOCK_SIZE], &p[..2 * BLOCK_SIZE]);
        assert!(out[2 * BLOCK_SIZE..3 * BLOCK_SIZE].iter().all(|&b| b == 0));
        // Header: wrong version, and a flipped file ID (every block fails).
        let mut t = ct.clone();
        t[1] = 3;
        assert!(decrypt(&d, &t, false).1.bad_header.is_some());
        let mut t = ct.clone();
        t[5] ^= 0x80;
        let rep = decrypt(&d, &t, false).1;
        assert_eq!(rep.bad_blocks, 6);
        assert!(rep.describe().contains("every block"), "{}", rep.describe());
        // Swapped blocks 0 and 1.
        let mut t = ct.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + CIPHER_BLOCK_SIZE);
        let blk0 = t[a..b].to_vec();
        let blk1 = t[b..b + CIPHER_BLOCK_SIZE].to_vec();
        t[a..b].copy_from_slice(&blk1);
        t[b..b + CIPHER_BLOCK_SIZE].copy_from_slice(&blk0);
        assert_eq!(decrypt(&d, &t, false).1.bad_listed, [0, 1]);
        // Truncated mid-block, and inside the header.
        let rep = decrypt(&d, &ct[..ct.len() - 50], false).1;
        assert_eq!(rep.bad_listed, [5]);
        assert!(decrypt(&d, &ct[..10], false).1.bad_header.is_some());
        // Header only: empty, as gocryptfs reads it.
        let (out, rep) = decrypt(&d, &ct[..HEADER_LEN], false);
        assert!(out.is_empty() && rep.is_ok());
        // The untampered twin.
        assert!(decrypt(&d, &ct, false).1.is_ok());
    }

    #[test]
    fn holes_only_where_allowed() {
        let d = Decryptor::new(&master(), true, Some(Aead::Siv));
        let p = data(3 * BLOCK_SIZE);
        let mut ct = siv_encrypt(&p, b"f");
        ct[HEADER_LEN + CIPHER_BLOCK_SIZE..HEADER_LEN + 2 * CIPHER_BLOCK_SIZE].fill(0);
        let (out, rep) = decrypt(&d, &ct, true);
        assert_eq!((rep.holes, rep.bad_blocks), (1, 0));
        assert!(out[BLOCK_SIZE..2 * BLOCK_SIZE].iter().all(|&b| b == 0));
        let rep = decrypt(&d, &ct, false).1;
        assert_eq!((rep.holes, rep.bad_listed.as_slice()), (0, &[1u64][..]));
    }

    #[test]
    fn gcm_files_and_aead_detection() {
        let m = master();
        let key = keys::gcm_key(&m, true);
        let p = data(3 * BLOCK_SIZE + 5);
        let ct = gcm_encrypt(&key, [9; 16], &p);
        let fixed = Decryptor::new(&m, true, Some(Aead::Gcm));
        let (out, rep) = decrypt(&fixed, &ct, true);
        assert!(rep.is_ok(), "{rep:?}");
        assert_eq!(out, p);
        // Detection: SIV fails, GCM authenticates and is kept for the run.
        let auto = Decryptor::new(&m, true, None);
        assert_eq!(auto.aead(), None);
        let (out, rep) = decrypt(&auto, &ct, true);
        assert!(rep.is_ok());
        assert_eq!(out, p);
        assert_eq!(auto.aead(), Some(Aead::Gcm));
        // Under SIV, the same file does not authenticate.
        let siv = Decryptor::new(&m, true, Some(Aead::Siv));
        assert_eq!(decrypt(&siv, &ct, true).1.bad_blocks, 4);
        // Tampered GCM tag.
        let mut t = ct.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert_eq!(decrypt(&fixed, &t, true).1.bad_listed, [3]);
        // Detection with a SIV file picks SIV.
        let auto = Decryptor::new(&m, true, None);
        assert!(decrypt(&auto, &siv_encrypt(&p, b"q"), false).1.is_ok());
        assert_eq!(auto.aead(), Some(Aead::Siv));
    }

    #[test]
    fn symlinks_under_both_aeads() {
        let m = master();
        let c = ContentCipher::new(keys::siv_key(&m, true));
        let blob = crate::content::seal_symlink(&c, &[3; 16], b"../target");
        let auto = Decryptor::new(&m, true, None);
        assert_eq!(auto.open_symlink(&blob).unwrap(), b"../target");
        assert_eq!(auto.aead(), Some(Aead::Siv));
        let mut t = blob.clone();
        t[17] ^= 1;
        assert!(auto.open_symlink(&t).is_none());
        // All-zero nonce is refused, as in gocryptfs.
        let z = crate::content::seal_symlink(&c, &[0; 16], b"x");
        assert!(auto.open_symlink(&z).is_none());
    }
}
