//! cryptbak: the `gocryptfs -reverse` view of a directory, without FUSE.
//!
//! The library computes what a reverse mount would show ([`view`], pure), walks the
//! source and decides every change once ([`export`], the one export driver), and hands
//! the result to a destination ([`sink`]: a directory, a tar stream, or an `s3://` or
//! `sftp://` location). All filesystem access below the roots a user names goes through
//! directory handles ([`fs`]). The format's pure crypto and path math live in
//! [`mod@format`] (config, keys, path IVs, names, contents, and [`format::Cryptor`], the
//! one key bundle). Backups are read back by one reader ([`backup`]: from a directory, a
//! tar stream or a remote location) for [`restore`], [`verify`], `ls` and the path tools.
//! [`remote`] is the storage layer under `s3://` and `sftp://` (OpenDAL, SFTP), with the
//! layout of a view in a store ([`remote::tree`]) and the metadata cache
//! ([`remote::cache`]).
//! It never prints: problems and progress go through [`progress::Progress`].

pub mod backup;
pub mod cancel;
pub mod cpath;
pub mod error;
pub mod exclude;
pub mod export;
pub mod format;
pub mod fs;
pub mod meter;
pub mod progress;
pub mod remote;
pub mod restore;
pub mod sink;
pub mod verify;
pub mod view;

pub use error::{Error, Result};

/// Whether a type implements a trait, decided at compile time but usable in `assert!`
/// (the `impls` crate's trick: an inherent associated const exists only when the bound
/// holds and then shadows the trait's `false`). For the tests proving that key holders
/// have no `Debug`, `Display` or `Clone`, in this crate and in the binary.
#[doc(hidden)]
#[macro_export]
macro_rules! implements {
    ($t:ty: $tr:path) => {{
        struct Probe<T: ?Sized>(std::marker::PhantomData<T>);
        #[allow(dead_code)]
        trait Fallback {
            const YES: bool = false;
        }
        impl<T: ?Sized> Fallback for Probe<T> {}
        #[allow(dead_code)]
        impl<T: ?Sized + $tr> Probe<T> {
            const YES: bool = true;
        }
        <Probe<$t>>::YES
    }};
}
