//! Filesystem access below the roots the user names (SRC, DEST), through directory
//! handles only: see [`handle`] for the rule and the operations, [`lock`] for the run
//! lock, [`cache`] for what a run keeps for the next, [`process`] for what the process
//! does to itself at start.

pub mod cache;
pub mod handle;
pub mod lock;
pub mod process;

pub use handle::{Dir, Identity};
