//! `cryptbak speed`: crypto throughput on this machine (like `gocryptfs -speed`).
//!
//! Every figure is the best of a few short rounds (machines are noisy; the best round
//! is the closest to what the hardware can do). Keys are random: nothing is read from
//! or written to disk.

use std::io;
use std::time::{Duration, Instant};

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes256, Block};
use rayon::prelude::*;
use zeroize::Zeroizing;

use cryptbak::format::content::{self, ContentCipher, FileEncryptor, FileIvs, BLOCK_SIZE};
use cryptbak::format::names::NameCodec;
use cryptbak::format::siv::LANES;
use cryptbak::{Error, Result};

use super::args::SpeedArgs;
use super::exit;

/// Bytes of plaintext per unit of work (a 1 MiB batch, as `FileEncryptor` reads).
const UNIT: usize = 256 * BLOCK_SIZE;
/// The "one big file" of the end-to-end figure.
const BIG_FILE: usize = 64 << 20;
/// The small files of the end-to-end figure: 16 KiB each, 1024 of them.
const SMALL_FILE: usize = 16 << 10;
const SMALL_FILES: usize = 1024;

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("OS random source");
    b
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn aes_hw() -> bool {
    std::is_x86_feature_detected!("aes")
}

#[cfg(target_arch = "aarch64")]
fn aes_hw() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn aes_hw() -> bool {
    false
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

struct Bench {
    round: Duration,
    rounds: usize,
    one: rayon::ThreadPool,
    all: rayon::ThreadPool,
}

impl Bench {
    /// Best rate (units per second) of `work` run on every thread of `pool` until a
    /// shared deadline; `work` returns how many units it did per call.
    fn per_thread<S>(
        &self,
        pool: &rayon::ThreadPool,
        init: impl Fn() -> S + Sync,
        work: impl Fn(&mut S) -> u64 + Sync,
    ) -> f64 {
        let mut best = 0f64;
        for _ in 0..self.rounds {
            let start = Instant::now();
            let deadline = start + self.round;
            let done: u64 = pool
                .broadcast(|_| {
                    let mut s = init();
                    let mut n = 0;
                    while Instant::now() < deadline {
                        n += work(&mut s);
                    }
                    n
                })
                .into_iter()
                .sum();
            best = best.max(done as f64 / start.elapsed().as_secs_f64());
        }
        best
    }

    /// Best rate of `work` run (repeatedly, on one thread of `pool`, free to use the
    /// whole pool itself) for a round.
    fn whole_pool(&self, pool: &rayon::ThreadPool, work: impl Fn() -> u64 + Sync) -> f64 {
        let mut best = 0f64;
        for _ in 0..self.rounds {
            let (done, secs) = pool.install(|| {
                let start = Instant::now();
                let mut n = 0;
                while start.elapsed() < self.round {
                    n += work();
                }
                (n, start.elapsed().as_secs_f64())
            });
            best = best.max(done as f64 / secs);
        }
        best
    }

    fn both_per_thread<S>(
        &self,
        init: impl Fn() -> S + Sync,
        work: impl Fn(&mut S) -> u64 + Sync,
    ) -> (f64, f64) {
        (
            self.per_thread(&self.one, &init, &work),
            self.per_thread(&self.all, &init, &work),
        )
    }

    fn both_whole_pool(&self, work: impl Fn() -> u64 + Sync) -> (f64, f64) {
        (
            self.whole_pool(&self.one, &work),
            self.whole_pool(&self.all, &work),
        )
    }
}

fn mb(rate: f64) -> String {
    format!("{:.0} MB/s", rate / 1e6)
}

fn per_sec(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M/s", rate / 1e6)
    } else {
        format!("{:.0} k/s", rate / 1e3)
    }
}

struct Table {
    threads: usize,
    only: Option<String>,
    /// The aes-siv crate's single-thread seal rate, for the speedup column.
    baseline: Option<f64>,
}

impl Table {
    fn header(&self) {
        let all = match self.threads {
            1 => "1 thread".to_string(),
            n => format!("{n} threads"),
        };
        println!(
            "{:<46} {:>12} {:>12} {:>9}",
            "", "1 thread", all, "vs crate"
        );
    }

    fn want(&self, what: &str) -> bool {
        self.only.as_ref().is_none_or(|o| what.contains(o.as_str()))
    }

    fn row(&self, what: &str, (one, all): (f64, f64), fmt: fn(f64) -> String, vs_crate: bool) {
        let ratio = match (vs_crate, self.baseline) {
            (true, Some(b1)) if b1 > 0.0 => format!("{:.1}×", one / b1),
            _ => String::new(),
        };
        println!(
            "{:<46} {:>12} {:>12} {:>9}",
            what,
            fmt(one),
            fmt(all),
            ratio
        );
    }
}

pub fn run(a: &SpeedArgs) -> Result<i32> {
    let threads = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let pool = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Error::io("rayon", io::Error::other(e.to_string())))
    };
    if !(a.seconds > 0.0 && a.seconds <= 60.0) {
        return Err(Error::invalid("--seconds", "must be in (0, 60]"));
    }
    let b = Bench {
        round: Duration::from_secs_f64(a.seconds / a.rounds.max(1) as f64),
        rounds: a.rounds.max(1),
        one: pool(1)?,
        all: pool(threads)?,
    };
    println!(
        "cpu: {}; AES instructions: {}",
        cpu_name(),
        if aes_hw() {
            "yes"
        } else {
            "no (portable AES, much slower)"
        }
    );
    println!(
        "best of {} rounds of {:.2} s each; 1 MB = 10^6 bytes",
        b.rounds,
        b.round.as_secs_f64()
    );

    let cipher = ContentCipher::new(Zeroizing::new(random::<64>()));
    let ivs = FileIvs {
        file_id: random(),
        block0: random(),
    };
    let plain: Vec<u8> = (0..UNIT).map(|i| (i * 7 + i / 4096) as u8).collect();
    let sealed_len = content::cipher_size(UNIT as u64) as usize - content::HEADER_LEN;
    let sealed_buf = || vec![0u8; sealed_len];
    let lanes = cipher.lanes();
    let mut sealed = sealed_buf();
    lanes.seal_blocks(&ivs.file_id, 0, &ivs.block0, &plain, &mut sealed);

    let mut t = Table {
        threads,
        only: a.only.clone(),
        baseline: None,
    };
    println!();
    t.header();

    // The reference points: raw AES-256 with independent blocks (the ceiling; AES-SIV
    // needs two AES passes per byte) and along one chain (what any
    // one-block-at-a-time CMAC is limited to).
    let aes = Aes256::new(&random::<32>().into());
    let what = "AES-256, independent blocks";
    if t.want(what) {
        let r = b.both_per_thread(
            || vec![Block::default(); UNIT / 16],
            |buf| {
                aes.encrypt_blocks(buf);
                UNIT as u64
            },
        );
        t.row(what, r, mb, false);
    }
    let what = "AES-256, one chain (CMAC-like)";
    if t.want(what) {
        let r = b.both_per_thread(Block::default, |x| {
            for _ in 0..UNIT / 16 {
                aes.encrypt_block(x);
            }
            UNIT as u64
        });
        t.row(what, r, mb, false);
    }

    // AES-SIV-512 per 4 KiB content block.
    let what = "AES-SIV-512 4 KiB seal, aes-siv crate";
    if t.want(what) {
        let r = b.both_per_thread(
            || (cipher.siv(), sealed_buf()),
            |(siv, out)| {
                for (i, (p, o)) in plain
                    .chunks(BLOCK_SIZE)
                    .zip(out.chunks_mut(content::CIPHER_BLOCK_SIZE))
                    .enumerate()
                {
                    content::seal_block(siv, &ivs, i as u64, p, o);
                }
                UNIT as u64
            },
        );
        t.baseline = Some(r.0);
        t.row(what, r, mb, true);
    }
    let what = format!("AES-SIV-512 4 KiB seal, {LANES} lanes");
    if t.want(&what) {
        let r = b.both_per_thread(sealed_buf, |out| {
            lanes.seal_blocks(&ivs.file_id, 0, &ivs.block0, &plain, out);
            UNIT as u64
        });
        t.row(&what, r, mb, true);
    }
    let what = "AES-SIV-512 4 KiB open, aes-siv crate";
    if t.want(what) {
        let r = b.both_per_thread(
            || (cipher.siv(), vec![0u8; BLOCK_SIZE]),
            |(siv, out)| {
                for (i, s) in sealed.chunks(content::CIPHER_BLOCK_SIZE).enumerate() {
                    assert!(content::open_block(siv, &ivs.file_id, i as u64, s, out));
                }
                UNIT as u64
            },
        );
        t.row(what, r, mb, true);
    }
    let what = format!("AES-SIV-512 4 KiB open, {LANES} lanes");
    if t.want(&what) {
        let r = b.both_per_thread(
            || vec![0u8; UNIT],
            |out| {
                lanes
                    .open_blocks(&ivs.file_id, 0, &sealed, out)
                    .expect("authentic");
                UNIT as u64
            },
        );
        t.row(&what, r, mb, true);
    }

    // Names: EME plus base64, for a typical and a long name.
    let codec = NameCodec::new(&random::<32>(), true, true, None);
    let dir_iv: [u8; 16] = random();
    for (what, name) in [
        (
            "EME name encryption (21-byte name)",
            &b"IMG_20240101_1234.jpg"[..],
        ),
        ("EME name encryption (200-byte name)", &[b'x'; 200][..]),
    ] {
        if t.want(what) {
            let r = b.both_per_thread(
                || (),
                |_| {
                    for _ in 0..64 {
                        std::hint::black_box(codec.encrypt(&dir_iv, name));
                    }
                    64
                },
            );
            t.row(what, r, per_sec, false);
        }
    }

    // FileEncryptor end to end, memory to memory (no disk): one big file spread over
    // the pool, and many small files on all threads as the walk does it.
    let big: Vec<u8> = (0..BIG_FILE).map(|i| (i * 13 + i / 4096) as u8).collect();
    let what = "FileEncryptor, one 64 MiB file";
    if t.want(what) {
        let r = b.both_whole_pool(|| {
            let mut enc = FileEncryptor::new(&cipher);
            enc.encrypt(&ivs, &mut &big[..], &mut io::sink())
                .expect("in memory")
        });
        t.row(what, r, mb, false);
    }
    for (what, size) in [
        ("FileEncryptor, 16 KiB files", SMALL_FILE),
        ("FileEncryptor, 4 KiB files (one block each)", BLOCK_SIZE),
    ] {
        if t.want(what) {
            let r = b.both_whole_pool(|| {
                (0..SMALL_FILES)
                    .into_par_iter()
                    .map_init(
                        || FileEncryptor::new(&cipher),
                        |enc, i| {
                            let data = &big[i * size..(i + 1) * size];
                            enc.encrypt(&ivs, &mut &data[..], &mut io::sink())
                                .expect("in memory")
                        },
                    )
                    .sum()
            });
            t.row(what, r, mb, false);
        }
    }
    Ok(exit::OK)
}
