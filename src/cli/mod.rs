//! The `cryptbak` binary: argument parsing, password sources, terminal output, exit codes.
//! Everything format-related lives in the library.

pub mod args;
pub mod cache;
pub mod commands;
pub mod exit;
pub mod export;
pub mod inspect;
pub mod password;
pub mod report;
pub mod restore;
pub mod source;
pub mod speed;
pub mod tar;
pub mod verify;
