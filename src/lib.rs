//! cryptbak: the `gocryptfs -reverse` view of a directory, without FUSE.
//!
//! The library computes what a reverse mount would show ([`view`]), writes it into a
//! destination ([`sink`]) with a parallel walk ([`walk`]), and holds the format's pure
//! crypto and path math ([`keys`], [`pathiv`], [`names`], [`content`], [`config`]).
//! It never prints: problems and progress go through [`progress::Progress`].

pub mod cancel;
pub mod config;
pub mod content;
pub mod cpath;
pub mod cryptor;
pub mod error;
pub mod exclude;
pub mod keys;
pub mod meter;
pub mod names;
pub mod pathiv;
pub mod pathmap;
pub mod progress;
pub mod restore;
pub mod sink;
pub mod siv;
pub mod smallfile;
pub mod stream;
pub mod sync;
pub mod verify;
pub mod view;
pub mod walk;

pub use error::{Error, Result};
