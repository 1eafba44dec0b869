//! How many bytes of file data this process has produced so far (ciphertext written by
//! export, plaintext by restore). `Progress::entry_done` reports an entry only once it
//! is complete, so a display fed by it alone would freeze for the minutes one large
//! file takes; this counter moves as the data goes out. Process-wide, like
//! `cancel`, because it is read by the display and bumped deep inside the writers.

use std::sync::atomic::{AtomicU64, Ordering};

static BYTES: AtomicU64 = AtomicU64::new(0);

pub fn add(bytes: usize) {
    BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

pub fn total() -> u64 {
    BYTES.load(Ordering::Relaxed)
}
