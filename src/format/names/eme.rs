//! EME ("ECB-Mix-ECB", Halevi–Rogaway) wide-block encryption with AES-256, as in
//! `github.com/rfjakob/eme`, which gocryptfs uses for file names (FORMAT.md §6).
//!
//! Written from the published algorithm; the known-answer tests pin it to the upstream
//! vectors. Inputs are 1..=128 blocks of 16 bytes.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes256;
use zeroize::{Zeroize, Zeroizing};

pub const MAX_BLOCKS: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encrypt,
    Decrypt,
}

pub struct Eme {
    aes: Aes256,
}

/// Doubling in GF(2^128) with EME's little-endian byte order.
fn mult_by_two(x: &mut [u8; 16]) {
    let carry = x[15] >> 7;
    for j in (1..16).rev() {
        x[j] = (x[j] << 1) | (x[j - 1] >> 7);
    }
    x[0] <<= 1;
    if carry != 0 {
        x[0] ^= 0x87;
    }
}

fn xor_into(dst: &mut [u8; 16], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

impl Eme {
    pub fn new(key: &[u8; 32]) -> Self {
        Eme {
            aes: Aes256::new(GenericArray::from_slice(key)),
        }
    }

    pub fn encrypt(&self, tweak: &[u8; 16], data: &[u8]) -> Vec<u8> {
        self.transform(tweak, data, Direction::Encrypt)
    }

    pub fn decrypt(&self, tweak: &[u8; 16], data: &[u8]) -> Vec<u8> {
        self.transform(tweak, data, Direction::Decrypt)
    }

    fn aes(&self, block: &mut [u8; 16], dir: Direction) {
        let b = GenericArray::from_mut_slice(block);
        match dir {
            Direction::Encrypt => self.aes.encrypt_block(b),
            Direction::Decrypt => self.aes.decrypt_block(b),
        }
    }

    fn transform(&self, tweak: &[u8; 16], data: &[u8], dir: Direction) -> Vec<u8> {
        assert!(
            !data.is_empty() && data.len() % 16 == 0 && data.len() / 16 <= MAX_BLOCKS,
            "EME input must be 1..=128 whole blocks"
        );
        let m = data.len() / 16;

        // The L table always uses AES encryption, also when decrypting. Its entries are
        // subkeys (multiples of AES_K(0)), so they are wiped afterwards like the key.
        let mut l_table = Zeroizing::new(Vec::with_capacity(m));
        let mut li = [0u8; 16];
        self.aes(&mut li, Direction::Encrypt);
        for _ in 0..m {
            mult_by_two(&mut li);
            l_table.push(li);
        }
        li.zeroize();

        let mut ppp: Vec<[u8; 16]> = data
            .chunks_exact(16)
            .zip(l_table.iter())
            .map(|(p, l)| {
                let mut b = *l;
                xor_into(&mut b, p);
                self.aes(&mut b, dir);
                b
            })
            .collect();

        let mut mp = *tweak;
        for b in &ppp {
            xor_into(&mut mp, b);
        }
        let mut mc = mp;
        self.aes(&mut mc, dir);
        let mut mm = mp;
        xor_into(&mut mm, &mc);

        // CCC_j for j ≥ 1 overwrite PPP_j in place; CCC_0 collects their XOR.
        let mut ccc0 = mc;
        xor_into(&mut ccc0, tweak);
        for b in ppp.iter_mut().skip(1) {
            mult_by_two(&mut mm);
            xor_into(b, &mm);
            xor_into(&mut ccc0, b);
        }
        ppp[0] = ccc0;

        let mut out = Vec::with_capacity(data.len());
        for (mut b, l) in ppp.into_iter().zip(l_table.iter()) {
            self.aes(&mut b, dir);
            xor_into(&mut b, l);
            out.extend_from_slice(&b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn upstream_zero_vector_one_block() {
        let e = Eme::new(&[0; 32]);
        let c = e.encrypt(&[0; 16], &[0; 16]);
        assert_eq!(hex(&c), "f1b9ce8ca15a4ba9fb476905434b9fd3");
        assert_eq!(e.decrypt(&[0; 16], &c), vec![0; 16]);
        // Tampered twin: one flipped ciphertext bit garbles the whole block.
        let mut t = c.clone();
        t[3] ^= 0x10;
        assert_ne!(e.decrypt(&[0; 16], &t), vec![0; 16]);
    }

    #[test]
    fn roundtrip_all_lengths_and_wide_diffusion() {
        let e = Eme::new(&[7; 32]);
        let tweak = [3u8; 16];
        for m in 1..=MAX_BLOCKS {
            let p: Vec<u8> = (0..m * 16).map(|i| (i * 31 % 251) as u8).collect();
            let c = e.encrypt(&tweak, &p);
            assert_eq!(e.decrypt(&tweak, &c), p);
            // Changing the last byte changes every block (wide-block property).
            let mut p2 = p.clone();
            *p2.last_mut().unwrap() ^= 1;
            let c2 = e.encrypt(&tweak, &p2);
            for (a, b) in c.chunks(16).zip(c2.chunks(16)) {
                assert_ne!(a, b);
            }
        }
    }
}
