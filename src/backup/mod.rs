//! The reader of backups: a ciphertext source (a directory, a tar stream, a remote
//! location) turned into
//! authenticated plaintext entries, with the format's rules in one place, so `restore`,
//! `verify`, `ls`, `decrypt-path` and `encrypt-path` cannot disagree (DESIGN.md).
//!
//! * [`names`]: what a name in a backup directory is, and how a plaintext name is worked
//!   out and checked (dir IVs, long names and their `.name` files);
//! * [`verdict`]: the layout (reverse-made or forward-mode) and integrity judgement, with
//!   the rule for hard links that copy tools split;
//! * content decryption for every cipher is the format's ([`crate::format::content`]);
//! * [`source_dir`], [`source_tar`], [`source_remote`]: the sources (a directory, a tar
//!   stream, an `s3://` or `sftp://` location), which feed entries to the restore
//!   engine ([`crate::restore::engine`]); [`fs`] (handle-based access to a backup
//!   directory) and [`tar`] (a tar reader for hostile streams) beneath them;
//! * [`ls`], [`paths`]: lookups that need no full run (`ls`, `decrypt-path`,
//!   `encrypt-path`); [`count`]: a restore's size, for the progress line.
//!
//! It trusts nothing it reads, and says plainly what the format does not authenticate:
//! owners, modes, times and file types (see `docs/verify.md`).

pub mod count;
pub mod ls;
pub mod names;
pub mod paths;
pub mod source_dir;
pub mod source_remote;
pub mod source_tar;
pub mod tar;
pub mod verdict;
