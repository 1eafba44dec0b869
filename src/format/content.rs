//! File contents and symlink targets, sealed and opened (gocryptfs `internal/contentenc`
//! and `internal/cryptocore`; FORMAT.md §8, §9, §20).
//!
//! One layout for every content AEAD: an empty file is empty; otherwise an 18-byte header
//! (`0x0002 ‖ fileID`) and blocks of at most 4096 plaintext bytes, each stored as
//! `nonce ‖ …` with the associated data `uint64_be(block number) ‖ fileID`. The AEADs
//! differ in the nonce length and in where the tag sits:
//!
//! | AEAD | nonce | block | used by |
//! |---|---|---|---|
//! | AES-SIV-512 | 16 | `nonce ‖ tag ‖ ciphertext` (the nonce is a second S2V input) | reverse mode (cryptbak export), forward `-aessiv` |
//! | AES-256-GCM | 16 | `nonce ‖ ciphertext ‖ tag` | forward mode's default |
//! | XChaCha20-Poly1305 | 24 | `nonce ‖ ciphertext ‖ tag` | forward `-xchacha` |
//!
//! Sealing is AES-SIV only: reverse mode derives its nonces from paths, which is safe only
//! with a misuse-resistant AEAD. Every block is independent, which is what lets one large
//! file be encrypted or decrypted on several threads.

use std::io::{self, Read, Write};
use std::sync::OnceLock;

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use aes_siv::siv::Aes256Siv;
use chacha20poly1305::XChaCha20Poly1305;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::config::Format;
use super::keys::{self, MasterKey};
use super::pathiv::{self, Purpose};
use super::siv::{SivLanes, LANES};
use super::FormatError;

pub const BLOCK_SIZE: usize = 4096;
pub const HEADER_LEN: usize = 18;
/// Nonce and tag of an AES-SIV or AES-GCM block (XChaCha20-Poly1305: [`Aead::overhead`]).
pub const BLOCK_OVERHEAD: usize = 32;
pub const CIPHER_BLOCK_SIZE: usize = BLOCK_SIZE + BLOCK_OVERHEAD;
pub const HEADER_VERSION: u16 = 2;
const TAG_LEN: usize = 16;

/// The content AEAD of a filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aead {
    /// AES-SIV-512: reverse mode, and forward mode created with `-aessiv`.
    Siv,
    /// AES-256-GCM with a 128-bit nonce: forward mode's default.
    Gcm,
    /// XChaCha20-Poly1305 with a 192-bit nonce: forward mode created with `-xchacha`.
    XChaCha,
}

impl Aead {
    pub fn name(self) -> &'static str {
        match self {
            Aead::Siv => "AES-SIV",
            Aead::Gcm => "AES-GCM",
            Aead::XChaCha => "XChaCha20-Poly1305",
        }
    }

    /// The AEAD a config's flags select (gocryptfs `ConfFile.ContentEncryption`).
    pub fn of(format: &Format) -> Aead {
        if format.xchacha {
            Aead::XChaCha
        } else if format.aes_siv {
            Aead::Siv
        } else {
            Aead::Gcm
        }
    }

    pub const fn nonce_len(self) -> usize {
        match self {
            Aead::Siv | Aead::Gcm => 16,
            Aead::XChaCha => 24,
        }
    }

    /// Bytes a block gains when sealed: nonce and tag.
    pub const fn overhead(self) -> usize {
        self.nonce_len() + TAG_LEN
    }

    /// The size of a full sealed block.
    pub const fn cipher_block_size(self) -> usize {
        BLOCK_SIZE + self.overhead()
    }

    /// Ciphertext size of a plaintext of `plain` bytes.
    pub fn cipher_size(self, plain: u64) -> u64 {
        if plain == 0 {
            return 0;
        }
        let blocks = plain.div_ceil(BLOCK_SIZE as u64);
        HEADER_LEN as u64 + plain + self.overhead() as u64 * blocks
    }

    /// Plaintext size of a ciphertext file of `cipher` bytes, as gocryptfs reads it (a
    /// header-only file is empty), or `None` if no plaintext has that size (a truncated
    /// header, or a last block with no payload).
    pub fn plain_size(self, cipher: u64) -> Option<u64> {
        if cipher == 0 {
            return Some(0);
        }
        let body = cipher.checked_sub(HEADER_LEN as u64)?;
        if body == 0 {
            return Some(0);
        }
        let cbs = self.cipher_block_size() as u64;
        let blocks = body.div_ceil(cbs);
        let last = body - (blocks - 1) * cbs;
        if last <= self.overhead() as u64 {
            return None;
        }
        Some(body - blocks * self.overhead() as u64)
    }

    /// The bytes of a sealed block that are not its encrypted payload (nonce and tag).
    fn framing(self, block: &[u8]) -> (&[u8], &[u8]) {
        let n = self.nonce_len();
        match self {
            Aead::Siv => (&block[..n], &block[n..n + TAG_LEN]),
            Aead::Gcm | Aead::XChaCha => (&block[..n], &block[block.len() - TAG_LEN..]),
        }
    }
}

/// Ciphertext size of a plaintext of `plain` bytes under AES-SIV (the reverse view).
pub fn cipher_size(plain: u64) -> u64 {
    Aead::Siv.cipher_size(plain)
}

/// Plaintext size of an AES-SIV or AES-GCM ciphertext of `cipher` bytes (see
/// [`Aead::plain_size`]).
pub fn plain_size(cipher: u64) -> Option<u64> {
    Aead::Siv.plain_size(cipher)
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

/// The associated data of content block `n` (gocryptfs `concatAD`): `uint64_be(n) ‖
/// fileID`. For AES-SIV it is the first S2V component, the nonce the second.
pub(crate) fn block_ad(n: u64, file_id: &[u8; 16]) -> [u8; 24] {
    let mut ad = [0u8; 24];
    ad[..8].copy_from_slice(&n.to_be_bytes());
    ad[8..].copy_from_slice(file_id);
    ad
}

/// The AD of a symlink target (and of the config's key wrap): block 0 without a file ID.
const SYMLINK_AD: [u8; 8] = [0; 8];

// ------------------------------------------------------------------------ sealing

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

/// Plaintext blocks read and encrypted (or cipher blocks decrypted) per batch: large
/// sequential I/O, bounded memory.
const BATCH_BLOCKS: usize = 256;
/// Below this many blocks a batch is handled on the calling thread.
const PARALLEL_MIN_BLOCKS: usize = 16;
/// The first read of a file: small files fill all lanes in one go, yet never allocate
/// a full batch.
const FIRST_READ_BLOCKS: usize = LANES;
/// Cipher blocks in the first batch a file is decrypted in.
const FIRST_OPEN_BLOCKS: usize = 16;

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

// ------------------------------------------------------------------------ opening

type Gcm128 = AesGcm<Aes256, U16>;

/// Authenticate and decrypt `nonce ‖ tag ‖ ciphertext` (AES-SIV) with `ad` into `out`.
fn open_siv(siv: &mut Aes256Siv, ad: &[u8], blob: &[u8], out: &mut [u8]) -> bool {
    let (nonce, rest) = blob.split_at(16);
    let (tag, ct) = rest.split_at(TAG_LEN);
    out.copy_from_slice(ct);
    siv.decrypt_in_place_detached([ad, nonce], out, GenericArray::from_slice(tag))
        .is_ok()
}

/// Authenticate and decrypt AES-SIV content block `n` (`nonce ‖ tag ‖ ciphertext`) into
/// `out`. Returns `false` if the block does not authenticate; `out` is then garbage.
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
    open_siv(siv, &block_ad(n, file_id), block, out)
}

/// One thread's opening state for one AEAD (AES-SIV needs `&mut`; the others are shared).
pub struct Opener<'a> {
    aead: Aead,
    inner: OpenerInner<'a>,
}

enum OpenerInner<'a> {
    Siv(Box<Aes256Siv>),
    Gcm(&'a Gcm128),
    XChaCha(&'a XChaCha20Poly1305),
}

impl Opener<'_> {
    pub fn aead(&self) -> Aead {
        self.aead
    }

    /// Authenticate and decrypt `blob` (a sealed block or symlink target) with `ad` into
    /// `out` (`blob.len()` minus the overhead). `false` if it does not authenticate.
    fn open(&mut self, ad: &[u8], blob: &[u8], out: &mut [u8]) -> bool {
        let overhead = self.aead.overhead();
        if blob.len() < overhead || out.len() != blob.len() - overhead {
            return false;
        }
        let nl = self.aead.nonce_len();
        // gocryptfs refuses all-zero nonces (a tmpfs bug once produced them).
        if blob[..nl].iter().all(|&b| b == 0) {
            return false;
        }
        match &mut self.inner {
            OpenerInner::Siv(siv) => open_siv(siv, ad, blob, out),
            OpenerInner::Gcm(gcm) => {
                let (nonce, sealed) = blob.split_at(nl);
                let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
                out.copy_from_slice(ct);
                gcm.decrypt_in_place_detached(
                    GenericArray::from_slice(nonce),
                    ad,
                    out,
                    GenericArray::from_slice(tag),
                )
                .is_ok()
            }
            OpenerInner::XChaCha(x) => {
                let (nonce, sealed) = blob.split_at(nl);
                let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
                out.copy_from_slice(ct);
                x.decrypt_in_place_detached(
                    GenericArray::from_slice(nonce),
                    ad,
                    out,
                    GenericArray::from_slice(tag),
                )
                .is_ok()
            }
        }
    }

    /// Authenticate and decrypt content block `n` of the file `file_id` into `out`.
    pub fn open_block(&mut self, file_id: &[u8; 16], n: u64, block: &[u8], out: &mut [u8]) -> bool {
        block.len() > self.aead.overhead()
            && block.len() <= self.aead.cipher_block_size()
            && self.open(&block_ad(n, file_id), block, out)
    }

    /// Authenticate and decrypt a symlink target blob (already base64-decoded).
    pub fn open_symlink(&mut self, blob: &[u8]) -> Option<Vec<u8>> {
        let len = blob.len().checked_sub(self.aead.overhead())?;
        let mut out = vec![0u8; len];
        self.open(&SYMLINK_AD, blob, &mut out).then_some(out)
    }
}

struct SivKey {
    key: Zeroizing<[u8; 64]>,
    /// The interleaved AES-SIV for runs of blocks (see `format::siv`).
    lanes: SivLanes,
}

/// The content keys of one filesystem. Seals with AES-SIV (the reverse view); opens with
/// the filesystem's AEAD, which may still be undetermined when no config was read: then
/// the first block or symlink that authenticates under AES-SIV or AES-GCM decides for
/// the whole run (a block cannot authenticate under the wrong AEAD).
pub struct ContentCipher {
    siv: Option<SivKey>,
    gcm: Option<Box<Gcm128>>,
    xchacha: Option<Box<XChaCha20Poly1305>>,
    aead: OnceLock<Aead>,
}

impl ContentCipher {
    /// AES-SIV-512 with this 64-byte key: the reverse view's cipher.
    pub fn new(key: Zeroizing<[u8; 64]>) -> Self {
        let c = ContentCipher {
            siv: Some(SivKey {
                lanes: SivLanes::new(&key),
                key,
            }),
            gcm: None,
            xchacha: None,
            aead: OnceLock::new(),
        };
        let _ = c.aead.set(Aead::Siv);
        c
    }

    /// The cipher of `aead`, keyed from the master key as the config's HKDF flag says.
    pub fn for_aead(master: &MasterKey, hkdf: bool, aead: Aead) -> Result<Self, FormatError> {
        let c = match aead {
            Aead::Siv => return Ok(ContentCipher::new(keys::siv_key(master, hkdf))),
            Aead::Gcm => ContentCipher {
                gcm: Some(gcm(master, hkdf)),
                ..ContentCipher::empty()
            },
            Aead::XChaCha => {
                // gocryptfs: "XChaCha20-Poly1305 must use HKDF".
                if !hkdf {
                    return Err(FormatError::XChaChaWithoutHkdf);
                }
                let k = keys::xchacha_key(master);
                ContentCipher {
                    xchacha: Some(Box::new(XChaCha20Poly1305::new(GenericArray::from_slice(
                        &k[..],
                    )))),
                    ..ContentCipher::empty()
                }
            }
        };
        let _ = c.aead.set(aead);
        Ok(c)
    }

    /// AES-SIV or AES-GCM, whichever authenticates first (no config was read). An
    /// XChaCha20-Poly1305 filesystem must be named: its blocks have another size.
    pub fn detecting(master: &MasterKey, hkdf: bool) -> Self {
        let siv = keys::siv_key(master, hkdf);
        ContentCipher {
            siv: Some(SivKey {
                lanes: SivLanes::new(&siv),
                key: siv,
            }),
            gcm: Some(gcm(master, hkdf)),
            ..ContentCipher::empty()
        }
    }

    fn empty() -> Self {
        ContentCipher {
            siv: None,
            gcm: None,
            xchacha: None,
            aead: OnceLock::new(),
        }
    }

    /// The AEAD in use, if known yet.
    pub fn aead(&self) -> Option<Aead> {
        self.aead.get().copied()
    }

    fn siv_key(&self) -> &SivKey {
        self.siv
            .as_ref()
            .expect("sealing needs AES-SIV, which Cryptor::new guarantees")
    }

    /// A fresh AES-SIV state (sealing, and opening single blocks). Panics for a cipher of
    /// another AEAD: only AES-SIV filesystems are written, and `Cryptor::new`, which
    /// export builds its keys with, refuses every other.
    pub fn siv(&self) -> Aes256Siv {
        Aes256Siv::new(GenericArray::from_slice(&self.siv_key().key[..]))
    }

    /// The fast path for runs of AES-SIV blocks (several blocks at once, same bytes as
    /// [`seal_block`] / [`open_block`]); shareable between threads. Panics like
    /// [`ContentCipher::siv`].
    pub fn lanes(&self) -> &SivLanes {
        &self.siv_key().lanes
    }

    fn opener_for(&self, aead: Aead) -> Option<Opener<'_>> {
        let inner = match aead {
            Aead::Siv => OpenerInner::Siv(Box::new(Aes256Siv::new(GenericArray::from_slice(
                &self.siv.as_ref()?.key[..],
            )))),
            Aead::Gcm => OpenerInner::Gcm(self.gcm.as_deref()?),
            Aead::XChaCha => OpenerInner::XChaCha(self.xchacha.as_deref()?),
        };
        Some(Opener { aead, inner })
    }

    /// The opener of the AEAD in use (AES-SIV while still undetected).
    pub fn opener(&self) -> Opener<'_> {
        let aead = self.aead().unwrap_or(Aead::Siv);
        self.opener_for(aead)
            .expect("a cipher holds the key of the AEAD it uses")
    }

    /// Run `f` with the AEAD in use; while it is unknown, try each candidate and keep the
    /// first that succeeds. An authenticated success cannot happen under the wrong AEAD.
    fn detect<T>(&self, mut f: impl FnMut(&mut Opener<'_>) -> Option<T>) -> Option<T> {
        if self.aead().is_some() {
            return f(&mut self.opener());
        }
        for aead in [Aead::Siv, Aead::Gcm, Aead::XChaCha] {
            let Some(mut o) = self.opener_for(aead) else {
                continue;
            };
            if let Some(t) = f(&mut o) {
                let _ = self.aead.set(aead);
                return Some(t);
            }
        }
        None
    }

    /// Authenticate and decrypt a symlink target blob (already base64-decoded); `None`
    /// if it does not authenticate.
    pub fn open_symlink(&self, blob: &[u8]) -> Option<Vec<u8>> {
        self.detect(|o| o.open_symlink(blob))
    }

    /// Authenticate and decrypt a whole file from `src` into `dst`. Bad blocks are
    /// written as zeros (so offsets stay right) and counted; with `allow_holes`, a full
    /// all-zero ciphertext block is taken as a file hole and gives zeros (forward mode).
    /// I/O errors are returned as such; authentication problems are in the result.
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
        let mut print = Fingerprint::new(&header);

        // AES-SIV and AES-GCM blocks have one size, so it is known before detection.
        let geo = self.aead().unwrap_or(Aead::Siv);
        let (cbs, overhead) = (geo.cipher_block_size(), geo.overhead());
        // Start with a small batch so the many small files never allocate a full one.
        let mut cbuf = vec![0u8; FIRST_OPEN_BLOCKS * cbs];
        let mut pbuf = vec![0u8; FIRST_OPEN_BLOCKS * BLOCK_SIZE];
        let mut block_no = 0u64;
        let mut opener = None;
        loop {
            // A large file must not hold up a requested stop (see `cancel`).
            crate::cancel::io_check()?;
            if block_no > 0 && cbuf.len() < BATCH_BLOCKS * cbs {
                cbuf.resize(BATCH_BLOCKS * cbs, 0);
                pbuf.resize(BATCH_BLOCKS * BLOCK_SIZE, 0);
            }
            let got = read_full(src, &mut cbuf)?;
            if got == 0 {
                break;
            }
            let cipher = &cbuf[..got];
            let nblocks = got.div_ceil(cbs);
            let plain_len: usize = cipher
                .chunks(cbs)
                .map(|c| c.len().saturating_sub(overhead))
                .sum();
            let plain = &mut pbuf[..nblocks * BLOCK_SIZE];
            if self.aead().is_none() {
                // Let block 0 pick the AEAD; if it fails both, AES-SIV is assumed.
                let first = &cipher[..cipher.len().min(cbs)];
                let out_len = first.len().saturating_sub(overhead);
                self.detect(|o| {
                    o.open_block(&file_id, block_no, first, &mut plain[..out_len])
                        .then_some(())
                });
            }
            let aead = self.aead().unwrap_or(Aead::Siv);
            let opener = opener.get_or_insert_with(|| self.opener());
            let results: Vec<BlockResult> = if aead == Aead::Siv {
                self.open_siv_batch(&file_id, block_no, cipher, plain, allow_holes)
            } else if nblocks >= PARALLEL_MIN_BLOCKS {
                cipher
                    .par_chunks(cbs)
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
                    .chunks(cbs)
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
            print.blocks(aead, cipher);
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
        rep.fingerprint = Some(print.finish());
        Ok(rep)
    }

    /// AES-SIV: runs of LANES blocks through the interleaved cipher; a run that fails (or
    /// holds a hole or a zero nonce) is redone block by block to tell exactly which blocks
    /// are bad.
    fn open_siv_batch<'s>(
        &'s self,
        file_id: &[u8; 16],
        block_no: u64,
        cipher: &[u8],
        plain: &mut [u8],
        allow_holes: bool,
    ) -> Vec<BlockResult> {
        let lanes = self.lanes();
        let run = |g: usize, c: &[u8], p: &mut [u8], o: &mut Option<Opener<'s>>| {
            let first = block_no + (g * LANES) as u64;
            let n = c.len().div_ceil(CIPHER_BLOCK_SIZE);
            let plain_len = c.len().saturating_sub(n * BLOCK_OVERHEAD);
            let plausible = c
                .chunks(CIPHER_BLOCK_SIZE)
                .all(|b| b.len() > BLOCK_OVERHEAD && b[..16].iter().any(|&x| x != 0));
            if plausible
                && lanes
                    .open_blocks(file_id, first, c, &mut p[..plain_len])
                    .is_ok()
            {
                return vec![BlockResult::Ok; n];
            }
            let o = o.get_or_insert_with(|| self.opener());
            c.chunks(CIPHER_BLOCK_SIZE)
                .zip(p.chunks_mut(BLOCK_SIZE))
                .enumerate()
                .map(|(i, (cb, pb))| open_one(o, file_id, first + i as u64, cb, pb, allow_holes))
                .collect::<Vec<_>>()
        };
        let nblocks = cipher.len().div_ceil(CIPHER_BLOCK_SIZE);
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
    }
}

/// SHA-256 of a file's header, of what of each block is not its encrypted payload (nonce
/// and tag), and of its length (see [`FileReport::fingerprint`]).
struct Fingerprint {
    h: Sha256,
    len: u64,
}

impl Fingerprint {
    fn new(header: &[u8; HEADER_LEN]) -> Self {
        let mut h = Sha256::new();
        h.update(header);
        Fingerprint {
            h,
            len: HEADER_LEN as u64,
        }
    }

    /// Whole blocks, in order (only the file's last block may be short).
    fn blocks(&mut self, aead: Aead, cipher: &[u8]) {
        for c in cipher.chunks(aead.cipher_block_size()) {
            if c.len() > aead.overhead() {
                let (nonce, tag) = aead.framing(c);
                self.h.update(nonce);
                self.h.update(tag);
            } else {
                self.h.update(c);
            }
        }
        self.len += cipher.len() as u64;
    }

    fn finish(mut self) -> [u8; 32] {
        self.h.update(self.len.to_be_bytes());
        self.h.finalize().into()
    }
}

/// The file ID and fingerprint of a ciphertext file of `aead`, read without decrypting
/// (`None` for an empty file or a bad header). Equal to what [`ContentCipher::decrypt_file`]
/// reports for the same bytes.
pub fn fingerprint(src: &mut impl Read, aead: Aead) -> io::Result<Option<([u8; 16], [u8; 32])>> {
    let mut header = [0u8; HEADER_LEN];
    if read_full(src, &mut header)? < HEADER_LEN {
        return Ok(None);
    }
    let Some(file_id) = parse_header(&header) else {
        return Ok(None);
    };
    let mut print = Fingerprint::new(&header);
    let mut buf = vec![0u8; 64 * aead.cipher_block_size()];
    loop {
        let got = read_full(src, &mut buf)?;
        print.blocks(aead, &buf[..got]);
        if got < buf.len() {
            break;
        }
    }
    Ok(Some((file_id, print.finish())))
}

fn gcm(master: &MasterKey, hkdf: bool) -> Box<Gcm128> {
    let k = keys::gcm_key(master, hkdf);
    Box::new(Gcm128::new(GenericArray::from_slice(&k[..])))
}

/// At most this many bad block numbers are remembered per file (for the message).
const MAX_BAD_LISTED: usize = 8;

#[derive(Clone, Copy)]
enum BlockResult {
    Ok,
    Hole,
    Bad,
}

fn open_one(
    o: &mut Opener<'_>,
    file_id: &[u8; 16],
    n: u64,
    c: &[u8],
    p: &mut [u8],
    allow_holes: bool,
) -> BlockResult {
    let out_len = c.len().saturating_sub(o.aead().overhead());
    let out = &mut p[..out_len];
    if allow_holes && c.len() == o.aead().cipher_block_size() && c.iter().all(|&b| b == 0) {
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
    /// Full all-zero ciphertext blocks (file holes of forward mode), decrypted to zeros.
    pub holes: u64,
    /// Total number of blocks.
    pub blocks: u64,
    /// SHA-256 of the header, every block's nonce and tag, and the length: for two files
    /// that authenticate, equal fingerprints mean byte-identical ciphertext (the nonce
    /// and tag of an authenticated block fix its payload). `None` for an empty file or a
    /// bad header.
    pub fingerprint: Option<[u8; 32]>,
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
        let (noun, verb) = if self.bad_blocks == 1 {
            ("block", "does")
        } else {
            ("blocks", "do")
        };
        format!(
            "{noun} {list}{more} of {} {verb} not authenticate{all} (blocks are {BLOCK_SIZE} plaintext bytes; block {} starts at byte {})",
            self.blocks,
            self.bad_listed.first().copied().unwrap_or(0),
            self.bad_listed.first().copied().unwrap_or(0) * BLOCK_SIZE as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::keys::{siv_key, MasterKey};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn master() -> MasterKey {
        MasterKey::from_bytes([0; 32])
    }

    fn zero_cipher() -> ContentCipher {
        ContentCipher::new(siv_key(&master(), true))
    }

    fn encrypt_all(c: &ContentCipher, ivs: &FileIvs, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = FileEncryptor::new(c)
            .encrypt(ivs, &mut &data[..], &mut out)
            .unwrap();
        assert_eq!(n, data.len() as u64);
        out
    }

    fn siv_encrypt(data: &[u8], path: &[u8]) -> Vec<u8> {
        encrypt_all(&zero_cipher(), &FileIvs::for_path(path), data)
    }

    /// Forward-mode encryption as gocryptfs does it (random nonces, `nonce ‖ ct ‖ tag`),
    /// for tests only.
    fn forward_encrypt(c: &ContentCipher, file_id: [u8; 16], data: &[u8]) -> Vec<u8> {
        let aead = c.aead().unwrap();
        let mut out = header(&file_id).to_vec();
        for (n, chunk) in data.chunks(BLOCK_SIZE).enumerate() {
            let mut nonce = vec![0x5au8; aead.nonce_len()];
            nonce[..8].copy_from_slice(&(n as u64 + 1).to_le_bytes());
            let mut buf = chunk.to_vec();
            let ad = block_ad(n as u64, &file_id);
            let tag = match aead {
                Aead::Gcm => c.gcm.as_ref().unwrap().encrypt_in_place_detached(
                    GenericArray::from_slice(&nonce),
                    &ad,
                    &mut buf,
                ),
                Aead::XChaCha => c.xchacha.as_ref().unwrap().encrypt_in_place_detached(
                    GenericArray::from_slice(&nonce),
                    &ad,
                    &mut buf,
                ),
                Aead::Siv => unreachable!(),
            }
            .unwrap();
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&buf);
            out.extend_from_slice(&tag);
        }
        out
    }

    fn decrypt(d: &ContentCipher, ct: &[u8], holes: bool) -> (Vec<u8>, FileReport) {
        let mut out = Vec::new();
        let rep = d.decrypt_file(&mut &ct[..], &mut out, holes).unwrap();
        (out, rep)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
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
        // The whole-file opener gives the same.
        let (back, rep) = decrypt(&c, &out, false);
        assert!(rep.is_ok());
        assert_eq!(back, b"hello\n");
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
        for bad in [1, 17, 50, 4146 + 1, 4146 + 32] {
            assert_eq!(plain_size(bad), None, "{bad}");
        }
        // A header-only file reads as empty (gocryptfs), and decrypts to nothing.
        assert_eq!(plain_size(18), Some(0));
        for aead in [Aead::Siv, Aead::Gcm, Aead::XChaCha] {
            for p in 0..20_000u64 {
                assert_eq!(aead.plain_size(aead.cipher_size(p)), Some(p), "{aead:?}");
            }
        }
        assert_eq!(Aead::XChaCha.cipher_size(4097), 18 + 4097 + 2 * 40);
        assert_eq!(Aead::XChaCha.plain_size(18 + 40), None);
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
        assert_eq!(c.open_symlink(&blob).unwrap(), b"target");
        let mut t = blob.clone();
        t[20] ^= 4;
        assert!(c.open_symlink(&t).is_none());
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse_header(&header(&[4; 16])), Some([4; 16]));
        assert_eq!(parse_header(&header(&[0; 16])), None);
        let mut h = header(&[4; 16]);
        h[1] = 3;
        assert_eq!(parse_header(&h), None);
    }

    #[test]
    fn siv_roundtrip_all_sizes() {
        let d = zero_cipher();
        for len in [
            0,
            1,
            4095,
            4096,
            4097,
            70_000,
            FIRST_OPEN_BLOCKS * BLOCK_SIZE,
            FIRST_OPEN_BLOCKS * BLOCK_SIZE + 1,
            BATCH_BLOCKS * BLOCK_SIZE + 3,
            (FIRST_OPEN_BLOCKS + 2 * BATCH_BLOCKS) * BLOCK_SIZE,
        ] {
            let p = data(len);
            let ct = siv_encrypt(&p, b"x/y");
            let (out, rep) = decrypt(&d, &ct, false);
            assert!(rep.is_ok(), "{len}: {rep:?}");
            assert_eq!(out, p, "{len}");
            assert_eq!(plain_size(ct.len() as u64), Some(len as u64));
            assert_eq!(rep.fingerprint.is_some(), len > 0);
        }
    }

    #[test]
    fn tampered_twins_fail_with_block_numbers() {
        let d = zero_cipher();
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
    fn fingerprints_tell_files_apart() {
        let d = zero_cipher();
        let p = data(3 * BLOCK_SIZE + 9);
        let a = decrypt(&d, &siv_encrypt(&p, b"a"), false).1.fingerprint;
        assert_eq!(
            a,
            decrypt(&d, &siv_encrypt(&p, b"a"), false).1.fingerprint,
            "same bytes, same fingerprint"
        );
        // Same content at another path (other IVs), and other content at the same path.
        assert_ne!(a, decrypt(&d, &siv_encrypt(&p, b"b"), false).1.fingerprint);
        let mut q = p.clone();
        q[5000] ^= 1;
        assert_ne!(a, decrypt(&d, &siv_encrypt(&q, b"a"), false).1.fingerprint);
        // Read without decrypting, the same.
        let ct = siv_encrypt(&p, b"a");
        assert_eq!(
            fingerprint(&mut &ct[..], Aead::Siv).unwrap(),
            Some((FileIvs::for_path(b"a").file_id, a.unwrap()))
        );
        let big = data(300 * BLOCK_SIZE + 1);
        let ct = siv_encrypt(&big, b"a");
        assert_eq!(
            fingerprint(&mut &ct[..], Aead::Siv).unwrap().map(|x| x.1),
            decrypt(&d, &ct, false).1.fingerprint
        );
        // A shorter file with the same first blocks.
        let short = &p[..2 * BLOCK_SIZE];
        assert_ne!(
            a,
            decrypt(&d, &siv_encrypt(short, b"a"), false).1.fingerprint
        );
    }

    #[test]
    fn holes_only_where_allowed() {
        let d = zero_cipher();
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
        let p = data(3 * BLOCK_SIZE + 5);
        let fixed = ContentCipher::for_aead(&m, true, Aead::Gcm).unwrap();
        let ct = forward_encrypt(&fixed, [9; 16], &p);
        let (out, rep) = decrypt(&fixed, &ct, true);
        assert!(rep.is_ok(), "{rep:?}");
        assert_eq!(out, p);
        // Detection: SIV fails, GCM authenticates and is kept for the run.
        let auto = ContentCipher::detecting(&m, true);
        assert_eq!(auto.aead(), None);
        let (out, rep) = decrypt(&auto, &ct, true);
        assert!(rep.is_ok());
        assert_eq!(out, p);
        assert_eq!(auto.aead(), Some(Aead::Gcm));
        // Under SIV, the same file does not authenticate.
        let siv = ContentCipher::for_aead(&m, true, Aead::Siv).unwrap();
        assert_eq!(decrypt(&siv, &ct, true).1.bad_blocks, 4);
        // Tampered GCM tag.
        let mut t = ct.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert_eq!(decrypt(&fixed, &t, true).1.bad_listed, [3]);
        // Detection with a SIV file picks SIV.
        let auto = ContentCipher::detecting(&m, true);
        assert!(decrypt(&auto, &siv_encrypt(&p, b"q"), false).1.is_ok());
        assert_eq!(auto.aead(), Some(Aead::Siv));
    }

    #[test]
    fn xchacha_files_symlinks_and_tampered_twins() {
        let m = master();
        let c = ContentCipher::for_aead(&m, true, Aead::XChaCha).unwrap();
        for len in [1, 4095, 4096, 4097, 20 * BLOCK_SIZE + 3] {
            let p = data(len);
            let ct = forward_encrypt(&c, [7; 16], &p);
            assert_eq!(ct.len() as u64, Aead::XChaCha.cipher_size(len as u64));
            let (out, rep) = decrypt(&c, &ct, true);
            assert!(rep.is_ok(), "{len}: {rep:?}");
            assert_eq!(out, p);
            let mut t = ct.clone();
            t[HEADER_LEN + 30] ^= 1;
            assert_eq!(decrypt(&c, &t, true).1.bad_listed, [0], "{len}");
        }
        // Under another AEAD, nothing authenticates; legacy (non-HKDF) keys are refused.
        let gcm = ContentCipher::for_aead(&m, true, Aead::Gcm).unwrap();
        let ct = forward_encrypt(&c, [7; 16], &data(100));
        assert!(!decrypt(&gcm, &ct, true).1.is_ok());
        assert!(ContentCipher::for_aead(&m, false, Aead::XChaCha).is_err());
        // Symlink: 24-byte nonce, AD of block 0 without file ID.
        let mut nonce = [3u8; 24];
        nonce[0] = 1;
        let mut buf = b"../t".to_vec();
        let tag = c
            .xchacha
            .as_ref()
            .unwrap()
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &SYMLINK_AD, &mut buf)
            .unwrap();
        let blob = [&nonce[..], &buf, &tag].concat();
        assert_eq!(c.open_symlink(&blob).unwrap(), b"../t");
        let mut t = blob.clone();
        t[26] ^= 1;
        assert!(c.open_symlink(&t).is_none());
    }

    #[test]
    fn symlinks_under_every_aead() {
        let m = master();
        let c = zero_cipher();
        let blob = seal_symlink(&c, &[3; 16], b"../target");
        let auto = ContentCipher::detecting(&m, true);
        assert_eq!(auto.open_symlink(&blob).unwrap(), b"../target");
        assert_eq!(auto.aead(), Some(Aead::Siv));
        let mut t = blob.clone();
        t[17] ^= 1;
        assert!(auto.open_symlink(&t).is_none());
        // All-zero nonce is refused, as in gocryptfs.
        let z = seal_symlink(&c, &[0; 16], b"x");
        assert!(auto.open_symlink(&z).is_none());
    }

    #[test]
    fn sealing_needs_aes_siv() {
        let gcm = ContentCipher::for_aead(&master(), true, Aead::Gcm).unwrap();
        assert!(
            std::panic::catch_unwind(|| gcm.lanes().open_blocks(&[1; 16], 0, &[], &mut []))
                .is_err()
        );
    }
}
