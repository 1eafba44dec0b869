//! Cooperative cancellation. The binary connects SIGINT/SIGTERM to this flag; the walks
//! check it between entries and while writing file data, stop, let the in-flight file's
//! temporary copy be removed, and return `Error::Interrupted` (exit code 130).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

static REQUESTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// The flag a signal handler sets.
pub fn flag() -> Arc<AtomicBool> {
    Arc::clone(&REQUESTED)
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// `Err(Interrupted)` once a stop was requested.
pub fn check() -> crate::Result<()> {
    if requested() {
        Err(crate::Error::Interrupted)
    } else {
        Ok(())
    }
}

/// An I/O error for code paths that speak `io::Result` (a file being written).
pub fn io_check() -> std::io::Result<()> {
    if requested() {
        Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "interrupted by a signal",
        ))
    } else {
        Ok(())
    }
}
